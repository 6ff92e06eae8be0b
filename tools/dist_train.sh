#!/usr/bin/env bash
# Distributed training:  bash tools/dist_train.sh CONFIG N [ARGS...]
# N processes with torchrun (GPUs, or CPU processes with gloo when there is
# no CUDA device); ARGS go to tools/train.py. See tools/dist_run.sh.
set -euo pipefail
exec bash "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" "${@:3}"
