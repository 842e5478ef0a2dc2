#!/usr/bin/env python3
"""Markdown tables for models/toy-reasoner/README.md from the JSON files `rlkv eval --output` wrote.

Usage: python3 tools/toy_card_tables.py models/toy-reasoner/eval
Reads full.json, streaming.json, single_head.json, oracle.json and random.json from that folder
(tools/toy_card.sh writes them) and prints the tables the model card shows. Standard library only.
"""
import json
import os
import sys


def load(folder, name):
    with open(os.path.join(folder, name)) as f:
        return json.load(f)


def pct(x):
    return f"{100 * x:.1f}"


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "models/toy-reasoner/eval"
    full = load(folder, "full.json")["rows"][0]
    streaming = load(folder, "streaming.json")["rows"][0]
    single = load(folder, "single_head.json")
    oracle = load(folder, "oracle.json")["rows"]
    random_rows = load(folder, "random.json")["rows"]
    n = full["n"]
    print(f"Problems: {n} fresh toy problems; greedy; S = {single['sink']}, W = {single['window']}, "
          f"cap {single['max_new_tokens']} new tokens.\n")
    print("| cache | accuracy % | mean length | capped (runaway) % | KV bytes / sequence | KV vs full |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in (("every head full", full), ("every head compressed", streaming)):
        print(f"| {name} | {pct(r['accuracy'])} | {r['mean_length']:.1f} | {pct(r['truncated_rate'])} | "
              f"{r['kv_bytes_per_sequence']:.0f} | {pct(r['kv_fraction_of_full'])}% |")
    rows = [r for r in single["rows"] if r["method"] == "single-head"]
    layers = max(r["layer"] for r in rows) + 1
    heads = max(r["kv_head"] for r in rows) + 1
    print("\nSingle-head ablation: accuracy drop in points when only that KV head is compressed "
          f"(full accuracy {pct(full['accuracy'])}%).\n")
    print("| layer | " + " | ".join(f"KV head {h}" for h in range(heads)) + " |")
    print("|---|" + "---:|" * heads)
    drop = {(r["layer"], r["kv_head"]): r["drop"] for r in rows}
    for l in range(layers):
        print(f"| {l} | " + " | ".join(f"{100 * drop[(l, h)]:.1f}" for h in range(heads)) + " |")
    critical = sum(1 for d in drop.values() if d >= 0.20)
    cheap = sum(1 for d in drop.values() if d <= 0.02)
    print(f"\nHeads costing >= 20 points alone: {critical}; heads costing <= 2 points: {cheap} of {len(drop)}.\n")
    print("Masks: keep the heads with the largest single-head drops (oracle) against random masks of the "
          "same size (mean ± sample std over 5 seeds).\n")
    print("| compressed | oracle accuracy % | oracle length | oracle capped % | random accuracy % | random length | "
          "random capped % | KV vs full |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for o, r in zip(oracle, random_rows):
        print(f"| {pct(o['sparsity'])}% | {pct(o['accuracy'])} | {o['mean_length']:.1f} | {pct(o['truncated_rate'])} | "
              f"{pct(r['accuracy'])} ± {pct(r['accuracy_std'])} | {r['mean_length']:.1f} | {pct(r['truncated_rate'])} | "
              f"{pct(o['kv_fraction_of_full'])}% |")


if __name__ == "__main__":
    main()
