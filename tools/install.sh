#!/usr/bin/env bash
# Install rca_mm and its pinned dependencies into a virtual environment.
#
#   bash tools/install.sh            # creates/updates ./.venv
#   RCA_MM_VENV=/path bash tools/install.sh
#   TORCH_CUDA=cu126 bash tools/install.sh   # torch's CUDA 12.6 build (V100)
#
# TORCH_CUDA picks torch's build: unset (default) is PyPI's own build of the
# pinned torch (CUDA 13.0 for torch 2.13.0: compute capability 7.5 and newer);
# cuXYZ (cu126, cu128, cu130, ...) or cpu installs torch and torchvision
# from https://download.pytorch.org/whl/<tag> at the pinned versions, or at
# TORCH_VERSION and TORCHVISION_VERSION when both are set (for a tag that
# has no build of the pin). TORCH_INDEX replaces the index's base URL (a
# mirror). docs/get_started.md, "Installing for GPUs", says which tag fits
# which card and driver.
#
# Idempotent: a second run with the same constraints, options and package
# metadata only re-checks the imports (seconds). The expensive mmcv build
# (about 8-11 min on 2 cores) is cached as a wheel under
# ${RCA_MM_CACHE:-~/.cache/rca_mm}, keyed by the Python version and torch's
# full version (its CUDA tag included), so it is built once per machine and
# build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RCA_MM_VENV:-$ROOT/.venv}"
CACHE="${RCA_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rca_mm}"
PINS="$ROOT/requirements/constraints.txt"
PY="$VENV/bin/python"

log() { printf '[install %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

pin() {  # pin NAME -> the version pinned in the constraints file
  local v
  v="$(sed -n "s/^$1==\([^ ]*\).*/\1/p" "$PINS")"
  [ -n "$v" ] || die "no pin for '$1' in $PINS"
  printf '%s' "$v"
}

# ---------------------------------------------------------------- options
# Checked before anything is created or installed.
TORCH_CUDA="${TORCH_CUDA:-}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl}"
case "$TORCH_CUDA" in
  ''|cpu) ;;
  cu[0-9][0-9][0-9]) ;;
  *) die "TORCH_CUDA='$TORCH_CUDA' is not a build of torch: use a CUDA tag \
such as cu126, cu128 or cu130, or cpu, or leave TORCH_CUDA unset for PyPI's \
default build of torch $(pin torch). docs/get_started.md, \
\"Installing for GPUs\", says which tag fits which card." ;;
esac
if [ -n "${TORCH_VERSION:-}${TORCHVISION_VERSION:-}" ]; then
  [ -n "${TORCH_VERSION:-}" ] && [ -n "${TORCHVISION_VERSION:-}" ] || die \
    "set TORCH_VERSION and TORCHVISION_VERSION together (a torchvision \
release is built for one torch release, e.g. 2.9.1 with 0.24.1)"
  for v in "$TORCH_VERSION" "$TORCHVISION_VERSION"; do
    [[ "$v" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die \
      "TORCH_VERSION/TORCHVISION_VERSION '$v' is not a release number such as 2.9.1"
  done
fi
TORCH="${TORCH_VERSION:-$(pin torch)}"
TORCHVISION="${TORCHVISION_VERSION:-$(pin torchvision)}"

# The constraints every pip call uses: the pinned file, with torch and
# torchvision at the versions chosen above.
CONSTRAINTS="$(mktemp "${TMPDIR:-/tmp}/rca_mm_constraints.XXXXXX")"
trap 'rm -f "$CONSTRAINTS"' EXIT
sed -e "s/^torch==.*/torch==$TORCH/" \
    -e "s/^torchvision==.*/torchvision==$TORCHVISION/" "$PINS" > "$CONSTRAINTS"

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
  # Switching the build (or the index) reinstalls.
  printf 'TORCH_CUDA=%s torch=%s torchvision=%s index=%s\n' \
    "${TORCH_CUDA:-pypi}" "$TORCH" "$TORCHVISION" "$TORCH_INDEX"
}

verify() {
  local status=0
  "$PY" - <<'EOF' || status=1
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
  # The GPUs, their compute capability, and whether this torch has kernels
  # for them (exit 1 with the TORCH_CUDA to choose when it has not).
  TORCH_CUDA="$TORCH_CUDA" "$PY" "$ROOT/rca_mm/utils/cuda_check.py" \
    | sed 's/^/  gpu  /' || status=1
  return $status
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
# The distribution versions wanted: PyPI's build carries no local label; the
# PyTorch index's builds are X+<tag>. A different build in the venv (another
# TORCH_CUDA before) is removed first: pip takes X+cu126 as satisfying X.
if [ -z "$TORCH_CUDA" ]; then
  WANT_TORCH="$TORCH"; WANT_TV="$TORCHVISION"
else
  WANT_TORCH="$TORCH+$TORCH_CUDA"; WANT_TV="$TORCHVISION+$TORCH_CUDA"
fi
installed_version() {
  "$PY" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}
HAVE_TORCH="$(installed_version torch)"
HAVE_TV="$(installed_version torchvision)"
if { [ -n "$HAVE_TORCH" ] && [ "$HAVE_TORCH" != "$WANT_TORCH" ]; } ||
   { [ -n "$HAVE_TV" ] && [ "$HAVE_TV" != "$WANT_TV" ]; }; then
  log "replacing torch $HAVE_TORCH / torchvision $HAVE_TV by $WANT_TORCH / $WANT_TV"
  pip_raw uninstall -y torch torchvision mmcv
fi
if [ -z "$TORCH_CUDA" ]; then
  log "torch $TORCH + torchvision $TORCHVISION from PyPI (its default build)"
  pip_install "torch==$TORCH" "torchvision==$TORCHVISION"
else
  URL="$TORCH_INDEX/$TORCH_CUDA"
  log "torch $WANT_TORCH + torchvision $WANT_TV from $URL"
  # An extra index: torch's own dependencies (nvidia-*, sympy, ...) still
  # come from the usual index; torch and torchvision can only match the
  # PyTorch index's X+<tag> builds.
  pip_install --extra-index-url "$URL" \
      "torch==$WANT_TORCH" "torchvision==$WANT_TV" || die "pip could not \
install torch==$WANT_TORCH and torchvision==$WANT_TV from $URL (see pip's \
message above). If that index has no build of these versions, choose another \
TORCH_CUDA, or set TORCH_VERSION and TORCHVISION_VERSION to a release it has \
(e.g. TORCH_CUDA=cu126 TORCH_VERSION=2.9.1 TORCHVISION_VERSION=0.24.1); \
docs/get_started.md, \"Installing for GPUs\"."
fi

# ---------------------------------------------------------------- mmcv (ops)
MMCV="$(pin mmcv)"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
# torch's full version names its CUDA build (2.13.0+cu130, 2.13.0+cu126,
# 2.13.0+cpu): the wheel links that build's libraries.
TORCH_FULL="$("$PY" -c 'import torch; print(torch.__version__)')"
WHEELDIR="$CACHE/wheels/$PYTAG-torch$TORCH_FULL"
have_mmcv() {
  "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV')" 2>/dev/null
}
if ! have_mmcv; then
  WHEEL="$(ls "$WHEELDIR"/mmcv-"$MMCV"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$WHEEL" ] && [ -z "$TORCH_CUDA" ]; then
    # Wheels cached before the key named the build were built against
    # PyPI's default build of this torch: the same one as here.
    WHEEL="$(ls "$CACHE/wheels/$PYTAG-torch$TORCH"/mmcv-"$MMCV"-*.whl 2>/dev/null | head -n1 || true)"
  fi
  if [ -z "$WHEEL" ]; then
    log "building mmcv $MMCV with compiled ops (once per machine, ~10 min on 2 cores)"
    # mmcv's setup.py imports pkg_resources, gone from setuptools>=70.
    # Not against the constraints file: it pins the newer setuptools restored below.
    pip_raw install "setuptools<70" wheel ninja packaging
    TMPW="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-wheel.XXXXXX")"
    # CPU ops only: rca_mm uses no CUDA op of mmcv. mmcv 2.1's setup.py
    # compiles the CUDA ops whenever torch.cuda.is_available(), whatever
    # FORCE_CUDA says, so the GPUs are hidden from the build.
    CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 FORCE_CUDA=0 \
      MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
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
verify || die "the environment in $VENV is incomplete, or its torch has no \
kernels for this GPU (see the FAIL or UNSUPPORTED lines above)"
stamp_value > "$STAMP"
log "installed in $((SECONDS - T0)) s; activate with: source $VENV/bin/activate"
