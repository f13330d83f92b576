"""The seed's FastAPI integration example, on AgentTrace Audit.

Run a service and this app::

    agenttrace-audit serve                                   # 127.0.0.1:8080
    export AUDIT_TOKEN=$(agenttrace-audit keys create --org org-123 --scopes ingest,read)
    pip install ./clients/python uvicorn && uvicorn app:app --port 8000

Every request (but /health and /metrics) is an ``api.request`` event; the
project routes record their own events with the helpers and a context
manager, as in the seed. Unsent events wait in ``audit-spool.sqlite3``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agenttrace_audit import (
    Action,
    ActorType,
    AuditClient,
    AuditHelper,
    AuditMiddleware,
    EventCategory,
    audit_context,
    get_audit_service,
    set_audit_service,
)

ORG = os.environ.get("AUDIT_ORGANIZATION", "org-123")
audit_service = AuditClient(
    os.environ.get("AUDIT_URL", "http://127.0.0.1:8080"),
    os.environ.get("AUDIT_TOKEN"),
    organization_id=ORG,
    batch_size=100,
    batch_interval=5.0,
    spool_path=os.environ.get("AUDIT_SPOOL", "audit-spool.sqlite3"),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Startup: initialize audit system
    await audit_service.start()
    set_audit_service(audit_service)

    yield

    # Shutdown: stop audit service (sends what is spooled)
    await audit_service.stop()


app = FastAPI(lifespan=lifespan)

# Add middleware
app.add_middleware(AuditMiddleware, audit_service=audit_service, capture_api_access=True, organization_id=ORG)

PROJECTS: dict[str, dict[str, str]] = {"proj-456": {"name": "My Project", "status": "active"}}


@app.get("/health")
async def health() -> dict[str, object]:
    return {"status": "ok", "audit": get_audit_service().stats()}


@app.get("/projects/{project_id}")
async def read_project(project_id: str) -> dict[str, str]:
    return PROJECTS[project_id]


@app.put("/projects/{project_id}")
async def rename_project(project_id: str, name: str) -> dict[str, str]:
    async with audit_context(
        audit_service=get_audit_service(),
        organization_id=ORG,
        event_category=EventCategory.CONFIG,
        event_type="project.updated",
        resource_type="project",
        resource_id=project_id,
        action=Action.UPDATE,
        actor_type=ActorType.USER,
        actor_id="user-789",
    ) as ctx:
        ctx.before = dict(PROJECTS[project_id])
        PROJECTS[project_id]["name"] = name
        ctx.after = dict(PROJECTS[project_id])
    return PROJECTS[project_id]


@app.delete("/projects/{project_id}")
async def delete_project(project_id: str) -> dict[str, str]:
    removed = PROJECTS.pop(project_id)
    await AuditHelper(get_audit_service()).log_project_deleted(ORG, project_id, removed, actor_type=ActorType.USER, actor_id="user-789")
    return {"deleted": project_id}
