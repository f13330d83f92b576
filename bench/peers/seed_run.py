"""The seed's design (bench/python/seed_design.py, written here) capturing
`--events` events from one process, the same events as the other peers;
prints events/s. Nothing is durable when it returns: the seed's trade-off."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import seed_design  # noqa: E402
from http_batches import event  # noqa: E402


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=100_000)
    print(f"{asyncio.run(seed_design.capture_rate(p.parse_args().events, event)):.0f}")
