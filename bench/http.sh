#!/usr/bin/env bash
# HTTP benchmarks, each against a baseline in the same run:
#  1. AuditLayer overhead: an axum hello-world with and without the layer
#     under wrk (2 threads, 32 connections, 10 s), alternated twice.
#  2. Durable HTTP ingest in batches of 1000 vs in-process capture_durable.
#
#   bash bench/http.sh [WORK_DIR]      (needs wrk: apt-get install wrk)
#
# Binaries come from $CARGO_TARGET_DIR (default target/), built first.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/audit-bench-http}
mkdir -p "$work"
command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
cargo build --release -q -p audit-bench
bin=${CARGO_TARGET_DIR:-target}/release
port=18181

run_wrk() {
    local audit=$1
    rm -rf "$work/hello"
    "$bin/hello" --port "$port" --audit "$audit" --data-dir "$work/hello" 2> /dev/null &
    local pid=$!
    for _ in $(seq 1 100); do (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break; sleep 0.05; done
    wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$port/hello/world" > "$work/wrk-$audit.txt"
    kill -INT "$pid"; wait "$pid" || true
    local rps p50
    rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk-$audit.txt")
    p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk-$audit.txt")
    echo "audit $audit: $rps requests/s, median latency $p50"
}

echo "== AuditLayer overhead (axum hello-world, wrk -t2 -c32 -d10s)"
for round in 1 2; do
    echo "round $round"
    run_wrk off
    run_wrk on
done

echo
echo "== durable HTTP ingest, batches of 1000, vs in-process capture_durable"
"$bin/http_ingest" --events 200000 --clients 4 --dir "$work/ingest"
rm -rf "$work"
