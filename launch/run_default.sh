#!/usr/bin/env bash
# The main job on the embedded default: install, build, then run it. Until the toy reasoning model and
# training land (issues 3 and 5), the default job is generation on the tiny Llama fixture, with half
# of its KV heads compressed, and its throughput and KV-cache statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install.sh
./launch/build.sh
MODEL=tests/fixtures/models/llama_tiny
./build/launch/rlkv generate --model "$MODEL" --prompt "The chain of thought" --num-samples 4 \
  --mask random:0 --sparsity 0.5 --sink 4 --window 16 --max-new-tokens 64 --seed 1 --json --stats "$@"
