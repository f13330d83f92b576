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
        crate::routes::integrity::get_integrity_status,
        crate::routes::integrity::get_checkpoint,
        crate::routes::integrity::get_inclusion_proof,
        crate::routes::integrity::get_consistency_proof,
        crate::routes::tiles::get_log_checkpoint,
        crate::routes::tiles::get_log_tile,
        crate::routes::health::get_health,
        crate::routes::health::get_ready,
        crate::routes::health::get_audit_health,
        crate::routes::subjects::post_erase,
        crate::routes::subjects::post_hold,
        crate::routes::subjects::get_holds,
        crate::routes::subjects::delete_hold,
        crate::routes::retention::get_retention,
        crate::routes::retention::put_retention,
        crate::routes::console::get_whoami,
        crate::routes::console::post_viewer_token,
        crate::routes::console::post_export_link,
        crate::routes::console::get_export_link,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::error::ErrorCode)),
    modifiers(&Security, &CommonErrors, &Choices)
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

/// Errors any authenticated `/v1` operation can answer, whatever its own
/// annotation lists: a bad parameter (400), a missing or wrong token (401),
/// a token without the scope (403), a token over its rate (429), and the
/// service over one of its bounds or without its storage (503). A client
/// (or an API fuzzer) can then rely on the description for every status.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr, ResponseBuilder, content::ContentBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            for operation in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                for (status, description) in [
                    ("400", "`invalid_parameter` (the field names it), or an invalid body"),
                    ("401", "`unauthorized`: no token, or not a valid one"),
                    ("403", "`forbidden`: the token lacks the scope or the organization"),
                    ("404", "`not_found`: no such log, event or checkpoint"),
                    ("429", "`rate_limited`: over AUDIT_RATE_LIMIT for this token; see Retry-After"),
                    (
                        "503",
                        "`overloaded`, `queue_full`, `storage_unavailable`, `index_unavailable` or `service_stopped`; see Retry-After where given",
                    ),
                ] {
                    responses.entry(status.to_owned()).or_insert_with(|| error(description));
                }
            }
        }
    }
}

/// Query parameters that take one of a few words get them as an `enum`,
/// so that the description says what the handlers accept.
struct Choices;

impl utoipa::Modify for Choices {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{RefOr, Schema};
        const CHOICES: &[(&str, &[&str])] = &[
            ("order", &["asc", "desc"]),
            ("format", &["json", "jsonl", "csv"]),
            ("wait", &["durable", "none"]),
            ("with_proof", &["true", "false"]),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some((_, words)) = CHOICES.iter().find(|(name, _)| *name == parameter.name) {
                        let schema =
                            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(words.iter().copied()));
                        parameter.schema = Some(RefOr::T(Schema::Object(schema.build())));
                    }
                }
            }
        }
    }
}

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(crate) async fn serve_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
