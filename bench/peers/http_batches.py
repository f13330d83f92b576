"""Ours in issue 18's peer benchmark: durable ingest into a running
`agenttrace-audit serve` over HTTP, in batches of 1,000 events, from
`--clients` threads with keep-alive connections. Bodies are built before the
clock starts (every event distinct, so deduplication passes them all), so
the figure is the server's. Prints events/s until the last 201.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlparse


def event(n: int) -> dict[str, object]:
    # The same members as seed_design's and the PostgreSQL peer's events.
    return {
        "organization_id": "bench-org",
        "project_id": f"proj-{n % 7}",
        "event_category": "data",
        "event_type": "trace.deleted",
        "resource_type": "trace",
        "resource_id": f"trace-{n}",
        "action": "delete",
        "actor_type": "user",
        "actor_id": f"user-{n % 13}",
        "actor_email": f"user{n % 13}@example.com",
        "metadata": {"reason": f"scheduled cleanup #{n}", "spans": n % 97},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--first", type=int, default=0, help="number of the first event (runs must not repeat events)")
    a = p.parse_args()
    bodies = [
        json.dumps([event(n) for n in range(start, min(start + a.batch, a.first + a.events))]).encode()
        for start in range(a.first, a.first + a.events, a.batch)
    ]
    url = urlparse(a.url)
    headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    lock = threading.Lock()
    failures: list[str] = []

    def sender() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        while True:
            with lock:
                if not bodies:
                    break
                body = bodies.pop()
            conn.request("POST", "/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 201:
                failures.append(f"{response.status}: {answer[:200]!r}")
                break

    threads = [threading.Thread(target=sender) for _ in range(a.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"refused: {failures[0]}")
    print(f"{a.events / elapsed:.0f}")


if __name__ == "__main__":
    main()
