//! The v1 handlers. Each one: authenticate, check the scope, resolve the
//! organization (another organization is a 404), do the work through the
//! service, answer JSON. Reads of the log are themselves audited.

use std::collections::HashMap;
use std::time::Instant;

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, Category, EventDraft, Severity};
use audit_core::filter::{AuditEventFilter, Cursor, Order};
use audit_core::json::{self, NumberPolicy, Object, Value};
use audit_service::{CaptureError, ExportFormat, QueryError, TimeRange};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// Most events in one request.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], audit_core::canonical::to_canonical(value)).into_response()
}

/// Query parameters, each at most once, only the ones a route knows.
fn params(raw: Option<String>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("malformed query string: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::field(ErrorCode::InvalidParameter, k, "is not a parameter of this route"));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::field(ErrorCode::InvalidParameter, k, "is given more than once"));
        }
    }
    Ok(out)
}

const FILTER_PARAMS: &[&str] = &[
    "organization_id",
    "project_id",
    "event_category",
    "event_type",
    "action",
    "severity",
    "actor_type",
    "actor_id",
    "actor_email",
    "resource_type",
    "resource_id",
    "start_time",
    "end_time",
    "limit",
    "offset",
    "order",
    "cursor",
];

/// Scope check, parameters (`organization_id` plus `others`) and the
/// organization of a request, in that order.
fn scoped(
    principal: &Principal,
    scope: Scope,
    raw: Option<String>,
    others: &[&str],
) -> Result<(HashMap<String, String>, String), ApiError> {
    principal.require(scope)?;
    let mut allowed = vec!["organization_id"];
    allowed.extend_from_slice(others);
    let p = params(raw, &allowed)?;
    let org = principal.organization(p.get("organization_id").map(String::as_str))?;
    Ok((p, org))
}

/// The organization of a route whose only parameter is `organization_id`.
fn organization_only(raw: Option<String>, principal: &Principal) -> Result<String, ApiError> {
    let p = params(raw, &["organization_id"])?;
    principal.organization(p.get("organization_id").map(String::as_str))
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(ErrorCode::InvalidParameter, field, message)
}

fn vocab<T>(
    p: &HashMap<String, String>,
    field: &str,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<Option<T>, ApiError> {
    p.get(field).map(|v| parse(v).ok_or_else(|| bad(field, format!("must be one of: {}", expected())))).transpose()
}

fn time(p: &HashMap<String, String>, field: &str) -> Result<Option<Timestamp>, ApiError> {
    p.get(field).map(|v| Timestamp::parse_rfc3339(v).map_err(|e| bad(field, e.to_string()))).transpose()
}

fn number(p: &HashMap<String, String>, field: &str) -> Result<Option<u32>, ApiError> {
    p.get(field).map(|v| v.parse::<u32>().map_err(|_| bad(field, "must be a non-negative integer"))).transpose()
}

/// The §8 filter from query parameters.
fn filter_from(p: &HashMap<String, String>, principal: &Principal) -> Result<AuditEventFilter, ApiError> {
    let organization_id = principal.organization(p.get("organization_id").map(String::as_str))?;
    let order = match p.get("order") {
        Some(o) => Order::parse(o).ok_or_else(|| bad("order", "must be asc or desc"))?,
        None => Order::Asc,
    };
    let cursor = p
        .get("cursor")
        .map(|c| Cursor::decode(c).ok_or_else(|| bad("cursor", "is not a cursor from a previous page")))
        .transpose()?;
    let text = |f: &str| p.get(f).cloned();
    let filter = AuditEventFilter {
        organization_id,
        project_id: text("project_id"),
        event_category: vocab(p, "event_category", Category::parse, Category::expected)?,
        event_type: text("event_type"),
        action: vocab(p, "action", Action::parse, Action::expected)?,
        severity: vocab(p, "severity", Severity::parse, Severity::expected)?,
        actor_type: vocab(p, "actor_type", ActorType::parse, ActorType::expected)?,
        actor_id: text("actor_id"),
        actor_email: text("actor_email"),
        resource_type: text("resource_type"),
        resource_id: text("resource_id"),
        start_time: time(p, "start_time")?,
        end_time: time(p, "end_time")?,
        limit: number(p, "limit")?,
        offset: number(p, "offset")?,
        order,
        cursor,
    };
    filter.check().map_err(|e| bad(e.field, e.problem))?;
    Ok(filter)
}

fn capture_error(e: CaptureError, index: Option<usize>) -> ApiError {
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
pub(crate) fn filter_details(f: &AuditEventFilter, count: Option<u64>) -> Object {
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
    put("actor_email", f.actor_email.clone());
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
) -> Result<(Vec<EventDraft>, bool, bool), (u64, ApiError)> {
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
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        one(ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is over {MAX_BODY_BYTES} bytes")))
    })?;
    let value = json::parse(&bytes, NumberPolicy::Exact)
        .map_err(|e| one(ApiError::new(ErrorCode::InvalidJson, e.to_string())))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    if items.is_empty() {
        return Err(one(ApiError::field(ErrorCode::InvalidEvent, "events", "the array is empty")));
    }
    let refused = items.len() as u64;
    if items.len() > MAX_BATCH_EVENTS {
        return Err((
            refused,
            ApiError::field(
                ErrorCode::PayloadTooLarge,
                "events",
                format!("at most {MAX_BATCH_EVENTS} events per request"),
            ),
        ));
    }
    // Everything is checked before anything is stored.
    let limits = state.service().config().limits;
    let mut drafts = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let index = batch.then_some(i);
        let mut item = item;
        if let Value::Object(obj) = &mut item {
            match obj.get("organization_id") {
                None => obj
                    .insert("organization_id", Value::String(principal.organization(None).map_err(|e| (refused, e))?)),
                Some(Value::String(named)) => {
                    principal.organization(Some(named)).map_err(|e| (refused, e))?;
                }
                Some(_) => {}
            }
        }
        let invalid = |e| (refused, capture_error(CaptureError::Invalid(e), index));
        let draft = EventDraft::from_value(item).map_err(invalid)?;
        draft.clone().validate(&limits).map_err(invalid)?;
        drafts.push(draft);
    }
    Ok((drafts, durable, batch))
}

/// `POST /v1/events`: one event or an array; all validated before any is stored.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    params(("wait" = Option<String>, Query, description = "`durable` (default): 201 with receipts once stored; `none`: 202 once accepted")),
    request_body(content = serde_json::Value, description = "An event input object, or an array of up to 1000", content_type = "application/json"),
    responses((status = 201, description = "Stored: `{\"receipts\": [{event_id, sequence, timestamp, hash, deduplicated?}]}`"),
              (status = 202, description = "Accepted, not yet durable: `{\"accepted\": [{event_id}]}`"),
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
    let (drafts, durable, batch) = match parse_post(&state, &principal, raw, &headers, body).await {
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
        for (i, d) in drafts.into_iter().enumerate() {
            let a = state.service().capture(d).await.map_err(|e| capture_error(e, batch.then_some(i)))?;
            let mut o = Object::new();
            o.insert("event_id", Value::String(a.event_id));
            accepted.push(Value::Object(o));
        }
        metrics::counter!("audit_http_events_accepted_total").increment(accepted.len() as u64);
        let mut o = Object::new();
        o.insert("accepted", Value::Array(accepted));
        return Ok(json_response(StatusCode::ACCEPTED, &Value::Object(o)));
    }
    let mut pending = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.into_iter().enumerate() {
        pending.push(state.service().submit_durable(d).await.map_err(|e| capture_error(e, batch.then_some(i)))?);
    }
    let mut receipts = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        receipts.push(Value::Object(p.wait().await.map_err(|e| capture_error(e, batch.then_some(i)))?.to_object()));
    }
    metrics::histogram!("audit_http_ingest_seconds").record(started.elapsed().as_secs_f64());
    let mut o = Object::new();
    o.insert("receipts", Value::Array(receipts));
    Ok(json_response(StatusCode::CREATED, &Value::Object(o)))
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Filter(f) => bad(f.field, f.problem),
        QueryError::NoIndex => ApiError::new(ErrorCode::IndexUnavailable, "this service has no query index"),
        other => ApiError::internal(ErrorCode::IndexUnavailable, "the query could not be answered", other),
    }
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
    responses((status = 200, description = "`{\"events\": [...], \"next_cursor\": string|null, \"indexed_through\": n}`"),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_events(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let filter = filter_from(&params(raw, FILTER_PARAMS)?, &principal)?;
    let page = state.service().query_events(&filter).await.map_err(query_error)?;
    let events =
        page.events.iter().map(|e| json::parse(&e.to_line(), NumberPolicy::Exact).unwrap_or(Value::Null)).collect();
    let mut o = Object::new();
    o.insert("events", Value::Array(events));
    o.insert("next_cursor", page.next_cursor.clone().map_or(Value::Null, Value::String));
    o.insert("indexed_through", Value::Number(page.indexed_through as f64));
    state
        .record_read(
            &principal,
            &filter.organization_id,
            "audit_log.queried",
            Action::Read,
            filter_details(&filter, Some(page.events.len() as u64)),
        )
        .await;
    Ok(json_response(StatusCode::OK, &Value::Object(o)))
}

/// The stored event with this id in `org`'s log, or a 404.
async fn event_or_404(
    state: &AppState,
    org: &str,
    event_id: &str,
) -> Result<audit_core::stored::StoredEvent, ApiError> {
    if !audit_core::stored::is_uuid_v7(event_id) {
        return Err(ApiError::new(ErrorCode::NotFound, "not found"));
    }
    state
        .find_event(org, event_id)
        .await
        .map_err(query_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "not found"))
}

/// `GET /v1/events/{event_id}`.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path,), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "The stored event"), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    principal: Principal,
    Path(event_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::Read)?;
    let org = organization_only(raw, &principal)?;
    let event = event_or_404(&state, &org, &event_id).await?;
    let mut details = Object::new();
    details.insert("event_id", Value::String(event_id));
    state.record_read(&principal, &org, "audit_log.queried", Action::Read, details).await;
    let value = json::parse(&event.to_line(), NumberPolicy::Exact).unwrap_or(Value::Null);
    Ok(json_response(StatusCode::OK, &value))
}

/// `GET /v1/export`: a streamed download.
#[utoipa::path(get, path = "/v1/export", tag = "export",
    params(("format" = String, Query, description = "json, jsonl or csv"),
        ("with_proof" = Option<bool>, Query, description = "jsonl only: an evidence bundle (the signed checkpoint, each event followed by its inclusion proof)")),
    responses((status = 200, description = "The export, streamed, with Content-Disposition"), (status = 400, body = crate::error::ErrorBody),
        (status = 409, description = "with_proof: the log has no signed checkpoint yet", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_export(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
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
    let filter = filter_from(&p, &principal)?;
    if with_proof {
        let store = state.service().store();
        let found = store
            .latest_checkpoint(&filter.organization_id)
            .await
            .map_err(|e| ApiError::new(ErrorCode::StorageUnavailable, format!("cannot read the checkpoints: {e}")))?;
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
    let mut details = filter_details(&filter, None);
    details.insert("format", Value::String(ext.into()));
    if with_proof {
        details.insert("with_proof", Value::Bool(true));
    }
    let record = crate::stream::ReadRecord { principal, details };
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

/// `GET /v1/integrity`: the §6 report; one verification per organization
/// and range at a time, shared by concurrent callers.
#[utoipa::path(get, path = "/v1/integrity", tag = "integrity",
    params(("start_time" = Option<String>, Query,), ("end_time" = Option<String>, Query,), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "`{valid, organization_id, total_events, first_sequence, last_sequence, errors, warnings}`")),
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
    }
    Ok(json_response(StatusCode::OK, &report.to_value()))
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
        Some((_, note)) => {
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        None => Err(ApiError::new(ErrorCode::NotFound, "no checkpoint yet")),
    }
}

fn proof_error(e: audit_service::proofs::ProofRequestError) -> ApiError {
    match e {
        audit_service::proofs::ProofRequestError::OutOfRange(why) => {
            ApiError::field(ErrorCode::InvalidParameter, "tree_size", why)
        }
        other => ApiError::internal(ErrorCode::StorageUnavailable, "cannot read the log for a proof", other),
    }
}

fn size_param(p: &HashMap<String, String>, field: &str) -> Result<u64, ApiError> {
    let v = p.get(field).ok_or_else(|| bad(field, "is required"))?;
    v.parse::<u64>().map_err(|_| bad(field, "must be a non-negative integer"))
}

/// `GET /v1/events/{event_id}/proof?tree_size=N`: the event's inclusion proof.
#[utoipa::path(get, path = "/v1/events/{event_id}/proof", tag = "integrity",
    params(("event_id" = String, Path,), ("tree_size" = u64, Query, description = "size of the tree, e.g. a checkpoint's"), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "`{leaf_index, tree_size, leaf_hash, proof: [hex...], root}` (RFC 9162; leaf input = the event hash)"),
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
    let event = event_or_404(&state, &org, &event_id).await?;
    let proof =
        audit_service::proofs::inclusion_proof(state.service().store().as_ref(), &org, event.sequence, tree_size)
            .await
            .map_err(proof_error)?;
    Ok(json_response(StatusCode::OK, &proof))
}

/// `GET /v1/consistency?from=M&to=N`: the consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/consistency", tag = "integrity",
    params(("from" = u64, Query,), ("to" = u64, Query,), ("organization_id" = Option<String>, Query,)),
    responses((status = 200, description = "`{from, to, proof: [hex...], from_root, to_root}` (RFC 9162)"), (status = 400, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_consistency_proof(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (p, org) = scoped(&principal, Scope::Read, raw, &["from", "to"])?;
    let (from, to) = (size_param(&p, "from")?, size_param(&p, "to")?);
    let proof = audit_service::proofs::consistency_proof(state.service().store().as_ref(), &org, from, to)
        .await
        .map_err(proof_error)?;
    Ok(json_response(StatusCode::OK, &proof))
}

/// `GET /health`: liveness.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
pub(crate) async fn get_health() -> Response {
    let mut o = Object::new();
    o.insert("status", Value::String("ok".into()));
    json_response(StatusCode::OK, &Value::Object(o))
}

/// `GET /v1/audit/health`: the service's state, for the token's organization.
#[utoipa::path(get, path = "/v1/audit/health", tag = "health",
    responses((status = 200, description = "`{running, queue_size, recent_events, last_flush, storage, index, indexed_through, committed_through}` for the token's organization; admin tokens also get `counters` and `service` (service-wide `queue_size`, `recent_events`, `last_flush`, `open_logs`, `refusing_appends`)")),
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
    let num = |v: Option<u64>| v.map_or(Value::Null, |n| Value::Number(n as f64));
    let time = |t: Option<Timestamp>| t.map_or(Value::Null, |t| Value::String(t.to_string()));
    let mut o = Object::new();
    o.insert("running", Value::Bool(h.running));
    o.insert("queue_size", Value::Number(mine.queue_size as f64));
    o.insert("recent_events", Value::Number(mine.recent_events as f64));
    o.insert("last_flush", time(mine.last_flush));
    let storage = if mine.refusing_appends.is_some() { "refusing_appends" } else { "ok" };
    o.insert("storage", Value::String(storage.into()));
    o.insert("index", Value::String(if h.index_error.is_some() { "degraded".into() } else { "ok".into() }));
    o.insert("committed_through", num(mine.committed_through));
    o.insert("indexed_through", num(mine.indexed_through.or(state.indexed_through(&org).await)));
    // Service-wide figures are an operator's (admin scope): one tenant
    // learns nothing of another's volume or timing.
    if principal.require(Scope::Admin).is_ok() {
        let mut counters = Object::new();
        for (name, value) in h.counters.named() {
            counters.insert(name, Value::Number(value as f64));
        }
        o.insert("counters", Value::Object(counters));
        let mut service = Object::new();
        service.insert("queue_size", Value::Number(h.queue_size as f64));
        service.insert("recent_events", Value::Number(h.recent_events as f64));
        service.insert("last_flush", time(h.last_flush));
        service.insert("open_logs", Value::Number(h.open_logs as f64));
        let refusing: Vec<Value> = h.refusing_appends().map(|(org, _)| Value::String(org.to_owned())).collect();
        service.insert("refusing_appends", Value::Array(refusing));
        o.insert("service", Value::Object(service));
    }
    Ok(json_response(StatusCode::OK, &Value::Object(o)))
}
