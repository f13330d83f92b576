#!/usr/bin/env bash
# The Python client's benchmark (issue 15): capture_event throughput from
# one process into a release serve (SQLite index) beside the seed's design
# in plain Python, and AuditMiddleware's added p50 latency.
#
#   bash bench/python.sh [EVENTS]
#
# Uses the virtual environment of clients/python/test.sh (made if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p agenttrace-audit
venv=target/python-venv
[ -x "$venv/bin/python" ] || AUDIT_REQUIRE_SERVICES=1 bash clients/python/test.sh >/dev/null
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(target/release/agenttrace-audit --data-dir "$work/data" keys create --org bench-org --scopes ingest,read)
target/release/agenttrace-audit --data-dir "$work/data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
"$venv/bin/python" bench/python/client_bench.py --url "http://127.0.0.1:$port" --token "$token" --events "${1:-100000}"
