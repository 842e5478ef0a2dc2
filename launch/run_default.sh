#!/usr/bin/env bash
# The main job on the embedded default: install, build, then train RLKV head gates on the shipped toy
# reasoning model under mpirun (rank 0 learner, ranks 1-2 actors, rank 3 reward worker), and
# evaluate the learned mask at 50% of the KV heads compressed against random masks of the same size
# on 1,000 fresh problems. Extra arguments go to `rlkv train` (e.g. --train.steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install.sh
./launch/build.sh
RLKV=./build/launch/rlkv
OUT=out/toy
rm -rf "$OUT"
./launch/mpirun.sh -np 4 "$RLKV" train --config configs/toy.ini --train.output_dir="$OUT" "$@"
CKPT=$(ls -1 "$OUT"/ckpt-*.h5 | sort -t- -k2 -n | tail -n 1)
"$RLKV" toy data --n 1000 --seed 20261129 --output "$OUT/eval-problems.jsonl"
echo "== learned mask ($CKPT) at 50% compressed, then random masks (5 seeds):"
"$RLKV" eval --config configs/toy.ini --data "$OUT/eval-problems.jsonl" --task toy --method rlkv --mask "$CKPT" \
  --sparsity 0.5 --output "$OUT/eval-rlkv.json"
"$RLKV" eval --config configs/toy.ini --data "$OUT/eval-problems.jsonl" --task toy --method random --sparsity 0.5 \
  --seeds 5 --output "$OUT/eval-random.json"
