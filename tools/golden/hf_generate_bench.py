#!/usr/bin/env python3
"""Baseline throughput of Hugging Face `model.generate` (greedy) for comparison with rlkv.

    /opt/ref/bin/python tools/golden/hf_generate_bench.py --model tests/fixtures/models/llama_tiny \
        --batch 1,8,32 --prompt-len 16 --new-tokens 64 --threads 2

For each batch size B it builds B fixed random prompts of --prompt-len ids (seeded;
special/added token ids are avoided), runs one untimed warm-up `generate`, then times
--repeats (default 3) greedy `generate` calls (KV cache on, EOS disabled so exactly
--new-tokens tokens are produced per sequence) and prints one JSON line with the median:

    {"impl": "transformers", "batch": B, "tokens_per_s": ..., "seconds": ..., ...}

tokens_per_s = B * new_tokens / seconds (generated tokens over all sequences; prefill
included in the time). If torch/transformers cannot be imported it prints
{"impl": "transformers", "skipped": "<reason>"} and exits 0.
"""

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description="time HF greedy generate")
    ap.add_argument("--model", required=True, help="HF model directory (config + safetensors)")
    ap.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per batch size after the warm-up; the median is reported")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(json.dumps({"impl": "transformers", "skipped": f"import failed: {e!r}"}))
        return 0

    if not os.path.isfile(os.path.join(args.model, "config.json")):
        print(f"error: no config.json in {args.model}", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
    gc = model.generation_config
    gc.eos_token_id = None  # never stop early: exactly new_tokens per sequence
    gc.pad_token_id = 0
    gc.do_sample = False
    vocab = model.config.vocab_size

    avoid = set()
    tok_path = os.path.join(args.model, "tokenizer.json")
    if os.path.isfile(tok_path):
        with open(tok_path, encoding="utf-8") as f:
            avoid = {t["id"] for t in json.load(f).get("added_tokens", [])}

    def prompts(b):
        g = torch.Generator().manual_seed(args.seed + b)
        ids = torch.randint(0, vocab, (b, args.prompt_len), generator=g, dtype=torch.int64)
        for a in avoid:
            ids[ids == a] = 0
        return ids

    def run(ids):
        with torch.no_grad():
            return model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                eos_token_id=None, pad_token_id=0, use_cache=True)

    for b in [int(x) for x in args.batch.split(",") if x.strip()]:
        ids = prompts(b)
        run(ids)  # warm-up
        times = []
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            out = run(ids)
            times.append(time.perf_counter() - t0)
            assert out.shape == (b, args.prompt_len + args.new_tokens), tuple(out.shape)
        dt = sorted(times)[len(times) // 2]
        print(json.dumps({
            "impl": "transformers", "batch": b, "tokens_per_s": round(b * args.new_tokens / dt, 2),
            "seconds": round(dt, 4), "repeats": len(times), "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
            "threads": args.threads, "dtype": args.dtype, "model": os.path.basename(
                os.path.normpath(args.model)), "torch": torch.__version__,
            "transformers": transformers.__version__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
