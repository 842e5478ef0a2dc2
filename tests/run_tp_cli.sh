#!/usr/bin/env bash
# `rlkv generate` under mpirun (one tensor-parallel group of all ranks): the same greedy text as a
# single process with a mask that compresses half the heads, for 2 and 4 ranks and both load modes;
# a group that cannot share the model's heads is refused with one line and exit status 2.
# Usage: run_tp_cli.sh RLKV_BINARY SOURCE_DIR
set -uo pipefail
RLKV=$1
SRC=$2
MPIRUN="$SRC/launch/mpirun.sh"
MODEL="$SRC/tests/fixtures/models/qwen3_tiny"
ARGS=(generate --model "$MODEL" --prompt "tensor parallel" --prompt "a b c" --json --max-new-tokens 24
      --mask random:5 --sparsity 0.5 --sink 2 --window 3 --runtime.threads=1)
fail=0
want=$("$RLKV" "${ARGS[@]}" 2>/dev/null) || { echo "single-process run failed"; exit 1; }
[ -n "$want" ] || { echo "single-process run printed nothing"; exit 1; }
for np in 2 4; do
  for load in shard broadcast; do
    got=$("$MPIRUN" -np "$np" "$RLKV" "${ARGS[@]}" --model.load=$load 2>/dev/null)
    if [ "$got" != "$want" ]; then
      echo "FAIL: -np $np model.load=$load differs from the single process:"; echo "$got"; echo "want:"; echo "$want"
      fail=1
    else
      echo "ok: -np $np model.load=$load"
    fi
  done
done
err=$("$MPIRUN" -np 3 "$RLKV" generate --model "$MODEL" --prompt x 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 2 ] || ! grep -Eq "rlkv generate \(rank [0-9] of 3\): error: tensor_parallel = 3 cannot share the model's 2 KV heads" <<<"$err"; then
  echo "FAIL: -np 3 on 2 KV heads: rc $rc, stderr:"; echo "$err"; fail=1
else
  echo "ok: -np 3 refused"
fi
exit $fail
