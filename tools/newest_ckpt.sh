#!/usr/bin/env bash
# Prints the training checkpoint of DIR with the highest step (ckpt-STEP.h5), or nothing when there
# is none. By the step's number, not the text: ckpt-100.h5 is newer than ckpt-50.h5, and a path
# with dashes or spaces in its folders changes nothing. The names rlkv itself takes for checkpoints:
# the step without leading zeros, at most 18 digits (ckpt-08.h5 is not one).
# Usage: tools/newest_ckpt.sh DIR
set -euo pipefail
best="" max=-1
for f in "$1"/ckpt-*.h5; do
  [[ -f "$f" ]] || continue
  n=${f##*/ckpt-}
  n=${n%.h5}
  if [[ "$n" =~ ^(0|[1-9][0-9]{0,17})$ ]] && ((10#$n > max)); then
    max=$((10#$n))
    best=$f
  fi
done
[[ -z "$best" ]] || printf '%s\n' "$best"
