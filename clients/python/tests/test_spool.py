"""The spool: nothing lost across an outage and an app restart, nothing
stored twice when a send's outcome was unknown, and a bound that refuses
(and counts) rather than dropping silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ORG, Served, free_port

from agenttrace_audit import AuditClient, AuditEventFilter, SpoolFull, SyncAuditClient


def event(n: int) -> dict[str, object]:
    return {
        "organization_id": ORG,
        "event_type": "trace.deleted",
        "action": "delete",
        "actor_type": "user",
        "actor_id": "u1",
        "resource_type": "trace",
        "resource_id": f"trace-{n}",
    }


async def stored_ids(serve: Served, *writers: AuditClient) -> list[str]:
    async with AuditClient(serve.url, serve.token) as reader:
        for w in writers:
            reader._stored_through.update({k: max(v, reader._stored_through.get(k, 0)) for k, v in w._stored_through.items()})
        await reader.wait_indexed(ORG)
        events = await reader.query_events(AuditEventFilter(organization_id=ORG, event_type="trace.deleted", limit=5000))
    return [str(e.resource_id) for e in events]


async def test_an_outage_and_a_restart_lose_nothing_and_duplicate_nothing(serve: Served, tmp_path: Path) -> None:
    spool = tmp_path / "spool.sqlite3"
    # The service is unreachable: captures are kept in the spool.
    down = AuditClient(f"http://127.0.0.1:{free_port()}", serve.token, spool_path=spool, batch_interval=0.05)
    await down.start()
    for n in range(120):
        await down.capture_event(**event(n))
    await down.stop(timeout=0.5)  # the app stops while the service is still down
    assert down.stats()["spooled"] == 120 and down.stats()["sent"] == 0

    # A copy of the spool as it was: a send whose answer never came back.
    unknown = tmp_path / "unknown.sqlite3"
    shutil.copy(spool, unknown)

    # The app starts again with the service back: everything is sent.
    up = AuditClient(serve.url, serve.token, spool_path=spool, batch_interval=0.05)
    await up.start()
    await up.stop()
    assert up.stats()["spooled"] == 0 and up.stats()["sent"] == 120
    # Sending the same events again (the unknown outcome) stores nothing new.
    again = AuditClient(serve.url, serve.token, spool_path=unknown, batch_interval=0.05)
    await again.start()
    await again.stop()
    assert again.stats()["sent"] == 120, "the service answered each with its original receipt"
    ids = await stored_ids(serve, up, again)
    assert sorted(ids) == sorted(f"trace-{n}" for n in range(120)), "each event exactly once"


async def test_a_full_spool_refuses_and_counts(serve: Served, tmp_path: Path) -> None:
    client = AuditClient(f"http://127.0.0.1:{free_port()}", serve.token, spool_path=tmp_path / "s.sqlite3", max_spooled=5)
    for n in range(5):
        await client.capture_event(**event(n))
    for n in range(5, 7):
        with pytest.raises(SpoolFull):
            await client.capture_event(**event(n))
    assert client.stats()["dropped"] == 2 and client.stats()["spooled"] == 5
    await client.stop()


async def test_an_invalid_event_is_dropped_and_counted_the_rest_are_sent(serve: Served) -> None:
    client = AuditClient(serve.url, serve.token, batch_size=10, batch_interval=60)
    bad = {**event(99), "event_type": "Not A Type"}
    for n in range(4):
        await client.capture_event(**event(n))
    await client.capture_event(**bad)
    for n in range(4, 8):
        await client.capture_event(**event(n))
    await client.start()
    await client.stop()
    assert client.stats()["rejected"] == 1 and client.stats()["sent"] == 8
    assert len(await stored_ids(serve, client)) == 8


def test_unknown_fields_and_missing_required_ones_are_refused_at_once(serve: Served) -> None:
    with SyncAuditClient(serve.url, serve.token) as client:
        with pytest.raises(TypeError, match="unknown field"):
            client.capture_event(**event(1), colour="red")
        with pytest.raises(ValueError, match="event_type is required"):
            client.capture_event(organization_id=ORG, action="read", actor_type="user")
        receipt = client.capture_event_durable(**event(1))
        assert receipt.sequence >= 1 and len(receipt.hash) == 64


async def test_an_event_refused_by_a_full_spool_shows_as_a_gap_in_verification(serve: Served) -> None:
    client = AuditClient(serve.url, serve.token, max_spooled=2)
    await client.capture_event(**event(1))
    await client.capture_event(**event(2))
    with pytest.raises(SpoolFull):
        await client.capture_event(**event(3))
    await client.start()
    await client.flush()
    await client.capture_event(**event(4))
    await client.stop()
    async with AuditClient(serve.url, serve.token) as reader:
        report = await reader.verify_integrity(ORG)
    assert report["valid"], report
    gaps = [(g["producer_id"], g["missing_from"], g["missing_to"]) for g in report["producer_gaps"]]
    assert gaps == [(client.producer_id, 2, 2)], "the refused event is a known gap, not a silent one"
    assert report["complete"] is False
