"""AgentTrace Audit for Python: the seed's names over the service's HTTP API.

```python
from agenttrace_audit import AuditClient, EventCategory, Action, ActorType

audit_service = AuditClient("http://127.0.0.1:8080", token, spool_path="audit-spool.sqlite3")
await audit_service.start()
await audit_service.capture_event(organization_id="org-123", event_type="trace.deleted", ...)
```
"""

from __future__ import annotations

from .client import AuditClient, AuditError, SyncAuditClient
from .context import AuditContext, audit_context
from .helpers import AuditHelper
from .middleware import AuditMiddleware, jwt_user_extractor
from .models import (
    Action,
    ActorType,
    AuditEvent,
    AuditEventFilter,
    EventCategory,
    Receipt,
    RequestInfo,
    Severity,
)
from .spool import Spool, SpoolFull

_service: AuditClient | None = None


def set_audit_service(service: AuditClient) -> None:
    """Makes ``service`` the one :func:`get_audit_service` returns (the seed's global)."""
    global _service
    _service = service


def get_audit_service() -> AuditClient:
    """The client set with :func:`set_audit_service`."""
    if _service is None:
        raise RuntimeError("no audit service: call set_audit_service() at startup")
    return _service


__all__ = [
    "Action",
    "ActorType",
    "AuditClient",
    "AuditContext",
    "AuditError",
    "AuditEvent",
    "AuditEventFilter",
    "AuditHelper",
    "AuditMiddleware",
    "EventCategory",
    "Receipt",
    "RequestInfo",
    "Severity",
    "Spool",
    "SpoolFull",
    "SyncAuditClient",
    "audit_context",
    "get_audit_service",
    "jwt_user_extractor",
    "set_audit_service",
]
