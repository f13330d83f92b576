"""Issue 15's benchmark, run by bench/python.sh in the client's virtual
environment against a running serve (release build, SQLite index):

1. ``capture_event`` from one process (batched, non-durable at return, as
   in the seed): events/s until the last one is stored in serve, with the
   in-memory queue and with the SQLite spool;
2. the seed's own design in plain Python (seed_design.py), same events,
   same process, same run: events/s until written to its files;
3. the middleware's added latency: p50 of a FastAPI hello route through
   httpx's in-process transport, with and without AuditMiddleware.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).parent))
import seed_design  # noqa: E402

from agenttrace_audit import Action, ActorType, AuditClient, AuditMiddleware, EventCategory  # noqa: E402


def fields(n: int) -> dict[str, Any]:
    return dict(
        organization_id="bench-org",
        project_id=f"proj-{n % 7}",
        event_category=EventCategory.DATA,
        event_type="trace.deleted",
        resource_type="trace",
        resource_id=f"trace-{n}",
        action=Action.DELETE,
        actor_type=ActorType.USER,
        actor_id=f"user-{n % 13}",
        actor_email=f"user{n % 13}@example.com",
        metadata={"reason": f"scheduled cleanup #{n}", "spans": n % 97},
    )


async def ours(url: str, token: str, events: int, spool: Path | None) -> float:
    client = AuditClient(url, token, batch_size=1000, batch_interval=0.05, spool_path=spool, max_spooled=events + 1)
    await client.start()
    started = time.perf_counter()
    for n in range(events):
        await client.capture_event(**fields(n))
        if n % 1000 == 999:
            await asyncio.sleep(0)  # let the sender run, as an app's awaits would
    await client.stop(timeout=600)
    elapsed = time.perf_counter() - started
    stats = client.stats()
    assert stats["sent"] == events and stats["spooled"] == 0, stats
    return events / elapsed


async def latency(url: str, token: str, requests: int, audited: bool) -> float:
    app = FastAPI()

    @app.get("/hello/{name}")
    async def hello(name: str) -> dict[str, str]:
        return {"hello": name}

    client = AuditClient(url, token, batch_size=1000, batch_interval=0.05, max_spooled=requests + 1)
    if audited:
        app.add_middleware(AuditMiddleware, audit_service=client, organization_id="bench-org")
    await client.start()
    times = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        for n in range(requests):
            started = time.perf_counter()
            response = await http.get(f"/hello/{n}?token=secret")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
    await client.stop()
    return statistics.median(times) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"ours (memory queue)": [], "ours (SQLite spool)": [], "seed design": []}
    for _ in range(args.rounds):
        rows["ours (memory queue)"].append(await ours(args.url, args.token, args.events, None))
        with tempfile.TemporaryDirectory() as d:
            rows["ours (SQLite spool)"].append(await ours(args.url, args.token, args.events, Path(d) / "spool.sqlite3"))
        rows["seed design"].append(await seed_design.capture_rate(args.events, fields))
    for name, values in rows.items():
        print(f"capture_event, {name}: {', '.join(f'{v:,.0f}' for v in values)} events/s (median {statistics.median(values):,.0f})")
    baseline = statistics.median(rows["seed design"])
    for name in ("ours (memory queue)", "ours (SQLite spool)"):
        print(f"ratio {name} / seed design: {statistics.median(rows[name]) / baseline:.2f}")
    plain = [await latency(args.url, args.token, args.requests, False) for _ in range(args.rounds)]
    audited = [await latency(args.url, args.token, args.requests, True) for _ in range(args.rounds)]
    print(f"hello route p50 without middleware: {', '.join(f'{v:.0f}' for v in plain)} µs")
    print(f"hello route p50 with AuditMiddleware: {', '.join(f'{v:.0f}' for v in audited)} µs")
    print(f"added p50: {statistics.median(audited) - statistics.median(plain):.0f} µs")


if __name__ == "__main__":
    asyncio.run(main())
