#!/usr/bin/env bash
# Smoke run of the standard entry points on a tiny VOC-layout dataset:
# writes the data (once), trains the smoke config with tools/train.py
# (resumable: re-running continues from the last checkpoint) and tests the
# final checkpoint with tools/test.py. About a minute on 2 CPU cores.
#
#   bash tools/smoke_run.sh     [PYTHON=... DATA=... WORK_DIR=...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DATA="${DATA:-$ROOT/data/smoke_voc}"
WORK_DIR="${WORK_DIR:-$ROOT/work_dirs/smoke}"
CONFIG=configs/smoke/fcn_r18-w16_40i_vocsmoke-64x64.py
OPTS=(train_dataloader.dataset.data_root="$DATA"
      val_dataloader.dataset.data_root="$DATA"
      test_dataloader.dataset.data_root="$DATA")

if [ ! -f "$DATA/ImageSets/Segmentation/val.txt" ]; then
  "$PYTHON" -m rca_mm.testing.voc_layout --out "$DATA"
fi
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --resume \
  --cfg-options "${OPTS[@]}"
"$PYTHON" tools/test.py "$CONFIG" "$WORK_DIR/iter_40.pth" \
  --work-dir "$WORK_DIR/test" --cfg-options "${OPTS[@]}"
