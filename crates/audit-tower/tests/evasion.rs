//! No request escapes its audit event: the real layer in an axum app served
//! on loopback, requests written byte for byte over TCP as a client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use audit_core::stored::StoredEvent;
use audit_service::{AuditConfig, AuditService, FullQueuePolicy, TimeRange, export_jsonl};
use audit_storage::local::LocalStore;
use audit_tower::{AuditLayer, FailurePolicy, JwtUserExtractor};
use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::StatusCode;
use axum::routing::delete;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"evasion-test-secret";

/// Serves `layer` around the example app's delete route on a loopback port;
/// the counter tells how many times the handler ran.
async fn serve(layer: AuditLayer) -> (SocketAddr, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let app = Router::new()
        .route(
            "/projects/{project}/traces/{trace}",
            delete(move || {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (addr, ran)
}

/// Sends one raw HTTP/1.1 request; returns the status code.
async fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, String)]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"))
}

fn layer(audit: AuditService) -> AuditLayer {
    AuditLayer::new(audit)
        .route_of(|p| p.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()))
        .peer_of(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .user_extractor(JwtUserExtractor::hs256(SECRET))
}

async fn events(dir: &std::path::Path, org: &str) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    export_jsonl(&LocalStore::new(dir), org, TimeRange::default(), &mut out).await.unwrap();
    out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| StoredEvent::parse_line(l).unwrap()).collect()
}

fn config() -> AuditConfig {
    AuditConfig { system_organization: "sys".into(), ..AuditConfig::default() }
}

#[tokio::test]
async fn oversized_and_hostile_values_are_cut_and_escaped_never_unaudited() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditService::start(Arc::new(LocalStore::new(dir.path())), config()).await;
    let (addr, ran) = serve(layer(audit.clone())).await;

    // A path over the 1024-byte limit.
    let pad = "A".repeat(1100);
    let status = send(addr, "DELETE", &format!("/projects/p1/traces/x?pad={pad}"), &[]).await;
    assert_eq!(status, 204);
    // A token whose subject is over the id limit and carries a control character.
    let claims = serde_json::json!({ "sub": format!("evil\u{1b}[31m{}", "s".repeat(300)), "exp": 4_000_000_000u64 });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let status = send(addr, "DELETE", "/projects/p1/traces/y", &[("Authorization", format!("Bearer {token}"))]).await;
    assert_eq!(status, 204);
    // A secret whose parameter name is percent-encoded (`%74oken` is `token`).
    let status = send(addr, "DELETE", "/projects/p1/traces/z?%74oken=SECRET123&page=2", &[]).await;
    assert_eq!(status, 204);
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    audit.flush().await;

    let got = events(dir.path(), "sys").await;
    assert_eq!(got.len(), 3, "every request has its event");
    let padded = got[0].body.draft().request.clone().unwrap();
    assert!(padded.path.as_ref().unwrap().len() <= 1024);
    assert!(padded.path.as_ref().unwrap().starts_with("/projects/p1/traces/x?pad=AAA"));
    assert_eq!(padded.truncated, Some(vec!["request.path".to_owned()]));

    let long_actor = got[1].body.draft();
    let actor_id = long_actor.actor_id.as_deref().unwrap();
    assert!(actor_id.starts_with("evil\\u{001b}[31m"), "the control character is escaped, visibly: {actor_id}");
    assert!(actor_id.len() <= 256);
    assert_eq!(long_actor.request.as_ref().unwrap().truncated, Some(vec!["actor_id".to_owned()]));

    let line = String::from_utf8(got[2].to_line()).unwrap();
    assert!(!line.contains("SECRET123"), "{line}");
    assert!(line.contains("%74oken=[redacted]&page=2"), "{line}");
    audit.stop().await;
}

#[tokio::test]
async fn closed_policy_decides_before_the_handler_runs() {
    let dir = tempfile::tempdir().unwrap();
    // One queue slot, held by an event that waits an hour for its batch.
    let audit = AuditService::start(
        Arc::new(LocalStore::new(dir.path())),
        AuditConfig {
            queue_capacity: 1,
            full_queue_policy: FullQueuePolicy::Reject,
            batch_interval: Duration::from_secs(3600),
            batch_size: 1000,
            ..config()
        },
    )
    .await;
    audit.capture(audit_core::sample::sample_draft("org-1", 1)).await.unwrap();
    let (addr, ran) = serve(layer(audit.clone()).failure_policy(FailurePolicy::Closed)).await;
    let status = send(addr, "DELETE", "/projects/p1/traces/x", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the deletion was not performed unaudited");
    // Once there is room, the request is served and recorded.
    audit.flush().await;
    let status = send(addr, "DELETE", "/projects/p1/traces/x", &[]).await;
    assert_eq!(status, 204);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    audit.stop().await;
    assert_eq!(events(dir.path(), "sys").await.len(), 1);
}

/// With protection on, the client address and user agent the layer records
/// go through the same sealing as any event: no plaintext reaches storage,
/// and the service reveals them to readers.
#[tokio::test]
async fn the_peer_address_and_user_agent_are_sealed_like_any_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let master = audit_keystore::LocalMaster(audit_core::personal::MasterKey::from_bytes([3; 32]));
    let keys =
        audit_keystore::sqlite::SqliteSubjectKeys::open(&dir.path().join("keys"), Arc::new(master)).await.unwrap();
    let protection = Arc::new(audit_service::Protection::new(Arc::new(keys), Vec::new()));
    let audit = AuditService::builder(Arc::new(LocalStore::new(dir.path().join("log"))))
        .config(config())
        .protection(Arc::clone(&protection))
        .start()
        .await;
    let (addr, _) = serve(layer(audit.clone())).await;
    let status = send(addr, "DELETE", "/projects/p1/traces/t", &[("User-Agent", "curl/8.1-test".to_owned())]).await;
    assert_eq!(status, 204);
    audit.flush().await;

    let mut stored = Vec::new();
    export_jsonl(&LocalStore::new(dir.path().join("log")), "sys", TimeRange::default(), &mut stored).await.unwrap();
    let text = String::from_utf8(stored).unwrap();
    assert!(!text.contains("127.0.0.1") && !text.contains("curl/8.1-test"), "{text}");
    assert!(text.contains(r#""actor_ip":"enc:v1:"#) && text.contains(r#""user_agent":"enc:v1:"#), "{text}");
    let event = StoredEvent::parse_line(text.lines().next().unwrap().as_bytes()).unwrap();
    let shown = protection.reveal(vec![event]).await.unwrap().remove(0);
    assert_eq!(shown.body.draft().actor_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(shown.body.draft().user_agent.as_deref(), Some("curl/8.1-test"));
    audit.stop().await;
}
