//! # audit-testkit
//!
//! The external services some tests need, found or skipped. On a developer's
//! machine without PostgreSQL or an S3 API, those tests print why they
//! skipped and pass; with `AUDIT_REQUIRE_SERVICES=1` (set by `.ci/run`) a
//! missing service fails the test instead, so CI always runs them.

pub mod serve;

use std::sync::Arc;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "s3")]
mod s3;

#[cfg(feature = "postgres")]
pub use postgres::{TEST_SCHEMA_PREFIX, fresh_postgres_schema, index_backends, postgres_url};
#[cfg(feature = "s3")]
pub use s3::{S3_TEST_CREDENTIALS, TestBucket, fresh_bucket, s3_client, s3_endpoint};

/// Whether a missing service must fail the test (`AUDIT_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var("AUDIT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Reports a missing service: panics when services are required, otherwise
/// prints the reason the caller is about to skip.
pub fn missing_service(test: &str, why: &str) {
    if services_required() {
        panic!("{test}: {why} (AUDIT_REQUIRE_SERVICES=1 makes this a failure)");
    }
    eprintln!("SKIPPED {test}: {why} (set AUDIT_REQUIRE_SERVICES=1 to make this a failure)");
}

/// A TCP proxy on loopback in front of a real server, for fault injection:
/// it can refuse everything (the server is unreachable) or pass requests
/// on and drop the answers (the request took effect, the client never
/// learns it: an uncertain write).
#[derive(Debug)]
pub struct FlakyProxy {
    /// The proxy's `http://127.0.0.1:PORT` address.
    pub endpoint: String,
    mode: Arc<std::sync::atomic::AtomicU8>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

/// What a [`FlakyProxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    /// Pass everything.
    Up = 0,
    /// Close every connection at once (and the open ones now).
    Down = 1,
    /// Pass requests to the server, then close the connection as soon as
    /// the server starts answering, without passing the answer.
    SwallowAnswers = 2,
}

impl FlakyProxy {
    /// Starts a proxy to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FlakyProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(ProxyMode::Up as u8));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (m, conns) = (mode.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let current = m.load(Ordering::SeqCst);
                if current == ProxyMode::Down as u8 {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                    if current == ProxyMode::Up as u8 {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        return;
                    }
                    let (mut cr, mut cw) = client.split();
                    let (mut sr, mut sw) = server.split();
                    let forward = tokio::io::copy(&mut cr, &mut sw);
                    let swallow = async {
                        let mut buf = [0u8; 1];
                        let _ = sr.read(&mut buf).await;
                    };
                    tokio::select! {
                        _ = forward => {}
                        () = swallow => {}
                    }
                    let _ = cw.shutdown().await;
                });
                conns.lock().unwrap_or_else(|p| p.into_inner()).push(task.abort_handle());
            }
        });
        FlakyProxy { endpoint, mode, connections, accept }
    }

    /// Changes what the proxy does; anything but `Up` also cuts the
    /// connections already open (clients keep connections in pools).
    pub fn set(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, std::sync::atomic::Ordering::SeqCst);
        if mode != ProxyMode::Up {
            for c in self.connections.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                c.abort();
            }
        }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set(ProxyMode::Down);
    }
}
