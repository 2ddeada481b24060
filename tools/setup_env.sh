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
#   MMXAI_PROGRESS_SECONDS  seconds between progress lines of the mmcv build (default: 60)
#   MMXAI_MIN_FREE_GB  free disk space, in GB, that installing torch needs (default: 8)
# Relative MMXAI_VENV / MMXAI_CACHE are taken relative to the directory the
# script is called from.
set -euo pipefail

# An absolute form of a path given relative to the caller's working directory,
# so that later `cd`s (the mmcv build runs inside the unpacked sdist) keep it valid.
absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$PWD" "$1" ;;
  esac
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(absolute "${MMXAI_VENV:-$ROOT/.venv}")"
CACHE="$(absolute "${MMXAI_CACHE:-$HOME/.cache/mmxai}")"
PYTHON="${MMXAI_PYTHON:-python3}"
PROGRESS_SECONDS="${MMXAI_PROGRESS_SECONDS:-60}"
MIN_FREE_GB="${MMXAI_MIN_FREE_GB:-8}"
# Exits with a one-line error unless $2, the value of the variable $1, is a whole number of $3.
require_whole_number() {
  case "$2" in
    '' | *[!0-9]*)
      echo "setup_env.sh: $1 must be a whole number of $3, not '$2'" >&2
      exit 2
      ;;
  esac
}
require_whole_number MMXAI_PROGRESS_SECONDS "$PROGRESS_SECONDS" seconds
require_whole_number MMXAI_MIN_FREE_GB "$MIN_FREE_GB" GB
MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export MAX_JOBS

TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
MMCV_VERSION="2.1.0"
OPENMMLAB_PINS=("mmengine==0.10.7" "mmdet==3.3.0" "mmpretrain==1.2.0")
DEV_PINS=("pytest>=7" "ruff==0.6.9")
# The `deploy` extra (tools/export.py, exported models), pinned to the tested versions.
DEPLOY_PINS=("onnx==1.23.2" "onnxruntime==1.32.0" "openvino==2026.4.1")

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
  # PyPI's torch for x86_64 is a CUDA build of about 5.5 GB: refuse before pip
  # fills the disk and stops half-way with "No space left on device".
  FREE_KB="$(df -Pk "$VENV" | awk 'NR == 2 {print $4}')"
  if [ "$FREE_KB" -lt $((MIN_FREE_GB * 1024 * 1024)) ]; then
    echo "setup_env.sh: installing torch needs about $MIN_FREE_GB GB free on the disk of $VENV;" \
      "$((FREE_KB / 1024 / 1024)) GB free there (MMXAI_VENV puts the environment elsewhere)" >&2
    exit 1
  fi
  log "installing $TORCH_PIN $TORCHVISION_PIN (about 90 s)"
  "${PIP[@]}" install "$TORCH_PIN" "$TORCHVISION_PIN"
fi

# "M min S s" for a number of seconds.
minutes() { printf '%d min %d s' $(($1 / 60)) $(($1 % 60)); }

# One line on how far the mmcv build is: time elapsed and, once torch's
# extension builder has written its ninja file, the object files compiled out of
# those it will compile, with a rough time left.
build_progress() {
  local build_dir="$1" started="$2"
  local elapsed=$((SECONDS - started)) total compiled line
  line="$(minutes "$elapsed") elapsed"
  total="$(cat "$build_dir"/temp.*/build.ninja 2>/dev/null | grep -c '^build .*\.o:' || true)"
  if [ "${total:-0}" -gt 0 ]; then
    compiled="$(find "$build_dir" -name '*.o' 2>/dev/null | wc -l)"
    line+=", $compiled of $total files compiled"
    if [ "$compiled" -ge "$total" ]; then
      line+=", linking"
    elif [ "$compiled" -gt 0 ]; then
      line+=", about $(((elapsed * (total - compiled) / compiled + 59) / 60)) min left"
    fi
  else
    line+=", preparing"
  fi
  log "mmcv build: $line"
}

# Builds the mmcv wheel of the unpacked sdist $1 into $3 with pip's output in
# $2, in the background in its own process group (so that an interrupted
# set-up stops the compilers too), printing progress every PROGRESS_SECONDS.
# Returns the build's exit status.
build_mmcv_wheel() {
  local sdist="$1" build_log="$2" out="$3" started=$SECONDS last=$SECONDS status=0
  # pip's own temporary files go next to the sdist, so that cleanup removes them
  # even when the build is killed.
  mkdir -p "$sdist.tmp"
  set -m
  (cd "$sdist" && MMCV_WITH_OPS=1 TMPDIR="$sdist.tmp" exec "$PY" -m pip wheel \
      --disable-pip-version-check --no-build-isolation --no-deps --no-cache-dir -w "$out" .) \
      >"$build_log" 2>&1 </dev/null &
  BUILD_PID=$!
  set +m
  while kill -0 "$BUILD_PID" 2>/dev/null; do
    sleep 1
    if [ $((SECONDS - last)) -ge "$PROGRESS_SECONDS" ]; then
      build_progress "$sdist/build" "$started"
      last=$SECONDS
    fi
  done
  wait "$BUILD_PID" || status=$?
  BUILD_PID=""
  return "$status"
}

SRC=""
BUILD_PID=""
cleanup() {
  if [ -n "$BUILD_PID" ]; then
    kill -TERM -- "-$BUILD_PID" 2>/dev/null || true
    wait "$BUILD_PID" 2>/dev/null || true
  fi
  if [ -n "$SRC" ]; then
    rm -rf "$SRC"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# mmcv with compiled ops, built once per torch/CUDA version and cached outside the clone.
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  KEY="$("$PY" -c 'import sys, torch; v = torch.__version__.split("+")[0]; print("torch%s-cu%s-py%d%d" % (v, torch.version.cuda or "cpu", *sys.version_info[:2]))')"
  WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION/$KEY"
  mkdir -p "$WHEEL_DIR"
  if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    BUILD_LOG="$WHEEL_DIR/build.log"
    log "building mmcv $MMCV_VERSION with its C++ ops for $KEY."
    log "It takes about 15 minutes on 2 cores (once: it is cached in $WHEEL_DIR)."
    log "Progress every $PROGRESS_SECONDS s below; pip's output goes to $BUILD_LOG"
    SRC="$(mktemp -d)"
    "${PIP[@]}" download --no-binary :all: --no-deps --no-build-isolation -d "$SRC" "mmcv==$MMCV_VERSION"
    tar -xzf "$SRC/mmcv-$MMCV_VERSION.tar.gz" -C "$SRC"
    # torch >= 2.9 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
    STARTED=$SECONDS
    STATUS=0
    build_mmcv_wheel "$SRC/mmcv-$MMCV_VERSION" "$BUILD_LOG" "$SRC/dist" || STATUS=$?
    if [ "$STATUS" -ne 0 ]; then
      log "the mmcv build failed (exit status $STATUS); the end of its log $BUILD_LOG:"
      tail -n 30 "$BUILD_LOG" >&2
      exit "$STATUS"
    fi
    log "mmcv built in $(minutes $((SECONDS - STARTED)))"
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

if ! has "${DEPLOY_PINS[@]}"; then
  log "installing the deploy runtimes ${DEPLOY_PINS[*]}"
  "${PIP[@]}" install "${DEPLOY_PINS[@]}"
fi

# Debian packages: chromium for the test that opens the demo report in a real
# browser, shellcheck for `make lint`.
APT_MISSING=()
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  APT_MISSING+=(chromium)
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  APT_MISSING+=(shellcheck)
fi
if [ "${#APT_MISSING[@]}" -gt 0 ]; then
  WHY="(chromium: the report test; shellcheck: make lint)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${APT_MISSING[*]} (apt-get) $WHY"
    # Not fatal: `make demo` needs neither; the test and lint say so if missing.
    if ! { apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_MISSING[@]}" >/dev/null; }; then
      log "apt-get could not install ${APT_MISSING[*]}; install them yourself for the tests"
    fi
  else
    log "${APT_MISSING[*]} missing $WHY; install: sudo apt-get install ${APT_MISSING[*]}"
  fi
fi

if ! has mmxai; then
  log "installing mmxai (editable)"
  "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
fi
log "environment ready: $VENV"
