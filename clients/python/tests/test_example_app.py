"""The runnable FastAPI example (examples/fastapi-app) against a real serve:
its lifespan starts and stops the client, its routes' events are stored."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest
from conftest import ORG, Served

from agenttrace_audit import AuditEventFilter

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi-app" / "app.py"


async def test_the_example_app_records_its_requests_and_changes(serve: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_URL", serve.url)
    monkeypatch.setenv("AUDIT_TOKEN", serve.token)
    monkeypatch.setenv("AUDIT_SPOOL", str(tmp_path / "spool.sqlite3"))
    spec = importlib.util.spec_from_file_location("fastapi_example", EXAMPLE)
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    async with example.app.router.lifespan_context(example.app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=example.app), base_url="http://app") as http:
            assert (await http.get("/health")).status_code == 200
            assert (await http.put("/projects/proj-456", params={"name": "Renamed"})).json()["name"] == "Renamed"
            assert (await http.delete("/projects/proj-456")).status_code == 200
        client = example.audit_service
        await client.flush()
        await client.wait_indexed(ORG)
        events = await client.query_events(AuditEventFilter(organization_id=ORG, limit=100))
    kinds = [e.event_type for e in events]
    assert kinds.count("api.request") == 2, "two requests; /health is excluded"
    updated = next(e for e in events if e.event_type == "project.updated")
    assert updated.previous_state == {"name": "My Project", "status": "active"}
    assert updated.new_state == {"name": "Renamed", "status": "active"}
    assert "project.deleted" in kinds
