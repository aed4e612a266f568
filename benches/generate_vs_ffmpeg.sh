#!/usr/bin/env bash
# Times aiprod's generate pipeline for a 10 s WEB clip (1920x1080, 30 fps: plan -> render ->
# process -> validate -> receipt) next to the equivalent ffmpeg lavfi -> libx264 command, run in
# turn (A B A B ...) so that drift of a shared machine affects both. See benches/README.md.
#
#   bash benches/generate_vs_ffmpeg.sh            # RUNS=3 WARMUP=1 by default
#   RUNS=5 bash benches/generate_vs_ffmpeg.sh
#   SKIP_BUILD=1 bash benches/generate_vs_ffmpeg.sh   # use the binaries already in $CARGO_TARGET_DIR
#
# Needs: cargo, ffmpeg (with libx264 and aac), GStreamer (as for aiprodd itself), awk.
# A = aiprodctl --addr ADDR generate --prompt "bench clip N" --tier premium --profile web \
#       --duration-s 10 --wait --json
# B = ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 \
#       -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 -c:v libx264 -preset fast -b:v 8M \
#       -pix_fmt yuv420p -c:a aac -b:a 192k -movflags +faststart OUT.mp4
# Wall time of each whole command is measured from outside (date +%s.%N); for A the daemon's own
# CPU seconds (user+sys of all its threads, from /proc/PID/stat) are reported too, since
# aiprodctl only waits. For B, /usr/bin/time gives user+sys when it is installed.
set -euo pipefail

RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
BIN="$CARGO_TARGET_DIR/release"

command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed" >&2; exit 1; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building release aiprodd/aiprodctl in $CARGO_TARGET_DIR ..." >&2
    (cd "$ROOT" && cargo build --release -q -p aiprod-daemon)
fi

WORK=$(mktemp -d /tmp/aiprod-bench.XXXXXX)
LOG="$WORK/aiprodd.stdout"
"$BIN/aiprodd" --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    >"$LOG" 2>"$WORK/aiprodd.stderr" &
PID=$!
cleanup() {
    if kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ADDR=""
for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^aiprodd listening grpc=\([^ ]*\) .*/\1/p' "$LOG")
    [ -n "$ADDR" ] && break
    kill -0 "$PID" 2>/dev/null || { echo "aiprodd exited:" >&2; cat "$WORK/aiprodd.stderr" >&2; exit 1; }
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "aiprodd did not print its address in 30 s" >&2; exit 1; }
echo "aiprodd pid $PID at $ADDR, data dir $WORK/data" >&2

CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
# user+sys seconds of the daemon so far (fields 14 and 15 of /proc/PID/stat).
daemon_cpu() { awk -v t="$CLK_TCK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$PID/stat"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

N=0
run_a() { # prints "wall daemon_cpu"
    N=$((N + 1))
    local c0 t0 t1 c1
    c0=$(daemon_cpu); t0=$(now)
    "$BIN/aiprodctl" --addr "$ADDR" generate --prompt "bench clip $N" --tier premium \
        --profile web --duration-s 10 --wait --json >"$WORK/last_a.json" 2>"$WORK/last_a.err" \
        || { echo "A failed:" >&2; cat "$WORK/last_a.err" >&2; exit 1; }
    t1=$(now); c1=$(daemon_cpu)
    grep -q '"state": *"SUCCEEDED"\|"state": *"succeeded"' "$WORK/last_a.json" \
        || { echo "A did not succeed:" >&2; tail -c 2000 "$WORK/last_a.json" >&2; exit 1; }
    echo "$(sub "$t1" "$t0") $(sub "$c1" "$c0")"
}
B_CMD=(ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 -c:v libx264 -preset fast -b:v 8M
    -pix_fmt yuv420p -c:a aac -b:a 192k -movflags +faststart "$WORK/ffmpeg-web.mp4")
run_b() { # prints "wall cpu" (cpu "-" without /usr/bin/time)
    local t0 t1 cpu="-"
    t0=$(now)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%U %S' -o "$WORK/time_b" "${B_CMD[@]}"
        cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/time_b")
    else
        "${B_CMD[@]}"
    fi
    t1=$(now)
    echo "$(sub "$t1" "$t0") $cpu"
}

for i in $(seq 1 "$WARMUP"); do
    echo "warm-up $i ..." >&2
    run_a >/dev/null
    run_b >/dev/null
done

printf '%-4s %10s %14s %10s %10s %8s\n' run "A wall s" "A daemon cpu" "B wall s" "B cpu s" "A/B"
: >"$WORK/rows"
for i in $(seq 1 "$RUNS"); do
    read -r aw ac < <(run_a)
    read -r bw bc < <(run_b)
    r=$(awk -v a="$aw" -v b="$bw" 'BEGIN { printf "%.2f", a / b }')
    printf '%-4s %10s %14s %10s %10s %8s\n' "$i" "$aw" "$ac" "$bw" "$bc" "$r"
    echo "$aw $ac $bw $bc $r" >>"$WORK/rows"
done
# min / median / max of each column.
stats() {
    cut -d' ' -f"$1" "$WORK/rows" | sort -g | awk '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
              printf "%s / %s / %s", v[1], m, v[NR] }'
}
echo
echo "min / median / max over $RUNS runs:"
echo "  A aiprod generate (wall s):       $(stats 1)"
echo "  A aiprodd cpu (user+sys s):       $(stats 2)"
echo "  B ffmpeg (wall s):                $(stats 3)"
echo "  B ffmpeg cpu (user+sys s):        $(stats 4)"
echo "  A/B wall, pair by pair:           $(stats 5)"

# The last A run's receipt: where the time went, per stage.
JOB=$(sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p' "$WORK/last_a.json" | head -n 1)
echo
echo "last A run: job $JOB; receipt stages (estimated vs actual s):"
"$BIN/aiprodctl" --addr "$ADDR" receipt "$JOB" --json >"$WORK/receipt.json"
if command -v jq >/dev/null; then
    jq -r '"  total: estimated \(.estimated_time_s) s, actual \(.actual_time_s) s",
           (.stages[] | "  \(.stage): estimated \(.estimated_s) s, actual \(.actual_s) s"),
           "  output: \(.probe.video_codec) \(.probe.width)x\(.probe.height) \(.probe.fps) fps \(.probe.duration_s) s, \(.probe.size_bytes) bytes"' \
        "$WORK/receipt.json"
else
    cat "$WORK/receipt.json"
fi
ls -l "$WORK/ffmpeg-web.mp4" | awk '{ print "  ffmpeg output: " $5 " bytes" }'
