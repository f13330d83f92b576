#!/usr/bin/env bash
# Macro benchmarks of the core ledger, each against a baseline run in the
# same job (this machine is shared and noisy: compare ratios, not absolutes).
#
#   bash bench/run.sh [WORK_DIR]
#
# WORK_DIR (default /work/bench-tmp or $TMPDIR) must be on the disk to measure;
# it needs ~1.5 GiB free. Takes a few minutes. BENCH_QUERY_EVENTS=10000000 adds
# the query-latency benchmark over a log of that many events (~6.5 GiB, ~15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/audit-bench}
mkdir -p "$work"
cargo build --release -q -p agenttrace-audit -p audit-bench
bin=target/release

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
seconds() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | awk '{ printf "%.3f\n", $1 - $3 }'; }

echo "== durable ingest: capture_durable (1024 callers, one organization) vs write+fdatasync loop, without and with the index"
"$bin/ingest" --events 200000 --callers 1024 --rounds 3 --dir "$work"

echo
echo "== verify over a 1M-event log vs sha256sum over the same segment files"
rm -rf "$work/log"
"$bin/make_log" --events 1000000 --data-dir "$work/log"
segments=("$work"/log/logs/bench-org/*.jsonl)
cat "${segments[@]}" > /dev/null   # warm the page cache for both
v=(); h=()
for _ in 1 2 3 4 5; do
    h+=("$(seconds sha256sum "${segments[@]}")")
    v+=("$(seconds "$bin/agenttrace-audit" --data-dir "$work/log" verify --org bench-org)")
done
vm=$(printf '%s\n' "${v[@]}" | median); hm=$(printf '%s\n' "${h[@]}" | median)
echo "verify: ${v[*]} s (median $vm)"
echo "sha256sum: ${h[*]} s (median $hm)"
echo "$vm $hm" | awk '{ printf "ratio verify / sha256sum: %.2f\n", $1 / $2 }'

echo
echo "== export of the same 1M events: MB/s and peak RSS, beside copying the stored lines (cat)"
bytes=$(cat "${segments[@]}" | wc -c)
mb() { echo "$bytes $1" | awk '{ printf "%.0f", $1 / 1048576 / $2 }'; }
# Output goes to /dev/null so that write-back of a 600 MB file does not
# dominate; one run to a real file checks the jsonl export byte for byte.
"$bin/agenttrace-audit" --data-dir "$work/log" export --org bench-org --format jsonl -o "$work/export.jsonl" 2> /dev/null
cat "${segments[@]}" | cmp -s - "$work/export.jsonl" && echo "jsonl export is byte-identical to the segments"
rm -f "$work/export.jsonl"
c=(); j=(); k=()
for _ in 1 2 3; do
    c+=("$(seconds sh -c "cat ${segments[*]} > /dev/null")")
    j+=("$(seconds "$bin/agenttrace-audit" --data-dir "$work/log" export --org bench-org --format jsonl -o /dev/null)")
    k+=("$(seconds "$bin/agenttrace-audit" --data-dir "$work/log" export --org bench-org --format csv -o /dev/null)")
done
cm=$(printf '%s\n' "${c[@]}" | median); jm=$(printf '%s\n' "${j[@]}" | median); km=$(printf '%s\n' "${k[@]}" | median)
jrss=$( { /usr/bin/time -f %M "$bin/agenttrace-audit" --data-dir "$work/log" export --org bench-org --format jsonl -o /dev/null; } 2>&1 | tail -1)
krss=$( { /usr/bin/time -f %M "$bin/agenttrace-audit" --data-dir "$work/log" export --org bench-org --format csv -o /dev/null; } 2>&1 | tail -1)
echo "cat: median $cm s ($(mb "$cm") MB/s of stored lines)"
echo "export jsonl: median $jm s ($(mb "$jm") MB/s), peak RSS $jrss KiB"
echo "export csv: median $km s ($(mb "$km") MB/s of stored lines read), peak RSS $krss KiB"
echo "$jm $cm" | awk '{ printf "ratio export jsonl / cat: %.2f\n", $1 / $2 }'
rm -rf "$work/log"

echo
echo "== memory while producers outrun the disk (capture without waiting, queue capacity 10,000)"
"$bin/ingest" --mode flood --events 100000 --dir "$work"
"$bin/ingest" --mode flood --events 1000000 --dir "$work"

if [ "${BENCH_QUERY_EVENTS:-0}" -gt 0 ]; then
    echo
    echo "== query latency over a ${BENCH_QUERY_EVENTS}-event log (SQLite index)"
    rm -rf "$work/big"
    "$bin/make_log" --events "$BENCH_QUERY_EVENTS" --data-dir "$work/big"
    "$bin/query" --data-dir "$work/big" --queries 500
    rm -rf "$work/big"
fi
