#!/usr/bin/env bash
# Issue 18's "before and after" in one job: two builds of the project (e.g.
# the commit before a change and the change), each run on the same work
# alternately, so that the noisy shared machine weighs on both alike.
#
#   bash bench/before_after.sh OLD_TARGET_DIR NEW_TARGET_DIR [ROUNDS] [EVENTS]
#
# Each TARGET_DIR holds a release build of `agenttrace-audit` and the
# `audit-bench` binaries (`cargo build --release -p agenttrace-audit -p
# audit-bench`, with CARGO_TARGET_DIR set for the old checkout). Measures:
#  1. in-process durable ingest (`ingest --callers 1024`) beside the raw
#     write+fdatasync loop of the same lines, in the same process;
#  2. `agenttrace-audit ingest FILE` of EVENTS lines (the seed's
#     trace.deleted shape, bench/peers/http_batches.py's events);
#  3. `serve` (embedded defaults: SQLite index, personal data sealed) taking
#     the same events over HTTP in batches of 1,000 from 4 clients;
#  4. `export --format csv` of a 1M-event log (made by the new build).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-2} events=${4:-200000}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
seconds() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | awk '{ printf "%.3f\n", $1 - $3 }'; }
python3 - "$events" > "$work/events.jsonl" <<'PY'
import json, sys
sys.path.insert(0, "bench/peers")
from http_batches import event
for n in range(int(sys.argv[1])):
    e = event(n)
    del e["organization_id"]  # ingest --org gives it
    print(json.dumps(e))
PY
"$new/release/make_log" --events 1000000 --data-dir "$work/log" > /dev/null
segments=("$work"/log/logs/bench-org/*.jsonl)
bytes=$(cat "${segments[@]}" | wc -c)

http_round() { # BIN FIRST -> events/s
    local bin=$1 first=$2 data="$work/http-$RANDOM" port token
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    token=$("$bin/release/agenttrace-audit" --data-dir "$data" keys create --org bench-org --scopes ingest 2>/dev/null)
    "$bin/release/agenttrace-audit" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    printf '%s events/s' "$(python3 bench/peers/http_batches.py --url "http://127.0.0.1:$port" --token "$token" --events "$events" --first "$first")"
    # The server's own CPU time (user + system), once its indexer has had
    # time to finish: a figure the machine's load barely moves.
    sleep 3
    awk -v tck="$(getconf CLK_TCK)" -v n="$events" '{ printf " (serve used %.2f CPU s, %.1f µs per event)", ($14 + $15) / tck, ($14 + $15) / tck / n * 1e6 }' "/proc/$pid/stat"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    rm -rf "$data" "$data-keys"
}

for round in $(seq 1 "$rounds"); do
    for which in old new; do
        bin=${!which}
        echo "== round $round, $which ($bin)"
        "$bin/release/ingest" --events "$events" --callers 1024 --rounds 1 --dir "$work" 2>&1 | grep -iE "baseline|service|ratio" || true
        rm -rf "$work/cli" "$work/cli-keys"
        t=$(seconds "$bin/release/agenttrace-audit" --data-dir "$work/cli" ingest --org bench-org "$work/events.jsonl")
        echo "$t $events" | awk '{ printf "cli ingest FILE: %.3f s, %.0f events/s\n", $1, $2 / $1 }'
        echo "http batches of 1,000: $(http_round "$bin" $(( round * events )))"
        t=$(seconds "$bin/release/agenttrace-audit" --data-dir "$work/log" export --org bench-org --format csv -o /dev/null --force)
        echo "$t $bytes" | awk '{ printf "export csv of 1M events: %.2f s, %.0f MB/s of stored lines\n", $1, $2 / 1048576 / $1 }'
    done
done
