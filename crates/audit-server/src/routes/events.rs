//! `/v1/events`: ingest (one event or a batch, all validated first), queries,
//! single events.

use std::time::Instant;

use audit_core::event::{Action, EventDraft, InputError, Problem, ValidatedEvent, ValidationError};
use audit_core::filter::AuditEventFilter;
use audit_core::json::{self, NumberPolicy, Object, Value};
use audit_service::CaptureError;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::params::{FILTER_PARAMS, bad, filter_from, params};
use super::{MAX_BATCH_EVENTS, MAX_BODY_BYTES};
use crate::AppState;
use crate::auth::Principal;
use crate::body;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// Bodies up to this size are parsed where they arrive (well under a
/// millisecond); larger ones on a blocking thread.
const PARSE_ON_ASYNC_THREAD_BYTES: usize = 64 * 1024;

pub(crate) fn capture_error(e: CaptureError, index: Option<usize>) -> ApiError {
    let at = |field: &str| match index {
        Some(i) => format!("events[{i}].{field}"),
        None => field.to_owned(),
    };
    match e {
        CaptureError::Invalid(v) if v.is_too_large() => {
            ApiError::field(ErrorCode::PayloadTooLarge, at(&v.field), v.to_string())
        }
        CaptureError::Invalid(v) => ApiError::field(ErrorCode::InvalidEvent, at(&v.field), v.to_string()),
        CaptureError::QueueFull { .. } => ApiError::new(ErrorCode::QueueFull, "the audit queue is full; retry later"),
        CaptureError::IdempotencyConflict { key } => ApiError::field(
            ErrorCode::IdempotencyConflict,
            at("idempotency_key"),
            format!("key {key:?} was already used for a different event"),
        ),
        CaptureError::Storage { message: why, .. } => {
            ApiError::internal(ErrorCode::StorageUnavailable, "storage is unavailable; nothing was stored", why)
        }
        CaptureError::Stopped => ApiError::new(ErrorCode::ServiceStopped, "the service is shutting down"),
        other => ApiError::internal(ErrorCode::Internal, "capture failed", other),
    }
}

/// What a read record says of its filter, and how many events it returned
/// (`None` while an export is still streaming).
pub(crate) fn filter_details(
    f: &AuditEventFilter,
    count: Option<u64>,
    protection: Option<&audit_service::Protection>,
) -> Object {
    let mut o = Object::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            o.insert(k, Value::String(v));
        }
    };
    put("project_id", f.project_id.clone());
    put("event_category", f.event_category.map(|c| c.to_string()));
    put("event_type", f.event_type.clone());
    put("action", f.action.map(|a| a.to_string()));
    put("actor_id", f.actor_id.clone());
    match (protection, &f.actor_email) {
        // The record of a lookup must not store the address it looked up.
        (Some(p), Some(email)) => put("actor_email_token", Some(p.email_token(&f.organization_id, email))),
        _ => put("actor_email", f.actor_email.clone()),
    }
    put("resource_id", f.resource_id.clone());
    put("start_time", f.start_time.map(|t| t.to_string()));
    put("end_time", f.end_time.map(|t| t.to_string()));
    put("severity", f.severity.map(|s| s.to_string()));
    put("actor_type", f.actor_type.map(|a| a.to_string()));
    put("resource_type", f.resource_type.clone());
    if let Some(n) = count {
        o.insert("result_count", Value::Number(n as f64));
    }
    o
}

/// The events of a `POST /v1/events`, all validated, whether to wait for
/// durability, and whether the body was an array; or the error and how
/// many events it refused.
async fn parse_post(
    state: &AppState,
    principal: &Principal,
    raw: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Vec<ValidatedEvent>, bool, bool), (u64, ApiError)> {
    let one = |e: ApiError| (1, e);
    let p = params(raw, &["wait"]).map_err(one)?;
    let durable = match p.get("wait").map(String::as_str) {
        None | Some("durable") => true,
        Some("none") => false,
        Some(_) => return Err(one(bad("wait", "must be durable or none"))),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        return Err(one(ApiError::new(ErrorCode::UnsupportedMediaType, "the body must be application/json")));
    }
    let timeout = state.body_timeout();
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| {
            one(ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the body did not arrive within {} s", timeout.as_secs_f64()),
            ))
        })?
        .map_err(|_| {
            one(ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is over {MAX_BODY_BYTES} bytes")))
        })?;
    // An oversized batch is refused before it is parsed (a body of 8 MiB of
    // `[0,0,…]` would otherwise cost many times its size in memory).
    if let Some(n) = json::count_array_items(&bytes)
        && n > MAX_BATCH_EVENTS
    {
        return Err(too_many_events(n));
    }
    // Reading is linear but not free: a large body is read on a blocking
    // thread, so that a few of them cannot hold the async threads that
    // answer everyone else.
    let default_org = principal.organization(None).ok();
    let limits = state.service().config().limits;
    let read = if bytes.len() > PARSE_ON_ASYNC_THREAD_BYTES {
        let body = bytes.clone();
        tokio::task::spawn_blocking(move || read_events(&body, default_org.as_deref(), &limits))
            .await
            .map_err(|e| one(ApiError::internal(ErrorCode::Internal, "the body could not be parsed", e)))?
    } else {
        read_events(&bytes, default_org.as_deref(), &limits)
    };
    let (events, batch) = match read {
        Ok(read) => read,
        Err(BodyError::Json(e)) => return Err(one(ApiError::new(ErrorCode::InvalidJson, e.to_string()))),
        Err(BodyError::Empty) => {
            return Err(one(ApiError::field(ErrorCode::InvalidEvent, "events", "the array is empty")));
        }
        Err(BodyError::TooMany(n)) => return Err(too_many_events(n)),
        Err(BodyError::Invalid { items, index, error }) => {
            let refused = items as u64;
            // Without an organization in the event, the token's (or its
            // absence) is the reason.
            if error.field == "organization_id" && matches!(error.problem, Problem::Missing) {
                principal.organization(None).map_err(|e| (refused, e))?;
            }
            return Err((refused, capture_error(CaptureError::Invalid(error), index)));
        }
    };
    let refused = events.len() as u64;
    for event in &events {
        principal.organization(Some(event.organization_id())).map_err(|e| (refused, e))?;
    }
    Ok((events, durable, batch))
}

/// The refusal of a batch of `n` events, over the limit.
fn too_many_events(n: usize) -> (u64, ApiError) {
    let why = format!("at most {MAX_BATCH_EVENTS} events per request");
    (n as u64, ApiError::field(ErrorCode::PayloadTooLarge, "events", why))
}

/// Why a `POST /v1/events` body was refused as a whole.
enum BodyError {
    /// Not I-JSON (anywhere in the body: this wins over event errors).
    Json(audit_core::json::JsonError),
    /// An empty array.
    Empty,
    /// More than [`MAX_BATCH_EVENTS`] items.
    TooMany(usize),
    /// An event that does not validate: the first one, its index in an
    /// array, and how many the body held.
    Invalid { items: usize, index: Option<usize>, error: ValidationError },
}

/// The events of a body (one event or an array of them), each read in one
/// pass from its bytes and validated under `limits`, and whether the body
/// was an array. The whole body is checked as JSON first, so a JSON error
/// anywhere wins over an invalid event, as when it was parsed whole.
fn read_events(
    bytes: &[u8],
    default_org: Option<&str>,
    limits: &audit_core::event::Limits,
) -> Result<(Vec<ValidatedEvent>, bool), BodyError> {
    let (items, batch) = match json::array_items(bytes, NumberPolicy::Exact).map_err(BodyError::Json)? {
        Some(items) => (items, true),
        None => (std::iter::once(0..bytes.len()).collect(), false),
    };
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(BodyError::TooMany(items.len()));
    }
    let count = items.len();
    let mut events = Vec::with_capacity(count);
    for (i, range) in items.into_iter().enumerate() {
        let invalid = |error| BodyError::Invalid { items: count, index: batch.then_some(i), error };
        let draft = match EventDraft::from_json_in(&bytes[range], default_org) {
            Ok(draft) => draft,
            Err(InputError::Invalid(e)) => return Err(invalid(e)),
            Err(InputError::Json(e)) => return Err(BodyError::Json(e)),
            Err(e) => {
                return Err(invalid(ValidationError {
                    field: "event".into(),
                    problem: Problem::Invalid(e.to_string()),
                }));
            }
        };
        events.push(draft.validate(limits).map_err(invalid)?);
    }
    Ok((events, batch))
}

/// `POST /v1/events`: one event or an array; all validated before any is stored.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    params(("wait" = Option<String>, Query, description = "`durable` (default): 201 with receipts once stored; `none`: 202 once accepted")),
    request_body(content = serde_json::Value, description = "An event input object, or an array of up to 1000", content_type = "application/json"),
    responses((status = 201, description = "Stored (durable receipts)", body = body::Receipts),
              (status = 202, description = "Accepted, not yet durable", body = body::Accepted),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn post_events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Scope::Ingest)?;
    let (events, durable, batch) = match parse_post(&state, &principal, raw, &headers, body).await {
        Ok(parsed) => parsed,
        Err((refused, e)) => {
            // Every refusal is counted (SPEC §4), like the service's own.
            state.service().note_rejected_invalid(refused);
            return Err(e);
        }
    };
    let started = Instant::now();
    if !durable {
        let mut accepted = Vec::new();
        for (i, e) in events.into_iter().enumerate() {
            let a = state.service().capture_validated(e).await.map_err(|e| capture_error(e, batch.then_some(i)))?;
            accepted.push(body::AcceptedEvent { event_id: a.event_id });
        }
        metrics::counter!("audit_http_events_accepted_total").increment(accepted.len() as u64);
        return Ok((StatusCode::ACCEPTED, Json(body::Accepted { accepted })).into_response());
    }
    let mut pending = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        pending
            .push(state.service().submit_validated_durable(e).await.map_err(|e| capture_error(e, batch.then_some(i)))?);
    }
    let mut receipts = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        receipts.push(body::ReceiptBody::from(&p.await.map_err(|e| capture_error(e, batch.then_some(i)))?));
    }
    metrics::histogram!("audit_http_ingest_seconds").record(started.elapsed().as_secs_f64());
    Ok((StatusCode::CREATED, Json(body::Receipts { receipts })).into_response())
}

/// `GET /v1/events`: one page of a §8 query.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("organization_id" = Option<String>, Query,), ("project_id" = Option<String>, Query,), ("event_category" = Option<String>, Query,),
           ("event_type" = Option<String>, Query,), ("action" = Option<String>, Query,), ("severity" = Option<String>, Query,),
           ("actor_type" = Option<String>, Query,), ("actor_id" = Option<String>, Query,), ("actor_email" = Option<String>, Query,),
           ("resource_type" = Option<String>, Query,), ("resource_id" = Option<String>, Query,),
           ("start_time" = Option<String>, Query, description = "RFC 3339, inclusive"), ("end_time" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("limit" = Option<u32>, Query, description = "1..=1000, default 100"), ("offset" = Option<u32>, Query, description = "at most 10000"),
           ("order" = Option<String>, Query, description = "asc (default) or desc"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "One page of events, each exactly as stored", body = body::EventsPage),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let filter = filter_from(&params(raw, FILTER_PARAMS)?, &principal)?;
    let page = state.service().query_events(&filter).await?;
    let count = page.events.len() as u64;
    let body = body::EventsPage {
        events: page.events.iter().map(|e| body::raw_event(e.to_line())).collect(),
        next_cursor: page.next_cursor,
        indexed_through: page.indexed_through,
    };
    state
        .record_read(
            &principal,
            &filter.organization_id,
            "audit_log.queried",
            Action::Read,
            filter_details(&filter, Some(count), state.service().protection().map(|p| p.as_ref())),
        )
        .await;
    Ok(Json(body).into_response())
}

/// The event with this id in `org`'s log (revealed, or with `stored` as
/// stored), or a 404 — also for an event a viewer token's pin hides.
pub(crate) async fn event_or_404(
    state: &AppState,
    principal: &Principal,
    org: &str,
    event_id: &str,
    stored: bool,
) -> Result<audit_core::stored::StoredEvent, ApiError> {
    if !audit_core::stored::is_uuid_v7(event_id) {
        return Err(ApiError::new(ErrorCode::NotFound, "not found"));
    }
    let found = if stored {
        state.service().find_stored_event(org, event_id).await?
    } else {
        state.find_event(org, event_id).await?
    };
    if let Some(event) = found {
        return if principal.may_see(&event)? {
            Ok(event)
        } else {
            Err(ApiError::new(ErrorCode::NotFound, "not found"))
        };
    }
    // An id from before a prune is not an unknown id: say why it is gone.
    let cut = state.service().store().prune_cut(org).await?;
    Err(ApiError::new(
        ErrorCode::NotFound,
        if cut > 0 {
            format!("not found; events before sequence {cut} of this log were removed under retention")
        } else {
            "not found".to_owned()
        },
    ))
}

/// `GET /v1/events/{event_id}`.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path,), ("organization_id" = Option<String>, Query,),
        ("form" = Option<String>, Query, description = "`revealed` (default): personal values decrypted, or \"[erased]\"; `stored`: exactly as stored and hashed (sealed values as `enc:v1:…`), to check its hash independently")),
    responses((status = 200, description = "The event", body = body::StoredEventBody), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    principal: Principal,
    Path(event_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let p = params(raw, &["organization_id", "form"])?;
    let org = principal.organization(p.get("organization_id").map(String::as_str))?;
    let stored = match p.get("form").map(String::as_str) {
        None | Some("revealed") => false,
        Some("stored") => true,
        Some(_) => return Err(bad("form", "must be revealed or stored")),
    };
    let event = event_or_404(&state, &principal, &org, &event_id, stored).await?;
    let mut details = Object::new();
    details.insert("event_id", Value::String(event_id));
    state.record_read(&principal, &org, "audit_log.queried", Action::Read, details).await;
    Ok(Json(body::raw_event(event.to_line())).into_response())
}
