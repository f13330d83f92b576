"""Every example of the seed's documentation, with only its imports
changed, against a real ``serve`` — then checked against what was stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from conftest import ORG, Served

from agenttrace_audit import AuditClient, AuditEventFilter


@pytest.fixture
async def audit_service(serve: Served) -> AsyncIterator[AuditClient]:
    client = AuditClient(serve.url, serve.token, batch_size=100, batch_interval=0.2)
    await client.start()
    yield client
    await client.stop()


async def stored(client: AuditClient, **filters: object) -> list[dict[str, object]]:
    await client.flush()
    await client.wait_indexed(ORG)
    events = await client.query_events(AuditEventFilter(organization_id=ORG, limit=1000, **filters))  # type: ignore[arg-type]
    return [e.model_dump(mode="json", exclude_none=True) for e in events]


async def test_quick_start_capture_event(audit_service: AuditClient) -> None:
    # --- seed: Quick Start, 3. Capture Events in Your Code
    from agenttrace_audit import Action, ActorType, EventCategory

    await audit_service.capture_event(
        organization_id="org-123",
        project_id="proj-456",
        event_category=EventCategory.DATA,
        event_type="trace.deleted",
        resource_type="trace",
        resource_id="trace-789",
        action=Action.DELETE,
        actor_type=ActorType.USER,
        actor_id="user-001",
        actor_email="user@example.com",
    )
    # --- end
    [event] = await stored(audit_service, resource_id="trace-789")
    assert event["event_type"] == "trace.deleted" and event["severity"] == "warning"
    assert event["actor_email"] == "user@example.com", "read back in the clear"


async def test_example_1_helpers(audit_service: AuditClient) -> None:
    # --- seed: Example 1
    from agenttrace_audit import AuditHelper

    # Create helper
    helper = AuditHelper(audit_service)

    # Log user login
    await helper.log_user_login(
        organization_id="org-123",
        user_id="user-456",
        user_email="user@example.com",
        success=True,
        metadata={"ip": "192.168.1.1"},
    )

    # Log trace deletion with state
    await helper.log_trace_deleted(
        organization_id="org-123",
        project_id="proj-456",
        trace_id="trace-789",
        trace_data={"name": "Important Trace", "spans": 42},
        metadata={"reason": "User requested deletion"},
    )

    # Log project update with before/after state
    await helper.log_project_updated(
        organization_id="org-123",
        project_id="proj-456",
        project_name="My Project",
        old_config={"retention_days": 30},
        new_config={"retention_days": 90},
    )
    # --- end
    events = {e["event_type"]: e for e in await stored(audit_service)}
    assert events["user.login"]["actor_id"] == "user-456"
    assert events["trace.deleted"]["previous_state"] == {"name": "Important Trace", "spans": 42}
    assert events["project.updated"]["new_state"] == {"retention_days": 90}
    # The seed's best practices use the positional forms.
    helper = AuditHelper(audit_service)
    await helper.log_trace_exported("org-123", "proj-456", "trace-1", "csv")
    await helper.log_user_role_changed("org-123", "user-9", "u9@example.com", "viewer", "admin")
    kinds = {e["event_type"]: e for e in await stored(audit_service)}
    assert kinds["user.role_changed"]["severity"] == "warning" and kinds["trace.exported"]["action"] == "export"


async def test_example_2_context_manager(audit_service: AuditClient) -> None:
    def update_project(project_id: str, name: str) -> dict[str, str]:
        return {"id": project_id, "name": name}

    # --- seed: Example 2
    from agenttrace_audit import Action, ActorType, EventCategory, audit_context

    async with audit_context(
        audit_service=audit_service,
        organization_id="org-123",
        event_category=EventCategory.CONFIG,
        event_type="project.updated",
        resource_type="project",
        resource_id="proj-456",
        action=Action.UPDATE,
        actor_type=ActorType.USER,
        actor_id="user-789",
    ) as ctx:
        # Capture before state
        ctx.before = {"name": "Old Name", "status": "active"}

        # Perform your operation
        project = update_project(project_id="proj-456", name="New Name")

        # Capture after state
        ctx.after = {"name": "New Name", "status": "active"}

    # Event is automatically captured with both states
    # --- end
    assert project["name"] == "New Name"
    [event] = await stored(audit_service, resource_id="proj-456")
    assert event["previous_state"] == {"name": "Old Name", "status": "active"}
    assert event["new_state"] == {"name": "New Name", "status": "active"}
    assert event["metadata"] == {"outcome": "success"}

    # A failing block is recorded as a failure, and the error propagates.
    with pytest.raises(KeyError):
        async with audit_context(
            audit_service=audit_service,
            organization_id="org-123",
            event_type="project.deleted",
            resource_type="project",
            resource_id="proj-999",
            action=Action.DELETE,
            actor_type=ActorType.USER,
        ) as ctx:
            ctx.before = {"name": "Doomed"}
            raise KeyError("no such project")
    [failed] = await stored(audit_service, resource_id="proj-999")
    assert failed["metadata"] == {"outcome": "failure", "error_type": "KeyError"}


async def test_examples_3_4_5_query_export_verify(audit_service: AuditClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agenttrace_audit import Action, ActorType, EventCategory

    for n in range(3):
        await audit_service.capture_event(
            organization_id="org-123",
            project_id="proj-456",
            event_category=EventCategory.DATA,
            event_type="trace.deleted",
            resource_type="trace",
            resource_id=f"trace-{n}",
            action=Action.DELETE,
            actor_type=ActorType.USER,
            actor_email="user@example.com",
            actor_ip="192.0.2.1",
            previous_state={"spans": n},
        )
    await audit_service.flush()
    await audit_service.wait_indexed(ORG)
    monkeypatch.chdir(tmp_path)
    printed: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))

    # --- seed: Example 3
    from agenttrace_audit import AuditEventFilter, EventCategory

    # Create filter
    filter = AuditEventFilter(
        organization_id="org-123",
        project_id="proj-456",
        event_category=EventCategory.DATA,
        action=Action.DELETE,
        start_time=datetime.now() - timedelta(days=7),
        end_time=datetime.now() + timedelta(minutes=1),  # seed: datetime.now() (events are that recent here)
        limit=100,
        offset=0,
    )

    # Query events
    events = await audit_service.query_events(filter)

    for event in events:
        print(f"{event.timestamp}: {event.event_type} on {event.resource_id}")
        print(f"  Actor: {event.actor_email} ({event.actor_ip})")
        if event.previous_state:
            print(f"  Previous: {event.previous_state}")
    # --- end
    assert len(events) == 3 and any("trace.deleted on trace-2" in p for p in printed), printed
    assert any("Actor: user@example.com (192.0.2.1)" in p for p in printed)

    # --- seed: Example 4
    # Export last 30 days as JSON
    filter = AuditEventFilter(
        organization_id="org-123",
        start_time=datetime.now() - timedelta(days=30),
        limit=10000,
    )

    json_export = await audit_service.export_events(filter, format="json")

    # Save to file
    with open("audit_export.json", "w") as f:
        f.write(json_export)  # type: ignore[arg-type]

    # Or export as CSV
    csv_export = await audit_service.export_events(filter, format="csv")

    with open("audit_export.csv", "w") as f:
        f.write(csv_export)  # type: ignore[arg-type]
    # --- end
    assert (tmp_path / "audit_export.json").read_text().count('"event_type":"trace.deleted"') == 3
    assert (tmp_path / "audit_export.csv").read_text().count("trace.deleted") == 3

    # --- seed: Example 5
    # Verify audit chain integrity
    result = await audit_service.verify_integrity(
        organization_id="org-123",
        start_time=datetime.now() - timedelta(days=30),
        end_time=datetime.now() + timedelta(minutes=1),
    )

    if result["valid"]:
        print(f"✓ Audit chain is valid ({result['total_events']} events)")
    else:
        print("✗ Audit chain has errors:")
        for error in result["errors"]:
            print(f"  - Event {error['event_id']}: {error['error']}")
    # --- end
    assert printed[-1].startswith("✓ Audit chain is valid"), printed[-1]

    # --- seed: GDPR, Right to Access (limit past the service's page size)
    user_events = await audit_service.query_events(
        AuditEventFilter(organization_id="org-123", actor_email="user@example.com", limit=10000)
    )
    assert len(user_events) == 3


async def test_example_6_custom_user_extractor(audit_service: AuditClient) -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/projects/{project_id}")
    async def read_project(project_id: str) -> dict[str, str]:
        return {"id": project_id}

    # --- seed: Example 6
    from agenttrace_audit import ActorType, AuditMiddleware

    def custom_user_extractor(request):  # type: ignore[no-untyped-def]
        """Extract user from JWT token."""
        auth_header = request.headers.get("authorization")

        if not auth_header or not auth_header.startswith("Bearer "):
            return {
                "actor_type": ActorType.SYSTEM,
                "actor_id": "system",
                "actor_email": None,
                "organization_id": None,
                "session_id": None,
            }

        token = auth_header[7:]

        try:
            payload = jwt.decode(token, "your-secret", algorithms=["HS256"])

            return {
                "actor_type": ActorType.USER,
                "actor_id": payload["user_id"],
                "actor_email": payload["email"],
                "organization_id": payload["organization_id"],
                "session_id": payload.get("session_id"),
            }
        except:  # noqa: E722  (the seed's)
            return {
                "actor_type": ActorType.SYSTEM,
                "actor_id": "system",
                "actor_email": None,
                "organization_id": None,
                "session_id": None,
            }

    # Use custom extractor
    app.add_middleware(AuditMiddleware, audit_service=audit_service, user_extractor=custom_user_extractor)
    # --- end
    jwt = pyjwt  # the seed's `import jwt`
    token = jwt.encode({"user_id": "user-42", "email": "u42@example.com", "organization_id": ORG}, "your-secret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        assert (await http.get("/projects/p-1", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    [event] = await stored(audit_service, event_type="api.request")
    assert event["actor_id"] == "user-42" and event["actor_email"] == "u42@example.com"
    assert event["request"]["route"] == "/projects/{project_id}" and event["request"]["status"] == 200
