#!/usr/bin/env bash
# The README's main job: the paper's flagship combination, RCA on EPS, through
# the whole WSSS pipeline on SynthVOC, beside its EPS baseline on the same
# seed, with tools/run_pipeline.py (the runs rca-eps and eps of
# configs/synthvoc/experiments.yaml, which names their configs):
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

"$PYTHON" tools/run_pipeline.py --experiment rca-eps --baseline eps \
  --work-dir "$WORK_DIR" --data-root "$DATA" --seed "$SEED" \
  --baseline-until "$BASELINE_UNTIL"
