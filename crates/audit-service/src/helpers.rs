//! `AuditHelper`: one method per common audit event (the seed's
//! `audit_helpers`). Each picks the catalogued event type, so category and
//! severity come from the catalog (deletions, exports, shares, role changes,
//! removals and revocations are `warning`; failed logins `critical`).

use audit_core::event::{Action, ActorType, EventDraft, JsonObject};
use audit_core::json::{Object, Value};

use crate::{Accepted, AuditService, CaptureError};

/// Who acted, for the helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Kind of actor.
    pub actor_type: ActorType,
    /// Their id.
    pub id: Option<String>,
    /// Their email.
    pub email: Option<String>,
    /// Their IP address.
    pub ip: Option<String>,
    /// Their user agent.
    pub user_agent: Option<String>,
    /// Their session.
    pub session_id: Option<String>,
}

impl Actor {
    /// A person, by id and (optionally) email.
    pub fn user(id: impl Into<String>, email: Option<&str>) -> Actor {
        Actor { actor_type: ActorType::User, id: Some(id.into()), email: email.map(str::to_owned), ..Actor::system() }
    }

    /// A program holding an API key.
    pub fn api_key(key_id: impl Into<String>) -> Actor {
        Actor { actor_type: ActorType::ApiKey, id: Some(key_id.into()), ..Actor::system() }
    }

    /// The system itself.
    pub fn system() -> Actor {
        Actor { actor_type: ActorType::System, id: None, email: None, ip: None, user_agent: None, session_id: None }
    }
}

/// Stages of an evaluation's life, each its own event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationStage {
    /// `evaluation.created`
    Created,
    /// `evaluation.viewed`
    Viewed,
    /// `evaluation.started`
    Started,
    /// `evaluation.completed`
    Completed,
    /// `evaluation.failed`
    Failed,
}

/// Helpers over an [`AuditService`]; each captures one event (queued, not
/// waited for, as in the seed) and returns its acceptance.
#[derive(Debug, Clone)]
pub struct AuditHelper {
    service: AuditService,
}

fn obj(pairs: &[(&str, &str)]) -> JsonObject {
    let mut o = Object::new();
    for (k, v) in pairs {
        o.insert(*k, Value::String((*v).to_owned()));
    }
    o.into()
}

impl AuditHelper {
    /// Helpers capturing into `service`.
    pub fn new(service: AuditService) -> Self {
        AuditHelper { service }
    }

    fn draft(organization_id: &str, event_type: &str, action: Action, actor: &Actor) -> EventDraft {
        EventDraft {
            organization_id: organization_id.into(),
            event_type: event_type.into(),
            action: Some(action),
            actor_type: Some(actor.actor_type),
            actor_id: actor.id.clone(),
            actor_email: actor.email.clone(),
            actor_ip: actor.ip.clone(),
            user_agent: actor.user_agent.clone(),
            session_id: actor.session_id.clone(),
            ..Default::default()
        }
    }

    fn on(mut d: EventDraft, project_id: Option<&str>, resource_type: &str, resource_id: &str) -> EventDraft {
        d.project_id = project_id.map(str::to_owned);
        d.resource_type = Some(resource_type.into());
        d.resource_id = Some(resource_id.into());
        d
    }

    async fn emit(&self, d: EventDraft) -> Result<Accepted, CaptureError> {
        self.service.capture(d).await
    }

    /// `user.login`, or `user.login_failed` (critical) when `success` is
    /// false; a failed login's actor is `anonymous` (the identity is only claimed).
    pub async fn log_user_login(
        &self,
        organization_id: &str,
        user_id: &str,
        user_email: Option<&str>,
        success: bool,
        metadata: Option<Object>,
    ) -> Result<Accepted, CaptureError> {
        let mut actor = Actor::user(user_id, user_email);
        if !success {
            actor.actor_type = ActorType::Anonymous;
        }
        let event_type = if success { "user.login" } else { "user.login_failed" };
        let mut d = Self::draft(organization_id, event_type, Action::Login, &actor);
        d.metadata = metadata.map(JsonObject::from);
        self.emit(d).await
    }

    /// `user.logout`.
    pub async fn log_user_logout(&self, organization_id: &str, actor: &Actor) -> Result<Accepted, CaptureError> {
        self.emit(Self::draft(organization_id, "user.logout", Action::Logout, actor)).await
    }

    /// `api_key.created`.
    pub async fn log_api_key_created(
        &self,
        organization_id: &str,
        key_id: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let d = Self::draft(organization_id, "api_key.created", Action::Create, actor);
        self.emit(Self::on(d, None, "api_key", key_id)).await
    }

    /// `api_key.revoked` (warning).
    pub async fn log_api_key_revoked(
        &self,
        organization_id: &str,
        key_id: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let d = Self::draft(organization_id, "api_key.revoked", Action::Delete, actor);
        self.emit(Self::on(d, None, "api_key", key_id)).await
    }

    /// `sso.initiated` or `sso.completed`, with the identity provider.
    pub async fn log_sso(
        &self,
        organization_id: &str,
        provider: &str,
        completed: bool,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let event_type = if completed { "sso.completed" } else { "sso.initiated" };
        let mut d = Self::draft(organization_id, event_type, Action::Login, actor);
        d.metadata = Some(obj(&[("provider", provider)]));
        self.emit(d).await
    }

    /// `trace.viewed`.
    pub async fn log_trace_viewed(
        &self,
        organization_id: &str,
        project_id: &str,
        trace_id: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let d = Self::draft(organization_id, "trace.viewed", Action::Read, actor);
        self.emit(Self::on(d, Some(project_id), "trace", trace_id)).await
    }

    /// `trace.deleted` (warning) with the deleted trace as `previous_state`.
    pub async fn log_trace_deleted(
        &self,
        organization_id: &str,
        project_id: &str,
        trace_id: &str,
        trace_data: Object,
        metadata: Option<Object>,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "trace.deleted", Action::Delete, actor),
            Some(project_id),
            "trace",
            trace_id,
        );
        d.previous_state = Some(trace_data.into());
        d.metadata = metadata.map(JsonObject::from);
        self.emit(d).await
    }

    /// `trace.exported` (warning) with the export format.
    pub async fn log_trace_exported(
        &self,
        organization_id: &str,
        project_id: &str,
        trace_id: &str,
        format: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "trace.exported", Action::Export, actor),
            Some(project_id),
            "trace",
            trace_id,
        );
        d.metadata = Some(obj(&[("format", format)]));
        self.emit(d).await
    }

    /// `trace.shared` (warning) with whom it was shared.
    pub async fn log_trace_shared(
        &self,
        organization_id: &str,
        project_id: &str,
        trace_id: &str,
        shared_with: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "trace.shared", Action::Share, actor),
            Some(project_id),
            "trace",
            trace_id,
        );
        d.metadata = Some(obj(&[("shared_with", shared_with)]));
        self.emit(d).await
    }

    /// `evaluation.created|viewed|started|completed|failed`.
    pub async fn log_evaluation(
        &self,
        organization_id: &str,
        project_id: &str,
        evaluation_id: &str,
        stage: EvaluationStage,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let (event_type, action) = match stage {
            EvaluationStage::Created => ("evaluation.created", Action::Create),
            EvaluationStage::Viewed => ("evaluation.viewed", Action::Read),
            EvaluationStage::Started => ("evaluation.started", Action::Execute),
            EvaluationStage::Completed => ("evaluation.completed", Action::Execute),
            EvaluationStage::Failed => ("evaluation.failed", Action::Execute),
        };
        let d = Self::draft(organization_id, event_type, action, actor);
        self.emit(Self::on(d, Some(project_id), "evaluation", evaluation_id)).await
    }

    /// `project.created`.
    pub async fn log_project_created(
        &self,
        organization_id: &str,
        project_id: &str,
        project_name: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "project.created", Action::Create, actor),
            Some(project_id),
            "project",
            project_id,
        );
        d.new_state = Some(obj(&[("name", project_name)]));
        self.emit(d).await
    }

    /// `project.updated` with the configuration before and after.
    pub async fn log_project_updated(
        &self,
        organization_id: &str,
        project_id: &str,
        project_name: &str,
        old_config: Object,
        new_config: Object,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "project.updated", Action::Update, actor),
            Some(project_id),
            "project",
            project_id,
        );
        d.previous_state = Some(old_config.into());
        d.new_state = Some(new_config.into());
        d.metadata = Some(obj(&[("project_name", project_name)]));
        self.emit(d).await
    }

    /// `project.deleted` (warning).
    pub async fn log_project_deleted(
        &self,
        organization_id: &str,
        project_id: &str,
        project_data: Object,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "project.deleted", Action::Delete, actor),
            Some(project_id),
            "project",
            project_id,
        );
        d.previous_state = Some(project_data.into());
        self.emit(d).await
    }

    /// `retention_policy.updated` with the policy before and after.
    pub async fn log_retention_policy_updated(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        old_policy: Object,
        new_policy: Object,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::draft(organization_id, "retention_policy.updated", Action::Update, actor);
        d.project_id = project_id.map(str::to_owned);
        d.resource_type = Some("retention_policy".into());
        d.previous_state = Some(old_policy.into());
        d.new_state = Some(new_policy.into());
        self.emit(d).await
    }

    /// `user.invited` with the invited email and role.
    pub async fn log_user_invited(
        &self,
        organization_id: &str,
        invited_email: &str,
        role: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::draft(organization_id, "user.invited", Action::Create, actor);
        d.resource_type = Some("user".into());
        d.new_state = Some(obj(&[("email", invited_email), ("role", role)]));
        self.emit(d).await
    }

    /// `user.removed` (warning).
    pub async fn log_user_removed(
        &self,
        organization_id: &str,
        user_id: &str,
        user_email: Option<&str>,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d =
            Self::on(Self::draft(organization_id, "user.removed", Action::Delete, actor), None, "user", user_id);
        d.previous_state = user_email.map(|e| obj(&[("email", e)]));
        self.emit(d).await
    }

    /// `user.role_changed` (warning) with the role before and after.
    pub async fn log_user_role_changed(
        &self,
        organization_id: &str,
        user_id: &str,
        user_email: Option<&str>,
        old_role: &str,
        new_role: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d =
            Self::on(Self::draft(organization_id, "user.role_changed", Action::Update, actor), None, "user", user_id);
        d.previous_state = Some(obj(&[("role", old_role)]));
        d.new_state = Some(obj(&[("role", new_role)]));
        d.metadata = user_email.map(|e| obj(&[("user_email", e)]));
        self.emit(d).await
    }

    /// `organization.settings_updated` with the settings before and after.
    pub async fn log_organization_settings_updated(
        &self,
        organization_id: &str,
        old_settings: Object,
        new_settings: Object,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "organization.settings_updated", Action::Update, actor),
            None,
            "organization",
            organization_id,
        );
        d.previous_state = Some(old_settings.into());
        d.new_state = Some(new_settings.into());
        self.emit(d).await
    }

    /// `billing.plan_changed`.
    pub async fn log_billing_plan_changed(
        &self,
        organization_id: &str,
        old_plan: &str,
        new_plan: &str,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "billing.plan_changed", Action::Update, actor),
            None,
            "organization",
            organization_id,
        );
        d.previous_state = Some(obj(&[("plan", old_plan)]));
        d.new_state = Some(obj(&[("plan", new_plan)]));
        self.emit(d).await
    }

    /// `baseline.updated` with the metrics before and after.
    pub async fn log_baseline_updated(
        &self,
        organization_id: &str,
        project_id: &str,
        baseline_id: &str,
        old_metrics: Object,
        new_metrics: Object,
        actor: &Actor,
    ) -> Result<Accepted, CaptureError> {
        let mut d = Self::on(
            Self::draft(organization_id, "baseline.updated", Action::Update, actor),
            Some(project_id),
            "baseline",
            baseline_id,
        );
        d.previous_state = Some(old_metrics.into());
        d.new_state = Some(new_metrics.into());
        self.emit(d).await
    }
}
