#!/usr/bin/env bash
# The GPU acceptance check, one command (under 10 minutes on one GPU):
#
#   bash tools/gpu_check.sh [WORK_DIR]        # default work_dirs/gpu_check
#
# 1. torch, CUDA, driver and every GPU's compute capability; stops on a card
#    this torch has no kernels for, naming the TORCH_CUDA to install.
# 2. The SynthVOC RCA + EPS config on a small generated SynthVOC, through
#    tools/dist_train.sh on every visible GPU: killed (SIGKILL, every rank)
#    in its second epoch, resumed with --resume; each rank's bank and
#    prototypes must be bit-identical, equal to the checkpoint, finite.
#    Then the same with --amp (losses and bank finite).
# 3. tools/analysis_tools/gpu_check.py measure: what still synchronises in
#    an RCA step, peak memory of configs/rca/rca_eps_r38_voc.py (448x448,
#    batch 2 and 8) and configs/deeplabv2/deeplabv2_r101_voc.py (MSC, batch
#    10), the RMS of the backbone feature F, the step time of RCA against
#    its EPS baseline at the paper's size.
#
# Everything goes to WORK_DIR/gpu_check.json and WORK_DIR/gpu_check.txt
# (the runs' logs: WORK_DIR/train_*/gpu_check.log). Without a CUDA device it
# says so and exits 0. PYTHON (default .venv/bin/python) runs everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python
  [ -x "$ROOT/.venv/bin/python" ] && PYTHON="$ROOT/.venv/bin/python"
fi
export PYTHON  # tools/dist_run.sh starts torchrun with it
CHECK=("$PYTHON" tools/analysis_tools/gpu_check.py)
log() { printf '[gpu_check %(%H:%M:%S)T] %s\n' -1 "$*"; }

NGPU="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
if [ "$NGPU" = 0 ]; then
  "${CHECK[@]}" env
  log "no CUDA device on this machine: nothing to check (run it where a GPU is)"
  exit 0
fi
WORK="$(mkdir -p "${1:-work_dirs/gpu_check}" && cd "${1:-work_dirs/gpu_check}" && pwd)"

log "1/3 devices"
"${CHECK[@]}" env --work-dir "$WORK" || {
  log "stopped: this torch cannot run on this GPU (see above)"; exit 1; }

log "2/3 training on $NGPU GPU(s): kill, resume, compare the ranks"
"${CHECK[@]}" prepare --work-dir "$WORK" --gpus "$NGPU"
STATUS=0
for MODE in fp32 amp; do
  RUN="$WORK/train_$MODE"
  rm -rf "$RUN" && mkdir -p "$RUN"
  EXTRA=()
  [ "$MODE" = amp ] && EXTRA=(--amp)
  # 4 iterations per epoch: every rank kills itself after iteration 6.
  GPU_CHECK_KILL_AT=6 PYTHONPATH="$WORK" timeout 300 \
    bash tools/dist_train.sh "$WORK/check_cfg.py" "$NGPU" --work-dir "$RUN" \
    "${EXTRA[@]}" > "$RUN/gpu_check.log" 2>&1 || true
  PYTHONPATH="$WORK" timeout 300 \
    bash tools/dist_train.sh "$WORK/check_cfg.py" "$NGPU" --work-dir "$RUN" \
    --resume "${EXTRA[@]}" >> "$RUN/gpu_check.log" 2>&1 ||
    log "the resumed $MODE run failed: $RUN/gpu_check.log"
  "${CHECK[@]}" compare-ranks --work-dir "$WORK" --run "$RUN" \
    --name "train_$MODE" > /dev/null || { STATUS=1; log "$MODE: FAILED"; }
done

log "3/3 synchronisations, memory, feature RMS, step time"
CKPT="$WORK/train_fp32/epoch_2.pth"
RMS=()
[ -f "$CKPT" ] && RMS=(--checkpoint "$CKPT" --data-root "$WORK/synthvoc")
timeout 420 "${CHECK[@]}" measure --device cuda --work-dir "$WORK" "${RMS[@]}" \
  > "$WORK/measure.log" 2>&1 || { STATUS=1; log "measure failed: $WORK/measure.log"; }

"${CHECK[@]}" summary --work-dir "$WORK"
log "figures in $WORK/gpu_check.json and $WORK/gpu_check.txt"
exit $STATUS
