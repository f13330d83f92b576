#!/usr/bin/env bash
# Instructions `agenttrace-audit export --format FORMAT` executes per event,
# counted by callgrind: the CPU cost of an export as a figure the shared
# machine's load does not move (wall-clock MB/s, bench/before_after.sh's
# last step, is what users see, but on this machine it swings with other
# tenants' load).
#
#   bash bench/export_instructions.sh TARGET_DIR [TARGET_DIR ...]
#
# Each TARGET_DIR holds `release/agenttrace-audit`; the first also holds
# `release/make_log`, which writes two logs of FEW and MANY events (the
# seed's `trace.deleted` shape, personal data in the clear). Each binary
# exports both under `valgrind --tool=callgrind` to /dev/null; the
# difference of the two totals over MANY - FEW events is the cost per
# event without start-up. Callgrind runs threads one at a time, so the
# count does not depend on how many cores the export used.
set -euo pipefail
cd "$(dirname "$0")/.."
few=${FEW:-5000} many=${MANY:-25000} format=${FORMAT:-csv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$1/release/make_log" --events "$few" --data-dir "$work/few" > /dev/null 2>&1
"$1/release/make_log" --events "$many" --data-dir "$work/many" > /dev/null 2>&1
bytes_few=$(cat "$work"/few/logs/*/*.jsonl | wc -c)
bytes_many=$(cat "$work"/many/logs/*/*.jsonl | wc -c)

instructions() { # BIN DATA -> total instructions
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$1" --data-dir "$2" \
        export --org bench-org --format "$format" -o /dev/null --force 2>"$work/vg.log" > /dev/null
    awk '/^totals:|^summary:/ { print $2; exit }' "$work/cg.out"
}

echo "export --format $format: $((many - few)) events, $(((bytes_many - bytes_few) / (many - few))) bytes of stored line each"
for target in "$@"; do
    bin=$target/release/agenttrace-audit
    a=$(instructions "$bin" "$work/few")
    b=$(instructions "$bin" "$work/many")
    echo "$target: $(((b - a) / (many - few))) instructions per event"
done
