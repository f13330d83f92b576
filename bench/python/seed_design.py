"""The seed's design, in plain Python, written here as a baseline for the
Python client's benchmark: ``AuditService`` batching in memory (the seed's
``batch_size``/``batch_interval``, fingerprint deduplication over a
``deduplication_window``, a per-organization SHA-256 hash chain over
``json.dumps(sort_keys=True)``) into ``LocalAuditStorage`` (JSON Lines per
organization and day, appended, no fsync — as the seed describes it).
Nothing here is durable when ``capture_event`` returns; that is the seed's
trade-off, which the benchmark reports beside ours.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class LocalAuditStorage:
    def __init__(self, base_path: str) -> None:
        self.base_path = Path(base_path)

    async def store_batch(self, events: list[dict[str, Any]]) -> None:
        by_file: dict[Path, list[str]] = {}
        for e in events:
            day = e["timestamp"][:10]
            path = self.base_path / e["organization_id"] / f"{day}.jsonl"
            by_file.setdefault(path, []).append(json.dumps(e, sort_keys=True))
        for path, lines in by_file.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write("\n".join(lines) + "\n")


class AuditService:
    def __init__(
        self,
        storage: LocalAuditStorage,
        batch_size: int = 100,
        batch_interval: float = 5.0,
        enable_deduplication: bool = True,
        deduplication_window: int = 60,
    ) -> None:
        self.storage = storage
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.enable_deduplication = enable_deduplication
        self.deduplication_window = deduplication_window
        self._event_queue: list[dict[str, Any]] = []
        self._recent_events: dict[str, float] = {}
        self._last_hash: dict[str, str] = {}
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._running = True
        self._task = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        self._running = False
        if self._task:
            self._task.cancel()
        await self._flush()

    async def capture_event(self, **fields: Any) -> str | None:
        fingerprint = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
        now = time.time()
        if self.enable_deduplication:
            seen = self._recent_events.get(fingerprint)
            if seen is not None and now - seen < self.deduplication_window:
                return None
            self._recent_events[fingerprint] = now
        org = fields["organization_id"]
        event = {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items() if v is not None}
        event["event_id"] = str(uuid.uuid4())
        event["timestamp"] = datetime.now(timezone.utc).isoformat()
        event["previous_hash"] = self._last_hash.get(org, "0" * 64)
        event["hash"] = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
        self._last_hash[org] = event["hash"]
        self._event_queue.append(event)
        if len(self._event_queue) >= self.batch_size:
            await self._flush()
        return str(event["event_id"])

    async def _flush(self) -> None:
        if not self._event_queue:
            return
        batch, self._event_queue = self._event_queue, []
        await self.storage.store_batch(batch)

    async def _flush_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.batch_interval)
            await self._flush()


async def capture_rate(events: int, fields: Callable[[int], dict[str, Any]]) -> float:
    """Events/s of ``capture_event`` for events ``fields(0)`` … ``fields(events - 1)``
    into a fresh storage directory, until ``stop`` has written them."""
    with tempfile.TemporaryDirectory() as d:
        service = AuditService(LocalAuditStorage(d), batch_size=100, batch_interval=5.0)
        await service.start()
        started = time.perf_counter()
        for n in range(events):
            await service.capture_event(**fields(n))
        await service.stop()
        return events / (time.perf_counter() - started)
