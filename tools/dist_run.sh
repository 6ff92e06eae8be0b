#!/usr/bin/env bash
# torchrun launcher shared by dist_train.sh and dist_test.sh:
#   bash tools/dist_run.sh SCRIPT N [ARGS...]
# N processes on this node (one per GPU; without a CUDA device, N CPU
# processes with gloo). Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
SCRIPT=$1
NPROC=$2
TOOLS="$(cd "$(dirname "$0")" && pwd)"

PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$TOOLS/$SCRIPT" "${@:3}" --launcher pytorch
