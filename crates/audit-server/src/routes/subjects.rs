//! `POST /v1/subjects/erase` and `/v1/legal-holds` (SPEC §9), admin only.
//! Bodies are small JSON objects read with serde (unknown members refused);
//! every change is recorded in the organization's log by the service.

use audit_service::{ErasureError, ErasureTarget, Requester};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::params::organization_only;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// What `POST /v1/subjects/erase` takes: exactly one subject.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseRequest {
    /// The organization (optional with an organization-bound token).
    organization_id: Option<String>,
    /// The subject's email.
    email: Option<String>,
    /// The subject's actor id (a user without an email).
    actor_id: Option<String>,
    /// Personal data without a subject, of every month ended by this time (RFC 3339).
    unattributed_before: Option<String>,
}

/// What an erasure did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErasureBody {
    organization_id: String,
    /// True when nothing was left to destroy (erased before, or never seen).
    already_erased: bool,
    keys_destroyed: u64,
    /// Stored events whose personal values now read `"[erased]"`.
    affected_events: u64,
    /// The `subject.erased` record's receipt.
    record: crate::body::ReceiptBody,
}

/// What `POST /v1/legal-holds` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldRequest {
    organization_id: Option<String>,
    /// Only this subject's email (else the whole organization).
    email: Option<String>,
    /// Only this subject's actor id.
    actor_id: Option<String>,
    /// Why (recorded).
    reason: String,
}

/// A legal hold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HoldBody {
    id: String,
    /// `organization` or `subject`.
    scope: String,
    /// The subject's blind token (never its name); null for the organization.
    subject_token: Option<String>,
    reason: String,
    placed_at: String,
}

/// The organization's holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HoldsBody {
    holds: Vec<HoldBody>,
}

impl From<audit_keystore::LegalHold> for HoldBody {
    fn from(h: audit_keystore::LegalHold) -> Self {
        HoldBody {
            id: h.id,
            scope: if h.subject_token.is_some() { "subject" } else { "organization" }.into(),
            subject_token: h.subject_token,
            reason: h.reason,
            placed_at: h.placed_at,
        }
    }
}

impl From<ErasureError> for ApiError {
    fn from(e: ErasureError) -> Self {
        match e {
            ErasureError::LegalHold(_) => ApiError::new(ErrorCode::LegalHold, e.to_string()),
            ErasureError::NotProtected => ApiError::new(ErrorCode::ProtectionOff, e.to_string()),
            ErasureError::Invalid { field, problem } => ApiError::field(ErrorCode::InvalidParameter, field, problem),
            other => ApiError::internal(ErrorCode::StorageUnavailable, "the erasure could not be completed", other),
        }
    }
}

/// A JSON object body (serde would also fill a struct from an array: refused).
pub(super) fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(ErrorCode::InvalidJson, "the body must be a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the body: {e}")))
}

fn requester(principal: &Principal) -> Requester {
    Requester { actor_type: audit_core::event::ActorType::ApiKey, actor_id: principal.actor_id() }
}

/// `POST /v1/subjects/erase`: destroys a subject's key (crypto-shredding).
#[utoipa::path(post, path = "/v1/subjects/erase", tag = "personal data",
    request_body(content = EraseRequest, content_type = "application/json"),
    responses((status = 200, description = "Erased, or nothing left to erase (already_erased)", body = ErasureBody),
              (status = 409, description = "legal_hold, or protection_off", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn post_erase(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::Admin)?;
    let request: EraseRequest = json_body(&body)?;
    let org = principal.organization(request.organization_id.as_deref())?;
    let target = match (request.email, request.actor_id, request.unattributed_before) {
        (Some(e), None, None) => ErasureTarget::Email(e),
        (None, Some(id), None) => ErasureTarget::ActorId(id),
        (None, None, Some(t)) => ErasureTarget::UnattributedBefore(
            audit_core::Timestamp::parse_rfc3339(&t)
                .map_err(|e| ApiError::field(ErrorCode::InvalidParameter, "unattributed_before", e.to_string()))?,
        ),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "name exactly one of email, actor_id, unattributed_before",
            ));
        }
    };
    let report = state.service().erase_subject(&org, &target, &requester(&principal)).await?;
    let record = crate::body::ReceiptBody::from(&report.receipt);
    Ok(Json(ErasureBody {
        organization_id: org,
        already_erased: report.already_erased(),
        keys_destroyed: report.keys_destroyed as u64,
        affected_events: report.affected_events,
        record,
    })
    .into_response())
}

/// `POST /v1/legal-holds`: places a hold (organization-wide or per subject).
#[utoipa::path(post, path = "/v1/legal-holds", tag = "personal data",
    request_body(content = HoldRequest, content_type = "application/json"),
    responses((status = 201, description = "Placed", body = HoldBody),
              (status = 409, description = "protection_off", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn post_hold(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::Admin)?;
    let request: HoldRequest = json_body(&body)?;
    let org = principal.organization(request.organization_id.as_deref())?;
    if request.reason.trim().is_empty() {
        return Err(ApiError::field(ErrorCode::InvalidParameter, "reason", "say why the hold is placed"));
    }
    let subject = match (request.email, request.actor_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(ErrorCode::InvalidParameter, "name email or actor_id, not both"));
        }
        (Some(e), None) => Some(ErasureTarget::Email(e)),
        (None, Some(id)) => Some(ErasureTarget::ActorId(id)),
        (None, None) => None,
    };
    let hold = state.service().place_hold(&org, subject.as_ref(), &request.reason, &requester(&principal)).await?;
    Ok((StatusCode::CREATED, Json(HoldBody::from(hold))).into_response())
}

/// `GET /v1/legal-holds`: the organization's holds.
#[utoipa::path(get, path = "/v1/legal-holds", tag = "personal data",
    params(("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "The holds, oldest first", body = HoldsBody),
              (status = 409, description = "protection_off", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_holds(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Admin)?;
    let org = organization_only(raw, &principal)?;
    let holds = state.service().holds(&org).await?;
    Ok(Json(HoldsBody { holds: holds.into_iter().map(HoldBody::from).collect() }).into_response())
}

/// `DELETE /v1/legal-holds/{hold_id}`: lifts a hold.
#[utoipa::path(delete, path = "/v1/legal-holds/{hold_id}", tag = "personal data",
    params(("hold_id" = String, Path,), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "Lifted", body = HoldBody),
              (status = 409, description = "protection_off", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_hold(
    State(state): State<AppState>,
    principal: Principal,
    Path(hold_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Admin)?;
    let org = organization_only(raw, &principal)?;
    match state.service().lift_hold(&org, &hold_id, &requester(&principal)).await? {
        Some(hold) => Ok(Json(HoldBody::from(hold)).into_response()),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no hold {hold_id} in {org}"))),
    }
}
