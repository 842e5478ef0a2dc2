#!/usr/bin/env python3
"""The comparison table over several RLKV training seeds: `rlkv compare --output` (every baseline on
the problems) plus one `rlkv eval --method rlkv --output` per training seed on the same problems.

Usage: python3 tools/compare_seeds.py COMPARE.json RLKV_SEED.json [RLKV_SEED.json ...]
                                      [--merged OUT.json] [--name NAME]
Prints the Markdown table (the learned masks as mean and min-max over seeds, then each seed), and the
verdict against the per-head baselines: at each sparsity, the seeds' mean minus the best of the
single-head oracle and the two DuoAttention variants, and how far the oracle falls below the best mask
any method found. --merged writes the compare rows with the seeds' mean as the rlkv rows (every numeric
column averaged, their sample std as accuracy_std) for analysis/tradeoff.py; it must not name an input.
The seeds must agree on n, the problems each was evaluated on. Bad input: one line on stderr starting
with "compare_seeds.py:" and exit status 2. Standard library only.
"""
import argparse
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "analysis"))
from plot_io import replace_file  # noqa: E402

PROG = "compare_seeds.py"

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


class Refused(Exception):
    """Bad input or options; str(e) is the one line printed after the script's name (exit status 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (argparse would print the usage too)."""

    def error(self, message):
        sys.stderr.write(f"{PROG}: {message} (see --help)\n")
        sys.exit(2)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v):
    """Whether the number v is finite as a double (1e400 reads as inf; an integer past the double
    range, 1 followed by 400 zeros, does not convert at all)."""
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def row_problem(r):
    """Why this script cannot read row r, or None. A row needs a method and an accuracy, a sparsity row
    also its KV fraction, and every number in it (accuracy_std included) must be finite."""
    if not isinstance(r, dict) or not isinstance(r.get("method"), str):
        return "is not an object with a method"
    numeric = ["accuracy"] + (["sparsity", "kv_fraction_of_full"] if "sparsity" in r else [])
    numeric += ["accuracy_std"] if "accuracy_std" in r else []
    for k in numeric:
        if not is_number(r.get(k)):
            return f"({r['method']}) has no numeric {k}"
    for k, v in r.items():
        if is_number(v) and not finite(v):
            return f"({r['method']}) has a {k} that is not finite"
    return None


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def load_doc(path):
    """The results file at path, its rows checked; raises Refused."""
    what = f"{path}: not an rlkv results file"
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"), parse_constant=reject_constant)
    except OSError as e:
        raise Refused(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise Refused(f"{what} (not UTF-8 at byte {e.start})") from None
    except RecursionError:
        raise Refused(f"{what} (nested too deeply)") from None
    except ValueError as e:  # json.JSONDecodeError, and NaN / Infinity
        raise Refused(f"{what} ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise Refused(f"{what} (no list of rows)")
    for i, r in enumerate(doc["rows"]):
        problem = row_problem(r)
        if problem:
            raise Refused(f"{what} (row {i + 1} {problem})")
    return doc


def load(path):
    return load_doc(path)["rows"]


def same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_merged(merged, inputs):
    """--merged must name a file in an existing directory, and none of the inputs."""
    out_dir = os.path.dirname(os.path.abspath(merged))
    if not os.path.isdir(out_dir):
        raise Refused(f"--merged {merged}: the directory {out_dir} does not exist")
    if os.path.isdir(merged):
        raise Refused(f"--merged {merged}: is a directory")
    for path in inputs:
        if same_file(merged, path):
            raise Refused(f"--merged {merged} is the input {path}; it would be overwritten")


def merged_row(rows):
    """One rlkv row from the seeds' rows at one sparsity: every numeric column the seeds all hold is
    their mean (a column some seed lacks is left out), accuracy_std the seeds' sample standard
    deviation of accuracy, the sparsity and the other fields those of the first seed. n (problems per
    seed) must be the same in every seed."""
    ns = [r.get("n") for r in rows]
    if any(n != ns[0] for n in ns):
        raise Refused(f"at sparsity {rows[0]['sparsity']:g} the seeds were evaluated on different numbers of "
                      f"problems (n = {', '.join(str(n) for n in ns)}); compare seeds on the same problems")
    out = {}
    for k, v in rows[0].items():
        if k in ("sparsity", "n") or not is_number(v):
            out[k] = v
        elif all(is_number(r.get(k)) for r in rows):
            out[k] = statistics.mean(r[k] for r in rows)
    acc = [r["accuracy"] for r in rows]
    out["accuracy_std"] = statistics.stdev(acc) if len(acc) > 1 else 0.0
    out["detail"] = f"mean of {len(rows)} seeds"
    return out


def write_json(path, obj):
    """Writes obj to path whole or not at all (analysis/plot_io.replace_file: a temporary renamed over
    it; a symbolic link stays a link and its target is replaced)."""
    replace_file(path, (json.dumps(obj, indent=1)).encode("utf-8"))


def by_sparsity(rows, method):
    return {round(r["sparsity"], 6): r for r in rows if r["method"] == method and "sparsity" in r}


def main():
    try:
        run()
    except Refused as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        sys.exit(2)


def run():
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("compare")
    p.add_argument("seeds", nargs="+")
    p.add_argument("--merged", default="")
    p.add_argument("--name", default="rlkv")
    a = p.parse_args()
    if a.merged:
        check_merged(a.merged, [a.compare] + a.seeds)
    doc = load_doc(a.compare)
    rows = doc["rows"]
    seeds = [by_sparsity(load(s), "rlkv") for s in a.seeds]
    sparsities = sorted(set.intersection(*(set(s) for s in seeds)))
    if not sparsities:
        raise Refused("the seed files share no sparsity")
    merged = {s: merged_row([sd[s] for sd in seeds]) for s in sparsities}
    mid = min(sparsities, key=lambda s: abs(s - 0.5))
    pct = lambda x: f"{100 * x:.1f}"
    print("| method | " + " | ".join(f"{pct(s)}%" for s in sparsities) + f" | KV vs full at {pct(mid)}% |")
    print("|---|" + "---:|" * (len(sparsities) + 1))
    mean = {}
    for s in sparsities:
        acc = [sd[s]["accuracy"] for sd in seeds]
        mean[s] = (statistics.mean(acc), min(acc), max(acc))
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
        out = [r for r in rows if r["method"] != "rlkv"] + [merged[s] for s in sparsities]
        try:
            # The compare file's description of the run (problems, cache, model) with the merged rows.
            write_json(a.merged, {**{k: v for k, v in doc.items() if k != "rows"}, "rows": out})
        except OSError as e:
            raise Refused(f"--merged {a.merged}: cannot write ({e.strerror or e})") from None


if __name__ == "__main__":
    main()
