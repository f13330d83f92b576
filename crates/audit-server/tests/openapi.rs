//! `/openapi.json` describes what the API really sends: every route is
//! called, and each real response body is validated against the schema
//! the document gives for that route and status.

use std::sync::Arc;

use audit_index::sqlite::SqliteIndex;
use audit_server::{AppState, KeyStore, Scope, app};
use audit_service::AuditService;
use audit_storage::local::LocalStore;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Checks `value` against an OpenAPI 3.1 schema (the subset utoipa emits:
/// `$ref`, `type` (or a list with `null`), `properties`/`required`,
/// `additionalProperties`, `items`, `oneOf`/`allOf`/`anyOf`, `enum`).
/// Objects with `properties` and no `additionalProperties` admit no other
/// member: a member the document does not describe is a failure.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: unknown schema {r}"));
        }
        return check(doc, target, value, at);
    }
    for (key, all) in [("allOf", true), ("oneOf", false), ("anyOf", false)] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let results: Vec<_> = options.iter().map(|s| check(doc, s, value, at)).collect();
            let ok = if all { results.iter().all(Result::is_ok) } else { results.iter().any(Result::is_ok) };
            if !ok {
                return Err(format!("{at}: fails {key}: {results:?}"));
            }
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let matches = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.iter().any(|t| matches(t)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Value::Object(o) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !o.contains_key(name) {
                return Err(format!("{at}: required member {name} is missing"));
            }
        }
        for (name, v) in o {
            match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties")) {
                (Some(s), _) => check(doc, s, v, &format!("{at}.{name}"))?,
                (None, Some(Value::Bool(false))) => return Err(format!("{at}: member {name} is not allowed")),
                (None, Some(extra)) if extra.is_object() => check(doc, extra, v, &format!("{at}.{name}"))?,
                (None, _) if properties.is_some() => {
                    return Err(format!("{at}: member {name} is not in the documented schema"));
                }
                (None, _) => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

struct Api {
    router: axum::Router,
    doc: Value,
    checked: Vec<String>,
}

impl Api {
    /// Calls a route and validates the JSON body against the document's
    /// schema for that route (`template`), method and status.
    async fn call(
        &mut self,
        method: Method,
        uri: &str,
        template: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method.clone()).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e})"));
        let m = method.as_str().to_ascii_lowercase();
        let response_doc = &self.doc["paths"][template][&m]["responses"][status.as_str()];
        let schema = &response_doc["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{m} {template}: no schema documented for status {status}");
        if let Err(e) = check(&self.doc, schema, &value, "body") {
            panic!("{m} {template} {status}: {e}\n{value}");
        }
        self.checked.push(format!("{m} {template} {}", status.as_u16()));
        (status, value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_response_schema_validates_a_real_response() {
    let dir = tempfile::tempdir().unwrap();
    let signer = audit_core::note::SignerKey::from_seed("audit.test", [7; 32]).unwrap();
    let master = audit_keystore::LocalMaster(audit_core::personal::MasterKey::from_bytes([9; 32]));
    let subject_keys =
        audit_keystore::sqlite::SqliteSubjectKeys::open(&dir.path().join("keys"), Arc::new(master)).await.unwrap();
    let protection = Arc::new(audit_service::Protection::new(Arc::new(subject_keys), Vec::new()));
    let service = AuditService::builder(Arc::new(LocalStore::new(dir.path().join("data"))))
        .protection(protection)
        .index(Arc::new(SqliteIndex::open(&dir.path().join("index.sqlite3")).unwrap()))
        .checkpoints(audit_service::CheckpointConfig {
            origin: "audit.test".into(),
            signer: signer.clone(),
            interval: std::time::Duration::from_millis(1),
            mirror: None,
        })
        .start()
        .await;
    let keys = KeyStore::open(dir.path());
    let token = keys.create("org-a", &[Scope::Ingest, Scope::Read, Scope::Verify]).unwrap().token;
    let admin = keys.create("org-a", &[Scope::Admin]).unwrap().token;
    let router = app(
        AppState::new(service.clone(), dir.path(), false, None)
            .with_checkpoint_key(signer, "audit.test".into())
            .with_retention(std::sync::Arc::new(
                audit_server::RetentionPolicy::load(dir.path().join("retention.json"), 2555, 365).unwrap(),
            )),
        true,
    );
    let doc: Value = serde_json::from_str(&audit_server::openapi_json()).unwrap();
    let mut api = Api { router, doc, checked: Vec::new() };
    let t = Some(token.as_str());

    let event = r#"{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u-1","resource_id":"t-1","metadata":{"k":1},"request":{"method":"GET","status":200}}"#;
    let (s, receipts) =
        api.call(Method::POST, "/v1/events", "/v1/events", t, Some(&format!("[{event},{event}]"))).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = receipts["receipts"][0]["event_id"].as_str().unwrap().to_owned();
    let other = r#"{"event_type":"user.logout","action":"logout","actor_type":"user"}"#;
    assert_eq!(
        api.call(Method::POST, "/v1/events?wait=none", "/v1/events", t, Some(other)).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(api.call(Method::POST, "/v1/events", "/v1/events", t, Some("{")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(api.call(Method::POST, "/v1/events", "/v1/events", None, Some(event)).await.0, StatusCode::UNAUTHORIZED);
    service.flush().await;
    service.wait_for_index().await;

    let (s, page) = api.call(Method::GET, "/v1/events?limit=10", "/v1/events", t, None).await;
    assert_eq!((s, page["events"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));
    assert_eq!(api.call(Method::GET, "/v1/events?limit=5000", "/v1/events", t, None).await.0, StatusCode::BAD_REQUEST);
    let template = "/v1/events/{event_id}";
    assert_eq!(api.call(Method::GET, &format!("/v1/events/{id}"), template, t, None).await.0, StatusCode::OK);
    let missing = "/v1/events/01937a2b-3c4d-7e5f-8a6b-000000000000";
    assert_eq!(api.call(Method::GET, missing, template, t, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.call(Method::GET, "/v1/integrity", "/v1/integrity", t, None).await.0, StatusCode::OK);
    let (s, status) = api.call(Method::GET, "/v1/integrity/status", "/v1/integrity/status", t, None).await;
    assert_eq!((s, status["last_run"].is_null()), (StatusCode::OK, true), "no scheduled run in this test");
    // Wait for a checkpoint covering both events, then prove against it.
    for _ in 0..200 {
        if service.store().latest_checkpoint("org-a").await.unwrap().is_some_and(|(size, _)| size >= 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let proof = format!("/v1/events/{id}/proof?tree_size=2");
    assert_eq!(api.call(Method::GET, &proof, "/v1/events/{event_id}/proof", t, None).await.0, StatusCode::OK);
    let bad_proof = format!("/v1/events/{id}/proof?tree_size=0");
    assert_eq!(
        api.call(Method::GET, &bad_proof, "/v1/events/{event_id}/proof", t, None).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.call(Method::GET, "/v1/consistency?from=1&to=2", "/v1/consistency", t, None).await.0,
        StatusCode::OK
    );
    let bad = "/v1/consistency?from=3&to=2";
    assert_eq!(api.call(Method::GET, bad, "/v1/consistency", t, None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(api.call(Method::GET, "/v1/audit/health", "/v1/audit/health", t, None).await.0, StatusCode::OK);
    let (s, h) = api.call(Method::GET, "/v1/audit/health", "/v1/audit/health", Some(&admin), None).await;
    assert!(s == StatusCode::OK && h["counters"].is_object() && h["service"].is_object(), "{h}");
    assert_eq!(api.call(Method::GET, "/health", "/health", None, None).await.0, StatusCode::OK);
    assert_eq!(api.call(Method::GET, "/health/ready", "/health/ready", None, None).await.0, StatusCode::OK);
    let export_err = "/v1/export?format=xml";
    let exporter = keys.create("org-a", &[Scope::Export]).unwrap().token;
    assert_eq!(api.call(Method::GET, export_err, "/v1/export", Some(&exporter), None).await.0, StatusCode::BAD_REQUEST);

    // Personal data: holds, erasure (refused under a hold, then done).
    let a = Some(admin.as_str());
    let hold_body = r#"{"email":"ada@example.com","reason":"litigation 7"}"#;
    let (s, hold) = api.call(Method::POST, "/v1/legal-holds", "/v1/legal-holds", a, Some(hold_body)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(api.call(Method::GET, "/v1/legal-holds", "/v1/legal-holds", a, None).await.0, StatusCode::OK);
    let erase = r#"{"email":"ada@example.com"}"#;
    let (s, refused) = api.call(Method::POST, "/v1/subjects/erase", "/v1/subjects/erase", a, Some(erase)).await;
    assert_eq!((s, refused["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("legal_hold")));
    let bad = r#"{"email":"a@b","actor_id":"u"}"#;
    assert_eq!(
        api.call(Method::POST, "/v1/subjects/erase", "/v1/subjects/erase", a, Some(bad)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.call(Method::POST, "/v1/subjects/erase", "/v1/subjects/erase", t, Some(erase)).await.0,
        StatusCode::FORBIDDEN,
        "admin only"
    );
    let lift = format!("/v1/legal-holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(api.call(Method::DELETE, &lift, "/v1/legal-holds/{hold_id}", a, None).await.0, StatusCode::OK);
    assert_eq!(api.call(Method::DELETE, &lift, "/v1/legal-holds/{hold_id}", a, None).await.0, StatusCode::NOT_FOUND);
    let (s, done) = api.call(Method::POST, "/v1/subjects/erase", "/v1/subjects/erase", a, Some(erase)).await;
    assert_eq!((s, done["already_erased"].as_bool()), (StatusCode::OK, Some(true)), "never seen: nothing to destroy");

    // Retention: read, set, refused below the floor.
    assert_eq!(api.call(Method::GET, "/v1/retention", "/v1/retention", t, None).await.0, StatusCode::OK);
    let (s, set) = api.call(Method::PUT, "/v1/retention", "/v1/retention", a, Some(r#"{"days":3650}"#)).await;
    assert_eq!((s, set["days"].as_u64()), (StatusCode::OK, Some(3650)));
    let low = r#"{"days":1}"#;
    assert_eq!(api.call(Method::PUT, "/v1/retention", "/v1/retention", a, Some(low)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(api.call(Method::PUT, "/v1/retention", "/v1/retention", t, Some(low)).await.0, StatusCode::FORBIDDEN);

    // The tlog-tiles API: 200s are bytes and notes; its errors are JSON.
    let tile = "/v1/logs/{organization_id}/tile/{path}";
    assert_eq!(api.call(Method::GET, "/v1/logs/org-a/tile/00/000", tile, t, None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(api.call(Method::GET, "/v1/logs/org-a/tile/5/000", tile, t, None).await.0, StatusCode::NOT_FOUND);
    let checkpoint = "/v1/logs/{organization_id}/checkpoint";
    assert_eq!(api.call(Method::GET, "/v1/logs/org-z/checkpoint", checkpoint, t, None).await.0, StatusCode::NOT_FOUND);

    // The console's routes: who a token is, viewer tokens, download links.
    let (s, me) = api.call(Method::GET, "/v1/whoami", "/v1/whoami", t, None).await;
    assert_eq!(
        (s, me["kind"].as_str(), me["organization_id"].as_str()),
        (StatusCode::OK, Some("api_key"), Some("org-a"))
    );
    assert!(me["checkpoint_key"].as_str().is_some_and(|k| k.starts_with("audit.test/org-a+")), "{me}");
    let ask = r#"{"ttl_seconds":60,"filter":{"project_id":"p-1"},"frame_ancestors":["https://app.example.com"]}"#;
    let (s, minted) = api.call(Method::POST, "/v1/viewer-tokens", "/v1/viewer-tokens", a, Some(ask)).await;
    assert_eq!(s, StatusCode::CREATED, "{minted}");
    let viewer = minted["token"].as_str().unwrap().to_owned();
    let (s, me) = api.call(Method::GET, "/v1/whoami", "/v1/whoami", Some(&viewer), None).await;
    assert_eq!(
        (s, me["kind"].as_str(), &me["viewer"]["filter"]["project_id"]),
        (StatusCode::OK, Some("viewer_token"), &Value::from("p-1"))
    );
    let bad = r#"{"filter":{"actor_email":"a@b"}}"#;
    assert_eq!(
        api.call(Method::POST, "/v1/viewer-tokens", "/v1/viewer-tokens", a, Some(bad)).await.0,
        StatusCode::BAD_REQUEST
    );
    let link_ask = r#"{"params":{"format":"csv"}}"#;
    let (s, link) =
        api.call(Method::POST, "/v1/export-links", "/v1/export-links", Some(&exporter), Some(link_ask)).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let bad = r#"{"params":{"format":"xml"}}"#;
    assert_eq!(
        api.call(Method::POST, "/v1/export-links", "/v1/export-links", Some(&exporter), Some(bad)).await.0,
        StatusCode::BAD_REQUEST
    );
    let gone = "/v1/export-links/0123456789abcdef";
    assert_eq!(api.call(Method::GET, gone, "/v1/export-links/{link_id}", None, None).await.0, StatusCode::NOT_FOUND);
    let stored = format!("/v1/events/{id}?form=stored");
    assert_eq!(api.call(Method::GET, &stored, template, t, None).await.0, StatusCode::OK);
    let bad = format!("/v1/events/{id}?form=pretty");
    assert_eq!(api.call(Method::GET, &bad, template, t, None).await.0, StatusCode::BAD_REQUEST);

    // Every JSON route of the document was exercised.
    let documented: Vec<String> = api.doc["paths"].as_object().unwrap().keys().cloned().collect();
    for path in documented {
        if path == "/openapi.json" || path == "/v1/checkpoint" {
            continue; // not JSON bodies (the document itself; a signed note)
        }
        assert!(api.checked.iter().any(|c| c.split(' ').nth(1) == Some(path.as_str())), "{path} was not exercised");
    }
    service.stop().await;
}

#[test]
fn the_checker_refuses_what_the_document_does_not_say() {
    let doc: Value = serde_json::from_str(&audit_server::openapi_json()).unwrap();
    let receipt = serde_json::json!({"$ref": "#/components/schemas/ReceiptBody"});
    let good = serde_json::json!({"event_id": "e", "sequence": 1, "timestamp": "t", "hash": "h"});
    assert!(check(&doc, &receipt, &good, "r").is_ok());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("hash");
    assert!(check(&doc, &receipt, &missing, "r").unwrap_err().contains("hash is missing"));
    let mut extra = good.clone();
    extra["secret"] = Value::from("x");
    assert!(check(&doc, &receipt, &extra, "r").unwrap_err().contains("secret"));
    let mut wrong = good;
    wrong["sequence"] = Value::from("one");
    assert!(check(&doc, &receipt, &wrong, "r").is_err());
}
