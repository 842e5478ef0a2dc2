#!/usr/bin/env python3
"""The comparison table over several RLKV training seeds: `rlkv compare --output` (every baseline on
the problems) plus one `rlkv eval --method rlkv --output` per training seed on the same problems.

Usage: python3 tools/compare_seeds.py COMPARE.json RLKV_SEED.json [RLKV_SEED.json ...]
                                      [--merged OUT.json] [--name NAME]
Prints the Markdown table (the learned masks as mean and min-max over seeds, then each seed), and the
verdict against the per-head baselines: at each sparsity, the seeds' mean minus the best of the
single-head oracle and the two DuoAttention variants, and how far the oracle falls below the best mask
any method found. --merged writes the compare rows with the seeds' mean as the rlkv rows (their sample
std as accuracy_std) for analysis/tradeoff.py. Standard library only.
"""
import argparse
import json
import statistics
import sys

LABELS = [
    ("oracle", "single-head ablation oracle"),
    ("duo-retrieval", "DuoAttention, retrieval passkeys"),
    ("duo-reasoning", "DuoAttention, the model's own chains"),
    ("h2o", "H2O, matched budget"),
    ("snapkv", "SnapKV, matched budget"),
    ("rkv", "R-KV, matched budget"),
    ("random", "random masks"),
]
PER_HEAD = ("oracle", "duo-retrieval", "duo-reasoning")


def row_ok(r):
    """A row this script reads: a method and an accuracy; a sparsity row also its KV fraction."""
    if not isinstance(r, dict) or not isinstance(r.get("method"), str):
        return False
    numeric = ["accuracy"] + (["sparsity", "kv_fraction_of_full"] if "sparsity" in r else [])
    return all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) for k in numeric)


def load_doc(path):
    try:
        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise ValueError("no list of rows")
        for i, r in enumerate(doc["rows"]):
            if not row_ok(r):
                raise ValueError(f"row {i + 1} lacks a method, a numeric accuracy or, with a sparsity, "
                                 "a numeric KV fraction")
    except (OSError, ValueError) as e:
        sys.exit(f"compare_seeds.py: {path}: not an rlkv results file ({e})")
    return doc


def load(path):
    return load_doc(path)["rows"]


def by_sparsity(rows, method):
    return {round(r["sparsity"], 6): r for r in rows if r["method"] == method and "sparsity" in r}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("compare")
    p.add_argument("seeds", nargs="+")
    p.add_argument("--merged", default="")
    p.add_argument("--name", default="rlkv")
    a = p.parse_args()
    doc = load_doc(a.compare)
    rows = doc["rows"]
    seeds = [by_sparsity(load(s), "rlkv") for s in a.seeds]
    sparsities = sorted(set.intersection(*(set(s) for s in seeds)))
    if not sparsities:
        sys.exit("compare_seeds.py: the seed files share no sparsity")
    mid = min(sparsities, key=lambda s: abs(s - 0.5))
    pct = lambda x: f"{100 * x:.1f}"
    print("| method | " + " | ".join(f"{pct(s)}%" for s in sparsities) + f" | KV vs full at {pct(mid)}% |")
    print("|---|" + "---:|" * (len(sparsities) + 1))
    mean = {}
    for s in sparsities:
        acc = [sd[s]["accuracy"] for sd in seeds]
        mean[s] = (statistics.mean(acc), min(acc), max(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0)
    kv = statistics.mean(sd[mid]["kv_fraction_of_full"] for sd in seeds)
    print(f"| {a.name} ({len(seeds)} seeds: mean, min-max) | " +
          " | ".join(f"**{pct(mean[s][0])}** ({pct(mean[s][1])}-{pct(mean[s][2])})" for s in sparsities) +
          f" | {pct(kv)}% |")
    for i, sd in enumerate(seeds):
        print(f"| {a.name}, seed {i + 1} | " + " | ".join(pct(sd[s]["accuracy"]) for s in sparsities) +
              f" | {pct(sd[mid]['kv_fraction_of_full'])}% |")
    base = {}
    for method, label in LABELS:
        m = by_sparsity(rows, method)
        if not all(s in m for s in sparsities):
            continue
        base[method] = m
        std = lambda r: f" ± {pct(r.get('accuracy_std', 0.0))}" if method == "random" else ""
        print(f"| {label} | " + " | ".join(pct(m[s]["accuracy"]) + std(m[s]) for s in sparsities) +
              f" | {pct(m[mid]['kv_fraction_of_full'])}% |")
    full = next((r for r in rows if r["method"] == "full"), None)
    if full:
        print(f"\nEvery head full: {pct(full['accuracy'])}% on {full.get('n', '?')} problems.")
    per_head = [m for m in PER_HEAD if m in base]
    if per_head:
        print()
        for s in sparsities:
            best = max(base[m][s]["accuracy"] for m in per_head)
            who = max(per_head, key=lambda m: base[m][s]["accuracy"])
            line = (f"- {pct(s)}% compressed: learned mean {pct(mean[s][0])} against the best per-head baseline "
                    f"{pct(best)} ({who}): {100 * (mean[s][0] - best):+.1f} points")
            if "oracle" in base:
                found = max([sd[s]["accuracy"] for sd in seeds] + [base[m][s]["accuracy"] for m in per_head])
                line += f"; the oracle is {100 * (found - base['oracle'][s]['accuracy']):.1f} below the best mask found"
            print(line + ".")
    if a.merged:
        out = [r for r in rows if r["method"] != "rlkv"]
        for s in sparsities:
            r = dict(seeds[0][s])
            r["accuracy"], r["accuracy_std"] = mean[s][0], mean[s][3]
            r["kv_fraction_of_full"] = statistics.mean(sd[s]["kv_fraction_of_full"] for sd in seeds)
            r["detail"] = f"mean of {len(seeds)} seeds"
            out.append(r)
        with open(a.merged, "w") as f:
            # The compare file's description of the run (problems, cache, model) with the merged rows.
            json.dump({**{k: v for k, v in doc.items() if k != "rows"}, "rows": out}, f, indent=1)


if __name__ == "__main__":
    main()
