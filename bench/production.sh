#!/usr/bin/env bash
# Production backends, each against a baseline run in the same job:
#   - durable ingest on S3 (moto_server on loopback) by batch size, beside
#     plain conditional, Object-Locked PUTs of objects of the same size;
#   - query latency with the PostgreSQL index beside the SQLite index, same
#     log, same filters (and the storage reads alone, as in run.sh).
#
#   bash bench/production.sh [WORK_DIR]
#
# Needs moto_server (pip install 'moto[server]'; started here on a free
# loopback port and stopped after) and PostgreSQL on 127.0.0.1:5432 (database
# `test`; the benchmark uses a schema of its own and drops it).
# BENCH_QUERY_EVENTS (default 1000000) sets the log size for the query part.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/audit-bench}
mkdir -p "$work"
cargo build --release -q -p audit-bench
bin=target/release

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; wait $moto_pid 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS audit_bench CASCADE" >/dev/null 2>&1' EXIT
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; do sleep 0.2; done
export AUDIT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"

echo "== durable ingest on S3 (moto on loopback), by batch size"
"$bin/s3_ingest" --endpoint "$AUDIT_TEST_S3_ENDPOINT" --events 1000 --batches 1
"$bin/s3_ingest" --endpoint "$AUDIT_TEST_S3_ENDPOINT" --events 20000 --batches 10,100,1000

events=${BENCH_QUERY_EVENTS:-1000000}
echo
echo "== query latency: SQLite vs PostgreSQL index over the same $events-event log"
rm -rf "$work/qlog"
"$bin/make_log" --events "$events" --data-dir "$work/qlog"
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS audit_bench CASCADE; CREATE SCHEMA audit_bench"
echo "-- SQLite"
"$bin/query" --data-dir "$work/qlog" --queries 300
echo "-- PostgreSQL"
"$bin/query" --data-dir "$work/qlog" --queries 300 \
    --index-url 'postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Daudit_bench'
rm -rf "$work/qlog"
