//! AuditLayer on an axum app, events read back from real storage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use audit_core::event::{ActorType, Severity};
use audit_core::stored::StoredEvent;
use audit_service::{AuditConfig, AuditService, TimeRange, export_jsonl};
use audit_storage::local::LocalStore;
use audit_tower::{AuditLayer, FailurePolicy, JwtUserExtractor};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

const SECRET: &[u8] = b"test-secret";

fn app(layer: AuditLayer) -> Router {
    Router::new()
        .route("/v1/traces/{id}", get(|| async { "trace" }))
        .route("/health", get(|| async { "ok" }))
        .route("/static/app.js", get(|| async { "js" }))
        .route("/admin", get(|| async { (StatusCode::FORBIDDEN, "no") }))
        .layer(layer)
}

fn configured(audit: AuditService) -> AuditLayer {
    AuditLayer::new(audit)
        .exclude_paths(["/health", "/static/*"])
        .route_of(|p| p.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()))
        .peer_of(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .trusted_proxies(["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()])
        .user_extractor(JwtUserExtractor::hs256(SECRET).issuer("auth.example"))
}

fn request(uri: &str, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(format!("{peer}:4000").parse().unwrap()));
    req
}

fn jwt(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn events(dir: &std::path::Path, org: &str) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    export_jsonl(&LocalStore::new(dir), org, TimeRange::default(), &mut out).await.unwrap();
    out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| StoredEvent::parse_line(l).unwrap()).collect()
}

async fn started(dir: &std::path::Path) -> AuditService {
    AuditService::start(
        Arc::new(LocalStore::new(dir)),
        AuditConfig { system_organization: "sys".into(), ..AuditConfig::default() },
    )
    .await
}

#[tokio::test]
async fn records_included_paths_with_route_actor_ip_and_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let audit = started(dir.path()).await;
    let layer = configured(audit.clone());
    let producer = layer.producer_id().to_owned();
    let router = app(layer);
    let good = jwt(
        serde_json::json!({"sub": "user-7", "email": "u7@example.com", "organization_id": "org-x", "sid": "s-1", "iss": "auth.example", "exp": now() + 600}),
        SECRET,
    );
    let auth = format!("Bearer {good}");
    for (uri, peer, headers) in [
        (
            "/v1/traces/abc?token=s3cr3t&page=2",
            "10.0.0.1",
            vec![
                ("authorization", auth.as_str()),
                ("x-forwarded-for", "198.51.100.9, 10.0.0.2"),
                ("user-agent", "curl/8"),
                ("x-request-id", "req-1"),
            ],
        ),
        ("/v1/traces/def", "203.0.113.5", vec![("authorization", auth.as_str()), ("x-forwarded-for", "1.2.3.4")]),
        ("/health", "203.0.113.5", vec![]),
        ("/static/app.js", "203.0.113.5", vec![]),
    ] {
        let res = router.clone().oneshot(request(uri, peer, &headers)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    audit.stop().await;
    let got = events(dir.path(), "org-x").await;
    assert_eq!(got.len(), 2, "excluded paths (exact and prefix) are not recorded");
    let first = got[0].body.draft();
    assert_eq!(first.event_type, "api.request");
    assert_eq!(got[0].body.actor_type(), ActorType::User);
    assert_eq!(
        (first.actor_id.as_deref(), first.actor_email.as_deref(), first.session_id.as_deref()),
        (Some("user-7"), Some("u7@example.com"), Some("s-1"))
    );
    let r = first.request.as_ref().unwrap();
    assert_eq!(r.path.as_deref(), Some("/v1/traces/abc?token=[redacted]&page=2"));
    assert_eq!(r.route.as_deref(), Some("/v1/traces/{id}"));
    assert_eq!((r.method.as_deref(), r.status, r.request_id.as_deref()), (Some("GET"), Some(200), Some("req-1")));
    assert!(r.duration_ms.unwrap() >= 0.0);
    assert_eq!(
        first.actor_ip.as_deref(),
        Some("198.51.100.9"),
        "X-Forwarded-For right to left, skipping trusted proxies"
    );
    assert_eq!(first.user_agent.as_deref(), Some("curl/8"));
    let line = String::from_utf8(got[0].to_line()).unwrap();
    assert!(!line.contains("s3cr3t") && !line.contains(&good), "no secret is stored: {line}");
    assert_eq!(
        got[1].body.draft().actor_ip.as_deref(),
        Some("203.0.113.5"),
        "an untrusted peer's X-Forwarded-For is ignored"
    );
    assert_eq!((first.producer_id.as_deref(), first.producer_sequence), (Some(producer.as_str()), Some(0)));
    assert_eq!(got[1].body.draft().producer_sequence, Some(1));
}

#[tokio::test]
async fn bad_tokens_are_anonymous_and_refusals_are_critical() {
    let dir = tempfile::tempdir().unwrap();
    let audit = started(dir.path()).await;
    let router = app(configured(audit.clone()));
    let expired = jwt(
        serde_json::json!({"sub": "u", "organization_id": "org-x", "iss": "auth.example", "exp": now() - 3600}),
        SECRET,
    );
    let forged = jwt(
        serde_json::json!({"sub": "u", "organization_id": "org-x", "iss": "auth.example", "exp": now() + 600}),
        b"wrong-secret",
    );
    let wrong_issuer =
        jwt(serde_json::json!({"sub": "u", "organization_id": "org-x", "iss": "evil", "exp": now() + 600}), SECRET);
    for token in [expired, forged, wrong_issuer, "not-a-jwt".to_owned()] {
        let res = router
            .clone()
            .oneshot(request("/v1/traces/a", "203.0.113.5", &[("authorization", &format!("Bearer {token}"))]))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "a bad token never fails the request by itself");
    }
    let res = router.clone().oneshot(request("/admin", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    audit.stop().await;
    assert!(events(dir.path(), "org-x").await.is_empty(), "unverified claims do not choose the organization");
    let got = events(dir.path(), "sys").await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|e| e.body.actor_type() == ActorType::Anonymous));
    assert_eq!(got[4].body.severity(), Severity::Critical, "a 403 is a security event");
    assert_eq!(got[0].body.severity(), Severity::Info);
}

#[tokio::test]
async fn failure_policies() {
    let dir = tempfile::tempdir().unwrap();
    let audit = started(dir.path()).await;
    audit.stop().await; // the audit log is unavailable
    let open = AuditLayer::new(audit.clone()).failure_policy(FailurePolicy::Open);
    let res = app(open.clone()).oneshot(request("/v1/traces/a", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "open: the request is served");
    assert_eq!(open.missed(), 1, "and the miss is counted");
    let closed = AuditLayer::new(audit.clone()).failure_policy(FailurePolicy::Closed);
    let res = app(closed).oneshot(request("/v1/traces/a", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "closed: no request served unaudited");
    let off = AuditLayer::new(audit).capture_api_access(false).failure_policy(FailurePolicy::Closed);
    let res = app(off).oneshot(request("/v1/traces/a", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "capture_api_access=false records nothing and blocks nothing");
}

#[tokio::test]
async fn durable_paths_answer_after_the_event_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditService::start(
        Arc::new(LocalStore::new(dir.path())),
        AuditConfig {
            system_organization: "sys".into(),
            batch_interval: std::time::Duration::from_secs(3600),
            ..AuditConfig::default()
        },
    )
    .await;
    let layer = AuditLayer::new(audit.clone())
        .durable_paths(["/v1/traces"])
        .record_route_only(true)
        .route_of(|p| p.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()));
    let res = app(layer).oneshot(request("/v1/traces/secret-id-in-path", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Stored already, although batches otherwise wait an hour.
    let got = events(dir.path(), "sys").await;
    assert_eq!(got.len(), 1);
    let r = got[0].body.draft().request.clone().unwrap();
    assert_eq!(r.path.as_deref(), Some("/v1/traces/{id}"), "only the route is recorded");
    assert!(!String::from_utf8(got[0].to_line()).unwrap().contains("secret-id-in-path"));
    audit.stop().await;
}

/// RS256 with a test key pair made for this test only (tests/data, generated
/// with `openssl genrsa 2048`; never used anywhere else).
#[tokio::test]
async fn rs256_tokens_are_verified_with_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let audit = started(dir.path()).await;
    let public = include_bytes!("data/test-rs256-public.pem");
    let private = include_bytes!("data/test-rs256-private.pem");
    let layer =
        AuditLayer::new(audit.clone()).user_extractor(JwtUserExtractor::rs256(public).unwrap().audience("audit-api"));
    let router = app(layer);
    let sign = |aud: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &serde_json::json!({"sub": "rsa-user", "org_id": "org-rsa", "aud": aud, "exp": now() + 600}),
            &jsonwebtoken::EncodingKey::from_rsa_pem(private).unwrap(),
        )
        .unwrap()
    };
    for token in [
        sign("audit-api"),
        sign("another-api"),
        jwt(serde_json::json!({"sub": "x", "org_id": "org-rsa", "aud": "audit-api", "exp": now() + 600}), SECRET),
    ] {
        let res = router
            .clone()
            .oneshot(request("/v1/traces/a", "203.0.113.5", &[("authorization", &format!("Bearer {token}"))]))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    audit.stop().await;
    let verified = events(dir.path(), "org-rsa").await;
    assert_eq!(verified.len(), 1, "only the RS256 token for this audience is believed");
    assert_eq!(verified[0].body.draft().actor_id.as_deref(), Some("rsa-user"));
    assert_eq!(
        events(dir.path(), "sys").await.len(),
        2,
        "wrong audience and an HS256 token (algorithm confusion) are anonymous"
    );
}

#[tokio::test]
async fn configuring_a_clone_never_panics_and_clones_share_one_producer() {
    let dir = tempfile::tempdir().unwrap();
    let audit = started(dir.path()).await;
    let first = AuditLayer::new(audit.clone());
    let second = first.clone().failure_policy(FailurePolicy::Closed).exclude_paths(["/health"]);
    assert_eq!(first.producer_id(), second.producer_id());
    // Each keeps its own settings: the first still serves (open policy) after the audit log stops.
    audit.stop().await;
    let res = app(first.clone()).oneshot(request("/v1/traces/a", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app(second.clone()).oneshot(request("/v1/traces/a", "203.0.113.5", &[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.missed(), 2, "misses are counted once per layer, whatever its clones");
}
