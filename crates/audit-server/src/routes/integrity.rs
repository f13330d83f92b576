//! `/v1/integrity`, `/v1/checkpoint`, inclusion and consistency proofs.

use audit_core::event::Action;
use audit_core::json::{Object, Value};
use audit_service::TimeRange;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::events::event_or_404;
use super::params::{organization_only, scoped, size_param, time};
use crate::AppState;
use crate::auth::Principal;
use crate::body;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// `GET /v1/integrity`: the §6 report; one verification per organization
/// and range at a time, shared by concurrent callers.
#[utoipa::path(get, path = "/v1/integrity", tag = "integrity",
    params(("start_time" = Option<String>, Query,), ("end_time" = Option<String>, Query,), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "The verification report (SPEC §6)", body = body::ReportBody),
              (status = 404, description = "No log for the organization", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_integrity(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (p, org) = scoped(&principal, Scope::Verify, raw, &["start_time", "end_time"])?;
    let range = TimeRange { since: time(&p, "start_time")?, until: time(&p, "end_time")? };
    let exists = state
        .service()
        .has_log(&org)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read storage", e))?;
    if !exists {
        // "valid" would be a promise about events that do not exist.
        return Err(ApiError::new(ErrorCode::NotFound, format!("no log for organization {org}: nothing to verify")));
    }
    let report = state.verify_shared(&org, range).await?;
    let mut details = Object::new();
    details.insert("valid", Value::Bool(report.valid));
    details.insert("total_events", Value::Number(report.total_events as f64));
    state.record_read(&principal, &org, "audit_log.verified", Action::Read, details).await;
    if !report.valid {
        metrics::counter!("audit_verify_failures_total").increment(1);
        let detail = crate::schedule::failure_summary(&report);
        state.service().alert(audit_service::AlertKind::VerificationFailed, &org, &detail);
    }
    Ok(Json(body::ReportBody::from(&report)).into_response())
}

/// `GET /v1/integrity/status`: the verification schedule and this log's
/// last scheduled run.
#[utoipa::path(get, path = "/v1/integrity/status", tag = "integrity",
    params(("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "The schedule and the last scheduled run", body = body::IntegrityStatus)),
    security(("bearer" = [])))]
pub(crate) async fn get_integrity_status(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Verify)?;
    let org = organization_only(raw, &principal)?;
    let (schedule, full_schedule, last_run) = state.scheduled_run(&org);
    let witnesses = state.service().witness_status(&org).into_iter().map(body::WitnessBody::from).collect();
    Ok(Json(body::IntegrityStatus { organization_id: org, schedule, full_schedule, last_run, witnesses })
        .into_response())
}

/// `GET /v1/checkpoint`: the newest signed checkpoint of the organization's log.
#[utoipa::path(get, path = "/v1/checkpoint", tag = "integrity",
    params(("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "C2SP signed note (text/plain): origin, tree size, base64 root hash, signature", content_type = "text/plain"),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_checkpoint(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let org = organization_only(raw, &principal)?;
    let latest = state
        .service()
        .store()
        .latest_checkpoint(&org)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the checkpoint", e))?;
    match latest {
        Some((size, note)) => {
            let note = super::tiles::cosigned(&state, &org, size, note).await?;
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        None => Err(ApiError::new(ErrorCode::NotFound, "no checkpoint yet")),
    }
}

/// `GET /v1/events/{event_id}/proof?tree_size=N`: the event's inclusion proof.
#[utoipa::path(get, path = "/v1/events/{event_id}/proof", tag = "integrity",
    params(("event_id" = String, Path,), ("tree_size" = u64, Query, description = "size of the tree, e.g. a checkpoint's"), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "RFC 9162 inclusion proof; leaf input = the event hash", body = body::InclusionProofBody),
              (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_inclusion_proof(
    State(state): State<AppState>,
    principal: Principal,
    Path(event_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (p, org) = scoped(&principal, Scope::Read, raw, &["tree_size"])?;
    let tree_size = size_param(&p, "tree_size")?;
    let event = event_or_404(&state, &principal, &org, &event_id, true).await?;
    let _turn = state.heavy_turn().await;
    let proof =
        audit_service::proofs::inclusion_proof(state.service().store().as_ref(), &org, event.sequence, tree_size)
            .await?;
    Ok(Json(body::InclusionProofBody::from(proof)).into_response())
}

/// `GET /v1/consistency?from=M&to=N`: the consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/consistency", tag = "integrity",
    params(("from" = u64, Query,), ("to" = u64, Query,), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "RFC 9162 consistency proof", body = body::ConsistencyProofBody), (status = 400, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_consistency_proof(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (p, org) = scoped(&principal, Scope::Read, raw, &["from", "to"])?;
    let (from, to) = (size_param(&p, "from")?, size_param(&p, "to")?);
    let _turn = state.heavy_turn().await;
    let proof = audit_service::proofs::consistency_proof(state.service().store().as_ref(), &org, from, to).await?;
    Ok(Json(body::ConsistencyProofBody::from(proof)).into_response())
}
