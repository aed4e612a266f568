#!/usr/bin/env bash
# The main job end to end on the embedded defaults: install, build, start aiprodd, plan,
# generate a short clip, print the receipt and where the video is, stop aiprodd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked --bin aiprodd --bin aiprodctl
BIN=${CARGO_TARGET_DIR:-target}/release
DATA=${AIPROD_DEMO_DATA:-./data/demo}
mkdir -p "$DATA"
LOG="$DATA/aiprodd.log"
"$BIN/aiprodd" --data-dir "$DATA" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 >"$DATA/aiprodd.out" 2>"$LOG" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "aiprodd listening" "$DATA/aiprodd.out" 2>/dev/null && break
  kill -0 $PID 2>/dev/null || { echo "aiprodd exited:"; cat "$LOG"; exit 1; }
  sleep 0.1
done
line=$(grep "aiprodd listening" "$DATA/aiprodd.out")
ADDR=$(echo "$line" | sed -E 's/.*grpc=([^ ]+).*/\1/')
HTTP=$(echo "$line" | sed -E 's/.*http=([^ ]+).*/\1/')
export AIPROD_ADDR=$ADDR
echo "== aiprodd at $ADDR (metrics: $HTTP/metrics)"
PROMPT=${AIPROD_DEMO_PROMPT:-"a red fox in snow"}
echo "== plan: \"$PROMPT\", 4 s, use case tiktok"
"$BIN/aiprodctl" plan --prompt "$PROMPT" --use-case tiktok --duration-s 4
PLAN_ID=$("$BIN/aiprodctl" --json plan --prompt "$PROMPT" --use-case tiktok --duration-s 4 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["recommended_plan_id"])')
echo "== generate the recommended plan ($PLAN_ID)"
"$BIN/aiprodctl" generate --plan-id "$PLAN_ID" --wait
echo "== metrics (excerpt)"
python3 - "$HTTP" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/metrics").read().decode()
print("\n".join(l for l in text.splitlines() if l.startswith(("aiprod_jobs{", "aiprod_cost_usd_total"))))
PY
