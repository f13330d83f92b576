//! PostgreSQL for tests: the server, fresh schemas, both index backends.

use std::sync::Arc;

use audit_index::EventIndex;
use audit_index::postgres::PostgresIndex;

use crate::missing_service;

/// The PostgreSQL the tests use: `AUDIT_TEST_POSTGRES_URL`, or the local
/// server on 127.0.0.1:5432 (database `test`).
pub fn postgres_url() -> String {
    std::env::var("AUDIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?connect_timeout=5".to_owned())
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
