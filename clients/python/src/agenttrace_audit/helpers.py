"""``AuditHelper``: one method per common event of the seed's catalog.

Each picks the catalogued event type, so the service derives category and
severity from its catalog (deletions, exports, shares, role changes and
removals are ``warning``; failed logins ``critical``). Arguments follow the
seed's order (``log_trace_deleted(org_id, proj_id, trace_id, trace_data)``);
who acted is given by the keyword arguments ``actor_type``, ``actor_id``,
``actor_email``, ``actor_ip``, ``user_agent``, ``session_id`` (default: the
system).
"""

from __future__ import annotations

from typing import Any

from .context import Captures
from .models import Action, ActorType


class AuditHelper:
    """Helpers capturing into ``audit_service`` (an :class:`AuditClient`)."""

    def __init__(self, audit_service: Captures) -> None:
        self.audit_service = audit_service

    async def _emit(self, organization_id: str, event_type: str, action: Action, actor: dict[str, Any], **fields: Any) -> str:
        who = {"actor_type": ActorType.SYSTEM, **actor}
        return await self.audit_service.capture_event(
            organization_id=organization_id, event_type=event_type, action=action, **who, **fields
        )

    # auth
    async def log_user_login(
        self,
        organization_id: str,
        user_id: str,
        user_email: str | None = None,
        success: bool = True,
        metadata: dict[str, Any] | None = None,
        **actor: Any,
    ) -> str:
        """``user.login``, or ``user.login_failed`` (critical; the actor is
        ``anonymous``: the identity was only claimed)."""
        kind = ActorType.USER if success else ActorType.ANONYMOUS
        who = {"actor_type": kind, "actor_id": user_id, "actor_email": user_email, **actor}
        event_type = "user.login" if success else "user.login_failed"
        return await self._emit(organization_id, event_type, Action.LOGIN, who, metadata=metadata)

    async def log_user_logout(self, organization_id: str, user_id: str, user_email: str | None = None, **actor: Any) -> str:
        who = {"actor_type": ActorType.USER, "actor_id": user_id, "actor_email": user_email, **actor}
        return await self._emit(organization_id, "user.logout", Action.LOGOUT, who)

    async def log_api_key_created(self, organization_id: str, key_id: str, **actor: Any) -> str:
        return await self._emit(organization_id, "api_key.created", Action.CREATE, actor, resource_type="api_key", resource_id=key_id)

    async def log_api_key_revoked(self, organization_id: str, key_id: str, **actor: Any) -> str:
        return await self._emit(organization_id, "api_key.revoked", Action.DELETE, actor, resource_type="api_key", resource_id=key_id)

    async def log_sso(self, organization_id: str, provider: str, completed: bool = False, **actor: Any) -> str:
        event_type = "sso.completed" if completed else "sso.initiated"
        return await self._emit(organization_id, event_type, Action.LOGIN, actor, metadata={"provider": provider})

    # data
    async def log_trace_viewed(self, organization_id: str, project_id: str, trace_id: str, **actor: Any) -> str:
        return await self._emit(
            organization_id, "trace.viewed", Action.READ, actor, project_id=project_id, resource_type="trace", resource_id=trace_id
        )

    async def log_trace_deleted(
        self,
        organization_id: str,
        project_id: str,
        trace_id: str,
        trace_data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **actor: Any,
    ) -> str:
        return await self._emit(
            organization_id,
            "trace.deleted",
            Action.DELETE,
            actor,
            project_id=project_id,
            resource_type="trace",
            resource_id=trace_id,
            previous_state=trace_data,
            metadata=metadata,
        )

    async def log_trace_exported(self, organization_id: str, project_id: str, trace_id: str, format: str, **actor: Any) -> str:
        return await self._emit(
            organization_id,
            "trace.exported",
            Action.EXPORT,
            actor,
            project_id=project_id,
            resource_type="trace",
            resource_id=trace_id,
            metadata={"format": format},
        )

    async def log_trace_shared(self, organization_id: str, project_id: str, trace_id: str, shared_with: str, **actor: Any) -> str:
        return await self._emit(
            organization_id,
            "trace.shared",
            Action.SHARE,
            actor,
            project_id=project_id,
            resource_type="trace",
            resource_id=trace_id,
            metadata={"shared_with": shared_with},
        )

    # eval
    async def log_evaluation(self, organization_id: str, project_id: str, evaluation_id: str, stage: str, **actor: Any) -> str:
        """``stage``: ``created``, ``viewed``, ``started``, ``completed`` or ``failed``."""
        actions = {"created": Action.CREATE, "viewed": Action.READ}
        if stage not in ("created", "viewed", "started", "completed", "failed"):
            raise ValueError(f"stage must be created, viewed, started, completed or failed, not {stage!r}")
        return await self._emit(
            organization_id,
            f"evaluation.{stage}",
            actions.get(stage, Action.EXECUTE),
            actor,
            project_id=project_id,
            resource_type="evaluation",
            resource_id=evaluation_id,
        )

    async def log_baseline_updated(
        self, organization_id: str, project_id: str, old_baseline: dict[str, Any], new_baseline: dict[str, Any], **actor: Any
    ) -> str:
        return await self._emit(
            organization_id,
            "baseline.updated",
            Action.UPDATE,
            actor,
            project_id=project_id,
            resource_type="baseline",
            previous_state=old_baseline,
            new_state=new_baseline,
        )

    # config
    async def log_project_created(self, organization_id: str, project_id: str, project_name: str, **actor: Any) -> str:
        return await self._emit(
            organization_id,
            "project.created",
            Action.CREATE,
            actor,
            project_id=project_id,
            resource_type="project",
            resource_id=project_id,
            new_state={"name": project_name},
        )

    async def log_project_updated(
        self,
        organization_id: str,
        project_id: str,
        project_name: str,
        old_config: dict[str, Any],
        new_config: dict[str, Any],
        **actor: Any,
    ) -> str:
        return await self._emit(
            organization_id,
            "project.updated",
            Action.UPDATE,
            actor,
            project_id=project_id,
            resource_type="project",
            resource_id=project_id,
            previous_state=old_config,
            new_state=new_config,
            metadata={"project_name": project_name},
        )

    async def log_project_deleted(self, organization_id: str, project_id: str, project_data: dict[str, Any] | None = None, **actor: Any) -> str:
        return await self._emit(
            organization_id,
            "project.deleted",
            Action.DELETE,
            actor,
            project_id=project_id,
            resource_type="project",
            resource_id=project_id,
            previous_state=project_data,
        )

    async def log_retention_policy_updated(
        self, organization_id: str, old_policy: dict[str, Any], new_policy: dict[str, Any], project_id: str | None = None, **actor: Any
    ) -> str:
        return await self._emit(
            organization_id,
            "retention_policy.updated",
            Action.UPDATE,
            actor,
            project_id=project_id,
            resource_type="retention_policy",
            previous_state=old_policy,
            new_state=new_policy,
        )

    # admin
    async def log_user_invited(self, organization_id: str, invited_email: str, role: str, **actor: Any) -> str:
        return await self._emit(
            organization_id, "user.invited", Action.CREATE, actor, resource_type="user", new_state={"email": invited_email, "role": role}
        )

    async def log_user_removed(self, organization_id: str, user_id: str, user_email: str | None = None, **actor: Any) -> str:
        return await self._emit(
            organization_id,
            "user.removed",
            Action.DELETE,
            actor,
            resource_type="user",
            resource_id=user_id,
            previous_state={"email": user_email} if user_email else None,
        )

    async def log_user_role_changed(
        self, organization_id: str, user_id: str, user_email: str | None, old_role: str, new_role: str, **actor: Any
    ) -> str:
        return await self._emit(
            organization_id,
            "user.role_changed",
            Action.UPDATE,
            actor,
            resource_type="user",
            resource_id=user_id,
            previous_state={"role": old_role},
            new_state={"role": new_role},
            metadata={"user_email": user_email} if user_email else None,
        )

    async def log_organization_settings_updated(
        self, organization_id: str, old_settings: dict[str, Any], new_settings: dict[str, Any], **actor: Any
    ) -> str:
        return await self._emit(
            organization_id,
            "organization.settings_updated",
            Action.UPDATE,
            actor,
            resource_type="organization",
            resource_id=organization_id,
            previous_state=old_settings,
            new_state=new_settings,
        )

    async def log_billing_plan_changed(self, organization_id: str, old_plan: str, new_plan: str, **actor: Any) -> str:
        return await self._emit(
            organization_id,
            "billing.plan_changed",
            Action.UPDATE,
            actor,
            resource_type="billing_plan",
            resource_id=organization_id,
            previous_state={"plan": old_plan},
            new_state={"plan": new_plan},
        )
