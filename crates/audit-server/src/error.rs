//! API errors: `{"error": {"code", "message", "field"}}`, with one table from
//! code to HTTP status. A 4xx is something the caller got wrong; a 5xx is an
//! outage or a bug, never bad input. Internals never leak into messages.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not I-JSON.
    InvalidJson,
    /// An event failed validation (the field is named).
    InvalidEvent,
    /// A query parameter is missing, unknown or invalid (the field is named).
    InvalidParameter,
    /// The body or batch is over a limit.
    PayloadTooLarge,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// The content type is not `application/json`.
    UnsupportedMediaType,
    /// No valid bearer token.
    Unauthorized,
    /// The token lacks the scope the route needs.
    Forbidden,
    /// No such event or route, or an organization the token may not see.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The idempotency key was used for different content.
    IdempotencyConflict,
    /// Proofs were asked for but the log has no signed checkpoint yet
    /// (a running service writes one within a second of a commit).
    NoCheckpoint,
    /// The queue is full (reject policy); retry after the given seconds.
    QueueFull,
    /// This token sent more requests than its rate allows; retry after a second.
    RateLimited,
    /// Too many requests are running; retry after a second.
    Overloaded,
    /// Storage failed; nothing was acknowledged.
    StorageUnavailable,
    /// The service is shutting down.
    ServiceStopped,
    /// The query index failed or disagrees with storage.
    IndexUnavailable,
    /// The subject (or its organization) is under a legal hold: no erasure.
    LegalHold,
    /// Personal data protection is off: nothing is sealed to erase.
    ProtectionOff,
    /// The event was removed under retention (a prune record covers it).
    Pruned,
    /// A bug.
    Internal,
}

impl ErrorCode {
    /// The HTTP status of a code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidEvent | ErrorCode::InvalidParameter => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::IdempotencyConflict
            | ErrorCode::NoCheckpoint
            | ErrorCode::LegalHold
            | ErrorCode::ProtectionOff => StatusCode::CONFLICT,
            ErrorCode::Pruned => StatusCode::GONE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::QueueFull
            | ErrorCode::Overloaded
            | ErrorCode::StorageUnavailable
            | ErrorCode::ServiceStopped
            | ErrorCode::IndexUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// The member or parameter concerned.
    pub field: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), field: None }
    }

    /// An error naming a field.
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), field: Some(field.into()) }
    }

    /// An outage or bug: logged in full, answered without internals.
    pub fn internal(code: ErrorCode, what: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "{what}");
        ApiError::new(code, what.to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self.code, ErrorCode::QueueFull | ErrorCode::RateLimited | ErrorCode::Overloaded) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A query the index could not answer: a bad filter is the caller's (400),
/// anything else an outage (503) whose details stay in the log.
impl From<audit_service::QueryError> for ApiError {
    fn from(e: audit_service::QueryError) -> Self {
        match e {
            audit_service::QueryError::Filter(f) => ApiError::field(ErrorCode::InvalidParameter, f.field, f.problem),
            audit_service::QueryError::NoIndex => {
                ApiError::new(ErrorCode::IndexUnavailable, "this service has no query index")
            }
            other => ApiError::internal(ErrorCode::IndexUnavailable, "the query could not be answered", other),
        }
    }
}

/// A proof out of range is the caller's (400); storage trouble an outage.
impl From<audit_service::proofs::ProofRequestError> for ApiError {
    fn from(e: audit_service::proofs::ProofRequestError) -> Self {
        match e {
            audit_service::proofs::ProofRequestError::OutOfRange(why) => {
                ApiError::field(ErrorCode::InvalidParameter, "tree_size", why)
            }
            audit_service::proofs::ProofRequestError::Pruned(why) => ApiError::new(ErrorCode::Pruned, why),
            other => ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the log for a proof", other),
        }
    }
}

/// Storage that cannot be read: an outage; the storage error's text is
/// logged, never sent.
impl From<audit_storage::StorageError> for ApiError {
    fn from(e: audit_storage::StorageError) -> Self {
        ApiError::internal(ErrorCode::StorageUnavailable, "storage is unavailable", e)
    }
}
