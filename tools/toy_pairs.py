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
the strongest interactions and the count of pairs above 30 points. --heads names each head once, as
layer.kv_head, at least two of them. Bad options, bad input or a failed rlkv call: one line on stderr
starting with "toy_pairs.py:" and exit status 2. Standard library only.
"""
import argparse
import itertools
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "analysis"))
from plot_io import replace_file  # noqa: E402

PROG = "toy_pairs.py"
HEAD = re.compile(r"^([0-9]{1,9})\.([0-9]{1,9})$")


class Refused(Exception):
    """Bad input, options or a failed rlkv call; str(e) is the one line printed after the script's name
    (exit status 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (argparse would print the usage too)."""

    def error(self, message):
        sys.stderr.write(f"{PROG}: {message} (see --help)\n")
        sys.exit(2)


def parse_heads(text):
    """--heads "L.H,L.H,...": the heads in the order given, as (layer, kv_head); raises Refused for a
    head not written L.H and for a head named twice."""
    heads = []
    for item in text.split(","):
        m = HEAD.match(item.strip())
        if not m:
            raise Refused(f"--heads: {item.strip()!r} is not a head written layer.kv_head (e.g. 0.1)")
        h = (int(m.group(1)), int(m.group(2)))
        if h in heads:
            raise Refused(f"--heads: head {h[0]}.{h[1]} is named twice")
        heads.append(h)
    if len(heads) < 2:
        raise Refused("--heads: name at least two heads (a pair)")
    return heads


def check_heads(heads, known, layers, kv_heads, where):
    """Every head must be one of `known` (a container of (layer, kv_head)) of a layers x kv_heads model."""
    for l, h in heads:
        if (l, h) not in known:
            raise Refused(f"--heads: no head {l}.{h} in a model of {layers} layers x {kv_heads} KV heads ({where})")


def config_shape(model):
    """(layers, KV heads) from MODEL/config.json, or None when it does not say."""
    try:
        with open(os.path.join(model, "config.json"), "rb") as f:
            cfg = json.loads(f.read().decode("utf-8"))
        layers = cfg["num_hidden_layers"]
        kv_heads = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (layers, kv_heads))
    return (layers, kv_heads) if ok else None


def run_eval(args, extra, out):
    cmd = [args.rlkv, "eval", "--config", args.config, "--model", args.model, "--data", args.data, "--task", "toy",
           "--output", out] + extra
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    except OSError as e:
        raise Refused(f"cannot run {args.rlkv} ({e.strerror or e})") from None
    except subprocess.CalledProcessError as e:
        how = f"exit status {e.returncode}" if e.returncode >= 0 else f"signal {-e.returncode}"
        raise Refused(f"{args.rlkv} eval {' '.join(extra)} failed ({how})") from None
    try:
        with open(out, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise Refused(f"{out}: cannot read the results rlkv eval wrote ({e})") from None


def main():
    try:
        run()
    except Refused as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        sys.exit(2)


def run():
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--limit", type=int, default=0, help="first N problems (0 = all)")
    p.add_argument("--rlkv", default="./build/launch/rlkv")
    p.add_argument("--heads", default="", help="only pairs among these heads, e.g. 0.1,2.3 (default: all)")
    args = p.parse_args()
    chosen = parse_heads(args.heads) if args.heads else None
    shape = config_shape(args.model)
    if chosen and shape:  # before the single-head pass, which takes a while
        grid = {(l, h) for l in range(shape[0]) for h in range(shape[1])}
        check_heads(chosen, grid, *shape, f"{args.model}/config.json")
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as e:
        raise Refused(f"--output {args.output}: cannot create ({e.strerror or e})") from None

    path = os.path.join(args.output, "single_head.json")
    single = run_eval(args, ["--method", "single-head"], path)
    try:
        rows = [r for r in single["rows"] if r["method"] == "single-head"]
        full_row = next(r for r in single["rows"] if r["method"] == "full")
        full, problems = full_row["accuracy"], full_row["n"]
        layers = max(r["layer"] for r in rows) + 1
        heads = max(r["kv_head"] for r in rows) + 1
        drop = {(r["layer"], r["kv_head"]): r["drop"] for r in rows}
    except (KeyError, TypeError, ValueError, StopIteration):
        raise Refused(f"{path}: not the single-head rows of rlkv eval (a full row and one row per head)") from None
    if chosen:
        check_heads(chosen, drop, layers, heads, path)
    else:
        chosen = sorted(drop)
    sparsity = 2.0 / (layers * heads)
    pairs = []
    tsv = os.path.join(args.output, "pair.tsv")
    for a, b in itertools.combinations(chosen, 2):
        write_out(tsv, "".join("\t".join("0" if (l, h) in (a, b) else "1" for h in range(heads)) + "\n"
                               for l in range(layers)))
        path = os.path.join(args.output, "pair-eval.json")
        try:
            joint = full - run_eval(args, ["--method", "rlkv", "--mask", tsv, "--sparsity", repr(sparsity)],
                                    path)["rows"][0]["accuracy"]
        except (KeyError, TypeError, IndexError):
            raise Refused(f"{path}: no rows with an accuracy") from None
        pairs.append({"a": list(a), "b": list(b), "joint_drop": joint, "drop_a": drop[a], "drop_b": drop[b],
                      "interaction": joint - drop[a] - drop[b]})
        print(f"pair {a} {b}: joint drop {100 * joint:.1f}, singles {100 * drop[a]:.1f} + {100 * drop[b]:.1f}",
              file=sys.stderr)
    for name in ("pair.tsv", "pair-eval.json"):
        os.remove(os.path.join(args.output, name))
    write_out(os.path.join(args.output, "pairs.json"),
              json.dumps({"model": args.model, "problems": problems, "full_accuracy": full, "pairs": pairs}, indent=1))
    print_tables(pairs, problems, full)


def write_out(path, text):
    """Writes text to path whole or not at all (a failed write keeps the file that was there)."""
    try:
        replace_file(path, text.encode("utf-8"))
    except OSError as e:
        raise Refused(f"{path}: cannot write ({e.strerror or e})") from None


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


def tables(path):
    """--tables PAIRS.json: the Markdown of a pairs.json written earlier."""
    try:
        with open(path, "rb") as f:
            j = json.loads(f.read().decode("utf-8"))
        pairs, problems, full = j["pairs"], j["problems"], j["full_accuracy"]
    except OSError as e:
        raise Refused(f"{path}: cannot read ({e.strerror or e})") from None
    except (ValueError, RecursionError, KeyError, TypeError) as e:
        raise Refused(f"{path}: not a pairs.json of this script ({type(e).__name__}: {e})") from None
    print_tables(pairs, problems, full)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--tables":
        try:
            tables(sys.argv[2])
        except Refused as e:
            sys.stderr.write(f"{PROG}: {e}\n")
            sys.exit(2)
    else:
        main()
