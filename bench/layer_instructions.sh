#!/usr/bin/env bash
# Instructions the axum hello-world of bench/src/bin/hello.rs executes per
# request, with and without `AuditLayer`, counted by callgrind: the
# layer's cost as a ratio that the shared machine's load does not move
# (bench/http.sh measures requests/s under wrk, which the load does).
#
#   bash bench/layer_instructions.sh TARGET_DIR [TARGET_DIR ...]
#
# Each TARGET_DIR holds `release/hello`. For each and for `--audit off` and
# `on`, `hello` runs under `valgrind --tool=callgrind` twice, answering FEW
# and then MANY requests (4 keep-alive clients); with the layer, every
# request's event is stored before the server exits. The difference of the
# two totals over MANY - FEW requests is the cost per request without
# start-up and shut-down. User-space instructions only (the kernel's TCP
# work, the same with or without the layer, is not counted).
#
# Printed twice: all instructions, and those outside SHA-256's compression
# function. Valgrind's CPU has no SHA extensions, so there SHA-256 runs in
# software at several times what this machine's SHA-NI pays; the second
# figure is the one that says what the rest of the path costs.
set -euo pipefail
cd "$(dirname "$0")/.."
few=${FEW:-2000} many=${MANY:-10000}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

run() { # BIN AUDIT REQUESTS -> "total outside-SHA-256" instructions
    local bin=$1 audit=$2 requests=$3 port out="$work/cg.out"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -rf "$work/data"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --port "$port" --audit "$audit" --data-dir "$work/data" 2>"$work/hello.log" &
    pid=$!
    python3 - "$port" "$requests" <<'PY'
import http.client, sys, threading, time
port, total = int(sys.argv[1]), int(sys.argv[2])
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/hello/ready"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.2)
def client(n):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(n):
        c.request("GET", f"/hello/world?page={i}", headers={"User-Agent": "bench/1.0"})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
threads = [threading.Thread(target=client, args=(total // 4,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
PY
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=
    local total sha
    total=$(awk '/^totals:|^summary:/ { print $2; exit }' "$out")
    sha=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk '/sha2::sha256::compress256 \[/ && !seen { seen = 1; gsub(",", "", $1); print $1 }')
    echo "$total $((total - ${sha:-0}))"
}

for target in "$@"; do
    bin=$target/release/hello
    declare -A per rest
    for audit in off on; do
        read -r a a_rest < <(run "$bin" "$audit" "$few")
        read -r b b_rest < <(run "$bin" "$audit" "$many")
        per[$audit]=$(( (b - a) / (many - few) ))
        rest[$audit]=$(( (b_rest - a_rest) / (many - few) ))
        echo "$target, audit $audit: ${per[$audit]} instructions per request, ${rest[$audit]} outside SHA-256 ($a and $b for $few and $many requests)"
    done
    echo "$target: with the layer ÷ without: $(echo "${per[on]} / ${per[off]}" | bc -l | cut -c1-5) (all instructions), $(echo "${rest[on]} / ${rest[off]}" | bc -l | cut -c1-5) (outside SHA-256)"
done
