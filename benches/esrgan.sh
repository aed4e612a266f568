#!/usr/bin/env bash
# Real-ESRGAN benchmark on CPU, everything side by side in one run (see benches/esrgan_bench.py):
#   1. upscaler alone, frames/s + peak RSS: aiprod (Rust, ort) vs onnxruntime's Python API on the
#      same ONNX model vs the official ncnn runtime (pip install ncnn) on the official .param/.bin,
#      for 640x360 -> x4 and 960x540 -> x2 (realesr-animevideov3), $THREADS threads;
#   2. a job's end-to-end frames/s: decode -> aiprodupscale -> encode through gst-launch-1.0
#      (queues between the stages), next to the upscaler's own time in that pipeline;
#   3. peak memory of a 1920x1080 -> x2 frame, whole frame vs tiles (memory follows the tile).
# Usage: benches/esrgan.sh [frames]   (THREADS=2 by default; results in bench-out/esrgan/)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${1:-3}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
OUT=${OUT:-bench-out/esrgan}
NCNN_VERSION=1.0.20261020 # the version that produced ../shared/testdata/esrgan
mkdir -p "$OUT"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
MODELS_DIR=${AIPROD_MODELS_DIR:-data/models}

ORT_DYLIB_PATH="$(bash scripts/setup-models.sh --print-ort-path)"
export ORT_DYLIB_PATH
PY=.venv/bin/python
"$PY" -c "import ncnn" 2>/dev/null || "$PY" -m pip install -q --disable-pip-version-check "ncnn==$NCNN_VERSION"
cargo build -q --release -p aiprod-models --bin aiprod-models
cargo build -q --release -p gst-plugin-aiprod
BIN="$TARGET_DIR/release/aiprod-models"

echo "## machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads=$THREADS, timed frames=$FRAMES x $ROUNDS rounds, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "### 1. upscaler alone (CPU)"
"$PY" benches/esrgan_bench.py --aiprod-models "$BIN" --models-dir "$MODELS_DIR" --out "$OUT" \
  --threads "$THREADS" --frames "$FRAMES" --rounds "$ROUNDS" | tee "$OUT/upscaler.md"

echo
echo "### 2. end to end: decode -> aiprodupscale (x4, whole frame) -> x264 encode, 640x360 source"
N=$((FRAMES + 1))
for n in 1 "$N"; do
  gst-launch-1.0 -q videotestsrc num-buffers="$n" pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 \
    ! x264enc ! mp4mux ! filesink location="$OUT/src-$n.mp4"
done
e2e() { # frames -> wall seconds; the element logs its own upscaling time at stop
  local n=$1 t0 t1
  t0=$(date +%s.%N)
  GST_DEBUG=aiprodupscale:4 GST_DEBUG_NO_COLOR=1 GST_PLUGIN_PATH="$TARGET_DIR/release" gst-launch-1.0 -q \
    filesrc location="$OUT/src-$n.mp4" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB \
    ! queue max-size-buffers=4 ! aiprodupscale device=cpu threads="$THREADS" tile-size=0 \
    ! queue max-size-buffers=4 ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast \
    ! mp4mux ! filesink location="$OUT/e2e-$n.mp4" 2> "$OUT/e2e-$n.log"
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
W1=$(e2e 1)
WN=$(e2e "$N")
UPS=$(grep -o 'upscaled [0-9]* frames in [0-9.]* s' "$OUT/e2e-$N.log" | tail -1)
echo "| frames | wall s (incl. model load) | marginal s/frame end to end | element: $UPS |"
echo "|---:|---:|---:|---|"
awk -v n="$N" -v w1="$W1" -v wn="$WN" -v ups="$UPS" 'BEGIN {
  m = (wn - w1) / (n - 1); split(ups, a, " ");
  printf "| %d | %.2f | %.3f (%.3f frames/s) | %.3f s/frame (%.3f frames/s) |\n", n, wn, m, 1 / m, a[5] / a[2], a[2] / a[5] }'

echo
echo "### 3. peak memory, 1920x1080 -> x2 (one frame)"
echo "| tiling | peak RSS MiB | s/frame |"
echo "|---|---:|---:|"
for tile in 0 256; do
  /usr/bin/time -f "%M" -o "$OUT/rss-$tile" "$BIN" --models-dir "$MODELS_DIR" bench --model realesr-animevideov3 \
    --scale 2 --width 1920 --height 1080 --frames 1 --threads "$THREADS" --tile "$tile" > "$OUT/mem-$tile.json"
  SPF=$("$PY" -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))['seconds_per_frame'])" "$OUT/mem-$tile.json")
  label=$([ "$tile" = 0 ] && echo "whole frame" || echo "tiles of $tile px (overlap 19)")
  echo "| $label | $(( $(cat "$OUT/rss-$tile") / 1024 )) | $SPF |"
done
