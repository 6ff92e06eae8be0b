#!/usr/bin/env bash
# Distributed testing:  bash tools/dist_test.sh CONFIG CHECKPOINT N [ARGS...]
# N processes with torchrun (GPUs, or CPU processes with gloo when there is
# no CUDA device); ARGS go to tools/test.py. See tools/dist_run.sh.
set -euo pipefail
exec bash "$(dirname "$0")/dist_run.sh" test.py "$3" "$1" "$2" "${@:4}"
