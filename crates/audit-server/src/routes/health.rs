//! `/health` (liveness) and `/v1/audit/health` (per organization).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::params::organization_only;
use crate::AppState;
use crate::auth::Principal;
use crate::body;
use crate::error::ApiError;
use crate::keys::Scope;

/// `GET /health`: liveness.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive", body = body::Liveness)))]
pub(crate) async fn get_health() -> Json<body::Liveness> {
    Json(body::Liveness { status: "ok" })
}

/// `GET /health/ready`: readiness. 503 while the service stops or any log
/// refuses appends (a load balancer should send writes elsewhere); `/health`
/// stays the liveness check.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready: accepting events, every log it has opened accepts appends", body = body::Readiness),
              (status = 503, description = "Not ready, with the reasons", body = body::Readiness)))]
pub(crate) async fn get_ready(State(state): State<AppState>) -> Response {
    let h = state.service().health();
    let mut reasons = Vec::new();
    if !h.running {
        reasons.push("the service is stopping".to_owned());
    }
    // Which organizations is an operator's business, not an anonymous caller's.
    let refusing = h.refusing_appends().count();
    if refusing > 0 {
        reasons.push(format!("{refusing} log(s) refuse appends (see /v1/audit/health with an admin token)"));
    }
    let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let ready = reasons.is_empty();
    (status, Json(body::Readiness { status: if ready { "ready" } else { "not_ready" }, reasons })).into_response()
}

/// `GET /v1/audit/health`: the service's state, for the token's organization.
#[utoipa::path(get, path = "/v1/audit/health", tag = "health",
    responses((status = 200, description = "The token's organization's figures; admin tokens also get the service-wide `counters` and `service`", body = body::AuditHealth)),
    security(("bearer" = [])))]
pub(crate) async fn get_audit_health(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let org = organization_only(raw, &principal)?;
    let h = state.service().health();
    // Everything a tenant sees is its own organization's: keyed by its id, exactly.
    let mine = h.organization(&org);
    let time = |t: Option<audit_core::Timestamp>| t.map(|t| t.to_string());
    // Service-wide figures are an operator's (admin scope): one tenant
    // learns nothing of another's volume or timing.
    let admin = principal.require(Scope::Admin).is_ok();
    let indexed_through = match mine.indexed_through {
        Some(n) => Some(n),
        None => state.indexed_through(&org).await,
    };
    Ok(Json(body::AuditHealth {
        running: h.running,
        queue_size: mine.queue_size,
        recent_events: mine.recent_events,
        last_flush: time(mine.last_flush),
        storage: if mine.refusing_appends.is_some() { "refusing_appends" } else { "ok" },
        index: if h.index_error.is_some() { "degraded" } else { "ok" },
        committed_through: mine.committed_through,
        indexed_through,
        counters: admin.then(|| h.counters.named().into_iter().collect()),
        service: admin.then(|| body::ServiceFigures {
            queue_size: h.queue_size as u64,
            recent_events: h.recent_events,
            last_flush: time(h.last_flush),
            open_logs: h.open_logs as u64,
            refusing_appends: h.refusing_appends().map(|(org, _)| org.to_owned()).collect(),
        }),
    })
    .into_response())
}
