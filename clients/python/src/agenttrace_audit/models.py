"""Event models with the seed's names (SPEC §2 and §8).

Enums are ``str`` enums whose values are the wire values, so
``EventCategory.DATA == "data"``. Times given as naive ``datetime`` are taken
as local time (what ``datetime.now()`` returns, as in the seed's examples)
and sent as UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventCategory(str, Enum):
    AUTH = "auth"
    DATA = "data"
    CONFIG = "config"
    ADMIN = "admin"
    EVAL = "eval"
    ACCESS = "access"


class Action(str, Enum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    EXPORT = "export"
    SHARE = "share"
    LOGIN = "login"
    LOGOUT = "logout"
    EXECUTE = "execute"
    OTHER = "other"


class ActorType(str, Enum):
    USER = "user"
    API_KEY = "api_key"
    SERVICE = "service"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def rfc3339(t: datetime) -> str:
    """``t`` in UTC, microseconds, ``Z`` (naive times are local time)."""
    if t.tzinfo is None:
        t = t.astimezone()
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RequestInfo(BaseModel):
    """The ``request`` block the middleware records."""

    model_config = ConfigDict(extra="allow")

    method: str | None = None
    path: str | None = None
    route: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    request_id: str | None = None


class AuditEvent(BaseModel):
    """A stored event, as the service returns it (SPEC §2)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int | None = None
    event_id: str
    organization_id: str
    project_id: str | None = None
    sequence: int
    timestamp: datetime
    occurred_at: datetime | None = None
    event_category: EventCategory
    event_type: str
    action: Action
    severity: Severity
    resource_type: str | None = None
    resource_id: str | None = None
    actor_type: ActorType
    actor_id: str | None = None
    actor_email: str | None = None
    actor_ip: str | None = None
    user_agent: str | None = None
    session_id: str | None = None
    request: RequestInfo | None = None
    previous_state: dict[str, Any] | None = None
    new_state: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    producer_id: str | None = None
    producer_sequence: int | None = None
    previous_hash: str
    hash: str


class AuditEventFilter(BaseModel):
    """Which events to query or export (SPEC §8). ``limit`` may exceed the
    service's page size (1000): :meth:`AuditClient.query_events` pages with
    the cursor until it has ``limit`` events; exports ignore it."""

    organization_id: str | None = None
    project_id: str | None = None
    event_category: EventCategory | None = None
    event_type: str | None = None
    action: Action | None = None
    severity: Severity | None = None
    actor_type: ActorType | None = None
    actor_id: str | None = None
    actor_email: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = Field(default=100, ge=1)
    offset: int = Field(default=0, ge=0)
    order: str = Field(default="asc", pattern="^(asc|desc)$")

    def params(self, *, paging: bool = True) -> dict[str, str]:
        """The filter as the API's query parameters."""
        out: dict[str, str] = {}
        for name in (
            "organization_id",
            "project_id",
            "event_type",
            "actor_id",
            "actor_email",
            "resource_type",
            "resource_id",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in ("event_category", "action", "severity", "actor_type"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value
        if self.start_time is not None:
            out["start_time"] = rfc3339(self.start_time)
        if self.end_time is not None:
            out["end_time"] = rfc3339(self.end_time)
        if paging:
            out["order"] = self.order
        return out


class Receipt(BaseModel):
    """What the service answers once an event is durable (SPEC §4)."""

    model_config = ConfigDict(extra="allow")

    event_id: str
    sequence: int
    hash: str
    timestamp: str
    #: True when the capture was a duplicate (same idempotency key) and
    #: stored nothing new: this is the original's receipt.
    deduplicated: bool = False
