#!/usr/bin/env bash
# Issue 18's peer benchmark: durable ingest of the same events by
#  1. ours: a release `serve` on its embedded defaults (local storage,
#     SQLite index, personal data sealed), HTTP batches of 1,000 from 4
#     keep-alive clients (bench/peers/http_batches.py);
#  2. the seed's design in plain Python (bench/python/seed_design.py: memory
#     batches, SHA-256 chain, JSON Lines without fsync — not durable);
#  3. a hash-chained PostgreSQL table (bench/peers/pg_chain.sql: a BEFORE
#     INSERT trigger holding the organization's head row FOR UPDATE), by
#     pgbench: one event per transaction from 16 clients, and 100 events per
#     transaction from 1 client.
# Rounds alternate the peers; ratios are of medians of the same run.
#
#   bash bench/peers.sh [ROUNDS] [EVENTS]     (PostgreSQL at 127.0.0.1:5432, database test)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-200000}
pg=(-h 127.0.0.1 -U postgres -d test)
cargo build --release -q -p agenttrace-audit
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; psql "${pg[@]}" -qc "DROP SCHEMA IF EXISTS peer_chain CASCADE" 2>/dev/null' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(target/release/agenttrace-audit --data-dir "$work/data" keys create --org bench-org --scopes ingest 2>/dev/null)
target/release/agenttrace-audit --data-dir "$work/data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
echo "PostgreSQL: fsync=$(psql "${pg[@]}" -Atc 'SHOW fsync'), synchronous_commit=$(psql "${pg[@]}" -Atc 'SHOW synchronous_commit')"

ours=() seed=() pg1=() pg100=()
for round in $(seq 1 "$rounds"); do
    o=$(python3 bench/peers/http_batches.py --url "http://127.0.0.1:$port" --token "$token" --events "$events" --first $(( (round - 1) * events )))
    s=$(python3 bench/peers/seed_run.py --events "$events")
    psql "${pg[@]}" -q -f bench/peers/pg_chain.sql >/dev/null
    p1=$(pgbench "${pg[@]}" -n -c 16 -j 2 -T 15 -f bench/peers/pg_one.sql 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }')
    p100=$(pgbench "${pg[@]}" -n -c 1 -j 1 -T 15 -f bench/peers/pg_batch.sql 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 * 100 }')
    # The chain is whole: as many rows as the head counts, numbered without gaps.
    check=$(psql "${pg[@]}" -Atc "SELECT count(*) = max(seq) + 1 FROM peer_chain.events")
    [ "$check" = t ] || { echo "the PostgreSQL chain has gaps"; exit 1; }
    echo "round $round: ours $o events/s; seed design $s; PostgreSQL chain 1/txn x16 $p1; 100/txn $p100"
    ours+=("$o") seed+=("$s") pg1+=("$p1") pg100+=("$p100")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mo=$(median "${ours[@]}") ms=$(median "${seed[@]}") m1=$(median "${pg1[@]}") m100=$(median "${pg100[@]}")
echo "medians: ours $mo, seed design $ms, PostgreSQL 1/txn $m1, 100/txn $m100 events/s"
awk -v o="$mo" -v s="$ms" -v a="$m1" -v b="$m100" 'BEGIN { printf "ratios: ours/seed %.2f (aim >= 20); ours/PostgreSQL 1/txn %.1f, 100/txn %.1f (aim >= 50)\n", o / s, o / a, o / b }'
