#!/usr/bin/env bash
# The paper's comparison on the embedded toy model, in one call (the README's comparison table and
# docs/img/tradeoff-toy.png come from it): the RLKV checkpoint of ./launch/run_default.sh (trained
# here when absent), DuoAttention's gates on retrieval passkeys and on the model's own chains
# (rlkv duo-train), then rlkv compare on 1,000 fresh problems at 25 / 50 / 75% of the KV heads
# compressed (and token dropping at the matched budgets), and the trade-off plot.
# Usage: tools/compare_toy.sh [OUT_DIR]   (default out/toy-compare; needs a build in build/)
set -euo pipefail
cd "$(dirname "$0")/.."
RLKV=./build/launch/rlkv
OUT=${1:-out/toy-compare}
mkdir -p "$OUT"
CKPT=$(ls -1 out/toy/ckpt-*.h5 2> /dev/null | sort -t- -k2 -n | tail -n 1 || true)
if [ -z "$CKPT" ]; then
  "$RLKV" train --config configs/toy.ini --train.output_dir=out/toy
  CKPT=$(ls -1 out/toy/ckpt-*.h5 | sort -t- -k2 -n | tail -n 1)
fi
for data in retrieval reasoning; do
  [ -f "$OUT/duo-$data/full_attention_heads.tsv" ] ||
    "$RLKV" duo-train --config configs/toy.ini --data "$data" --output "$OUT/duo-$data"
done
"$RLKV" toy data --n 1000 --seed 20261129 --output "$OUT/problems.jsonl"
"$RLKV" compare --config configs/toy.ini --data "$OUT/problems.jsonl" --sparsity 0.25,0.5,0.75 --mask "$CKPT" \
  --duo-retrieval "$OUT/duo-retrieval" --duo-reasoning "$OUT/duo-reasoning" --seeds 3 --output "$OUT/compare.json" |
  tee "$OUT/compare.txt"
if /usr/bin/python3 -c "import matplotlib" 2> /dev/null; then
  /usr/bin/python3 analysis/tradeoff.py "$OUT/compare.json" --title "toy-reasoner: accuracy against KV cache" \
    --output "$OUT/tradeoff.png"
fi
