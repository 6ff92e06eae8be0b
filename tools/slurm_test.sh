#!/usr/bin/env bash
# Testing on Slurm:
#   [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [ARGS...]
# See tools/slurm_run.sh for GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS.
exec bash "$(dirname "$0")/slurm_run.sh" test.py "$@"
