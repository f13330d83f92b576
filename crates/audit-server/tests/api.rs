//! The API through `oneshot` (no port) and over real loopback HTTP: every
//! route, scopes, cross-tenant attempts, and a table of bad requests that
//! must each get the right 4xx and store nothing.

use std::sync::Arc;

use audit_index::sqlite::SqliteIndex;
use audit_server::{AppState, KeyStore, Scope, app};
use audit_service::{AuditConfig, AuditService, TimeRange, export_jsonl};
use audit_storage::local::LocalStore;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Fixture {
    dir: tempfile::TempDir,
    service: AuditService,
    router: axum::Router,
    full: String,
    other_org: String,
}

const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Export, Scope::Verify];

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let index = Arc::new(SqliteIndex::open(&dir.path().join("index.sqlite3")).unwrap());
    let service = AuditService::builder(store).config(AuditConfig::default()).index(index).start().await;
    let keys = KeyStore::open(dir.path());
    let full = keys.create("org-a", &ALL).unwrap().token;
    let other_org = keys.create("org-b", &ALL).unwrap().token;
    let router = app(AppState::new(service.clone(), dir.path(), false, None), true);
    Fixture { dir, service, router, full, other_org }
}

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some((content_type, bytes)) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Body::from(bytes.to_vec())
        }
        None => Body::empty(),
    };
    let response = router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

const EVENT: &str =
    r#"{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u-1","resource_id":"t-1"}"#;

async fn stored(f: &Fixture, org: &str) -> usize {
    f.service.flush().await;
    let mut out = Vec::new();
    export_jsonl(&LocalStore::new(f.dir.path()), org, TimeRange::default(), &mut out).await.unwrap();
    String::from_utf8(out).unwrap().lines().filter(|l| !l.contains("\"audit_log.")).count()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_works_for_its_scope() {
    let f = fixture().await;
    let (s, body) = call(
        &f.router,
        Method::POST,
        "/v1/events",
        Some(&f.full),
        Some(("application/json", format!("[{EVENT},{EVENT}]").as_bytes())),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let receipts = json(&body)["receipts"].as_array().unwrap().clone();
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[1]["deduplicated"], true, "the same content within the window is a duplicate");
    let (s, body) = call(
        &f.router,
        Method::POST,
        "/v1/events?wait=none",
        Some(&f.full),
        Some(("application/json", br#"{"event_type":"user.logout","action":"logout","actor_type":"user"}"#)),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    f.service.flush().await;
    f.service.wait_for_index().await;

    let (s, body) = call(&f.router, Method::GET, "/v1/events?action=DELETE&limit=10", Some(&f.full), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let page = json(&body);
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    let id = page["events"][0]["event_id"].as_str().unwrap().to_owned();
    let (s, body) = call(&f.router, Method::GET, &format!("/v1/events/{id}"), Some(&f.full), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["resource_id"], "t-1");

    let (s, body) = call(&f.router, Method::GET, "/v1/export?format=jsonl", Some(&f.full), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.lines().count() >= 2, "{body}");
    let (s, body) = call(&f.router, Method::GET, "/v1/export?format=csv&actor_id=u-1", Some(&f.full), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with("sequence,event_id,timestamp"), "{body}");

    let (s, body) = call(&f.router, Method::GET, "/v1/integrity", Some(&f.full), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&body)["valid"], true, "{body}");
    let (s, body) = call(&f.router, Method::GET, "/v1/audit/health", Some(&f.full), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&body)["running"], true);
    assert!(json(&body).get("counters").is_none(), "service-wide counters are for admin tokens only");
    let (s, _) = call(&f.router, Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(&f.router, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let doc = json(&body);
    for path in [
        "/v1/events",
        "/v1/events/{event_id}",
        "/v1/export",
        "/v1/integrity",
        "/v1/checkpoint",
        "/v1/audit/health",
        "/health",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi.json lacks {path}");
    }

    // Reads are themselves audited, in the organization's own log.
    f.service.flush().await;
    let mut out = Vec::new();
    export_jsonl(&LocalStore::new(f.dir.path()), "org-a", TimeRange::default(), &mut out).await.unwrap();
    let log = String::from_utf8(out).unwrap();
    for t in ["audit_log.queried", "audit_log.exported", "audit_log.verified"] {
        assert!(log.contains(&format!("\"event_type\":\"{t}\"")), "{t} missing");
    }
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_enforced() {
    let f = fixture().await;
    let keys = KeyStore::open(f.dir.path());
    let read_only = keys.create("org-a", &[Scope::Read]).unwrap().token;
    let ingest_only = keys.create("org-a", &[Scope::Ingest]).unwrap().token;
    let (s, _) =
        call(&f.router, Method::POST, "/v1/events", Some(&read_only), Some(("application/json", EVENT.as_bytes())))
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for uri in ["/v1/events", "/v1/export?format=jsonl", "/v1/integrity", "/v1/audit/health"] {
        let (s, body) = call(&f.router, Method::GET, uri, Some(&ingest_only), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}: {body}");
    }
    let (s, _) = call(&f.router, Method::GET, "/v1/export?format=jsonl", Some(&read_only), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "export needs the export scope");
    assert_eq!(stored(&f, "org-a").await, 0);
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_ever_shows_another_organization() {
    let f = fixture().await;
    let (s, body) =
        call(&f.router, Method::POST, "/v1/events", Some(&f.full), Some(("application/json", EVENT.as_bytes()))).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = json(&body)["receipts"][0]["event_id"].as_str().unwrap().to_owned();
    f.service.wait_for_index().await;
    // org-b's token, naming org-a in every way a request can.
    for uri in [
        "/v1/events?organization_id=org-a".to_owned(),
        format!("/v1/events/{id}?organization_id=org-a"),
        "/v1/export?format=jsonl&organization_id=org-a".to_owned(),
        "/v1/integrity?organization_id=org-a".to_owned(),
        "/v1/audit/health?organization_id=org-a".to_owned(),
        "/v1/checkpoint?organization_id=org-a".to_owned(),
    ] {
        let (s, body) = call(&f.router, Method::GET, &uri, Some(&f.other_org), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert!(!body.contains("t-1") && !body.contains(&id[..20]), "{uri} leaked: {body}");
    }
    // Its own view does not contain org-a's event either.
    let (s, body) = call(&f.router, Method::GET, &format!("/v1/events/{id}"), Some(&f.other_org), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (_, body) = call(&f.router, Method::GET, "/v1/events", Some(&f.other_org), None).await;
    assert!(!body.contains("t-1"), "{body}");
    let (s, _) = call(&f.router, Method::POST, "/v1/events", Some(&f.other_org), Some(("application/json", format!(r#"[{EVENT},{{"organization_id":"org-a","event_type":"user.login","action":"login","actor_type":"user"}}]"#).as_bytes()))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an event naming another organization is refused, whole batch");
    assert_eq!(stored(&f, "org-b").await, 0, "nothing of that batch stored");
    assert_eq!(stored(&f, "org-a").await, 1);
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_4xx_and_store_nothing() {
    let f = fixture().await;
    let t = f.full.clone();
    let big_batch = format!("[{}]", vec![EVENT; 1001].join(","));
    let huge_body = format!(
        r#"{{"event_type":"user.login","action":"login","actor_type":"user","metadata":{{"x":"{}"}}}}"#,
        "y".repeat(9 * 1024 * 1024)
    );
    let deep = format!(
        r#"{{"event_type":"user.login","action":"login","actor_type":"user","metadata":{{"d":{}1{}}}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let j = "application/json";
    type Case<'a> = (Method, String, Option<String>, Option<(&'a str, String)>, StatusCode, &'a str);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, "{".into())), StatusCode::BAD_REQUEST, "invalid_json"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, "".into())), StatusCode::BAD_REQUEST, "invalid_json"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, r#"{"a":1,"a":2}"#.into())), StatusCode::BAD_REQUEST, "invalid_json"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, "[]".into())), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, "42".into())), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replace("\"delete\"", "\"obliterate\""))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replace("trace.deleted", "Trace.Deleted"))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replacen('{', r#"{"sequence":1,"#, 1))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replacen('{', r#"{"hash":"00","#, 1))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replacen('{', r#"{"colour":"red","#, 1))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replacen('{', r#"{"actor_email":"a\r\nb@x","#, 1))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replacen('{', r#"{"metadata":{"n":12345678901234567890},"#, 1))), StatusCode::BAD_REQUEST, "invalid_json"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, EVENT.replacen('{', r#"{"occurred_at":"yesterday","#, 1))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, format!("[{EVENT},{}]", EVENT.replace("\"user\"", "\"robot\"")))), StatusCode::BAD_REQUEST, "invalid_event"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, deep)), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, big_batch)), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some((j, huge_body)), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (Method::POST, "/v1/events".into(), Some(t.clone()), Some(("text/plain", EVENT.into())), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (Method::POST, "/v1/events?wait=forever".into(), Some(t.clone()), Some((j, EVENT.into())), StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::POST, "/v1/events".into(), None, Some((j, EVENT.into())), StatusCode::UNAUTHORIZED, "unauthorized"),
        (Method::POST, "/v1/events".into(), Some("agta_000000000000_ffff".into()), Some((j, EVENT.into())), StatusCode::UNAUTHORIZED, "unauthorized"),
        (Method::GET, "/v1/events?limit=1001".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?limit=abc".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?offset=10001".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?action=obliterate".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?start_time=yesterday".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?colour=red".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?limit=5&limit=6".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?cursor=bogus".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?order=sideways".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events?start_time=2026-11-02T00:00:00Z&end_time=2026-11-01T00:00:00Z".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/events/not-a-uuid".into(), Some(t.clone()), None, StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/v1/events/01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b".into(), Some(t.clone()), None, StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/v1/export".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/export?format=xml".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/export?format=json&limit=5".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
        (Method::GET, "/v1/integrity?start_time=soon".into(), Some(t.clone()), None, StatusCode::BAD_REQUEST, "invalid_parameter"),
    ];
    assert!(cases.len() >= 25);
    for (method, uri, token, body, status, code) in cases {
        let (got, text) =
            call(&f.router, method.clone(), &uri, token.as_deref(), body.as_ref().map(|(c, b)| (*c, b.as_bytes())))
                .await;
        assert_eq!(got, status, "{method} {uri}: {text}");
        let v = json(&text);
        assert_eq!(v["error"]["code"], code, "{method} {uri}: {text}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A bad event in a batch is named by its position.
    let (_, text) = call(
        &f.router,
        Method::POST,
        "/v1/events",
        Some(&t),
        Some((j, format!("[{EVENT},{}]", EVENT.replace("\"user\"", "\"robot\"")).as_bytes())),
    )
    .await;
    assert_eq!(json(&text)["error"]["field"], "events[1].actor_type");
    assert_eq!(stored(&f, "org-a").await, 0, "no bad request stored anything");
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_on_loopback_and_revocation_within_a_second() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = f.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let keys = KeyStore::open(f.dir.path());
    let new = keys.create("org-a", &[Scope::Ingest]).unwrap();
    let post = |token: String| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{EVENT}",
            EVENT.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let ok = post(new.token.clone()).await;
    assert!(ok.starts_with("HTTP/1.1 201"), "{ok}");
    keys.revoke(&new.record.id).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refused = post(new.token.clone()).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "revoked within a second: {refused}");
    f.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_route_serves_the_signed_note() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let signer = audit_core::note::SignerKey::from_seed("audit.test", [5; 32]).unwrap();
    let service = AuditService::builder(store)
        .index(Arc::new(SqliteIndex::open(&dir.path().join("index.sqlite3")).unwrap()))
        .checkpoints(audit_service::CheckpointConfig {
            origin: "audit.test".into(),
            signer: signer.clone(),
            interval: std::time::Duration::from_millis(1),
            mirror: None,
        })
        .start()
        .await;
    let token = KeyStore::open(dir.path()).create("org-a", &[Scope::Ingest, Scope::Read, Scope::Verify]).unwrap().token;
    let exporter = KeyStore::open(dir.path()).create("org-a", &[Scope::Export]).unwrap().token;
    let router = app(
        AppState::new(service.clone(), dir.path(), false, None)
            .with_checkpoint_key(signer.clone(), "audit.test".into()),
        true,
    );
    let (s, _) = call(&router, Method::GET, "/v1/checkpoint", Some(&token), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no checkpoint before the first event");
    let (s, body) = call(&router, Method::GET, "/v1/export?format=jsonl&with_proof=true", Some(&exporter), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(json(&body)["error"]["code"], "no_checkpoint");
    let (s, _) =
        call(&router, Method::POST, "/v1/events", Some(&token), Some(("application/json", EVENT.as_bytes()))).await;
    assert_eq!(s, StatusCode::CREATED);
    let mut note = String::new();
    for _ in 0..200 {
        let (s, body) = call(&router, Method::GET, "/v1/checkpoint", Some(&token), None).await;
        if s == StatusCode::OK {
            note = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let verifier = signer.renamed("audit.test/org-a").unwrap().verifier();
    let text = audit_core::note::open(&note, &verifier).unwrap();
    let cp = audit_core::note::Checkpoint::parse(text).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("audit.test/org-a", 1));
    let (s, body) = call(&router, Method::GET, "/v1/integrity", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&body)["valid"], true, "{body}");
    assert_eq!(json(&body)["warnings"].as_array().unwrap().len(), 0, "the signature was checked: {body}");

    // Proofs against the signed head.
    let (_, body) = call(&router, Method::POST, "/v1/events", Some(&token), Some(("application/json", br#"[{"event_type":"user.logout","action":"logout","actor_type":"user","actor_id":"a"},{"event_type":"user.logout","action":"logout","actor_type":"user","actor_id":"b"}]"#))).await;
    let id = json(&body)["receipts"][0]["event_id"].as_str().unwrap().to_owned();
    let hash = audit_core::Hash::from_hex(json(&body)["receipts"][0]["hash"].as_str().unwrap()).unwrap();
    // Reads are audited into the same log, so take the positions from the receipts.
    let seq = json(&body)["receipts"][0]["sequence"].as_u64().unwrap();
    let size = json(&body)["receipts"][1]["sequence"].as_u64().unwrap() + 1;
    service.wait_for_index().await;
    let hex = |v: &serde_json::Value| audit_core::Hash::from_hex(v.as_str().unwrap()).unwrap();
    let list = |v: &serde_json::Value| v.as_array().unwrap().iter().map(hex).collect::<Vec<_>>();
    let (s, body) =
        call(&router, Method::GET, &format!("/v1/events/{id}/proof?tree_size={size}"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let p = json(&body);
    let leaf = audit_core::merkle::leaf_hash(hash.as_bytes());
    audit_core::merkle::verify_inclusion(seq, size, &leaf, &list(&p["proof"]), &hex(&p["root"])).unwrap();
    let (s, body) = call(&router, Method::GET, &format!("/v1/consistency?from=1&to={size}"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let p = json(&body);
    assert_eq!(hex(&p["from_root"]), cp.root, "the first checkpoint's tree is a prefix of the current one");
    audit_core::merkle::verify_consistency(1, size, &list(&p["proof"]), &cp.root, &hex(&p["to_root"])).unwrap();
    let (s, body) = call(&router, Method::GET, "/v1/consistency?from=1&to=99", Some(&token), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // An evidence bundle of one actor's events, checked with the verifier key alone.
    for _ in 0..200 {
        let (_, body) = call(&router, Method::GET, "/v1/checkpoint", Some(&token), None).await;
        let text = audit_core::note::open(&body, &verifier).unwrap().to_owned();
        if audit_core::note::Checkpoint::parse(&text).unwrap().size >= size {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, bundle) =
        call(&router, Method::GET, "/v1/export?format=jsonl&with_proof=true&actor_id=b", Some(&exporter), None).await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    let report = audit_service::verify_evidence(bundle.lines().map(str::as_bytes), Some(&verifier)).unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!((report.total_events, report.first_sequence), (1, Some(size - 1)));
    let forged = bundle.replacen("\"actor_id\":\"b\"", "\"actor_id\":\"c\"", 1);
    let report = audit_service::verify_evidence(forged.lines().map(str::as_bytes), Some(&verifier)).unwrap();
    assert!(!report.valid);
    let (s, body) = call(&router, Method::GET, "/v1/export?format=csv&with_proof=true", Some(&exporter), None).await;
    assert_eq!((s, json(&body)["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("with_proof")));
    service.stop().await;
}
