#!/usr/bin/env bash
# mpirun with the flags this project needs on one node, so scripts and tests share them:
#   --allow-run-as-root (CI and these machines run as root), --oversubscribe (more ranks than cores on
#   a small machine), --bind-to none (ranks are multi-threaded; the default pins each to one core),
#   btl self,vader (shared memory on one node; quiet). Multi-node runs: see launch/slurm_train.sh.
# Usage: launch/mpirun.sh -np N build/launch/rlkv train --config configs/toy.ini [...]
set -euo pipefail
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader}
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
ROOT=()
[ "$(id -u)" -eq 0 ] && ROOT=(--allow-run-as-root)
exec mpirun "${ROOT[@]}" --oversubscribe --bind-to none "$@"
