#!/usr/bin/env bash
# System calls `serve` makes for a given work, counted by `strace -c`: like
# bench/serve_instructions.sh, a figure the machine's load does not move.
#
#   bash bench/serve_syscalls.sh TARGET_DIR [TARGET_DIR ...]
#
# Each TARGET_DIR holds `release/agenttrace-audit`. For each, `serve`
# (embedded defaults: SQLite index, personal data sealed) takes EVENTS
# (default 20,000) events of bench/peers/http_batches.py in batches of
# 1,000 from 2 clients, with strace attached from after start-up until the
# index has caught up; the table strace prints is shown, most frequent
# calls first.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve_common.sh
events=${EVENTS:-20000}
work=$(mktemp -d)
pid= spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; [ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
command -v strace > /dev/null || { echo "strace is not installed (apt-get install strace)"; exit 2; }

for target in "$@"; do
    bin=$target/release/agenttrace-audit data="$work/data-$RANDOM"
    port=$(free_port)
    token=$("$bin" --data-dir "$data" keys create --org bench-org --scopes ingest,read 2>/dev/null)
    "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
    pid=$!
    wait_healthy "$port" 300
    strace -c -f -p "$pid" -o "$work/strace.txt" 2>/dev/null &
    spid=$!
    sleep 2
    feed_until_indexed "$port" "$token" "$events"
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true; spid=
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    rm -rf "$data" "$data-keys"
    echo "== $target, $events events"
    sort -k4 -n -r "$work/strace.txt" | awk 'NF >= 5 && $4 ~ /^[0-9]+$/' | head -12
    grep -E "total$" "$work/strace.txt"
done
