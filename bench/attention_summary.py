#!/usr/bin/env python3
"""Side-by-side table of the decode-attention measurements of one run (bench_attention_cuda and
bench/sdpa_anchor.py JSON lines, in any order, on stdin or in the files named): for every batch and
length, each rlkv variant's GB/s, its fraction of the device-to-device copy, its ratio to cuDNN SDPA
on the same shape, and its speed-up at s = 0.5 and 0.8 against the theory 1 / ((1 - s) + s (S+W)/len).

Usage: bench/attention_summary.py results.jsonl   (or: ... | bench/attention_summary.py)
"""
import json
import sys


def load(paths):
    rows = []
    streams = [open(p) for p in paths] if paths else [sys.stdin]
    for f in streams:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def main():
    rows = load(sys.argv[1:])
    copy = next((r["gb_per_s_read_plus_write"] for r in rows if r.get("bench") == "d2d_copy"), None)
    sdpa = {(r["backend"], r["batch"], r["len"]): r["gb_per_s"] for r in rows
            if r.get("bench") == "sdpa" and "gb_per_s" in r}
    ours = [r for r in rows if r.get("bench") == "decode_attention"]
    if not ours:
        print("attention_summary.py: no decode_attention rows")
        return 1
    print(f"copy (read + write): {copy} GB/s" if copy else "copy: not measured")
    print(f"{'variant':7} {'batch':>5} {'len':>6} {'GB/s':>7} {'of copy':>8} {'cuDNN':>7} {'vs cuDNN':>9} "
          f"{'flash':>7} {'s=0.5 of theory':>16} {'s=0.8 of theory':>16}")
    keys = sorted({(r["variant"], r["batch"], r["len"]) for r in ours}, key=lambda k: (k[0], -k[1], k[2]))
    for variant, batch, length in keys:
        at = {round(r["sparsity"], 1): r for r in ours
              if (r["variant"], r["batch"], r["len"]) == (variant, batch, length)}
        dense = at.get(0.0)
        if dense is None:
            continue
        cudnn, flash = sdpa.get(("cudnn", batch, length)), sdpa.get(("flash", batch, length))
        of_copy = f"{dense['gb_per_s'] / copy:8.2f}" if copy else f"{'-':>8}"
        vs = f"{dense['gb_per_s'] / cudnn:9.2f}" if cudnn else f"{'-':>9}"
        th = [f"{at[s]['of_theory']:16.2f}" if s in at else f"{'-':>16}" for s in (0.5, 0.8)]
        print(f"{variant:7} {batch:5d} {length:6d} {dense['gb_per_s']:7.0f} {of_copy} "
              f"{cudnn if cudnn else '-':>7} {vs} {flash if flash else '-':>7} {th[0]} {th[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
