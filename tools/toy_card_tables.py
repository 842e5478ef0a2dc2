#!/usr/bin/env python3
"""Markdown tables for models/toy-reasoner/README.md from the JSON files `rlkv eval --output` wrote.

Usage: python3 tools/toy_card_tables.py models/toy-reasoner/eval
Reads full.json, streaming.json, single_head.json, oracle.json and random.json from that folder
(tools/toy_card.sh writes them) and prints the tables the model card shows. The oracle and random rows
are paired by sparsity, and both files must hold the same sparsities. A missing file or field: one
line on stderr starting with "toy_card_tables.py:" and exit status 2, before any table is printed.
Standard library only.
"""
import json
import math
import os
import sys

PROG = "toy_card_tables.py"
CACHE_KEYS = ("accuracy", "mean_length", "truncated_rate", "kv_bytes_per_sequence", "kv_fraction_of_full")
ORACLE_KEYS = ("sparsity", "accuracy", "mean_length", "truncated_rate", "kv_fraction_of_full")
RANDOM_KEYS = ("sparsity", "accuracy", "accuracy_std", "mean_length", "truncated_rate")


class Refused(Exception):
    """A missing or malformed input; str(e) is the one line printed after the script's name (exit 2)."""


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def load(folder, name):
    """(path, document) of folder/name: a JSON object with a non-empty list of row objects."""
    path = os.path.join(folder, name)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"), parse_constant=reject_constant)
    except FileNotFoundError:
        raise Refused(f"{path}: no such file (tools/toy_card.sh writes it)") from None
    except OSError as e:
        raise Refused(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise Refused(f"{path}: not UTF-8 text (byte {e.start})") from None
    except RecursionError:
        raise Refused(f"{path}: nested too deeply to be a results file") from None
    except ValueError as e:
        raise Refused(f"{path}: not JSON ({e})") from None
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise Refused(f"{path}: no 'rows' (expected the --output of rlkv eval)")
    return path, doc


def is_number(v):
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def need(obj, keys, path, what):
    """obj, after checking that it holds every key of `keys` as a finite number."""
    for k in keys:
        if not is_number(obj.get(k)):
            raise Refused(f"{path}: {what} has no numeric '{k}'")
    return obj


def by_sparsity(rows, keys, path):
    """{round(sparsity, 6): row} of rows that each hold `keys` as numbers."""
    out = {}
    for i, r in enumerate(rows):
        out[round(need(r, keys, path, f"row {i + 1}")["sparsity"], 6)] = r
    return out


def pct(x):
    return f"{100 * x:.1f}"


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "models/toy-reasoner/eval"
    try:
        tables = read(folder)
    except Refused as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        sys.exit(2)
    print(tables, end="")


def read(folder):
    """The Markdown of the tables, from the files in folder; raises Refused."""
    path, doc = load(folder, "full.json")
    full = need(doc["rows"][0], CACHE_KEYS + ("n",), path, "the first row")
    path, doc = load(folder, "streaming.json")
    streaming = need(doc["rows"][0], CACHE_KEYS, path, "the first row")
    path, single = load(folder, "single_head.json")
    for k in ("sink", "window", "max_new_tokens"):
        if k not in single:
            raise Refused(f"{path}: no '{k}'")
    rows = [need(r, ("layer", "kv_head", "drop"), path, "a single-head row")
            for r in single["rows"] if r.get("method") == "single-head"]
    if not rows:
        raise Refused(f"{path}: no single-head rows")
    for r in rows:
        if not all(isinstance(r[k], int) and 0 <= r[k] < 1 << 20 for k in ("layer", "kv_head")):
            raise Refused(f"{path}: a single-head row whose layer or kv_head is not a small integer")
    layers = max(r["layer"] for r in rows) + 1
    heads = max(r["kv_head"] for r in rows) + 1
    drop = {(r["layer"], r["kv_head"]): r["drop"] for r in rows}
    missing = [(l, h) for l in range(layers) for h in range(heads) if (l, h) not in drop]
    if missing:
        raise Refused(f"{path}: no single-head row for layer {missing[0][0]}, KV head {missing[0][1]}")
    opath, doc = load(folder, "oracle.json")
    oracle = by_sparsity(doc["rows"], ORACLE_KEYS, opath)
    rpath, doc = load(folder, "random.json")
    random_rows = by_sparsity(doc["rows"], RANDOM_KEYS, rpath)
    for s in sorted(set(oracle) | set(random_rows)):
        if s not in oracle or s not in random_rows:
            lacking = opath if s not in oracle else rpath
            raise Refused(f"{lacking}: no row at sparsity {s:g} (the other file has one)")

    out = []
    out.append(f"Problems: {full['n']} fresh toy problems; greedy; S = {single['sink']}, W = {single['window']}, "
               f"cap {single['max_new_tokens']} new tokens.\n")
    out.append("| cache | accuracy % | mean length | capped (runaway) % | KV bytes / sequence | KV vs full |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for name, r in (("every head full", full), ("every head compressed", streaming)):
        out.append(f"| {name} | {pct(r['accuracy'])} | {r['mean_length']:.1f} | {pct(r['truncated_rate'])} | "
                   f"{r['kv_bytes_per_sequence']:.0f} | {pct(r['kv_fraction_of_full'])}% |")
    out.append("\nSingle-head ablation: accuracy drop in points when only that KV head is compressed "
               f"(full accuracy {pct(full['accuracy'])}%).\n")
    out.append("| layer | " + " | ".join(f"KV head {h}" for h in range(heads)) + " |")
    out.append("|---|" + "---:|" * heads)
    for l in range(layers):
        out.append(f"| {l} | " + " | ".join(f"{100 * drop[(l, h)]:.1f}" for h in range(heads)) + " |")
    critical = sum(1 for d in drop.values() if d >= 0.20)
    cheap = sum(1 for d in drop.values() if d <= 0.02)
    out.append(f"\nHeads costing >= 20 points alone: {critical}; heads costing <= 2 points: {cheap} of {len(drop)}.\n")
    out.append("Masks: keep the heads with the largest single-head drops (oracle) against random masks of the "
               "same size (mean ± sample std over 5 seeds).\n")
    out.append("| compressed | oracle accuracy % | oracle length | oracle capped % | random accuracy % | "
               "random length | random capped % | KV vs full |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sorted(oracle):
        o, r = oracle[s], random_rows[s]
        out.append(f"| {pct(o['sparsity'])}% | {pct(o['accuracy'])} | {o['mean_length']:.1f} | "
                   f"{pct(o['truncated_rate'])} | {pct(r['accuracy'])} ± {pct(r['accuracy_std'])} | "
                   f"{r['mean_length']:.1f} | {pct(r['truncated_rate'])} | {pct(o['kv_fraction_of_full'])}% |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
