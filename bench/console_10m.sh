#!/usr/bin/env bash
# The console's API calls on a 10M-event log, through a release `serve`:
# each view is one of these requests (60 each, curl's total time).
#   target/release/make_log --events 10000000 --data-dir DIR/big
#   target/release/query --data-dir DIR/big --queries 500     (builds the index)
#   DATA=DIR/big bash bench/console_10m.sh
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:?DATA=the make_log data directory}
token=$(target/release/agenttrace-audit --data-dir $data keys create --org bench-org --scopes read 2>/dev/null)
port=18777
target/release/agenttrace-audit --data-dir $data serve --listen 127.0.0.1:$port 2>/tmp/serve10m.log &
pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
# Let the first start's background work (tiles of the old log) finish.
for _ in $(seq 1 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/checkpoint")
  [ "$code" = 200 ] && break; sleep 2
done
echo "checkpoint: $code"
id=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/events?limit=1&order=desc&event_type=trace.deleted" | python3 -c 'import sys,json; print(json.load(sys.stdin)["events"][0]["event_id"])')
run() {
  name=$1; path=$2
  for i in $(seq 1 60); do curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path"; done | sort -n | awk -v n="$name" '{ a[NR] = $1 } END { printf "%s: p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d requests)\n", n, a[int(NR*0.5)]*1000, a[int(NR*0.95)]*1000, a[NR]*1000, NR }'
}
run "first page, newest first, 50" "/v1/events?limit=50&order=desc"
run "one project, newest first, 50" "/v1/events?limit=50&order=desc&project_id=proj-3"
run "one actor + category, last 7 days" "/v1/events?limit=50&order=desc&actor_id=user-5&event_category=data&start_time=7d"
run "event detail" "/v1/events/$id"
size=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/checkpoint" | sed -n 2p)
run "inclusion proof for the check button" "/v1/events/$id/proof?tree_size=$size"
kill $pid; wait $pid || true
