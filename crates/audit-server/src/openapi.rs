//! The OpenAPI 3 description, generated from the handlers' annotations.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "AgentTrace Audit API", description = "Tamper-evident audit log: ingest, query, export, verify (SPEC §11)."),
    paths(
        crate::routes::events::post_events,
        crate::routes::events::get_events,
        crate::routes::events::get_event,
        crate::routes::export::get_export,
        crate::routes::integrity::get_integrity,
        crate::routes::integrity::get_checkpoint,
        crate::routes::integrity::get_inclusion_proof,
        crate::routes::integrity::get_consistency_proof,
        crate::routes::health::get_health,
        crate::routes::health::get_ready,
        crate::routes::health::get_audit_health,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::error::ErrorCode)),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(crate) async fn serve_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
