#!/usr/bin/env bash
# RLKV's training mechanism varied on an embedded toy model, three seeds per variant, each learned mask
# evaluated on the problems of a finished tools/compare_toy.sh run and set against its per-head
# baselines (the single-head oracle and both DuoAttention variants): what target sparsity (the
# penalty's set point), the estimator's sample size (group size x prompts per step), greedy rollouts
# (no token sampling in the reward) and the gates' starting keep probability change.
# Usage: tools/toy_variants.sh [CONFIG] [COMPARE_DIR] [OUT_DIR]
#   (defaults configs/toy2.ini, out/toy2-compare, out/toy2-variants; SEEDS="1 2 3"; VARIANTS: lines of
#    "name|rlkv train overrides", the seven below by default). Runs already trained or evaluated are
#    kept. Prints a Markdown table: mean (min-max) accuracy per sparsity, and the mean's margin over
#    the best per-head baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
RLKV=./build/launch/rlkv
CONFIG=${1:-configs/toy2.ini}
CMP=${2:-out/toy2-compare}
OUT=${3:-out/toy2-variants}
SEEDS=${SEEDS:-1 2 3}
# Each variant names the target sparsity and the gates' starting keep probability itself, so that it
# measures the same thing whatever the config's defaults are.
VARIANTS=${VARIANTS:-"p0.9-target-0.5|--policy.target_sparsity=0.5 --policy.init_keep_prob=0.9
p0.9-target-0.25|--policy.target_sparsity=0.25 --policy.init_keep_prob=0.9
p0.9-target-0.75|--policy.target_sparsity=0.75 --policy.init_keep_prob=0.9
p0.9-samples-4x|--policy.target_sparsity=0.25 --policy.init_keep_prob=0.9 --rollout.group_size=8 --rollout.prompts_per_step=16
p0.9-greedy|--policy.target_sparsity=0.5 --policy.init_keep_prob=0.9 --rollout.temperature=0
p0.9-greedy-0.25|--policy.target_sparsity=0.25 --policy.init_keep_prob=0.9 --rollout.temperature=0
p0.97-target-0.5|--policy.target_sparsity=0.5 --policy.init_keep_prob=0.97"}
[[ -f "$CMP/compare.json" && -f "$CMP/problems.jsonl" ]] || {
  echo "toy_variants.sh: $CMP has no compare.json and problems.jsonl (run tools/compare_toy.sh first)" >&2
  exit 2
}
mkdir -p "$OUT"
args=()
while IFS='|' read -r name overrides; do
  [[ -z "$name" ]] && continue
  for seed in $SEEDS; do
    dir="$OUT/$name-s$seed"
    # --resume auto: a finished run has nothing to train, an interrupted one goes on.
    # shellcheck disable=SC2086 # the overrides are words
    "$RLKV" train --config "$CONFIG" --train.seed="$seed" $overrides --train.output_dir="$dir" --resume auto \
      >> "$dir.log" 2>&1
    ckpt=$(tools/newest_ckpt.sh "$dir")
    if [[ ! "$dir.json" -nt "$ckpt" ]]; then
      "$RLKV" eval --config "$CONFIG" --data "$CMP/problems.jsonl" --method rlkv --mask "$ckpt" \
        --sparsity 0.25,0.5,0.75 --output "$dir.json" > "$dir.eval.log" 2>&1
    fi
    args+=("$name=$dir.json")
  done
done <<< "$VARIANTS"
python3 - "$CMP/compare.json" "$CMP/rlkv-seed-*.json" "${args[@]}" <<'PY'
import glob, json, sys
def rows(p):
    return json.load(open(p))["rows"]
base = rows(sys.argv[1])
levels = sorted({round(r["sparsity"], 6) for r in base if r["method"] == "oracle"})
best = {s: max(r["accuracy"] for r in base if r["method"] in ("oracle", "duo-retrieval", "duo-reasoning")
               and round(r["sparsity"], 6) == s) for s in levels}
runs = {"default (compare_toy.sh)": sorted(glob.glob(sys.argv[2]))}
for a in sys.argv[3:]:
    name, path = a.split("=", 1)
    runs.setdefault(name, []).append(path)
print("| variant | " + " | ".join(f"{100 * s:g}%" for s in levels) + " |")
print("|---|" + "---:|" * len(levels))
for name, paths in runs.items():
    acc = {s: [] for s in levels}
    for p in paths:
        for r in rows(p):
            if r["method"] == "rlkv" and round(r["sparsity"], 6) in acc:
                acc[round(r["sparsity"], 6)].append(100 * r["accuracy"])
    cells = []
    for s in levels:
        v = acc[s]
        mean = sum(v) / len(v)
        cells.append(f"{mean:.1f} ({min(v):.1f}-{max(v):.1f}), {mean - 100 * best[s]:+.1f}")
    print(f"| {name} ({len(paths)} seeds) | " + " | ".join(cells) + " |")
print("\nEach cell: mean (min-max) accuracy % over seeds, then the mean's margin in points over the best of "
      "the single-head oracle and both DuoAttention variants (" +
      ", ".join(f"{100 * best[s]:.1f} at {100 * s:g}%" for s in levels) + ").")
PY
