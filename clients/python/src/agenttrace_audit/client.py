"""`AuditClient`: the seed's ``AuditService`` calls over the HTTP API.

``capture_event(**fields)`` takes the seed's keyword arguments, writes the
event to the spool (a SQLite file when ``spool_path`` is given) and returns
at once; a background task sends spooled events in batches — when
``batch_size`` are waiting or every ``batch_interval`` seconds (the seed's
100 and 5.0) — and forgets each only once the service answered with its
durable receipt. Every event carries an ``idempotency_key`` (one is made
when the caller gives none), so a resend after an unknown outcome is never
stored twice (the service remembers keys for at least 24 hours).

``capture_event_durable`` sends one event now and returns its receipt.
``query_events``, ``export_events`` and ``verify_integrity`` keep the seed's
shapes. :class:`SyncAuditClient` is the same for code without an event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from .models import AuditEvent, AuditEventFilter, Receipt, rfc3339
from .spool import MemorySpool, Spool, SpoolFull, SpoolLike

log = logging.getLogger("agenttrace_audit")

#: Members a caller may set (SPEC §2); the service sets the rest.
INPUT_MEMBERS = frozenset(
    {
        "organization_id",
        "project_id",
        "occurred_at",
        "event_category",
        "event_type",
        "action",
        "severity",
        "resource_type",
        "resource_id",
        "actor_type",
        "actor_id",
        "actor_email",
        "actor_ip",
        "user_agent",
        "session_id",
        "request",
        "previous_state",
        "new_state",
        "metadata",
        "idempotency_key",
        "producer_id",
        "producer_sequence",
    }
)

#: Most events the service takes in one request.
MAX_BATCH = 1000


class AuditError(Exception):
    """The service refused a request; ``status`` and ``code`` say why."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.field = field


_PLAIN = (str, int, float, bool, type(None))


def _wire(value: Any) -> Any:
    if type(value) in _PLAIN:  # the common case first: most members are strings
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    return value


#: Idempotency keys: a random prefix per process and a counter (unique
#: across processes and restarts, and much cheaper than a UUID each).
_KEY_PREFIX = os.urandom(8).hex()
_KEY_COUNTER = itertools.count()
_now_second: tuple[int, str] = (-1, "")


def _now_rfc3339() -> str:
    """Now, as the service writes times (UTC, microseconds, ``Z``); the
    date-and-second part is formatted once a second."""
    global _now_second
    ns = time.time_ns()
    seconds, rest = divmod(ns, 1_000_000_000)
    if _now_second[0] != seconds:
        _now_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_now_second[1]}.{rest // 1000:06d}Z"


def build_event(fields: dict[str, Any], default_organization: str | None) -> dict[str, Any]:
    """An event input from keyword arguments: unknown names refused, unset
    (``None``) members left out, enums and times in their wire form."""
    unknown = sorted(set(fields) - INPUT_MEMBERS)
    if unknown:
        raise TypeError(f"capture_event() got unknown field(s): {', '.join(unknown)}")
    event = {k: _wire(v) for k, v in fields.items() if v is not None}
    if "organization_id" not in event and default_organization is not None:
        event["organization_id"] = default_organization
    for required in ("event_type", "action", "actor_type"):
        if required not in event:
            raise ValueError(f"capture_event(): {required} is required")
    if "occurred_at" not in event:
        event["occurred_at"] = _now_rfc3339()
    if "idempotency_key" not in event:
        event["idempotency_key"] = f"py-{_KEY_PREFIX}-{next(_KEY_COUNTER)}"
    return event


def _error(response: httpx.Response) -> AuditError:
    try:
        body = response.json()["error"]
        return AuditError(response.status_code, body.get("code", "?"), body.get("message", ""), body.get("field"))
    except Exception:
        return AuditError(response.status_code, "unexpected", response.text[:200])


class AuditClient:
    """An asynchronous client of an AgentTrace Audit service (see the module doc)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        organization_id: str | None = None,
        batch_size: int = 100,
        batch_interval: float = 5.0,
        spool_path: str | Path | None = None,
        max_spooled: int = 100_000,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if batch_size < 1 or batch_size > MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.base_url = base_url.rstrip("/")
        self.organization_id = organization_id
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.spool: SpoolLike = Spool(spool_path, max_spooled) if spool_path else MemorySpool(max_spooled)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._running = False
        self.sent = 0
        self.rejected = 0
        self.last_error: str | None = None
        #: Per organization, one past the highest sequence of a receipt this
        #: client got (what :meth:`wait_indexed` waits for).
        self._stored_through: dict[str, int] = {}
        #: This client numbers what it sends to each organization (SPEC §2,
        #: producer_id/producer_sequence), so verification reports any event
        #: lost between here and the log — one refused by a full spool too.
        self.producer_id = f"py-{socket.gethostname()[:64]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._producer_next: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Starts sending in the background (spooled events first)."""
        if self._running:
            return
        self._running = True
        self._wake = asyncio.Event()
        self._sender = asyncio.create_task(self._send_loop(), name="agenttrace-audit sender")
        if len(self.spool):
            self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Sends what is spooled (for up to ``timeout`` seconds) and stops.
        What could not be sent stays in the spool file for the next start."""
        if not self._running:
            await self._http.aclose()
            return
        self._running = False
        self._wake.set()
        if self._sender is not None:
            try:
                await asyncio.wait_for(self._sender, timeout)
            except asyncio.TimeoutError:
                log.warning("stopped with %d event(s) unsent (kept in the spool)", len(self.spool))
        left = len(self.spool)
        if left and isinstance(self.spool, MemorySpool):
            log.error("%d event(s) were never sent and are lost (no spool_path)", left)
        self.spool.close()
        await self._http.aclose()

    async def __aenter__(self) -> AuditClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        """Counters: ``spooled`` (waiting), ``sent``, ``dropped`` (refused:
        spool full), ``rejected`` (refused by the service as invalid)."""
        return {
            "running": self._running,
            "spooled": len(self.spool),
            "sent": self.sent,
            "dropped": self.spool.dropped,
            "rejected": self.rejected,
            "last_error": self.last_error,
        }

    # -- capture -----------------------------------------------------------

    async def capture_event(self, **fields: Any) -> str:
        """Spools one event (the seed's keyword arguments) and returns its
        idempotency key; it is sent in the background. Raises
        :class:`SpoolFull` (counted in ``stats()["dropped"]``) when the
        spool is full."""
        event = self._numbered(build_event(fields, self.organization_id))
        try:
            self.spool.put(event)
        except SpoolFull:
            log.warning("audit event dropped: %s", "spool full")
            raise
        if len(self.spool) >= self.batch_size:
            self._wake.set()
        return str(event["idempotency_key"])

    async def capture_event_durable(self, **fields: Any) -> Receipt:
        """Sends one event now and returns its receipt once it is durable."""
        event = self._numbered(build_event(fields, self.organization_id))
        response = await self._http.post("/v1/events", json=event)
        if response.status_code != 201:
            raise _error(response)
        receipt = Receipt.model_validate(response.json()["receipts"][0])
        self._note_stored([event], [receipt.model_dump()])
        return receipt

    def _numbered(self, event: dict[str, Any]) -> dict[str, Any]:
        if "producer_id" in event:
            return event
        org = str(event.get("organization_id", ""))
        n = self._producer_next.get(org, 0)
        self._producer_next[org] = n + 1
        event["producer_id"] = self.producer_id
        event["producer_sequence"] = n
        return event

    def _note_stored(self, events: list[dict[str, Any]], receipts: list[dict[str, Any]]) -> None:
        for event, receipt in zip(events, receipts):
            org = str(event.get("organization_id") or self.organization_id or "")
            self._stored_through[org] = max(self._stored_through.get(org, 0), int(receipt["sequence"]) + 1)

    async def wait_indexed(self, organization_id: str | None = None, timeout: float = 10.0) -> None:
        """Waits until queries see every event this client has stored for
        the organization (the service's index trails storage by design:
        ``indexed_through``). Raises ``TimeoutError``."""
        org = self._org(organization_id) or ""
        wanted = self._stored_through.get(org, 0)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            response = await self._http.get("/v1/events", params={"organization_id": org, "limit": "1"} if org else {"limit": "1"})
            if response.status_code != 200:
                raise _error(response)
            if int(response.json().get("indexed_through", 0)) >= wanted:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the index of {org} did not reach sequence {wanted} within {timeout} s")
            await asyncio.sleep(0.02)

    async def flush(self) -> None:
        """Sends everything spooled now (raises if the service cannot take it)."""
        while len(self.spool):
            if not await self._send_some(raise_errors=True):
                break

    async def _send_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.batch_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            while len(self.spool):
                try:
                    await self._send_some(raise_errors=False)
                    backoff = 0.1
                except (httpx.HTTPError, AuditError) as e:
                    self.last_error = str(e)
                    log.warning("cannot send audit events (kept in the spool, retrying): %s", e)
                    if not self._running:
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                if len(self.spool) < self.batch_size and self._running:
                    break
            if not self._running:
                return

    async def _send_some(self, raise_errors: bool) -> bool:
        """Sends the oldest spooled events (a batch of up to 1000): true
        when something was sent or settled. Transient failures raise (the
        events stay spooled); an invalid event is sent alone to find it,
        logged, counted and dropped — never retried for ever."""
        batch = self.spool.take(max(self.batch_size, min(len(self.spool), MAX_BATCH)))
        if not batch:
            return False
        response = await self._http.post("/v1/events", json=[e for _, e in batch])
        if response.status_code == 201:
            self.spool.done([i for i, _ in batch])
            self.sent += len(batch)
            self._note_stored([e for _, e in batch], response.json()["receipts"])
            return True
        if response.status_code in (400, 409, 413) and len(batch) > 1:
            # One bad event refuses the whole batch: send them one by one.
            for i, event in batch:
                single = await self._http.post("/v1/events", json=event)
                if single.status_code == 201:
                    self.sent += 1
                    self._note_stored([event], single.json()["receipts"])
                elif single.status_code in (400, 409, 413):
                    self.rejected += 1
                    log.error("audit event refused by the service and dropped: %s", _error(single))
                else:
                    raise _error(single)
                self.spool.done([i])
            return True
        if response.status_code in (400, 409, 413):
            self.rejected += 1
            self.spool.done([batch[0][0]])
            error = _error(response)
            log.error("audit event refused by the service and dropped: %s", error)
            if raise_errors:
                raise error
            return True
        raise _error(response)

    # -- reading -----------------------------------------------------------

    def _org(self, organization_id: str | None) -> str | None:
        return organization_id or self.organization_id

    async def iter_events(self, filter: AuditEventFilter) -> AsyncIterator[AuditEvent]:
        """Every event matching ``filter``, page by page with the cursor
        (``filter.limit`` is the page size, at most 1000)."""
        params = filter.params()
        if "organization_id" not in params and self.organization_id:
            params["organization_id"] = self.organization_id
        params["limit"] = str(min(filter.limit, MAX_BATCH))
        if filter.offset:
            params["offset"] = str(filter.offset)
        while True:
            response = await self._http.get("/v1/events", params=params)
            if response.status_code != 200:
                raise _error(response)
            page = response.json()
            for event in page["events"]:
                yield AuditEvent.model_validate(event)
            cursor = page.get("next_cursor")
            if not cursor:
                return
            params.pop("offset", None)
            params["cursor"] = cursor

    async def query_events(self, filter: AuditEventFilter) -> list[AuditEvent]:
        """Up to ``filter.limit`` matching events (the seed's call; past the
        service's 1000 a page, the cursor is followed)."""
        out: list[AuditEvent] = []
        async for event in self.iter_events(filter):
            out.append(event)
            if len(out) >= filter.limit:
                break
        return out

    async def aiter_export(self, filter: AuditEventFilter, format: str = "json") -> AsyncIterator[bytes]:
        """The export's bytes as they stream (``json``, ``jsonl`` or ``csv``)."""
        params = filter.params(paging=False)
        if "organization_id" not in params and self.organization_id:
            params["organization_id"] = self.organization_id
        params["format"] = format
        async with self._http.stream("GET", "/v1/export", params=params, timeout=None) as response:
            if response.status_code != 200:
                await response.aread()
                raise _error(response)
            async for chunk in response.aiter_bytes():
                yield chunk

    async def export_events(
        self,
        filter: AuditEventFilter,
        format: str = "json",
        destination: str | Path | IO[bytes] | None = None,
    ) -> str | int:
        """The seed's call: the export as a string. With ``destination`` (a
        path or a binary file), streams it there and returns the bytes
        written — memory stays flat whatever the size."""
        if destination is None:
            parts = [chunk async for chunk in self.aiter_export(filter, format)]
            return b"".join(parts).decode("utf-8")
        written = 0
        if isinstance(destination, (str, Path)):
            with open(destination, "wb") as f:
                async for chunk in self.aiter_export(filter, format):
                    f.write(chunk)
                    written += len(chunk)
        else:
            async for chunk in self.aiter_export(filter, format):
                destination.write(chunk)
                written += len(chunk)
        return written

    async def verify_integrity(
        self,
        organization_id: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> dict[str, Any]:
        """The verification report (SPEC §6) as a dict: ``valid``,
        ``total_events``, ``errors`` ([{event_id, sequence, error, detail}]), …"""
        params: dict[str, str] = {}
        org = self._org(organization_id)
        if org:
            params["organization_id"] = org
        if start_time:
            params["start_time"] = rfc3339(start_time)
        if end_time:
            params["end_time"] = rfc3339(end_time)
        response = await self._http.get("/v1/integrity", params=params, timeout=None)
        if response.status_code != 200:
            raise _error(response)
        report: dict[str, Any] = response.json()
        return report

    async def checkpoint(self, organization_id: str | None = None) -> str:
        """The newest signed checkpoint (a C2SP signed note)."""
        org = self._org(organization_id)
        response = await self._http.get("/v1/checkpoint", params={"organization_id": org} if org else {})
        if response.status_code != 200:
            raise _error(response)
        return response.text


T = TypeVar("T")


class SyncAuditClient:
    """:class:`AuditClient` for code without an event loop: the client runs
    on a loop in a background thread; each call waits for its result."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agenttrace-audit", daemon=True)
        self._thread.start()

        async def make() -> AuditClient:
            return AuditClient(*args, **kwargs)

        self._client = self._run(make())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> None:
        self._run(self._client.start())

    def stop(self, timeout: float = 30.0) -> None:
        self._run(self._client.stop(timeout))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncAuditClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        return self._client.stats()

    def capture_event(self, **fields: Any) -> str:
        return self._run(self._client.capture_event(**fields))

    def capture_event_durable(self, **fields: Any) -> Receipt:
        return self._run(self._client.capture_event_durable(**fields))

    def flush(self) -> None:
        self._run(self._client.flush())

    def query_events(self, filter: AuditEventFilter) -> list[AuditEvent]:
        return self._run(self._client.query_events(filter))

    def export_events(
        self, filter: AuditEventFilter, format: str = "json", destination: str | Path | IO[bytes] | None = None
    ) -> str | int:
        return self._run(self._client.export_events(filter, format, destination))

    def verify_integrity(
        self, organization_id: str | None = None, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> dict[str, Any]:
        return self._run(self._client.verify_integrity(organization_id, start_time, end_time))
