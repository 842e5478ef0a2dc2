#!/usr/bin/env python3
"""Pairwise head ablation: how much compressing two KV heads together costs, against the sum of
their single costs. A pair whose joint cost exceeds that sum backs one route up with the other
(redundant routes); one whose joint cost is below it shares one route (each alone already breaks it).

Usage: python3 tools/toy_pairs.py --model DIR --config FILE --data FILE.jsonl --output DIR
                                  [--limit N] [--rlkv PATH] [--heads L.H,L.H,...]

For each pair it writes a head-score file with 0 at the two heads and 1 elsewhere and runs
`rlkv eval --method rlkv --mask FILE --sparsity 2/heads` (the two lowest-scored heads, exactly those,
are compressed); the single costs come from `rlkv eval --method single-head` on the same problems.
Writes OUTPUT/pairs.json (every pair: joint drop, single drops, interaction) and prints Markdown:
the strongest interactions and the count of pairs above 30 points. Standard library only.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys


def run_eval(args, extra, out):
    cmd = [args.rlkv, "eval", "--config", args.config, "--model", args.model, "--data", args.data, "--task", "toy",
           "--output", out] + extra
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--limit", type=int, default=0, help="first N problems (0 = all)")
    p.add_argument("--rlkv", default="./build/launch/rlkv")
    p.add_argument("--heads", default="", help="only pairs among these heads, e.g. 0.1,2.3 (default: all)")
    args = p.parse_args()
    os.makedirs(args.output, exist_ok=True)

    single = run_eval(args, ["--method", "single-head"], os.path.join(args.output, "single_head.json"))
    rows = [r for r in single["rows"] if r["method"] == "single-head"]
    full_row = next(r for r in single["rows"] if r["method"] == "full")
    full, problems = full_row["accuracy"], full_row["n"]
    layers = max(r["layer"] for r in rows) + 1
    heads = max(r["kv_head"] for r in rows) + 1
    drop = {(r["layer"], r["kv_head"]): r["drop"] for r in rows}
    chosen = sorted(drop)
    if args.heads:
        chosen = [tuple(int(x) for x in h.split(".")) for h in args.heads.split(",")]
        for h in chosen:
            if h not in drop:
                sys.exit(f"toy_pairs: no head {h[0]}.{h[1]} in a {layers} x {heads} model")
    sparsity = 2.0 / (layers * heads)
    pairs = []
    tsv = os.path.join(args.output, "pair.tsv")
    for a, b in itertools.combinations(chosen, 2):
        with open(tsv, "w") as f:
            for l in range(layers):
                f.write("\t".join("0" if (l, h) in (a, b) else "1" for h in range(heads)) + "\n")
        r = run_eval(args, ["--method", "rlkv", "--mask", tsv, "--sparsity", repr(sparsity)],
                     os.path.join(args.output, "pair-eval.json"))["rows"][0]
        joint = full - r["accuracy"]
        pairs.append({"a": list(a), "b": list(b), "joint_drop": joint, "drop_a": drop[a], "drop_b": drop[b],
                      "interaction": joint - drop[a] - drop[b]})
        print(f"pair {a} {b}: joint drop {100 * joint:.1f}, singles {100 * drop[a]:.1f} + {100 * drop[b]:.1f}",
              file=sys.stderr)
    for name in ("pair.tsv", "pair-eval.json"):
        os.remove(os.path.join(args.output, name))
    with open(os.path.join(args.output, "pairs.json"), "w") as f:
        json.dump({"model": args.model, "problems": problems, "full_accuracy": full, "pairs": pairs}, f, indent=1)
    print_tables(pairs, problems, full)


def head(h):
    return f"L{h[0]}.H{h[1]}"


def print_tables(pairs, problems, full):
    ranked = sorted(pairs, key=lambda q: -q["interaction"])
    above = [q for q in pairs if q["interaction"] >= 0.30]
    print(f"Pairwise ablation: {len(pairs)} pairs on {problems} problems (full accuracy {100 * full:.1f}%); "
          f"interaction = joint drop - (drop A + drop B), in points.\n")
    print("| pair | drop A | drop B | joint drop | interaction |")
    print("|---|---:|---:|---:|---:|")
    for q in ranked[:10]:
        print(f"| {head(q['a'])} + {head(q['b'])} | {100 * q['drop_a']:.1f} | {100 * q['drop_b']:.1f} | "
              f"{100 * q['joint_drop']:.1f} | {100 * q['interaction']:+.1f} |")
    print(f"\nPairs with interaction >= 30 points: {len(above)} of {len(pairs)}; the largest: "
          f"{100 * ranked[0]['interaction']:+.1f}." if ranked else "\nNo pairs.")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--tables":
        with open(sys.argv[2]) as f:
            j = json.load(f)
        print_tables(j["pairs"], j["problems"], j["full_accuracy"])
    else:
        main()
