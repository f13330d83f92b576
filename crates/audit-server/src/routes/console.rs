//! Routes the console (and any other client) uses beyond the §11 core:
//! who a token is (`GET /v1/whoami`), viewer tokens for the embeddable
//! console (`POST /v1/viewer-tokens`, SPEC §17), and single-use export
//! download links (`/v1/export-links`).

use std::collections::BTreeMap;

use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::events::capture_error;
use super::subjects::json_body;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;
use crate::viewer::{MintRequest, Minted};

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WhoAmI {
    /// `api_key`, `viewer_token`, or `development` (`--no-auth`).
    kind: &'static str,
    /// The organization the token reads and writes (null in development: any).
    organization_id: Option<String>,
    /// What it may do.
    scopes: Vec<&'static str>,
    /// The API key's id, for an API key.
    key_id: Option<String>,
    /// For a viewer token: its id, expiry, pinned filter, export right.
    viewer: Option<ViewerInfo>,
    /// The C2SP verifier key the organization's checkpoints are signed
    /// with (null: no organization, or a server without checkpoints).
    checkpoint_key: Option<String>,
}

/// What a viewer token grants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ViewerInfo {
    id: String,
    /// RFC 3339.
    expires_at: String,
    filter: BTreeMap<String, String>,
    export: bool,
}

/// `GET /v1/whoami`: the caller's organization, scopes and kind of token.
#[utoipa::path(get, path = "/v1/whoami", tag = "console",
    params(("organization_id" = Option<String>, Query, description = "without a token (`--no-auth`): the organization whose checkpoint key to give")),
    responses((status = 200, description = "The caller", body = WhoAmI), (status = 400, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_whoami(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = super::params::params(raw, &["organization_id"])?;
    let asked = p.get("organization_id").map(String::as_str);
    // The organization whose checkpoint key the caller gets: its own, or
    // (development) the one it names.
    let key_org = match (&principal.organization_id, asked) {
        (None, None) => None,
        _ => Some(principal.organization(asked)?),
    };
    let kind = match (&principal.viewer, &principal.key_id) {
        (Some(_), _) => "viewer_token",
        (None, Some(_)) => "api_key",
        (None, None) => "development",
    };
    let viewer = principal.viewer.as_ref().map(|g| ViewerInfo {
        id: g.id.clone(),
        expires_at: audit_core::Timestamp::from_micros(g.expires_at as i64 * 1_000_000).to_string(),
        filter: g.pinned.clone(),
        export: g.export,
    });
    Ok(Json(WhoAmI {
        kind,
        organization_id: principal.organization_id.clone(),
        scopes: principal.scopes.iter().map(|s| s.as_str()).collect(),
        key_id: principal.key_id.clone(),
        viewer,
        checkpoint_key: key_org.as_deref().and_then(|o| state.verifier_for(o)).map(|k| k.to_string()),
    })
    .into_response())
}

/// `POST /v1/viewer-tokens`: a short-lived read-only token for one
/// organization, optionally pinned to a filter, with or without export,
/// framable by the origins it names. Recorded as `viewer_token.created`.
#[utoipa::path(post, path = "/v1/viewer-tokens", tag = "console",
    request_body(content = MintRequest, content_type = "application/json"),
    responses((status = 201, description = "The token (shown once) and its embed path", body = Minted),
              (status = 400, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn post_viewer_token(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::Admin)?;
    let ask: MintRequest = json_body(&body)?;
    let org = principal.organization(ask.organization_id.as_deref())?;
    let minted = state.viewer_keys().mint(&org, &principal.actor_id(), &ask)?;
    let mut metadata = Object::new();
    metadata.insert("viewer_token_id", Value::String(minted.id.clone()));
    metadata.insert("expires_at", Value::String(minted.expires_at.clone()));
    metadata.insert("export", Value::Bool(minted.export));
    let mut pinned = Object::new();
    for (k, v) in &minted.filter {
        pinned.insert(k, Value::String(v.clone()));
    }
    metadata.insert("filter", Value::Object(pinned));
    metadata.insert(
        "frame_ancestors",
        Value::Array(minted.frame_ancestors.iter().map(|o| Value::String(o.clone())).collect()),
    );
    let draft = EventDraft {
        organization_id: org,
        event_type: "viewer_token.created".into(),
        action: Some(Action::Create),
        actor_type: Some(if principal.key_id.is_some() { ActorType::ApiKey } else { ActorType::Anonymous }),
        actor_id: Some(principal.actor_id()),
        resource_type: Some("viewer_token".into()),
        resource_id: Some(minted.id.clone()),
        metadata: Some(metadata.into()),
        ..Default::default()
    };
    // A token nobody can account for is not handed out: the record is
    // durable before the answer.
    state.service().capture_durable(draft).await.map_err(|e| capture_error(e, None))?;
    Ok((StatusCode::CREATED, Json(minted)).into_response())
}

/// What `POST /v1/export-links` takes: the query parameters of the
/// `GET /v1/export` it stands for.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportLinkRequest {
    /// E.g. `{"format": "csv", "project_id": "p-1"}`.
    params: BTreeMap<String, String>,
}

/// A download link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ExportLink {
    /// Where to navigate (relative to the server): good once, for a minute, no token needed.
    url: String,
    /// Seconds it stays good.
    expires_in: u64,
}

/// `POST /v1/export-links`: a single-use link (one minute) that streams the
/// export these parameters ask for, so a browser can download it without
/// putting its token in a URL. The parameters are checked now: a bad one is
/// a 400 naming it.
#[utoipa::path(post, path = "/v1/export-links", tag = "export",
    request_body(content = ExportLinkRequest, content_type = "application/json"),
    responses((status = 201, description = "The link", body = ExportLink), (status = 400, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn post_export_link(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::Export)?;
    let ask: ExportLinkRequest = json_body(&body)?;
    let query = serde_urlencoded::to_string(&ask.params)
        .map_err(|e| ApiError::field(ErrorCode::InvalidParameter, "params", e.to_string()))?;
    super::export::parse_export(&principal, Some(query.clone()))?;
    let id = state.tickets().issue(principal, query)?;
    let link =
        ExportLink { url: format!("/v1/export-links/{id}"), expires_in: crate::tickets::LINK_LIFETIME.as_secs() };
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

/// `GET /v1/export-links/{link_id}`: the export, streamed, as its maker.
#[utoipa::path(get, path = "/v1/export-links/{link_id}", tag = "export",
    params(("link_id" = String, Path,)),
    responses((status = 200, description = "The export, as `GET /v1/export` streams it"),
              (status = 404, description = "No such link, or used, or expired", body = crate::error::ErrorBody)))]
pub(crate) async fn get_export_link(
    State(state): State<AppState>,
    Path(link_id): Path<String>,
) -> Result<Response, ApiError> {
    let (principal, query) = state
        .tickets()
        .take(&link_id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such download link (each works once, for a minute)"))?;
    super::export::export(state, principal, Some(query)).await
}
