# Shared steps of the scripts that count what `serve` does for a fixed work
# (bench/serve_instructions.sh, bench/serve_syscalls.sh). Sourced, not run.

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `serve` on PORT answers /health (up to TRIES × 0.2 s).
wait_healthy() { # PORT TRIES
    for _ in $(seq 1 "$2"); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return; sleep 0.2; done
}

# Sends EVENTS events of bench/peers/http_batches.py (batches of 1,000, 2
# clients) to `serve` on PORT, then waits until its index holds every
# committed event and its queue is empty.
feed_until_indexed() { # PORT TOKEN EVENTS
    python3 bench/peers/http_batches.py --url "http://127.0.0.1:$1" --token "$2" --events "$3" --clients 2 >/dev/null
    for _ in $(seq 1 600); do
        curl -sf -H "Authorization: Bearer $2" "http://127.0.0.1:$1/v1/audit/health" |
            python3 -c 'import json, sys; h = json.load(sys.stdin); sys.exit(h["indexed_through"] != h["committed_through"] or h["queue_size"] != 0)' && return
        sleep 0.5
    done
}
