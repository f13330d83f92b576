"""``audit_context``: one event around a block, with its before/after state.

The event is captured when the block ends: with ``ctx.before`` as
``previous_state`` and ``ctx.after`` as ``new_state``; if the block raises,
the event is still captured — with ``metadata.outcome = "failure"`` and the
exception's type (never its message, which may hold personal data) — and the
exception propagates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


class Captures(Protocol):
    async def capture_event(self, **fields: Any) -> str: ...


@dataclass
class AuditContext:
    """What the block may fill in."""

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def audit_context(audit_service: Captures, **fields: Any) -> AsyncIterator[AuditContext]:
    """Captures one event (the seed's keyword arguments) when the block ends."""
    ctx = AuditContext()
    try:
        yield ctx
    except BaseException as e:
        ctx.metadata = {**ctx.metadata, "outcome": "failure", "error_type": type(e).__name__}
        await _capture(audit_service, ctx, fields)
        raise
    ctx.metadata.setdefault("outcome", "success")
    await _capture(audit_service, ctx, fields)


async def _capture(audit_service: Captures, ctx: AuditContext, fields: dict[str, Any]) -> None:
    metadata = {**(fields.pop("metadata", None) or {}), **ctx.metadata}
    await audit_service.capture_event(
        **fields, previous_state=ctx.before, new_state=ctx.after, metadata=metadata or None
    )
