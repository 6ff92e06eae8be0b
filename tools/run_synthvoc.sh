#!/usr/bin/env bash
# The README's main job: the whole WSSS pipeline with full RCA on SynthVOC
# (generated into data/synthvoc when empty), through tools/run_pipeline.py:
# RCA classifier -> pseudo labels of train_aug (scored on train) -> DeepLabV2
# on the pseudo labels -> val mIoU without and with dense CRF. Resumable:
# re-running skips finished steps. Prints and writes WORK_DIR/summary.json.
#
#   bash tools/run_synthvoc.sh   [PYTHON=... DATA=... WORK_DIR=... SEED=...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DATA="${DATA:-$ROOT/data/synthvoc}"
SEED="${SEED:-0}"
WORK_DIR="${WORK_DIR:-$ROOT/work_dirs/synthvoc_rca_seed$SEED}"
STAGE1=configs/synthvoc/rca_r18-w16_8e_synthvoc-112x112.py
STAGE2=configs/synthvoc/deeplabv2_r18-w32-d8_1k_synthvoc-112x112.py

"$PYTHON" tools/run_pipeline.py "$STAGE1" "$STAGE2" \
  --work-dir "$WORK_DIR" --data-root "$DATA" --seed "$SEED"
