#!/usr/bin/env bash
# Reruns every table of models/toy-reasoner/README.md: 1,000 fresh problems (seed 20261129, never used
# in training: the trainer draws from streams derived from its own seed), then full, every head
# compressed, the single-head ablation, oracle masks from the ablation, and random masks (5 seeds);
# with PAIRS=N also the pairwise ablation of every pair of heads on the first N of those problems
# (tools/toy_pairs.py). The problems follow the chain the model was trained on (its training.json).
# Usage: [PAIRS=N] tools/toy_card.sh [MODEL_DIR] [OUT_DIR]   (needs a build: launch/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/toy-reasoner}
OUT=${2:-$MODEL/eval}
RLKV=./build/launch/rlkv
mkdir -p "$OUT"
DATA="$OUT/problems.jsonl"
CHAIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("chain", "running"))' \
  "$MODEL/training.json")
$RLKV toy data --n 1000 --seed 20261129 --chain "$CHAIN" --output "$DATA"
COMMON=(--config configs/toy.ini --model "$MODEL" --data "$DATA" --task toy)
$RLKV eval "${COMMON[@]}" --method full --output "$OUT/full.json"
$RLKV eval "${COMMON[@]}" --method streaming --output "$OUT/streaming.json"
$RLKV eval "${COMMON[@]}" --method single-head --scores-out "$OUT/oracle-scores" --output "$OUT/single_head.json"
$RLKV eval "${COMMON[@]}" --method rlkv --mask "$OUT/oracle-scores" --sparsity 0.25,0.5,0.75 --output "$OUT/oracle.json"
$RLKV eval "${COMMON[@]}" --method random --sparsity 0.25,0.5,0.75 --seeds 5 --output "$OUT/random.json"
if [ -n "${PAIRS:-}" ]; then
  python3 tools/toy_pairs.py --model "$MODEL" --config configs/toy.ini --data "$DATA" --limit "$PAIRS" \
    --output "$OUT/pairs" > /dev/null
fi
rm -f "$DATA"
python3 tools/toy_card_tables.py "$OUT"
if [ -f "$OUT/pairs/pairs.json" ]; then
  echo
  python3 tools/toy_pairs.py --tables "$OUT/pairs/pairs.json"
fi
