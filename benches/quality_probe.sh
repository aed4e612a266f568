#!/usr/bin/env bash
# Probe throughput: N media files probed (1) in-process by aiprod's native probe, (2) by one
# `aiprodctl probe --local FILE` process per file, (3) by one `aiprodctl probe FILE` per file
# through a running aiprodd's Probe RPC (when AIPROD_ADDR answers), next to (4) one
# `ffprobe -v error -print_format json -show_format -show_streams FILE` process per file.
# Prints files/s for each, side by side, from the same file set in one run.
#
#   bash benches/quality_probe.sh                 # N=200 files cycled from a generated corpus
#   N=500 CORPUS=/tmp/qcorpus bash benches/quality_probe.sh
#   SKIP_BUILD=1 ...                               # use the binaries already built
#
# Needs: cargo, ffmpeg/ffprobe (corpus and baseline), GStreamer. Wall time from date +%s.%N.
set -euo pipefail

N=${N:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
BIN="$CARGO_TARGET_DIR/release"
CORPUS=${CORPUS:-$(mktemp -d /tmp/aiprod-probe-corpus.XXXXXX)}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -p aiprod-quality --example probe_files >&2 \
        && cargo build --release -p aiprod-daemon --bin aiprodctl >&2)
fi
EX="$CARGO_TARGET_DIR/release/examples/probe_files"

if [ -z "$(ls -A "$CORPUS" 2>/dev/null)" ]; then
    echo "generating a corpus in $CORPUS (the probe test's corpus: AIPROD_PROBE_CORPUS=$CORPUS)" >&2
    (cd "$ROOT" && AIPROD_PROBE_CORPUS="$CORPUS" cargo test --release -p aiprod-quality \
        --test probe_corpus >/dev/null 2>&1 || true)
fi
mapfile -t ALL < <(find "$CORPUS" -maxdepth 1 -type f \( -name '*.mp4' -o -name '*.mov' -o -name '*.mkv' -o -name '*.webm' -o -name '*.y4m' \) | sort)
[ "${#ALL[@]}" -gt 0 ] || { echo "no media files in $CORPUS" >&2; exit 1; }
FILES=()
for ((i = 0; i < N; i++)); do FILES+=("${ALL[i % ${#ALL[@]}]}"); done

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%8.1f files/s  (%d files in %.3f s)", n / (b - a), n, b - a }'; }

t0=$(now); "$EX" "${FILES[@]}" 2>/dev/null; t1=$(now)
echo "in-process probe_json          $(rate "$N" "$t0" "$t1")"

t0=$(now); for f in "${FILES[@]}"; do "$BIN/aiprodctl" probe --local "$f" >/dev/null; done; t1=$(now)
echo "aiprodctl probe --local (1/file) $(rate "$N" "$t0" "$t1")"

if "$BIN/aiprodctl" ${AIPROD_ADDR:+--addr "$AIPROD_ADDR"} probe "${FILES[0]}" >/dev/null 2>&1; then
    t0=$(now); for f in "${FILES[@]}"; do "$BIN/aiprodctl" ${AIPROD_ADDR:+--addr "$AIPROD_ADDR"} probe "$f" >/dev/null; done; t1=$(now)
    echo "aiprodctl probe via aiprodd    $(rate "$N" "$t0" "$t1")"
else
    echo "aiprodctl probe via aiprodd    (skipped: no aiprodd answering at ${AIPROD_ADDR:-the default address})"
fi

t0=$(now); for f in "${FILES[@]}"; do ffprobe -v error -print_format json -show_format -show_streams "$f" >/dev/null; done; t1=$(now)
echo "ffprobe (1 process/file)       $(rate "$N" "$t0" "$t1")"
