#!/usr/bin/env bash
# PSNR + SSIM of two 1080p clips: aiprod (GStreamer decode + aiprod_quality::qc, both inputs
# decoded concurrently) vs `ffmpeg -i MAIN -i REF -lavfi "ssim;[0:v][1:v]psnr" -f null -`.
# Prints both tools' numbers (they must agree: PSNR within 0.05 dB, SSIM within 0.001) and
# frames/s of each, run in turn RUNS times.
#
#   bash benches/quality_fidelity.sh              # 10 s of 1920x1080p25 (250 frames), RUNS=3
#   SECONDS_OF_VIDEO=4 RUNS=5 bash benches/quality_fidelity.sh
set -euo pipefail

RUNS=${RUNS:-3}
LEN=${SECONDS_OF_VIDEO:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
DIR=$(mktemp -d /tmp/aiprod-fidelity.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p aiprod-quality --example fidelity >&2)
fi
EX="$CARGO_TARGET_DIR/release/examples/fidelity"

echo "making two ${LEN}s 1080p25 clips in $DIR ..." >&2
ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=25" -t "$LEN" \
    -c:v libx264 -preset veryfast -crf 12 -pix_fmt yuv420p "$DIR/ref.mp4"
ffmpeg -nostdin -v error -y -i "$DIR/ref.mp4" -c:v libx264 -preset veryfast -crf 32 "$DIR/main.mp4"
FRAMES=$((LEN * 25))

now() { date +%s.%N; }
for ((r = 1; r <= RUNS; r++)); do
    t0=$(now)
    ours=$("$EX" "$DIR/main.mp4" "$DIR/ref.mp4")
    t1=$(now)
    theirs=$(ffmpeg -nostdin -hide_banner -nostats -i "$DIR/main.mp4" -i "$DIR/ref.mp4" \
        -lavfi "ssim;[0:v][1:v]psnr" -f null - 2>&1 | grep -E "Parsed_(ssim|psnr)" | sed 's/.*\] //' | tr '\n' ' ')
    t2=$(now)
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v f="$FRAMES" -v r="$r" 'BEGIN {
        printf "run %d: aiprod %.1f frames/s (%.2f s)   ffmpeg %.1f frames/s (%.2f s)   ratio aiprod/ffmpeg speed %.2f\n",
            r, f / (b - a), b - a, f / (c - b), c - b, (c - b) / (b - a) }'
    [ "$r" = 1 ] && { echo "  aiprod: $ours"; echo "  ffmpeg: $theirs"; }
done
