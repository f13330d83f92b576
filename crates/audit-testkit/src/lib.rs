//! # audit-testkit
//!
//! The external services some tests need, found or skipped. On a developer's
//! machine without PostgreSQL or an S3 API, those tests print why they
//! skipped and pass; with `AUDIT_REQUIRE_SERVICES=1` (set by `.ci/run`) a
//! missing service fails the test instead, so CI always runs them.

pub mod serve;

use std::sync::Arc;

use audit_index::EventIndex;
use audit_index::postgres::PostgresIndex;

/// The PostgreSQL the tests use: `AUDIT_TEST_POSTGRES_URL`, or the local
/// server on 127.0.0.1:5432 (database `test`).
pub fn postgres_url() -> String {
    std::env::var("AUDIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?connect_timeout=5".to_owned())
}

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

/// Every test schema's name starts with this (`.ci/run` drops leftovers).
pub const TEST_SCHEMA_PREFIX: &str = "audit_test_";

/// A new, empty schema in the test PostgreSQL and the URL that puts
/// connections in it, or `None` (after [`missing_service`]) when the
/// server cannot be reached.
pub async fn fresh_postgres_schema(test: &str) -> Option<String> {
    let url = postgres_url();
    let (client, connection) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => {
            missing_service(test, &format!("no PostgreSQL at {url}: {e}"));
            return None;
        }
    };
    tokio::spawn(connection);
    let schema = format!("{TEST_SCHEMA_PREFIX}{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create a test schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

/// The index backends a shared index test runs against: SQLite in `dir`
/// always, PostgreSQL (in a fresh schema) when reachable.
pub async fn index_backends(test: &str, dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn EventIndex>)> {
    let sqlite = audit_index::sqlite::SqliteIndex::open(&dir.join(format!("index-{}.sqlite3", uuid::Uuid::now_v7())))
        .expect("open a SQLite index");
    let mut out: Vec<(&'static str, Arc<dyn EventIndex>)> = vec![("sqlite", Arc::new(sqlite))];
    if let Some(url) = fresh_postgres_schema(test).await {
        let pg = PostgresIndex::connect(&url).await.expect("connect the PostgreSQL index");
        out.push(("postgres", Arc::new(pg)));
    }
    out
}

/// The S3 API the tests use: `AUDIT_TEST_S3_ENDPOINT` (`.ci/run` starts
/// moto_server on loopback and sets it), else `http://127.0.0.1:9199`.
pub fn s3_endpoint() -> String {
    std::env::var("AUDIT_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9199".to_owned())
}

/// The static credentials tests hand the test S3 API (moto takes any).
pub const S3_TEST_CREDENTIALS: (&str, &str) = ("testing", "testing");

/// A new, empty bucket on the test S3 API.
#[derive(Debug, Clone)]
pub struct TestBucket {
    /// The endpoint it is on.
    pub endpoint: String,
    /// Its name.
    pub bucket: String,
    /// A client for inspecting it behind the store's back.
    pub client: aws_sdk_s3::Client,
}

impl TestBucket {
    /// Store settings for this bucket (short retention and append deadline
    /// unless the test changes them).
    pub fn config(&self) -> audit_storage_s3::S3Config {
        self.config_via(&self.endpoint)
    }

    /// Store settings for this bucket reached through another endpoint
    /// (a [`FlakyProxy`] in front of the real one).
    pub fn config_via(&self, endpoint: &str) -> audit_storage_s3::S3Config {
        let mut c = audit_storage_s3::S3Config::new(&self.bucket);
        c.endpoint = Some(endpoint.to_owned());
        c.region = Some("us-east-1".to_owned());
        c.credentials = Some((S3_TEST_CREDENTIALS.0.to_owned(), S3_TEST_CREDENTIALS.1.to_owned()));
        c.retention_days = 1;
        c.append_deadline = std::time::Duration::from_secs(3);
        c
    }
}

/// A raw client for `endpoint` with the test credentials.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            S3_TEST_CREDENTIALS.0,
            S3_TEST_CREDENTIALS.1,
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates a fresh bucket (with Object Lock when asked) on the test S3
/// API, or returns `None` (after [`missing_service`]) when there is none.
pub async fn fresh_bucket(test: &str, object_lock: bool) -> Option<TestBucket> {
    let endpoint = s3_endpoint();
    let client = s3_client(&endpoint);
    let bucket = format!("audit-{}", uuid::Uuid::now_v7().simple());
    let created = client.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(object_lock).send().await;
    if let Err(e) = created {
        missing_service(
            test,
            &format!(
                "no S3 API at {endpoint} ({}); run moto_server -H 127.0.0.1 -p PORT and set AUDIT_TEST_S3_ENDPOINT",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        );
        return None;
    }
    Some(TestBucket { endpoint, bucket, client })
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
