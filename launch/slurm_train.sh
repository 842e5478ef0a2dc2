#!/usr/bin/env bash
# Slurm batch script for a multi-node rlkv training run: one MPI rank per GPU plus the learner and a
# reward worker. Each actor rank takes the GPU of its local rank (CUDA_VISIBLE_DEVICES is set per
# task by Slurm's --gpu-bind=single:1). Submit with, e.g.:
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm_train.sh configs/llama-3.1-8b-r1.ini
# Adjust the placement keys below: learners + reward workers + actors = ntasks.
#SBATCH --job-name=rlkv-train
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=rlkv-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch launch/slurm_train.sh CONFIG.ini [--key=value ...]}
shift
cd "${SLURM_SUBMIT_DIR:-.}"
# Rank 0 = learner, last rank = reward worker, the others actors; one actor thread per rank.
srun --mpi=pmix --gpu-bind=single:1 --cpu-bind=none \
  build/launch/rlkv train --config "$CONFIG" \
    --placement.learners=1 --placement.reward_workers=1 --placement.actors=1 \
    --placement.bind_address=0.0.0.0 --train.output_dir="out/${SLURM_JOB_ID}" "$@"
