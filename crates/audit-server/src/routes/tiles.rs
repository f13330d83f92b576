//! The C2SP tlog-tiles read API of each organization's log, under
//! `/v1/logs/{organization_id}/`: `checkpoint`, `tile/<L>/<N>[.p/<W>]` and
//! `tile/entries/<N>[.p/<W>]` (c2sp.org/tlog-tiles). Anyone holding these
//! and the log's verifier key can check the tree and compute every proof
//! with off-the-shelf tlog clients. By default they need a read token of
//! the organization; with `AUDIT_PUBLIC_TILES=true` they are public, for
//! witnesses and monitors.

use audit_core::tiles::TileId;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// Tiles are immutable (a path names one content): cacheable for ever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The checkpoint changes: no caching beyond a few seconds (C2SP).
const MUTABLE: &str = "no-cache";

fn organization(principal: Option<&Principal>, org: &str) -> Result<String, ApiError> {
    match principal {
        Some(p) => {
            p.require(Scope::Read)?;
            p.organization(Some(org))
        }
        None if audit_core::event::is_valid_tenant_id(org) => Ok(org.to_owned()),
        None => Err(ApiError::new(ErrorCode::NotFound, "not found")),
    }
}

async fn checkpoint(state: &AppState, principal: Option<&Principal>, org: &str) -> Result<Response, ApiError> {
    let org = organization(principal, org)?;
    let latest = state
        .service()
        .store()
        .latest_checkpoint(&org)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the checkpoint", e))?;
    let Some((size, note)) = latest else {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no checkpoint of {org} yet")));
    };
    let note = cosigned(state, &org, size, note).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, MUTABLE)], note)
        .into_response())
}

async fn tile(state: &AppState, principal: Option<&Principal>, org: &str, path: &str) -> Result<Response, ApiError> {
    // Tiles hold every event's hash: more than a pinned viewer may see.
    if let Some(p) = principal {
        p.refuse_viewer()?;
    }
    let org = organization(principal, org)?;
    let id = TileId::parse(&format!("tile/{path}"))
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("tile/{path}: {e}")))?;
    let store = state.service().store();
    // Only tiles of a signed tree are served: none beyond the newest
    // checkpoint (a partial tile the tree has not reached yet is not one).
    let size = store
        .latest_checkpoint(&org)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the checkpoint", e))?
        .map_or(0, |(size, _)| size);
    let beyond =
        || ApiError::new(ErrorCode::NotFound, format!("{id} is not a tile of the signed tree of {size} events"));
    let widest = TileId::in_tree(id.kind, id.index, size).ok_or_else(beyond)?;
    if id.width > widest.width || (id.is_full() != widest.is_full() && id.is_full()) {
        return Err(beyond());
    }
    // A partial tile may have been superseded by a wider or the full tile
    // (C2SP lets a log delete it then): its content is their prefix.
    let (found, mut content) = store
        .tile_at_least(&org, &id)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the tile", e))?
        .ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("{id} is not stored (no checkpoint had that size)"))
        })?;
    if found != id {
        content.truncate(id.content_len());
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, IMMUTABLE)],
        content,
    )
        .into_response())
}

/// `GET /v1/logs/{organization_id}/checkpoint` with a read token.
#[utoipa::path(get, path = "/v1/logs/{organization_id}/checkpoint", tag = "tiles",
    params(("organization_id" = String, Path,)),
    responses((status = 200, description = "The newest checkpoint, a C2SP signed note", content_type = "text/plain"),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_log_checkpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    checkpoint(&state, Some(&principal), &org).await
}

/// `GET /v1/logs/{organization_id}/tile/{path}` with a read token.
#[utoipa::path(get, path = "/v1/logs/{organization_id}/tile/{path}", tag = "tiles",
    params(("organization_id" = String, Path,), ("path" = String, Path, description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, N in 3-digit groups (x001/x234/067)")),
    responses((status = 200, description = "A tile or entry bundle (c2sp.org/tlog-tiles)", content_type = "application/octet-stream"),
              (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_log_tile(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    tile(&state, Some(&principal), &org, &path).await
}

/// The checkpoint without a token (`AUDIT_PUBLIC_TILES=true`).
pub(crate) async fn get_public_checkpoint(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    checkpoint(&state, None, &org).await
}

/// A tile without a token (`AUDIT_PUBLIC_TILES=true`).
pub(crate) async fn get_public_tile(
    State(state): State<AppState>,
    Path((org, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    tile(&state, None, &org, &path).await
}

/// The checkpoint note with the witnesses' cosignatures of it appended
/// (C2SP tlog-cosignature: extra signature lines, ignored by verifiers
/// that do not know the witnesses' keys).
pub(crate) async fn cosigned(state: &AppState, org: &str, size: u64, mut note: Vec<u8>) -> Result<Vec<u8>, ApiError> {
    let lines = state
        .service()
        .store()
        .cosignatures(org, size)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the cosignatures", e))?;
    for line in lines {
        // Only well-formed signature lines (the store holds what witnesses sent, checked when received).
        if line.starts_with("\u{2014} ".as_bytes()) && line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n')
        {
            note.extend_from_slice(&line);
        }
    }
    Ok(note)
}
