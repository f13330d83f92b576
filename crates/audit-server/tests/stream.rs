//! A streamed export that fails mid-way aborts the transfer: over real
//! loopback HTTP, the client sees a broken chunked body, never a complete
//! `200`.

use std::io::{Read, Write};
use std::sync::Arc;

use audit_core::sample::sample_draft;
use audit_server::{AppState, KeyStore, Scope, app};
use audit_service::{AuditConfig, AuditService};
use audit_storage::local::LocalStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_fails_midway_is_a_broken_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path()));
    let service = AuditService::start(store.clone(), AuditConfig::default()).await;
    // Well over one 256 KiB chunk of CSV before the bad line.
    for n in 0..3000 {
        let mut d = sample_draft("org-1", n);
        d.resource_id = Some(format!("trace-{n}"));
        service.capture(d).await.unwrap();
    }
    service.stop().await;
    // A line that is not an event, at the end of the log.
    let segment = store.log_dir("org-1").join("00000000000000000000.jsonl");
    let mut perms = std::fs::metadata(&segment).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)] // the test's own file
    perms.set_readonly(false);
    std::fs::set_permissions(&segment, perms).unwrap();
    std::fs::OpenOptions::new().append(true).open(&segment).unwrap().write_all(b"{\"not\":\"an event\"}\n").unwrap();

    let service = AuditService::start(store, AuditConfig::default()).await;
    let token = KeyStore::open(dir.path()).create("org-1", &[Scope::Export]).unwrap().token;
    let router = app(AppState::new(service.clone(), dir.path(), false, None), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let response = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        write!(s, "GET /v1/export?format=csv HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out); // a reset is a fine end too
        out
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..text.len().min(200)]);
    assert!(text.contains("transfer-encoding: chunked"), "streamed");
    assert!(text.len() > 256 * 1024, "the first chunks were sent: {}", text.len());
    assert!(!text.ends_with("\r\n0\r\n\r\n"), "no final chunk: the transfer is visibly broken");
    service.stop().await;
}
