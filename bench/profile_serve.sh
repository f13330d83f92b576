#!/usr/bin/env bash
# Where a release `serve`'s CPU goes under durable HTTP ingest (batches of
# 1,000): perf attached for 8 s while bench/peers/http_batches.py posts
# 400,000 events. For call stacks, build with frame pointers first:
#
#   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=/tmp/target-fp cargo build --release -p agenttrace-audit
#   BIN=/tmp/target-fp/release/agenttrace-audit bash bench/profile_serve.sh
#   perf report -i /tmp/serve.perf --children --sort symbol --stdio
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(${BIN:-target/release/agenttrace-audit} --data-dir $work/data keys create --org bench-org --scopes ingest 2>/dev/null)
${BIN:-target/release/agenttrace-audit} --data-dir $work/data serve --listen 127.0.0.1:$port 2>/dev/null &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
perf record -F 999 -g --call-graph=fp -o /tmp/serve.perf -p $pid -- sleep 8 > /dev/null 2>&1 &
ppid=$!
sleep 0.2
python3 bench/peers/http_batches.py --url http://127.0.0.1:$port --token $token --events 400000
wait $ppid || true
kill $pid; wait $pid || true
rm -rf $work
