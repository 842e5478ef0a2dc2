#!/usr/bin/env bash
# The main job on the embedded default: install, build, then train RLKV head gates on the shipped toy
# reasoning model under mpirun (rank 0 learner, ranks 1-2 actors, rank 3 reward worker), and
# evaluate the learned mask at 50% of the KV heads compressed against random masks of the same size
# on 1,000 fresh problems, export the mask (RLKV-SGLang and JSON) and draw its heatmap and the
# training curves into out/toy/. Extra arguments go to `rlkv train` (e.g. --train.steps=100); out/toy
# starts empty unless they hold --resume (--resume auto continues an interrupted run there).
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install.sh
./launch/build.sh
RLKV=./build/launch/rlkv
OUT=out/toy
case " $* " in
  *" --resume"*) ;;
  *) rm -rf "$OUT" ;;
esac
./launch/mpirun.sh -np 4 "$RLKV" train --config configs/toy.ini --train.output_dir="$OUT" "$@"
CKPT=$(tools/newest_ckpt.sh "$OUT")
"$RLKV" toy data --n 1000 --seed 20261129 --output "$OUT/eval-problems.jsonl"
echo "== learned mask ($CKPT) at 50% compressed, then random masks (5 seeds):"
"$RLKV" eval --config configs/toy.ini --data "$OUT/eval-problems.jsonl" --method rlkv --mask "$CKPT" \
  --sparsity 0.5 --output "$OUT/eval-rlkv.json"
"$RLKV" eval --config configs/toy.ini --data "$OUT/eval-problems.jsonl" --method random --sparsity 0.5 \
  --seeds 5 --output "$OUT/eval-random.json"
echo "== export of the final mask and its heatmap:"
"$RLKV" export "$CKPT" --format rlkv-sglang --output "$OUT/mask-rlkv-sglang"
"$RLKV" export "$CKPT" --format json --sparsity 0.5 --model models/toy-reasoner --output "$OUT/mask.json"
if /usr/bin/python3 -c "import h5py, numpy, matplotlib" 2>/dev/null; then
  /usr/bin/python3 analysis/heatmap.py "$CKPT" --sparsity 0.5 --output "$OUT/heatmap.png"
  /usr/bin/python3 analysis/curves.py "$OUT" --output "$OUT/curves.png"
  echo "heatmap: $OUT/heatmap.png, curves: $OUT/curves.png"
fi
