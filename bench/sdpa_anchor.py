#!/usr/bin/env python3
"""The peers of bench_attention_cuda on its shapes: PyTorch's scaled_dot_product_attention in decode
(one query token per sequence) over a contiguous bf16 KV cache, with the cuDNN and the flash backends.

Same shapes as the kernel benchmark: 8 KV heads with 4 query heads each (Llama-3.1-8B), head_dim 128,
batch 32 and 4, 4k-32k tokens, every head full (s = 0: SDPA has no per-head compressed cache). Bytes =
the K and V read once; L2 is flushed (a 512 MB fill) before each timed call, as in the C++ benchmark.
Prints one JSON line per measurement, the fields named as bench_attention_cuda's; exits 77 without
torch or a GPU. Usage: bench/sdpa_anchor.py [--quick]
"""
import json
import sys


def main():
    try:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        print("sdpa_anchor.py: no torch; skipped")
        return 77
    if not torch.cuda.is_available():
        print("sdpa_anchor.py: no CUDA device; skipped")
        return 77
    quick = "--quick" in sys.argv[1:]
    lens = [4096, 32768] if quick else [4096, 8192, 16384, 32768]
    hkv, group, dim = 8, 4, 128
    flush = torch.empty(512 << 20, dtype=torch.uint8, device="cuda")
    backends = [("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)]
    for batch in (32, 4):
        for length in lens:
            q = torch.randn(batch, hkv * group, 1, dim, dtype=torch.bfloat16, device="cuda")
            k = torch.randn(batch, hkv, length, dim, dtype=torch.bfloat16, device="cuda")
            v = torch.randn_like(k)
            kv_bytes = 2 * k.numel() * k.element_size()
            for name, backend in backends:
                try:
                    with sdpa_kernel([backend]):
                        def call():
                            return torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                        for _ in range(3):
                            call()
                        times = []
                        for i in range(20):
                            flush.fill_(i & 0xFF)
                            a = torch.cuda.Event(enable_timing=True)
                            b = torch.cuda.Event(enable_timing=True)
                            a.record()
                            call()
                            b.record()
                            b.synchronize()
                            times.append(a.elapsed_time(b))
                except RuntimeError as e:  # a backend this build or GPU does not offer
                    print(json.dumps({"bench": "sdpa", "backend": name, "batch": batch, "len": length,
                                      "error": str(e).splitlines()[0][:200]}))
                    continue
                ms = sorted(times)[len(times) // 2]
                print(json.dumps({"bench": "sdpa", "backend": name, "dtype": "bf16", "batch": batch,
                                  "kv_heads": hkv, "group": group, "head_dim": dim, "len": length,
                                  "sparsity": 0.0, "kv_bytes": kv_bytes, "ms": round(ms, 4),
                                  "gb_per_s": round(kv_bytes / (ms * 1e-3) / 1e9, 1)}), flush=True)
            del q, k, v
    return 0


if __name__ == "__main__":
    sys.exit(main())
