//! `GET` and `PUT /v1/retention` (SPEC §15): how long an organization's
//! events are kept. Reading needs `read`; changing needs `admin`, is never
//! below the floor, and is recorded as `retention.changed` in the
//! organization's log.

use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::params::organization_only;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// What `PUT /v1/retention` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionRequest {
    /// The organization (optional with an organization-bound token).
    organization_id: Option<String>,
    /// Days events are kept after their timestamp.
    days: u32,
}

/// An organization's retention.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RetentionBody {
    organization_id: String,
    /// Days events are kept after their timestamp.
    days: u32,
    /// `organization` (set through this route) or `default` (`AUDIT_RETENTION_DAYS`).
    source: &'static str,
    /// The shortest period that can be set.
    floor_days: u32,
}

fn policy(state: &AppState) -> Result<&crate::RetentionPolicy, ApiError> {
    state
        .inner
        .retention
        .as_deref()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "this service applies no retention policy"))
}

fn body(policy: &crate::RetentionPolicy, organization_id: String) -> RetentionBody {
    let (days, own) = policy.days_for(&organization_id);
    RetentionBody {
        organization_id,
        days,
        source: if own { "organization" } else { "default" },
        floor_days: policy.floor_days(),
    }
}

/// `GET /v1/retention`: how long the organization's events are kept.
#[utoipa::path(get, path = "/v1/retention", tag = "retention",
    params(("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "The retention in force", body = RetentionBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_retention(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let org = organization_only(raw, &principal)?;
    Ok(Json(body(policy(&state)?, org)).into_response())
}

/// `PUT /v1/retention`: sets the organization's own period (never below the floor).
#[utoipa::path(put, path = "/v1/retention", tag = "retention",
    request_body(content = RetentionRequest, content_type = "application/json"),
    responses((status = 200, description = "Set, and recorded as retention.changed", body = RetentionBody),
              (status = 400, description = "Below the floor, or not a number of days", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put_retention(
    State(state): State<AppState>,
    principal: Principal,
    body_bytes: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::Admin)?;
    let request: RetentionRequest = super::subjects::json_body(&body_bytes)?;
    let org = principal.organization(request.organization_id.as_deref())?;
    let policy = policy(&state)?;
    let previous =
        policy.set(&org, request.days).map_err(|why| ApiError::field(ErrorCode::InvalidParameter, "days", why))?;
    let mut metadata = Object::new();
    metadata.insert("days", Value::Number(f64::from(request.days)));
    metadata.insert("previous_days", Value::Number(f64::from(previous)));
    let record = EventDraft {
        organization_id: org.clone(),
        event_type: "retention.changed".into(),
        action: Some(Action::Update),
        actor_type: Some(ActorType::ApiKey),
        actor_id: Some(principal.actor_id()),
        resource_type: Some("retention".into()),
        resource_id: Some(org.clone()),
        metadata: Some(metadata.into()),
        ..Default::default()
    };
    state.service().capture_durable(record).await.map_err(|e| {
        ApiError::internal(ErrorCode::StorageUnavailable, "the change is made but could not be recorded", e)
    })?;
    Ok(Json(body(policy, org)).into_response())
}
