"""AuditMiddleware on a FastAPI app, events read back from a real serve:
exclusions, redaction, route templates, JWT users, long inputs, 401s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from conftest import ORG, Served
from fastapi import FastAPI, HTTPException

from agenttrace_audit import AuditClient, AuditEventFilter, AuditMiddleware, jwt_user_extractor

SECRET = "a-test-secret-of-at-least-32-bytes!!"


@pytest.fixture
async def client(serve: Served) -> AsyncIterator[AuditClient]:
    c = AuditClient(serve.url, serve.token, batch_interval=0.1)
    await c.start()
    yield c
    await c.stop()


def app_with(client: AuditClient) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @app.get("/admin")
    async def admin() -> None:
        raise HTTPException(status_code=401)

    app.add_middleware(
        AuditMiddleware,
        audit_service=client,
        exclude_paths=["/health"],
        user_extractor=jwt_user_extractor(SECRET),
        organization_id=ORG,
        trusted_proxies=["127.0.0.1"],
    )
    return app


async def requests(client: AuditClient) -> list[dict[str, Any]]:
    await client.flush()
    await client.wait_indexed(ORG)
    events = await client.query_events(AuditEventFilter(organization_id=ORG, event_type="api.request", limit=1000))
    return [e.model_dump(mode="json", exclude_none=True) for e in events]


async def test_requests_are_recorded_redacted_and_attributed(client: AuditClient) -> None:
    app = app_with(client)
    token = jwt.encode({"sub": "user-7", "email": "u7@example.com", "session_id": "s-1"}, SECRET)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        await http.get("/health")
        await http.get(
            "/items/42?page=2&access_token=abc&Client_Secret=s3&code=xyz",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-1", "X-Forwarded-For": "203.0.113.9"},
        )
        await http.get("/items/43", headers={"Authorization": "Bearer not-a-jwt", "User-Agent": "x" * 5000})
        await http.get("/admin")
    events = await requests(client)
    assert len(events) == 3, "the excluded /health is not recorded"
    first, second, third = events
    assert first["request"]["path"] == "/items/42?page=2&access_token=[redacted]&Client_Secret=[redacted]&code=[redacted]"
    assert first["request"]["route"] == "/items/{item_id}" and first["request"]["status"] == 200
    assert first["request"]["request_id"] == "req-1" and first["request"]["duration_ms"] >= 0
    assert (first["actor_type"], first["actor_id"], first["actor_email"]) == ("user", "user-7", "u7@example.com")
    assert first["actor_ip"] == "203.0.113.9", "X-Forwarded-For through a trusted proxy"
    assert second["actor_type"] == "anonymous", "an invalid token's claims are never used"
    assert len(second["user_agent"].encode()) == 1024 and second["request"]["truncated"] == ["user_agent"]
    assert third["severity"] == "critical" and third["request"]["status"] == 401


async def test_control_characters_cannot_forge_lines(client: AuditClient) -> None:
    app = app_with(client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        await http.get("/items/1", headers={"User-Agent": "ok\u202eevil\x1b[2J".encode()})
    [event] = await requests(client)
    assert event["user_agent"] == "ok\\u{202e}evil\\u{001b}[2J", "a bidi override and an escape, made visible"
