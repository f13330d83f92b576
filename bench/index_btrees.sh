#!/usr/bin/env bash
# What each secondary B-tree of the SQLite index costs when indexing, in
# instructions (callgrind: a count the shared machine's load does not move).
#
#   bash bench/index_btrees.sh INDEX_DB [ROWS]
#
# INDEX_DB is a real index (make_log, then `query` indexes it:
#   target/release/make_log --events 1000000 --data-dir DIR
#   target/release/query --data-dir DIR --queries 1
# gives DIR/index.sqlite3). Its first ROWS rows (default 100,000) are copied
# into fresh databases holding the same events table with: no secondary
# index, all of them, and all but one (each in turn), 10,000 rows a
# transaction as the indexer writes them; then once more with `org` as an
# integer instead of text. Printed: SQLite's instructions per row inserted
# (the copy of the source rows, counted alone first, is subtracted).
# Needs sqlite3 and valgrind.
set -euo pipefail
src=$(realpath "$1") rows=${2:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mapfile -t all < <(sqlite3 "$src" "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'events_%' ORDER BY rowid")
definition() { sqlite3 "$src" "SELECT sql FROM sqlite_master WHERE name = '$1'"; }
columns=$(sqlite3 "$src" "SELECT group_concat(name, ', ') FROM pragma_table_info('events') WHERE name <> 'org'")

count() { # ORG_TYPE INSERT(0|1) INDEX... -> instructions
    local org_type=$1 insert=$2; shift 2
    local org=org
    [ "$org_type" = TEXT ] || org=1
    rm -f t.db t.db-wal t.db-shm
    { echo "PRAGMA journal_mode = WAL;"
      sqlite3 "$src" ".schema events" | grep -v "^CREATE INDEX" | sed "s/org TEXT NOT NULL/org $org_type NOT NULL/"
      for i in "$@"; do echo "$(definition "$i");"; done
    } | sqlite3 t.db > /dev/null
    { echo "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;"
      echo "ATTACH '$src' AS src;"
      echo "CREATE TEMP TABLE source AS SELECT * FROM src.events WHERE seq < $rows;"
      if [ "$insert" = 1 ]; then
          for k in $(seq 0 $((rows / 10000 - 1))); do
              echo "BEGIN; INSERT INTO events SELECT $org, $columns FROM temp.source WHERE seq >= $((k * 10000)) AND seq < $(((k + 1) * 10000)); COMMIT;"
          done
      fi
    } > in.sql
    valgrind --tool=callgrind --callgrind-out-file=cg.out sqlite3 t.db < in.sql > /dev/null 2> cg.err
    awk '/^(summary|totals):/ { print $2; exit }' cg.out
}

copy=$(count TEXT 0)
report() { printf '%-36s %8.0f instructions per row\n' "$1" "$(echo "($2 - $copy) / $rows" | bc -l)"; }
report "no secondary index" "$(count TEXT 1)"
report "all ${#all[@]}" "$(count TEXT 1 "${all[@]}")"
for drop in "${all[@]}"; do
    keep=()
    for i in "${all[@]}"; do [ "$i" = "$drop" ] || keep+=("$i"); done
    report "all but $drop" "$(count TEXT 1 "${keep[@]}")"
done
report "no secondary index, org INTEGER" "$(count INTEGER 1)"
report "all ${#all[@]}, org INTEGER" "$(count INTEGER 1 "${all[@]}")"
