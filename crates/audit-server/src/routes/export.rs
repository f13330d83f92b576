//! `GET /v1/export`: a streamed download of every matching event.

use audit_core::json::Value;
use audit_service::ExportFormat;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::events::filter_details;
use super::params::{FILTER_PARAMS, bad, filter_from, params};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// `GET /v1/export`: a streamed download.
#[utoipa::path(get, path = "/v1/export", tag = "export",
    params(("format" = String, Query, description = "json, jsonl or csv"),
        ("with_proof" = Option<bool>, Query, description = "jsonl only: an evidence bundle (the signed checkpoint, each event followed by its inclusion proof)")),
    responses((status = 200, description = "The export, streamed, with Content-Disposition (json: an array of stored events; jsonl: one stored event a line; csv: the documented columns). A failure mid-way aborts the transfer"), (status = 400, body = crate::error::ErrorBody),
        (status = 409, description = "with_proof: the log has no signed checkpoint yet", body = crate::error::ErrorBody),
        (status = 503, description = "`overloaded`: AUDIT_MAX_EXPORTS exports are streaming already; retry later", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_export(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    export(state, principal, raw).await
}

/// What an export request asks for, checked.
pub(crate) struct ExportRequest {
    format: ExportFormat,
    with_proof: bool,
    filter: audit_core::filter::AuditEventFilter,
}

/// Checks an export's scope and parameters without starting it (the
/// console's download links are checked when they are made).
pub(crate) fn parse_export(principal: &Principal, raw: Option<String>) -> Result<ExportRequest, ApiError> {
    principal.require(Scope::Export)?;
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.extend(["format", "with_proof"]);
    let p = params(raw, &allowed)?;
    let format = ExportFormat::parse(p.get("format").map(String::as_str).unwrap_or(""))
        .ok_or_else(|| bad("format", "must be json, jsonl or csv"))?;
    let with_proof = match p.get("with_proof").map(String::as_str) {
        None | Some("false") => false,
        Some("true") if format == ExportFormat::Jsonl => true,
        Some("true") => return Err(bad("with_proof", "goes with format=jsonl")),
        Some(_) => return Err(bad("with_proof", "must be true or false")),
    };
    for paging in ["limit", "offset", "cursor"] {
        if p.contains_key(paging) {
            return Err(bad(paging, "exports are not paged: they stream every matching event"));
        }
    }
    let filter = filter_from(&p, principal)?;
    Ok(ExportRequest { format, with_proof, filter })
}

/// Streams the export `raw` asks for, as `principal`.
pub(crate) async fn export(state: AppState, principal: Principal, raw: Option<String>) -> Result<Response, ApiError> {
    let ExportRequest { format, with_proof, filter } = parse_export(&principal, raw)?;
    if with_proof {
        let store = state.service().store();
        let found = store
            .latest_checkpoint(&filter.organization_id)
            .await
            .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the checkpoints", e))?;
        if found.is_none() {
            return Err(ApiError::new(
                ErrorCode::NoCheckpoint,
                "the log has no signed checkpoint yet; one is written within a second of a commit",
            ));
        }
    }
    let ext = match format {
        ExportFormat::Json => "json",
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Csv => "csv",
    };
    let filename = format!("audit-{}.{ext}", filter.organization_id.replace(':', "_"));
    let mut details = filter_details(&filter, None, state.service().protection().map(|p| p.as_ref()));
    details.insert("format", Value::String(ext.into()));
    if with_proof {
        details.insert("with_proof", Value::Bool(true));
    }
    let slot = state.export_slot()?;
    let record = crate::stream::ReadRecord { principal, details, slot };
    let body = if with_proof {
        let key = state.verifier_for(&filter.organization_id);
        crate::stream::evidence_body(state.clone(), filter, key, record)
    } else {
        crate::stream::export_body(state.clone(), filter, format, record)
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        body,
    )
        .into_response())
}
