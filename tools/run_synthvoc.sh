#!/usr/bin/env bash
# The README's main job: the paper's flagship combination, RCA on EPS, through
# the whole WSSS pipeline on SynthVOC, beside its EPS baseline on the same
# seed, with tools/run_pipeline.py:
#   SynthVOC and SynthNet generated into data/ when empty; the backbone
#   pretrained on SynthNet once (data/pretrained/, reused by later runs);
#   RCA+EPS classifier -> pseudo labels of train_aug (scored on train) ->
#   DeepLabV2 on the pseudo labels -> val mIoU without and with dense CRF;
#   the EPS baseline's classifier and pseudo labels (the whole pipeline for
#   both takes about 20 minutes on 2 cores; BASELINE_UNTIL=val_crf runs the
#   baseline's stage 2 too).
# Resumable: re-running skips finished steps. Prints both side by side and
# writes WORK_DIR/summary.json (the baseline under "baseline").
#
#   bash tools/run_synthvoc.sh   [PYTHON=... DATA=... WORK_DIR=... SEED=...
#                                 BASELINE_UNTIL=...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DATA="${DATA:-$ROOT/data/synthvoc}"
SEED="${SEED:-0}"
WORK_DIR="${WORK_DIR:-$ROOT/work_dirs/synthvoc_rca-eps_seed$SEED}"
BASELINE_UNTIL="${BASELINE_UNTIL:-pseudo}"
PRETRAIN=configs/pretrain/resnet18-w16-d8_6e_synthnet-96x96.py
STAGE1=configs/synthvoc/rca-eps_r18-w16_8e_synthvoc-112x112.py
BASELINE=configs/synthvoc/eps_r18-w16_8e_synthvoc-112x112.py
STAGE2=configs/synthvoc/deeplabv2_r18-w16-d8_1k_synthvoc-112x112.py

"$PYTHON" tools/run_pipeline.py "$STAGE1" "$STAGE2" \
  --work-dir "$WORK_DIR" --data-root "$DATA" --seed "$SEED" \
  --pretrain "$PRETRAIN" --baseline "$BASELINE" \
  --baseline-until "$BASELINE_UNTIL"
