"""The durable local spool: events waiting to be sent.

Each captured event is written to a SQLite file (WAL) before
``capture_event`` returns, with the idempotency key it will be sent with,
and removed only once the service has answered with its durable receipt.
So events captured while the service is down, or not yet sent when the app
stops (or crashes), are sent when both are back, and a resend after an
unknown outcome (a timeout) is recognised by the service as the same event:
no loss, no duplicate.

The spool is bounded (``max_events``): past it, a capture is refused,
counted in :attr:`Spool.dropped` and reported (a warning, and ``stats()``),
never silently lost. Without a file, a :class:`MemorySpool` keeps the same
interface in memory (what the seed did: lost if the process dies).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol


class SpoolFull(Exception):
    """The spool holds ``max_events`` events: the capture was refused and counted."""


class SpoolLike(Protocol):
    dropped: int

    def put(self, event: dict[str, Any]) -> None: ...

    def take(self, limit: int) -> list[tuple[int, dict[str, Any]]]: ...

    def done(self, ids: list[int]) -> None: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class Spool:
    """Events waiting to be sent, in a SQLite file that survives restarts."""

    def __init__(self, path: str | Path, max_events: int = 100_000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # WAL with NORMAL sync: a committed event survives the process
        # crashing (the OS has it); an fsync per capture would cap
        # throughput at the disk's sync rate.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
        self._count = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def put(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            if self._count >= self.max_events:
                self.dropped += 1
                raise SpoolFull(f"the spool {self.path} holds {self._count} events (max_events)")
            self._db.execute("INSERT INTO events (body) VALUES (?)", (body,))
            self._count += 1

    def take(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest ``limit`` events, still spooled until :meth:`done`."""
        with self._lock:
            rows = self._db.execute("SELECT id, body FROM events ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(int(i), json.loads(b)) for i, b in rows]

    def done(self, ids: list[int]) -> None:
        """Forgets events the service has acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")
            self._count -= len(ids)

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MemorySpool:
    """The same, in memory (no file given): lost if the process dies."""

    def __init__(self, max_events: int = 100_000) -> None:
        self.max_events = max_events
        self.dropped = 0
        self._events: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            if len(self._events) >= self.max_events:
                self.dropped += 1
                raise SpoolFull(f"the in-memory queue holds {len(self._events)} events (max_events)")
            self._events[self._next] = event
            self._next += 1

    def take(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            out: list[tuple[int, dict[str, Any]]] = []
            for i, e in self._events.items():
                if len(out) >= limit:
                    break
                out.append((i, e))
            return out

    def done(self, ids: list[int]) -> None:
        with self._lock:
            for i in ids:
                self._events.pop(i, None)

    def __len__(self) -> int:
        return len(self._events)

    def close(self) -> None:
        pass
