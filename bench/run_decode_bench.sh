#!/usr/bin/env bash
# Decode throughput of rlkv next to Hugging Face transformers' generate on the same tiny model, same
# prompt length, same number of new tokens, same threads. Prints JSON lines.
# Usage: bench/run_decode_bench.sh [MODEL_DIR] [THREADS]; needs a build (launch/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-tests/fixtures/models/llama_tiny}
THREADS=${2:-2}
ARGS=(--model "$MODEL" --batch 1,8,32 --prompt-len 16 --new-tokens 64 --threads "$THREADS")
./build/bench/bench_decode "${ARGS[@]}"
PY=${RLKV_REF_PYTHON:-/opt/ref/bin/python}
if [ -x "$PY" ]; then
  "$PY" tools/golden/hf_generate_bench.py "${ARGS[@]}"
else
  echo '{"impl": "transformers", "skipped": "no reference python at '"$PY"' (see README: golden files)"}'
fi
