//! Viewer tokens (SPEC §17) and the console's download links, through the
//! router: a pinned token never sees past its pin, expires, cannot export
//! unless granted, cannot mint; links work once; the console's pages carry
//! their security headers.

use std::sync::Arc;

use audit_index::sqlite::SqliteIndex;
use audit_server::{AppState, KeyStore, Scope, app};
use audit_service::{AuditConfig, AuditService};
use audit_storage::local::LocalStore;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    service: AuditService,
    router: axum::Router,
    admin: String,
    reader: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let index = Arc::new(SqliteIndex::open(&dir.path().join("index.sqlite3")).unwrap());
    let service = AuditService::builder(store).config(AuditConfig::default()).index(index).start().await;
    let keys = KeyStore::open(dir.path());
    let admin = keys.create("org-a", &[Scope::Admin]).unwrap().token;
    let reader = keys.create("org-a", &[Scope::Read]).unwrap().token;
    let router = app(AppState::new(service.clone(), dir.path(), false, None), true);
    Fixture { _dir: dir, service, router, admin, reader }
}

async fn call(
    f: &Fixture,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = f.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Two projects' events, indexed; returns one event id of each.
async fn seed(f: &Fixture) -> (String, String) {
    let event = |project: &str, n: u32| json!({"project_id": project, "event_type": "trace.viewed", "action": "read", "actor_type": "user", "actor_id": format!("u-{n}")});
    let batch: Vec<Value> = (0..3).map(|n| event("p-1", n)).chain((0..2).map(|n| event("p-2", n))).collect();
    let ingest = KeyStore::open(f._dir.path()).create("org-a", &[Scope::Ingest]).unwrap().token;
    let (s, _, body) = call(f, Method::POST, "/v1/events", Some(&ingest), Some(Value::Array(batch))).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let receipts = parse(&body)["receipts"].clone();
    f.service.flush().await;
    f.service.wait_for_index().await;
    (receipts[0]["event_id"].as_str().unwrap().to_owned(), receipts[3]["event_id"].as_str().unwrap().to_owned())
}

async fn mint(f: &Fixture, ask: Value) -> Value {
    let (s, _, body) = call(f, Method::POST, "/v1/viewer-tokens", Some(&f.admin), Some(ask)).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    parse(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_viewer_token_sees_only_its_pin_and_nothing_else() {
    let f = fixture().await;
    let (p1_event, p2_event) = seed(&f).await;
    let minted = mint(&f, json!({"filter": {"project_id": "p-1"}, "ttl_seconds": 300})).await;
    let viewer = minted["token"].as_str().unwrap();
    assert!(viewer.starts_with("agtv_"));

    // Queries are narrowed to the pin; asking for another value is refused.
    let (s, _, body) = call(&f, Method::GET, "/v1/events?limit=100", Some(viewer), None).await;
    assert_eq!(s, StatusCode::OK);
    let events = parse(&body)["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 3, "{body}");
    assert!(events.iter().all(|e| e["project_id"] == "p-1"));
    let (s, _, body) = call(&f, Method::GET, "/v1/events?project_id=p-2", Some(viewer), None).await;
    assert_eq!((s, parse(&body)["error"]["field"].as_str()), (StatusCode::FORBIDDEN, Some("project_id")));
    assert_eq!(call(&f, Method::GET, "/v1/events?project_id=p-1", Some(viewer), None).await.0, StatusCode::OK);

    // Single events, proofs: another project's is not found; its own is.
    assert_eq!(call(&f, Method::GET, &format!("/v1/events/{p1_event}"), Some(viewer), None).await.0, StatusCode::OK);
    assert_eq!(
        call(&f, Method::GET, &format!("/v1/events/{p2_event}"), Some(viewer), None).await.0,
        StatusCode::NOT_FOUND
    );
    let stored = format!("/v1/events/{p2_event}?form=stored");
    assert_eq!(call(&f, Method::GET, &stored, Some(viewer), None).await.0, StatusCode::NOT_FOUND);
    let proof = format!("/v1/events/{p2_event}/proof?tree_size=5");
    assert_eq!(call(&f, Method::GET, &proof, Some(viewer), None).await.0, StatusCode::NOT_FOUND);

    // Read-only: no export (not granted), no ingest, no verification, no
    // tiles (every event's hash), no minting, no other organization.
    assert_eq!(call(&f, Method::GET, "/v1/export?format=csv", Some(viewer), None).await.0, StatusCode::FORBIDDEN);
    let one = json!({"event_type": "trace.viewed", "action": "read", "actor_type": "user"});
    assert_eq!(call(&f, Method::POST, "/v1/events", Some(viewer), Some(one)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&f, Method::GET, "/v1/integrity", Some(viewer), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&f, Method::GET, "/v1/logs/org-a/tile/0/000.p/5", Some(viewer), None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&f, Method::POST, "/v1/viewer-tokens", Some(viewer), Some(json!({}))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&f, Method::GET, "/v1/events?organization_id=org-b", Some(viewer), None).await.0,
        StatusCode::NOT_FOUND
    );

    // Who it is.
    let (s, _, body) = call(&f, Method::GET, "/v1/whoami", Some(viewer), None).await;
    let me = parse(&body);
    assert_eq!((s, me["kind"].as_str(), me["scopes"].clone()), (StatusCode::OK, Some("viewer_token"), json!(["read"])));

    // With export granted, the export is narrowed to the pin too.
    let exporting = mint(&f, json!({"filter": {"project_id": "p-2"}, "export": true})).await;
    let (s, _, csv) = call(&f, Method::GET, "/v1/export?format=csv", exporting["token"].as_str(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(csv.lines().count(), 1 + 2, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",p-2,")), "{csv}");

    // The minting is on the record.
    f.service.flush().await;
    f.service.wait_for_index().await;
    let (_, _, body) = call(&f, Method::GET, "/v1/events?event_type=viewer_token.created", Some(&f.reader), None).await;
    let records = parse(&body)["events"].as_array().unwrap().clone();
    assert_eq!(records.len(), 2, "{body}");
    assert_eq!(records[0]["resource_id"], minted["id"]);
    assert_eq!(records[0]["metadata"]["filter"]["project_id"], "p-1");
    assert!(!body.contains(viewer), "the token itself is never recorded");
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_tokens_expire_and_bad_requests_name_their_field() {
    let f = fixture().await;
    let minted = mint(&f, json!({"ttl_seconds": 1})).await;
    let token = minted["token"].as_str().unwrap();
    assert_eq!(call(&f, Method::GET, "/v1/whoami", Some(token), None).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, _, body) = call(&f, Method::GET, "/v1/whoami", Some(token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("expired"), "{body}");
    // A token altered in any byte is refused.
    let mut forged = token.to_owned();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(call(&f, Method::GET, "/v1/whoami", Some(&forged), None).await.0, StatusCode::UNAUTHORIZED);

    for (ask, field) in [
        (json!({"ttl_seconds": 0}), "ttl_seconds"),
        (json!({"ttl_seconds": 86401}), "ttl_seconds"),
        (json!({"filter": {"actor_email": "a@b.example"}}), "filter.actor_email"),
        (json!({"filter": {"action": "dance"}}), "filter.action"),
        (json!({"frame_ancestors": ["http://app.example.com"]}), "frame_ancestors[0]"),
        (json!({"frame_ancestors": ["https://a.example.com 'unsafe-inline'"]}), "frame_ancestors[0]"),
    ] {
        let (s, _, body) = call(&f, Method::POST, "/v1/viewer-tokens", Some(&f.admin), Some(ask.clone())).await;
        assert_eq!(
            (s, parse(&body)["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{ask}: {body}"
        );
    }
    assert_eq!(
        call(&f, Method::POST, "/v1/viewer-tokens", Some(&f.admin), Some(json!([null]))).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&f, Method::POST, "/v1/viewer-tokens", Some(&f.reader), Some(json!({}))).await.0,
        StatusCode::FORBIDDEN
    );
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_links_work_once_for_their_maker_and_pages_carry_their_headers() {
    let f = fixture().await;
    seed(&f).await;
    let exporter = KeyStore::open(f._dir.path()).create("org-a", &[Scope::Export]).unwrap().token;
    let ask = json!({"params": {"format": "csv", "project_id": "p-2"}});
    let (s, _, body) = call(&f, Method::POST, "/v1/export-links", Some(&exporter), Some(ask.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let url = parse(&body)["url"].as_str().unwrap().to_owned();
    let (s, headers, csv) = call(&f, Method::GET, &url, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert_eq!(call(&f, Method::GET, &url, None, None).await.0, StatusCode::NOT_FOUND, "used once");
    // Checked when made: a bad parameter, or a token without the export scope.
    let bad = json!({"params": {"format": "csv", "limit": "5"}});
    let (s, _, body) = call(&f, Method::POST, "/v1/export-links", Some(&exporter), Some(bad)).await;
    assert_eq!((s, parse(&body)["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
    assert_eq!(call(&f, Method::POST, "/v1/export-links", Some(&f.reader), Some(ask)).await.0, StatusCode::FORBIDDEN);

    // The console: strict CSP, framing refused; the embed page framable only
    // by the origins of its token; a forged embed path refused.
    let (s, headers, html) = call(&f, Method::GET, "/console", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self';") && csp.ends_with("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(html.contains("data-mode=\"full\""));
    let minted = mint(&f, json!({"frame_ancestors": ["https://app.example.com", "http://localhost:3000"]})).await;
    let (s, headers, html) = call(&f, Method::GET, minted["embed_path"].as_str().unwrap(), None, None).await;
    assert_eq!(s, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors https://app.example.com http://localhost:3000"), "{csp}");
    assert!(headers.get(header::X_FRAME_OPTIONS).is_none());
    assert!(html.contains("data-mode=\"embed\""));
    let token = minted["token"].as_str().unwrap().strip_prefix("agtv_").unwrap();
    let (s, headers, _) = call(&f, Method::GET, &format!("/console/embed/{token}"), None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a bearer token is not an embed claim");
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().ends_with("frame-ancestors 'none'"));
    f.service.stop().await;
}
