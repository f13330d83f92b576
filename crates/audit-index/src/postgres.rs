//! The production index: PostgreSQL, through a pool of connections.
//!
//! Same tables and semantics as the SQLite index (the shared statements are
//! in `sql.rs`), so one test suite runs against both. Several service
//! instances may share one database: rows are keyed by (organization,
//! sequence) and inserted with `ON CONFLICT DO NOTHING`, and the progress
//! mark only moves forward, so indexers racing over the same log agree.
//! PostgreSQL's planner has statistics, so no index hints are needed.
//! `sslmode=require` in the URL turns on TLS with certificate verification.

use std::str::FromStr;

use async_trait::async_trait;
use audit_core::filter::AuditEventFilter;
use audit_storage::Chunk;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::row::hash_from_blob;
use crate::sql::{
    HIT_COLUMNS, Param, Placeholders, ROW_COLUMNS, SECONDARY_INDEXES, page_query, progress_upsert, tables,
};
use crate::{EventIndex, Hit, IndexError, IndexRow, Location, Progress};

/// Serializes schema creation between instances starting at once
/// (`CREATE ... IF NOT EXISTS` is not safe against a concurrent creator).
const SCHEMA_LOCK: i64 = 0x4147_5441_7564_6974; // "AGTAudit"

/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;

/// PostgreSQL index (`AUDIT_INDEX_URL=postgres://...`).
#[derive(Clone)]
pub struct PostgresIndex {
    pool: Pool,
}

impl std::fmt::Debug for PostgresIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresIndex").field("pool", &self.pool.status()).finish()
    }
}

fn db(e: impl std::fmt::Display) -> IndexError {
    IndexError::Database(e.to_string())
}

impl PostgresIndex {
    /// Connects to the database named by `url` (a libpq URL or key=value
    /// string) and creates the tables if they are missing. With
    /// `sslmode=require` connections use TLS and the server's certificate
    /// is verified (chain and host name) against the Mozilla roots, or
    /// against `ca_pem` (PEM certificates of a private CA) when given;
    /// otherwise they are unencrypted.
    pub async fn connect_with(url: &str, ca_pem: Option<&[u8]>) -> Result<PostgresIndex, IndexError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| IndexError::Database(format!("AUDIT_INDEX_URL is not a PostgreSQL URL: {e}")))?;
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            Manager::from_config(config, tls_connector(ca_pem)?, recycling)
        } else {
            Manager::from_config(config, NoTls, recycling)
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| IndexError::Database(format!("cannot build the PostgreSQL pool: {e}")))?;
        let index = PostgresIndex { pool };
        let mut client = index.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(db)?;
        tx.batch_execute(&tables("BIGINT", "BYTEA", "")).await.map_err(db)?;
        tx.batch_execute(SECONDARY_INDEXES).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(index)
    }

    /// [`PostgresIndex::connect_with`] with the Mozilla roots.
    pub async fn connect(url: &str) -> Result<PostgresIndex, IndexError> {
        PostgresIndex::connect_with(url, None).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, IndexError> {
        self.pool
            .get()
            .await
            .map_err(|e| IndexError::Database(format!("cannot connect to PostgreSQL: {}", with_causes(&e))))
    }
}

/// An error and its causes, `: `-separated (pool and TLS errors keep the
/// useful part — "invalid peer certificate" — in their sources).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// A TLS connector (rustls with ring) that trusts `ca_pem`, or the Mozilla roots.
fn tls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, IndexError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| IndexError::Database(format!("AUDIT_INDEX_CA_FILE: not PEM certificates: {e}")))?;
                roots.add(cert).map_err(|e| IndexError::Database(format!("AUDIT_INDEX_CA_FILE: {e}")))?;
            }
            if roots.is_empty() {
                return Err(IndexError::Database("AUDIT_INDEX_CA_FILE holds no certificate".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| IndexError::Database(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn hit_from_row(r: &Row) -> Result<Hit, IndexError> {
    let seq: i64 = r.try_get(0).map_err(db)?;
    let blob: Vec<u8> = r.try_get(1).map_err(db)?;
    let location = Location {
        chunk: Chunk { first_sequence: r.try_get::<_, i64>(2).map_err(db)? as u64, name: r.try_get(3).map_err(db)? },
        offset: r.try_get::<_, i64>(4).map_err(db)? as u64,
        len: r.try_get::<_, i64>(5).map_err(db)? as u64,
    };
    let hash = hash_from_blob(&blob).map_err(|_| IndexError::Database(format!("bad hash at sequence {seq}")))?;
    Ok(Hit { sequence: seq as u64, hash, location })
}

fn boxed(params: Vec<Param>) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .into_iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(t) => Box::new(t),
                Param::Int(i) => Box::new(i),
            }
        })
        .collect()
}

/// One column of a batch of rows, as an array for `UNNEST`.
fn column<'a, T>(rows: &'a [IndexRow], f: impl Fn(&'a IndexRow) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

#[async_trait]
impl EventIndex for PostgresIndex {
    async fn progress(&self, organization_id: &str) -> Result<Option<Progress>, IndexError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT next_seq, chunk_first, chunk_name, next_off FROM progress WHERE org = $1",
                &[&organization_id],
            )
            .await
            .map_err(db)?;
        row.map(|r| {
            Ok(Progress {
                next_sequence: r.try_get::<_, i64>(0).map_err(db)? as u64,
                chunk: Chunk {
                    first_sequence: r.try_get::<_, i64>(1).map_err(db)? as u64,
                    name: r.try_get(2).map_err(db)?,
                },
                offset: r.try_get::<_, i64>(3).map_err(db)? as u64,
            })
        })
        .transpose()
    }

    async fn apply(&self, organization_id: &str, rows: Vec<IndexRow>, progress: Progress) -> Result<(), IndexError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        if !rows.is_empty() {
            // One statement per batch: every column travels as an array.
            let insert = format!(
                "INSERT INTO events (org, {ROW_COLUMNS}) SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], \
                 $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::text[], $13::text[], $14::text[], $15::bytea[], $16::bigint[], $17::text[], $18::bigint[], \
                 $19::bigint[]) ON CONFLICT (org, seq) DO NOTHING"
            );
            let seq = column(&rows, |r| r.sequence as i64);
            let event_id = column(&rows, |r| r.event_id.as_str());
            let ts = column(&rows, |r| r.timestamp.as_micros());
            let project = column(&rows, |r| r.project_id.as_deref());
            let category = column(&rows, |r| r.event_category.as_str());
            let event_type = column(&rows, |r| r.event_type.as_str());
            let action = column(&rows, |r| r.action.as_str());
            let severity = column(&rows, |r| r.severity.as_str());
            let actor_type = column(&rows, |r| r.actor_type.as_str());
            let actor_id = column(&rows, |r| r.actor_id.as_deref());
            let actor_email = column(&rows, |r| r.actor_email.as_deref());
            let resource_type = column(&rows, |r| r.resource_type.as_deref());
            let resource_id = column(&rows, |r| r.resource_id.as_deref());
            let hash = column(&rows, |r| &r.hash.as_bytes()[..]);
            let chunk_first = column(&rows, |r| r.location.chunk.first_sequence as i64);
            let chunk_name = column(&rows, |r| r.location.chunk.name.as_str());
            let off = column(&rows, |r| r.location.offset as i64);
            let len = column(&rows, |r| r.location.len as i64);
            tx.execute(
                &insert,
                &[
                    &organization_id,
                    &seq,
                    &event_id,
                    &ts,
                    &project,
                    &category,
                    &event_type,
                    &action,
                    &severity,
                    &actor_type,
                    &actor_id,
                    &actor_email,
                    &resource_type,
                    &resource_id,
                    &hash,
                    &chunk_first,
                    &chunk_name,
                    &off,
                    &len,
                ],
            )
            .await
            .map_err(db)?;
        }
        tx.execute(
            &progress_upsert(Placeholders::Dollar),
            &[
                &organization_id,
                &(progress.next_sequence as i64),
                &(progress.chunk.first_sequence as i64),
                &progress.chunk.name,
                &(progress.offset as i64),
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn query(&self, filter: &AuditEventFilter) -> Result<Vec<Hit>, IndexError> {
        filter.check()?;
        let statement = page_query(filter, Placeholders::Dollar, "");
        let params = boxed(statement.params);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let client = self.client().await?;
        let prepared = client.prepare_cached(&statement.sql).await.map_err(db)?;
        let rows = client.query(&prepared, &refs).await.map_err(db)?;
        rows.iter().map(hit_from_row).collect()
    }

    async fn find_event(&self, organization_id: &str, event_id: &str) -> Result<Option<Hit>, IndexError> {
        let client = self.client().await?;
        let sql = format!("SELECT {HIT_COLUMNS} FROM events WHERE org = $1 AND event_id = $2");
        let row = client.query_opt(&sql, &[&organization_id, &event_id]).await.map_err(db)?;
        row.as_ref().map(hit_from_row).transpose()
    }

    async fn clear(&self, organization_id: Option<&str>) -> Result<(), IndexError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        match organization_id {
            Some(o) => {
                tx.execute("DELETE FROM events WHERE org = $1", &[&o]).await.map_err(db)?;
                tx.execute("DELETE FROM progress WHERE org = $1", &[&o]).await.map_err(db)?;
            }
            None => tx.batch_execute("DELETE FROM events; DELETE FROM progress;").await.map_err(db)?,
        }
        tx.commit().await.map_err(db)
    }

    async fn forget_actor_email(&self, organization_id: &str, value: &str) -> Result<u64, IndexError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE events SET actor_email = NULL WHERE org = $1 AND actor_email = $2",
                &[&organization_id, &value],
            )
            .await
            .map_err(db)
    }

    async fn forget_before(&self, organization_id: &str, first_kept: u64) -> Result<u64, IndexError> {
        let client = self.client().await?;
        let first_kept = i64::try_from(first_kept).unwrap_or(i64::MAX);
        client
            .execute("DELETE FROM events WHERE org = $1 AND seq < $2", &[&organization_id, &first_kept])
            .await
            .map_err(db)
    }
}
