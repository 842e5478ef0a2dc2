#!/usr/bin/python3
"""Mask exports against an independent numpy implementation of the quantile rule.

Usage: tests/check_exports.py RLKV_BINARY REFERENCE_DIR   (run by ctest; exit 77 = skipped)

For every published score file under REFERENCE_DIR (RLKV-SGLang adapter_weights.tsv and DuoAttention
full_attention_heads.tsv) and sparsities 0.2, 0.5 and 0.8, `rlkv export --format json` must give the
mask numpy computes here: clip to [0, 1], add 1e-6 * (i + 0.5) / n to head i (row-major; rlkv's
deterministic stand-in for the paper's random tie-breaking noise), keep full every head >= the
s-quantile (numpy's linear interpolation). Exported TSVs must load with numpy.loadtxt into L x H, duo
exports carry sink_size / recent_size, and export -> import -> export must be byte-identical.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("check_exports.py: numpy missing for /usr/bin/python3; skipped")
    sys.exit(77)


def numpy_mask(scores, sparsity):
    v = np.clip(scores.astype(np.float64).ravel(), 0.0, 1.0)
    n = v.size
    v = v + 1e-6 * (np.arange(n) + 0.5) / n
    thr = np.quantile(v, sparsity)
    return (v >= thr).astype(int).reshape(scores.shape)


def run(rlkv, *args):
    subprocess.run([rlkv, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    rlkv, ref = sys.argv[1], sys.argv[2]
    if not os.path.isdir(ref):
        print(f"check_exports.py: {ref} not found")
        return 1
    sources = []
    for family, name in (("rlkv", "adapter_weights.tsv"), ("duo_attn", "full_attention_heads.tsv")):
        base = os.path.join(ref, family)
        for model in sorted(os.listdir(base)):
            sources.append(os.path.join(base, model, name))
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            scores = np.loadtxt(src, ndmin=2)
            for s in (0.2, 0.5, 0.8):
                out = os.path.join(tmp, "m.json")
                run(rlkv, "export", src, "--format", "json", "--sparsity", str(s), "--output", out)
                got = np.array(json.load(open(out))["full_attention"])
                want = numpy_mask(scores, s)
                if got.shape != want.shape or not (got == want).all():
                    print(f"FAIL {src} at sparsity {s}: {int((got != want).sum())} heads differ")
                    return 1
                checked += 1
            # Formats: TSV shape, duo config, round trip.
            sg, duo, sg2 = (os.path.join(tmp, d) for d in ("sg", "duo", "sg2"))
            run(rlkv, "export", src, "--format", "rlkv-sglang", "--output", sg)
            run(rlkv, "export", sg, "--format", "duo", "--sink", "16", "--window", "64", "--output", duo)
            run(rlkv, "export", duo, "--format", "rlkv-sglang", "--output", sg2)
            a = np.loadtxt(os.path.join(sg, "adapter_weights.tsv"), ndmin=2)
            b = np.loadtxt(os.path.join(duo, "full_attention_heads.tsv"), ndmin=2)
            if a.shape != scores.shape or b.shape != scores.shape:
                print(f"FAIL {src}: exported shape {a.shape} / {b.shape}, expected {scores.shape}")
                return 1
            cfg = json.load(open(os.path.join(duo, "config.json")))
            if cfg.get("sink_size") != 16 or cfg.get("recent_size") != 64:
                print(f"FAIL {src}: duo config.json lacks sink_size / recent_size: {cfg}")
                return 1
            if open(os.path.join(sg, "adapter_weights.tsv"), "rb").read() != open(
                    os.path.join(sg2, "adapter_weights.tsv"), "rb").read():
                print(f"FAIL {src}: export -> import -> export is not identical")
                return 1
            if not np.allclose(a, np.clip(scores, 0, 1), atol=1e-8):
                print(f"FAIL {src}: exported scores differ from the source")
                return 1
            lay = os.path.join(tmp, "layers.json")
            run(rlkv, "export", src, "--format", "layers", "--sparsity", "0.5", "--window", "64", "--output", lay)
            lj = json.load(open(lay))
            if len(lj["layer_types"]) != scores.shape[0] or len(lj["max_attention_window"]) != scores.shape[0]:
                print(f"FAIL {src}: layers export has the wrong length")
                return 1
    print(f"{checked} masks equal numpy's on {len(sources)} published score files; formats and round trips OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
