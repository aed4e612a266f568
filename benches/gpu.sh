#!/usr/bin/env bash
# Real-ESRGAN on a GPU node: the cases of benches/esrgan.sh (640x360 -> x4, 960x540 -> x2,
# realesr-animevideov3) plus 1920x1080 -> x2, on
#   aiprod (Rust, ort):   CPU (reference), CUDA EP with the fp16 model, TensorRT EP (fp16 engine)
#   onnxruntime Python:   CUDA EP fp32 and fp16 models, TensorRT EP with trt_fp16_enable
# in one run, with the accuracy of each against aiprod's CPU fp32 output.
# Needs an NVIDIA driver; installs onnxruntime-gpu 1.31.1 with its CUDA 12 / cuDNN 9 / TensorRT
# wheels into bench-out/venv-gpu (registry access needed once).
# NOT YET RUN: no GPU machine was lent to the session that wrote it.
# Usage: benches/gpu.sh [frames]     results: bench-out/esrgan-gpu/
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${1:-20}
OUT=${OUT:-bench-out/esrgan-gpu}
VENV=${AIPROD_VENV:-bench-out/venv-gpu}
MODELS_DIR=${AIPROD_MODELS_DIR:-data/models}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check "onnxruntime-gpu[cuda,cudnn]==1.31.1" tensorrt-cu12-libs numpy
# the imported models (CPU setup is enough for that), then point ort at the GPU build
bash scripts/setup-models.sh >/dev/null
SITE=$("$PY" -c 'import site; print(site.getsitepackages()[0])')
ORT_DYLIB_PATH="$SITE/onnxruntime/capi/libonnxruntime.so.1.31.1"
export ORT_DYLIB_PATH
# CUDA, cuDNN and TensorRT come from pip wheels: make them findable by the dlopen'ed EPs
LD_LIBRARY_PATH="$(ls -d "$SITE"/nvidia/*/lib "$SITE"/tensorrt_libs 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH
cargo build -q --release -p aiprod-models --bin aiprod-models
BIN="$TARGET_DIR/release/aiprod-models"

CASES=("4 640 360" "2 960 540" "2 1920 1080")
echo "| case | engine | provider | s/frame | frames/s | max abs vs CPU fp32 |"
echo "|---|---|---|---:|---:|---:|"
for c in "${CASES[@]}"; do
  read -r S W H <<< "$c"
  "$BIN" --models-dir "$MODELS_DIR" bench --scale "$S" --width "$W" --height "$H" --frames 1 --tile 0 \
    --device cpu --output-f32 "$OUT/cpu-$S-$W.f32" > "$OUT/cpu-$S-$W.json"
  for dev in cuda tensorrt; do
    "$BIN" --models-dir "$MODELS_DIR" bench --scale "$S" --width "$W" --height "$H" --frames "$FRAMES" \
      --tile 0 --device "$dev" --output-f32 "$OUT/$dev-$S-$W.f32" > "$OUT/$dev-$S-$W.json"
  done
  "$PY" - "$OUT" "$S" "$W" "$H" "$FRAMES" "$MODELS_DIR" <<'PYEOF'
import json, sys, time
import numpy as np
import onnxruntime as ort
out, s, w, h, frames, models = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ref = np.fromfile(f"{out}/cpu-{s}-{w}.f32", dtype="<f4")
for dev in ("cuda", "tensorrt"):
    r = json.load(open(f"{out}/{dev}-{s}-{w}.json"))
    y = np.fromfile(f"{out}/{dev}-{s}-{w}.f32", dtype="<f4")
    print(f"| {w}x{h} -> x{s} | aiprod-ort | {r['provider']} | {r['seconds_per_frame']:.4f} | {r['frames_per_s']:.2f} | {np.abs(y - ref).max():.2e} |")
x = (np.arange(3 * h * w) * 7919 % 256).astype(np.float32).reshape(1, 3, h, w) / 255
base = f"{models}/realesr-animevideov3-x{s}"
runs = [("cuda fp32", base + ".onnx", ["CUDAExecutionProvider"]),
        ("cuda fp16", base + ".fp16.onnx", ["CUDAExecutionProvider"]),
        ("tensorrt fp16", base + ".onnx", [("TensorrtExecutionProvider", {"trt_fp16_enable": True}), "CUDAExecutionProvider"])]
for label, path, providers in runs:
    sess = ort.InferenceSession(path, providers=providers)
    y = sess.run(None, {"input": x})[0]
    t = time.perf_counter()
    for _ in range(frames):
        sess.run(None, {"input": x})
    spf = (time.perf_counter() - t) / frames
    print(f"| {w}x{h} -> x{s} | onnxruntime Python | {label} | {spf:.4f} | {1 / spf:.2f} | {np.abs(y.ravel() - ref).max():.2e} |")
PYEOF
done | tee "$OUT/gpu.md"
