#!/usr/bin/env bash
# Fuzzes the native probe (aiprod_quality::probe::probe_bytes) with cargo-fuzz / libFuzzer.
#
#   bash quality/fuzz/run.sh                 # 1,000,000 executions
#   RUNS=5000000 bash quality/fuzz/run.sh
#   bash quality/fuzz/run.sh -max_total_time=600
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer=address). A nightly toolchain works as is;
# with a stable one, RUSTC_BOOTSTRAP=1 lets it accept them (how this project's machines run it).
# Seeds: the files in quality/tests/fuzz_regressions and, when SEED_DIR is set, a media corpus.
# A crash leaves its input in fuzz/artifacts/probe/: copy it to
# quality/tests/fuzz_regressions/crash-<n>.bin, which tests/fuzz_regressions.rs replays.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-1000000}
TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$HERE/target}}
CORPUS="$HERE/corpus/probe"
mkdir -p "$CORPUS"
cp -n "$HERE"/../tests/fuzz_regressions/*.bin "$CORPUS"/ 2>/dev/null || true
if [ -n "${SEED_DIR:-}" ]; then
    cp -n "$SEED_DIR"/* "$CORPUS"/ 2>/dev/null || true
fi
if [ "$#" -eq 0 ]; then
    set -- "-runs=$RUNS"
fi
cd "$HERE/.."
# -rss_limit_mb: the probe's own bound is 128 MiB of input plus O(streams); 1 GiB leaves room
# for ASan's shadow memory. -timeout: a probe stuck for 10 s is a hang.
RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1} cargo fuzz run -O --target-dir "$TARGET_DIR" probe \
    "$CORPUS" -- -rss_limit_mb=1024 -timeout=10 -max_len=1048576 "$@"
