#!/usr/bin/env python3
"""Checks that Hugging Face transformers loads the shipped toy model and agrees with rlkv.

For a few toy prompts (fixed seed), greedy continuations from transformers (`model.generate`,
do_sample=False, stopping at EOS) must equal the tokens `rlkv generate --temperature 0 --json`
prints, and the tokenizer from `tokenizers` must encode the prompts to the ids rlkv uses.
Run by hand (needs PyPI torch + transformers + tokenizers, e.g. the /opt/ref venv of README):

    /opt/ref/bin/python tools/golden/check_toy_model.py --model models/toy-reasoner --rlkv build/launch/rlkv

Exit status 0 when every prompt agrees; prints one line per prompt.
"""
import argparse
import json
import random
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/toy-reasoner")
    ap.add_argument("--rlkv", default="build/launch/rlkv")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    rng = random.Random(args.seed)
    prompts = []
    for _ in range(args.prompts):
        k = rng.randint(6, 10)
        nums = rng.sample(range(10, 100), k)
        prompts.append("Q:" + "+".join(map(str, nums)) + "=")

    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    eos = model.config.eos_token_id

    cmd = [args.rlkv, "generate", "--model", args.model, "--temperature", "0", "--json", "--max-new-tokens", "160"]
    for p in prompts:
        cmd += ["--prompt", p]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ours = [json.loads(line) for line in out.splitlines() if line.strip()]

    ok = True
    for p, o in zip(prompts, ours):
        ids = tok.encode(p).ids  # BOS added by the post-processor
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=160, do_sample=False, eos_token_id=eos,
                                 pad_token_id=0)
        hf = gen[0, len(ids):].tolist()
        same = hf == o["tokens"]
        ok &= same
        text = tok.decode(hf, skip_special_tokens=True)
        print(f"{'same' if same else 'DIFFERENT'}  {p}  ->  {text}")
    print("transformers and rlkv agree on every prompt" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
