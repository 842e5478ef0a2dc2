#!/usr/bin/env bash
# The paper's comparison on an embedded toy model, in one call (the README's tables and
# docs/img/tradeoff-toy.png / tradeoff-toy2.png come from it): RLKV head gates trained with three seeds
# (rlkv train, one process each), DuoAttention's gates on retrieval passkeys and on the model's own chains
# (rlkv duo-train), then rlkv compare on 1,000 fresh problems at 25 / 50 / 75% of the KV heads
# compressed (the single-head oracle, token dropping at the matched budgets, random masks), each seed's
# learned mask on the same problems, the table over seeds and the trade-off plot.
# Usage: tools/compare_toy.sh [CONFIG] [OUT_DIR]
#   (defaults configs/toy.ini and out/toy-compare; configs/toy2.ini for models/toy-reasoner-2;
#    SEEDS="1 2 3" by default; needs a build in build/). Results already in OUT_DIR (the problems, a
#    seed's finished training and its evaluation, DuoAttention's gates, the baselines' compare.json) are
#    kept: delete them to measure them again; an interrupted training goes on from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
RLKV=./build/launch/rlkv
CONFIG=${1:-configs/toy.ini}
OUT=${2:-out/toy-compare}
SEEDS=${SEEDS:-1 2 3}
mkdir -p "$OUT"
MODEL=$(sed -n 's/^path *= *//p' "$CONFIG" | head -n 1)
# The problems follow the chain the model was trained on (training.json; the first model predates it).
CHAIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("chain", "running"))' \
  "$MODEL/training.json")
evals=()
for seed in $SEEDS; do
  # --resume auto: a finished run has nothing to train, an interrupted one goes on, a missing one starts.
  "$RLKV" train --config "$CONFIG" --train.seed="$seed" --train.output_dir="$OUT/rlkv-seed-$seed" --resume auto
done
for data in retrieval reasoning; do
  [ -f "$OUT/duo-$data/full_attention_heads.tsv" ] ||
    "$RLKV" duo-train --config "$CONFIG" --data "$data" --output "$OUT/duo-$data"
done
[ -f "$OUT/problems.jsonl" ] ||
  "$RLKV" toy data --n 1000 --seed 20261129 --chain "$CHAIN" --output "$OUT/problems.jsonl"
[ -f "$OUT/compare.json" ] ||
  "$RLKV" compare --config "$CONFIG" --data "$OUT/problems.jsonl" --sparsity 0.25,0.5,0.75 \
    --duo-retrieval "$OUT/duo-retrieval" --duo-reasoning "$OUT/duo-reasoning" --seeds 3 --output "$OUT/compare.json" |
    tee "$OUT/compare.txt"
for seed in $SEEDS; do
  dir="$OUT/rlkv-seed-$seed"
  ckpt=$(tools/newest_ckpt.sh "$dir")
  # Evaluated again when the run has a newer checkpoint than its results.
  [ "$OUT/rlkv-seed-$seed.json" -nt "$ckpt" ] ||
    "$RLKV" eval --config "$CONFIG" --data "$OUT/problems.jsonl" --method rlkv --mask "$ckpt" \
      --sparsity 0.25,0.5,0.75 --output "$OUT/rlkv-seed-$seed.json"
  evals+=("$OUT/rlkv-seed-$seed.json")
done
python3 tools/compare_seeds.py "$OUT/compare.json" "${evals[@]}" --merged "$OUT/compare-merged.json" |
  tee "$OUT/table.md"
if /usr/bin/python3 -c "import matplotlib" 2> /dev/null; then
  /usr/bin/python3 analysis/tradeoff.py "$OUT/compare-merged.json" --title "$(basename "$MODEL"): accuracy against KV cache" \
    --output "$OUT/tradeoff.png"
fi
