#!/usr/bin/env bash
# Idempotent set-up of a project-local environment for mmxai.
#
# Creates .venv (or reuses it), installs the tested stack and `pip install -e .`.
# A second call installs nothing: each step first checks whether it is done.
#
# Environment variables:
#   MMXAI_VENV        where the virtual environment lives (default: <repo>/.venv)
#   MMXAI_CACHE       wheel cache outside the clone (default: ~/.cache/mmxai)
#   MMXAI_PYTHON      interpreter used to create the venv (default: python3)
#   MAX_JOBS          parallel compile jobs for the mmcv build (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMXAI_VENV:-$ROOT/.venv}"
CACHE="${MMXAI_CACHE:-$HOME/.cache/mmxai}"
PYTHON="${MMXAI_PYTHON:-python3}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"

TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
MMCV_VERSION="2.1.0"
OPENMMLAB_PINS=("mmengine==0.10.7" "mmdet==3.3.0" "mmpretrain==1.2.0")
DEV_PINS=("pytest>=7" "ruff==0.6.9")

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

has() { "$PY" - "$@" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        sys.exit(1)
    if req.specifier and version not in req.specifier:
        sys.exit(1)
PYEOF
}

if ! "$PY" -c "import packaging" 2>/dev/null; then
  "${PIP[@]}" install packaging
fi

# Build tools for mmcv (setuptools 82 dropped pkg_resources, which mmcv's setup.py needs).
if ! has "setuptools>=77,<82" "ninja" "wheel"; then
  log "installing build tools"
  "${PIP[@]}" install "setuptools>=77,<82" ninja wheel
fi
export PATH="$VENV/bin:$PATH"

# torch + torchvision: keep a working pair if the environment has one.
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  log "installing $TORCH_PIN $TORCHVISION_PIN (about 90 s)"
  "${PIP[@]}" install "$TORCH_PIN" "$TORCHVISION_PIN"
fi

# mmcv with compiled ops, built once per torch/CUDA version and cached outside the clone.
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  KEY="$("$PY" -c 'import sys, torch; v = torch.__version__.split("+")[0]; print("torch%s-cu%s-py%d%d" % (v, torch.version.cuda or "cpu", *sys.version_info[:2]))')"
  WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION/$KEY"
  mkdir -p "$WHEEL_DIR"
  if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with its C++ ops for $KEY."
    log "The first build takes about half an hour on 2 cores; it is cached in $WHEEL_DIR."
    SRC="$(mktemp -d)"
    trap 'rm -rf "$SRC"' EXIT
    "${PIP[@]}" download --no-binary :all: --no-deps --no-build-isolation -d "$SRC" "mmcv==$MMCV_VERSION"
    tar -xzf "$SRC"/mmcv-"$MMCV_VERSION".tar.gz -C "$SRC"
    # torch >= 2.9 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
    (cd "$SRC/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 "$PY" -m pip wheel --disable-pip-version-check \
        --no-build-isolation --no-deps --no-cache-dir -w "$SRC/dist" .)
    # Move into the cache only when complete, so an interrupted build leaves nothing half-written.
    mv "$SRC"/dist/mmcv-"$MMCV_VERSION"-*.whl "$WHEEL_DIR"/
  fi
  log "installing mmcv from $WHEEL_DIR"
  "${PIP[@]}" install --no-cache-dir "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl "${OPENMMLAB_PINS[0]}"
fi

if ! has "${OPENMMLAB_PINS[@]}" "${DEV_PINS[@]}"; then
  log "installing ${OPENMMLAB_PINS[*]} and test tools"
  "${PIP[@]}" install "${OPENMMLAB_PINS[@]}" "${DEV_PINS[@]}"
fi

# Chromium (Debian package) for the test that opens the demo report in a real browser.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium (apt-get) for the report test"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "chromium is missing: install it (e.g. apt-get install chromium) for the report test"
  fi
fi

if ! has mmxai; then
  log "installing mmxai (editable)"
  "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
fi
log "environment ready: $VENV"
