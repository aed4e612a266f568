#!/usr/bin/env bash
# Webhook delivery figures (issue 7): deliveries/s to a loopback receiver, and delivery delay
# p50/p99 (enqueue → 2xx) with a receiver that fails 50% of the attempts, using aiprodd's own
# outbox, dispatcher and signing (daemon/tests/webhooks_bench.rs, an ignored test binary).
#
#   benches/webhooks.sh                       # release build; retry base 100 ms and 1000 ms
#   AIPROD_BENCH_RETRY_BASES="1000" benches/webhooks.sh
#   AIPROD_BENCH_MESSAGES=5000 AIPROD_BENCH_DELAY_MESSAGES=1000 AIPROD_BENCH_RATE=100 benches/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${AIPROD_BENCH_PROFILE:---release}
first=1
for base in ${AIPROD_BENCH_RETRY_BASES:-100 1000}; do
  # Throughput does not depend on the retry base: measure it once.
  skip=$((1 - first))
  AIPROD_BENCH_RETRY_BASE_MS=$base AIPROD_BENCH_SKIP_THROUGHPUT=$skip \
    cargo test $profile -p aiprod-daemon --test webhooks_bench -- --ignored --nocapture --test-threads 1 \
    2>&1 | grep -E '^webhooks|test result|panicked'
  first=0
done
