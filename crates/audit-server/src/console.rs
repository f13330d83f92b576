//! The web console (SPEC §17): static files embedded in the binary at
//! build time, served under `/console` with a strict Content Security
//! Policy. The pages only call the public `/v1` API.
//!
//! - `/console` (and `/console/`): the console; framing refused.
//! - `/console/embed/<view>`: the same application in its embedded form,
//!   framable only by the origins the viewer token named (`<view>` is the
//!   token's signed embed claim, not the token).
//! - `/console/assets/<file>`: scripts, styles, icon.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// An embedded file: name, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, content_type: $type, bytes: include_bytes!(concat!("../console/", $name)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("verify.js", "text/javascript; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

const INDEX: &[u8] = include_bytes!("../console/index.html");

/// Everything but the framing rule: scripts and styles only from this
/// server (no inline script or style), requests only to it, no plugins,
/// forms posting nowhere.
const CSP_BASE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(get_console))
        .route("/console/", get(get_console))
        .route("/console/assets/{name}", get(get_asset))
        .route("/console/embed/{view}", get(get_embed))
}

fn security_headers(frame_ancestors: &str) -> [(HeaderName, HeaderValue); 5] {
    let csp = format!("{CSP_BASE}; frame-ancestors {frame_ancestors}");
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin")),
    ]
}

async fn get_console() -> Response {
    let mut response = (security_headers("'none'"), page(INDEX, "full")).into_response();
    // For browsers without CSP frame-ancestors.
    response.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The page with its mode set on the `<html>` element (`full` or `embed`):
/// data, not script, so no inline script is needed.
fn page(template: &[u8], mode: &str) -> ([(HeaderName, HeaderValue); 1], Vec<u8>) {
    let html = String::from_utf8_lossy(template).replacen("data-mode=\"full\"", &format!("data-mode=\"{mode}\""), 1);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], html.into_bytes())
}

async fn get_embed(State(state): State<AppState>, Path(view): Path<String>) -> Response {
    match state.viewer_keys().embed_origins(&view) {
        Ok(origins) => {
            let ancestors = if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") };
            (security_headers(&ancestors), page(INDEX, "embed")).into_response()
        }
        Err(e) => {
            let mut response = (
                StatusCode::NOT_FOUND,
                security_headers("'none'"),
                [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))],
                format!(
                    "This viewer link is not valid: {}. Ask the application that showed it for a new one.\n",
                    e.message
                ),
            )
                .into_response();
            response.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            response
        }
    }
}

async fn get_asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => {
            (security_headers("'none'"), [(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type))], a.bytes)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such console file").into_response(),
    }
}
