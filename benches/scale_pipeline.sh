#!/usr/bin/env bash
# The pipeline's resize + colour conversion: aiprodscale (wgpu kernels, on the adapter
# AIPROD_WGPU_ADAPTER picks) next to GStreamer's videoconvertscale (CPU, all cores), in one
# farm-bench call per case (A/B alternating, ratio per pair). Each command decodes the same H.264
# clip and scales it to the output into fakesink; a decode-only run gives the floor.
# Cases: 1280x720 -> 1920x1080 (same matrix: per-plane path) and a BT.601-tagged 640x360 ->
# 1920x1080 (matrix conversion on the device).
# Usage: benches/scale_pipeline.sh [seconds-of-video]     (needs ffmpeg, farm-bench; a GPU for
# figures that mean anything — lavapipe only shows the overhead)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_OF_VIDEO=${1:-2}
OUT=${OUT:-bench-out/scale}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
cargo build -q --release -p gst-plugin-aiprod
export GST_PLUGIN_PATH="$PWD/$TARGET_DIR/release"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/aiprod-xdg-$(id -u)}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
gst-inspect-1.0 aiprodscale >/dev/null
cargo run -q -p aiprod-kernels --example adapters 2>/dev/null | head -3 || true
THREADS=$(nproc)

clip() { # name size extra-ffmpeg-args...
  local name=$1 size=$2; shift 2
  [ -f "$OUT/$name.mp4" ] || ffmpeg -v error -y -f lavfi -i "testsrc2=size=$size:rate=30" \
    -t "$SECONDS_OF_VIDEO" -c:v libx264 -preset veryfast -pix_fmt yuv420p "$@" "$OUT/$name.mp4"
}
clip hd720 1280x720 -colorspace bt709 -color_primaries bt709 -color_trc bt709
clip sd601 640x360 -colorspace smpte170m -color_primaries smpte170m -color_trc smpte170m

run_case() { # clip out-caps
  local clip=$1 caps=$2
  local src="filesrc location=$OUT/$clip.mp4 ! decodebin"
  echo "== $clip -> $caps"
  echo "-- decode only"
  farm-bench -n 5 --timeout 600 -- gst-launch-1.0 -q $src ! fakesink
  echo "-- A: aiprodscale   B: videoconvertscale n-threads=$THREADS"
  farm-bench -n 5 --timeout 600 \
    --vs "gst-launch-1.0 -q $src ! videoconvertscale method=lanczos n-threads=$THREADS ! $caps ! fakesink" \
    -- gst-launch-1.0 -q $src ! aiprodscale method=lanczos ! "$caps" ! fakesink
}
run_case hd720 "video/x-raw,format=I420,width=1920,height=1080,colorimetry=bt709"
run_case sd601 "video/x-raw,format=I420,width=1920,height=1080,colorimetry=bt709"
