#!/usr/bin/env bash
# Training on Slurm:  [GPUS=8] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [ARGS...]
# See tools/slurm_run.sh for GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS.
exec bash "$(dirname "$0")/slurm_run.sh" train.py "$@"
