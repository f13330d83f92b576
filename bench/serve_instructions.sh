#!/usr/bin/env bash
# Instructions `serve` executes per event, counted by callgrind: a figure
# the machine's load does not move (wall and CPU time on this shared
# machine do), for comparing two builds of the same work.
#
#   bash bench/serve_instructions.sh TARGET_DIR [TARGET_DIR ...]
#
# Each TARGET_DIR holds `release/agenttrace-audit`. For each, `serve`
# (embedded defaults: SQLite index, personal data sealed) runs under
# `valgrind --tool=callgrind` twice, taking FEW and then MANY events of
# bench/peers/http_batches.py in batches of 1,000 (2 clients); each run
# waits until the index has caught up, then stops the server. The
# difference of the two totals over MANY - FEW events is the cost per
# event without start-up and shut-down. User-space instructions only:
# system calls are counted by the kernel's side, not here.
#
# KEEP=DIR keeps each run's callgrind output there (callgrind_annotate
# --inclusive=yes FILE shows where the instructions go).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve_common.sh
few=${FEW:-2000} many=${MANY:-12000}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

run() { # BIN EVENTS -> total instructions
    local bin=$1 events=$2 data="$work/data-$RANDOM" port token out="$work/cg.out"
    port=$(free_port)
    token=$("$bin" --data-dir "$data" keys create --org bench-org --scopes ingest,read 2>/dev/null)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
    pid=$!
    wait_healthy "$port" 600
    feed_until_indexed "$port" "$token" "$events"
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=
    rm -rf "$data" "$data-keys"
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out" "$KEEP/callgrind.$(basename "$(dirname "$bin")").$events"; fi
    awk '/^totals:|^summary:/ { print $2; exit }' "$out"
}

for target in "$@"; do
    bin=$target/release/agenttrace-audit
    a=$(run "$bin" "$few")
    b=$(run "$bin" "$many")
    echo "$target: $a instructions for $few events, $b for $many: $(( (b - a) / (many - few) )) per event"
done
