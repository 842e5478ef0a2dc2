#!/usr/bin/env bash
# Multi-node launch of a training run with tensor-parallel actor groups: the learner and
# the reward worker on a head host, and on each GPU host one actor group of --gpus-per-node ranks
# (actor.tensor_parallel = ranks per group; a group never spans hosts). Uses mpirun's MPMD form so
# that rank 0 (learner) and the last rank (reward worker) land on the head host and the actor ranks
# fill the GPU hosts in order; each actor rank's GPU is its local rank on its host.
#   launch/mpirun_tp.sh --head HOST --nodes HOST1,HOST2,... --gpus-per-node 8 [--tp 8] [--dry-run] \
#       -- build/launch/rlkv train --config configs/llama-3.1-8b-r1.ini [--key=value ...]
# --tp below --gpus-per-node puts several groups on a host. --dry-run prints the command only.
# Add --runtime.device=cuda to the command for GPUs (each rank takes the GPU of its local rank; the
# groups then use NCCL; tests/op_test_nccl.cpp checks that backend on one GPU). Multi-GPU and
# multi-node groups are untested; the same layout runs on one host with launch/mpirun.sh (tests:
# test_train, test_tp).
set -euo pipefail
HEAD="" NODES="" GPUS=0 TP=0 DRY=0
# An option that takes a value and was given none (the last word, or another option next).
need_value() {
  [ $# -ge 2 ] && [ "${2#--}" = "$2" ] || { echo "mpirun_tp.sh: $1 needs a value" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
  case "$1" in
    --head) need_value "$@"; HEAD=$2; shift 2 ;;
    --nodes) need_value "$@"; NODES=$2; shift 2 ;;
    --gpus-per-node) need_value "$@"; GPUS=$2; shift 2 ;;
    --tp) need_value "$@"; TP=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --) shift; break ;;
    *) echo "mpirun_tp.sh: unknown option '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "mpirun_tp.sh: give the command after --" >&2; exit 2; }
[ -n "$HEAD" ] && [ -n "$NODES" ] || { echo "mpirun_tp.sh: --head and --nodes are required" >&2; exit 2; }
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "mpirun_tp.sh: --gpus-per-node must be a positive integer" >&2; exit 2; }
[[ "$TP" =~ ^[0-9]+$ ]] || { echo "mpirun_tp.sh: --tp must be a positive integer" >&2; exit 2; }
[ "$TP" -eq 0 ] && TP=$GPUS
[[ "$TP" =~ ^[1-9][0-9]*$ ]] && [ $((GPUS % TP)) -eq 0 ] ||
  { echo "mpirun_tp.sh: --tp $TP must divide --gpus-per-node $GPUS" >&2; exit 2; }
IFS=, read -r -a hosts <<<"$NODES"
actor_hosts=""
for h in "${hosts[@]}"; do actor_hosts+="${actor_hosts:+,}$h:$GPUS"; done
ACTORS=$(( ${#hosts[@]} * GPUS ))
ARGS=("$@" --placement.learners=1 --placement.reward_workers=1 --placement.actors=1
      --actor.tensor_parallel="$TP" --placement.bind_address=0.0.0.0)
# Across hosts MPI needs TCP too (mpirun.sh defaults to shared memory only, for one host).
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader,tcp}
CMD=("$(dirname "$0")/mpirun.sh" --map-by slot
     -np 1 -H "$HEAD:1" "${ARGS[@]}" :
     -np "$ACTORS" -H "$actor_hosts" "${ARGS[@]}" :
     -np 1 -H "$HEAD:1" "${ARGS[@]}")
if [ "$DRY" -eq 1 ]; then printf '%q ' "${CMD[@]}"; echo; exit 0; fi
exec "${CMD[@]}"
