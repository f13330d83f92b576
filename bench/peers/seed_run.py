"""The seed's design (bench/python/seed_design.py, written here) capturing
`--events` events from one process, the same events as the other peers;
prints events/s. Nothing is durable when it returns: the seed's trade-off."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import seed_design  # noqa: E402
from http_batches import event  # noqa: E402


async def run(events: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        service = seed_design.AuditService(seed_design.LocalAuditStorage(d), batch_size=100, batch_interval=5.0)
        await service.start()
        started = time.perf_counter()
        for n in range(events):
            await service.capture_event(**event(n))
        await service.stop()
        return events / (time.perf_counter() - started)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=100_000)
    print(f"{asyncio.run(run(p.parse_args().events)):.0f}")
