#!/usr/bin/env bash
# Install rca_mm and its pinned dependencies into a virtual environment.
#
#   bash tools/install.sh            # creates/updates ./.venv
#   RCA_MM_VENV=/path bash tools/install.sh
#
# Idempotent: a second run with the same constraints and package metadata only
# re-checks the imports (seconds). The expensive mmcv build (about 8-11 min on
# 2 cores) is cached as a wheel under ${RCA_MM_CACHE:-~/.cache/rca_mm}, keyed by
# the Python and torch versions, so it is built once per machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RCA_MM_VENV:-$ROOT/.venv}"
CACHE="${RCA_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rca_mm}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
PY="$VENV/bin/python"

log() { printf '[install %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

pin() {  # pin NAME -> the version pinned in the constraints file
  local v
  v="$(sed -n "s/^$1==\([^ ]*\).*/\1/p" "$CONSTRAINTS")"
  [ -n "$v" ] || die "no pin for '$1' in $CONSTRAINTS"
  printf '%s' "$v"
}

# The machine's pip configuration offers a CPU-only torch wheel through
# PIP_FIND_LINKS; pip would prefer it for torch==X and PyPI's torchvision then
# fails ("operator torchvision::nms does not exist"). PIP_CONFIG_FILE=/dev/null
# does not clear an environment variable, so unset it for every pip call.
pip_raw() {
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null \
    "$PY" -m pip --disable-pip-version-check "$@"
}
pip_install() { pip_raw install -c "$CONSTRAINTS" "$@"; }

STAMP="$VENV/.rca_mm_install_stamp"
stamp_value() {
  cat "$CONSTRAINTS" "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/setup.py" \
    "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
  printf '%s\n' "$ROOT"
}

verify() {
  "$PY" - <<'EOF'
import importlib, sys
failed = []
def check(what, fn):
    try:
        fn()
        print(f'  ok  {what}')
    except Exception as exc:  # report every failure, not just the first
        failed.append(what)
        print(f'  FAIL {what}: {type(exc).__name__}: {exc}')

def torch_ok():
    import torch
    torch.ones(2) + 1
def tv_ok():
    import torch, torchvision.ops
    torchvision.ops.nms(torch.rand(4, 4).cumsum(1), torch.rand(4), 0.5)
def mmcv_ops_ok():
    import torch, mmcv.ops
    mmcv.ops.nms(torch.tensor([[0., 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([.9, .8]), 0.5)
def crf_ok():
    import pydensecrf.densecrf as dcrf
    dcrf.DenseCRF2D(4, 4, 2)

check('torch', torch_ok)
check('torchvision (ops.nms)', tv_ok)
check('mmcv (compiled ops)', mmcv_ops_ok)
for mod in ('cv2', 'mmengine', 'mmseg', 'mmseg.models', 'mmpretrain', 'rca_mm'):
    check(mod, lambda m=mod: importlib.import_module(m))
check('pydensecrf', crf_ok)
if failed:
    sys.exit('install check failed for: ' + ', '.join(failed))
EOF
}

# ---------------------------------------------------------------- venv
if [ ! -x "$PY" ]; then
  log "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ]; then
  log "already installed for these pins; checking imports"
  verify && { log "done"; exit 0; }
  log "imports failed; reinstalling"
fi

T0=$SECONDS
# ---------------------------------------------------------------- torch
TORCH="$(pin torch)"
log "torch $TORCH + torchvision $(pin torchvision) from PyPI"
pip_install "torch==$TORCH" "torchvision==$(pin torchvision)"

# ---------------------------------------------------------------- mmcv (ops)
MMCV="$(pin mmcv)"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEELDIR="$CACHE/wheels/$PYTAG-torch$TORCH"
have_mmcv() {
  "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV')" 2>/dev/null
}
if ! have_mmcv; then
  WHEEL="$(ls "$WHEELDIR"/mmcv-"$MMCV"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$WHEEL" ]; then
    log "building mmcv $MMCV with compiled ops (once per machine, ~10 min on 2 cores)"
    # mmcv's setup.py imports pkg_resources, gone from setuptools>=70.
    # Not against the constraints file: it pins the newer setuptools restored below.
    pip_raw install "setuptools<70" wheel ninja packaging
    TMPW="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-wheel.XXXXXX")"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      pip_raw wheel --no-build-isolation --no-deps --no-binary mmcv \
      -w "$TMPW" "mmcv==$MMCV"
    mkdir -p "$WHEELDIR"
    built="$(ls "$TMPW"/mmcv-*.whl)"
    # Atomic publish: a killed build never leaves a half-written wheel in the cache.
    cp "$built" "$WHEELDIR/.tmp.$(basename "$built")"
    mv "$WHEELDIR/.tmp.$(basename "$built")" "$WHEELDIR/$(basename "$built")"
    rm -rf "$TMPW"
    WHEEL="$WHEELDIR/$(basename "$built")"
  else
    log "using cached mmcv wheel $WHEEL"
  fi
  pip_install --no-deps "$WHEEL"
fi
# Restore the setuptools that torch declares (the mmcv build needed an older one).
pip_install "setuptools==$(pin setuptools)"

# ---------------------------------------------------------------- the rest
log "mmengine, mmsegmentation, mmpretrain, pydensecrf2 and rca_mm"
pip_install "mmcv==$MMCV" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
pip_install --no-deps --no-build-isolation -e "$ROOT"

log "checking imports"
verify || die "the environment in $VENV is incomplete (see FAIL lines above)"
stamp_value > "$STAMP"
log "installed in $((SECONDS - T0)) s; activate with: source $VENV/bin/activate"
