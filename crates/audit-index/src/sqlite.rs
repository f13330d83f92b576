//! The embedded index: one SQLite file in the data directory.
//!
//! One row per event, keyed by (organization, sequence), with the filter
//! columns, the hash and the location; secondary indexes lead with the
//! organization and end with the sequence so that every filtered, paged
//! query walks an index in sequence order.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use audit_core::filter::AuditEventFilter;
use audit_storage::Chunk;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};

use crate::row::hash_from_blob;
use crate::sql::{
    HIT_COLUMNS, Param, Placeholders, ROW_COLUMNS, SECONDARY_INDEXES, Statement, page_query, progress_upsert, tables,
};
use crate::{EventIndex, Hit, IndexError, IndexRow, Location, Progress};

/// SQLite index (the embedded default).
#[derive(Debug, Clone)]
pub struct SqliteIndex {
    conn: Arc<Mutex<Connection>>,
}

fn create_schema(conn: &Connection) -> Result<(), IndexError> {
    conn.execute_batch(&tables("INTEGER", "BLOB", " WITHOUT ROWID")).map_err(db)?;
    conn.execute_batch(SECONDARY_INDEXES).map_err(db)
}

fn db(e: rusqlite::Error) -> IndexError {
    IndexError::Database(e.to_string())
}

impl SqliteIndex {
    /// Opens (creating if needed) the index file at `path`.
    pub fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        let conn = Connection::open(path).map_err(db)?;
        // It names actors and resources: readable by the service's user only
        // (SQLite gives its -wal and -shm files the database file's mode).
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| IndexError::Database(format!("cannot restrict {}: {e}", path.display())))?;
        }
        // Derived data: a crash may lose the newest index transactions, which
        // the next catch-up redoes from storage; it never loses storage.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536;",
        )
            .map_err(db)?;
        create_schema(&conn)?;
        Ok(SqliteIndex { conn: Arc::new(Mutex::new(conn)) })
    }

    /// An index held in memory (tests).
    pub fn in_memory() -> Result<SqliteIndex, IndexError> {
        let conn = Connection::open_in_memory().map_err(db)?;
        create_schema(&conn)?;
        Ok(SqliteIndex { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| IndexError::Database(format!("index task failed: {e}")))?
    }
}

/// A [`Hit`] from a row selected with [`HIT_COLUMNS`].
fn hit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Hit, IndexError>> {
    let seq: i64 = r.get(0)?;
    let blob: Vec<u8> = r.get(1)?;
    let location = Location {
        chunk: Chunk { first_sequence: r.get::<_, i64>(2)? as u64, name: r.get(3)? },
        offset: r.get::<_, i64>(4)? as u64,
        len: r.get::<_, i64>(5)? as u64,
    };
    Ok(hash_from_blob(&blob)
        .map(|hash| Hit { sequence: seq as u64, hash, location })
        .map_err(|_| IndexError::Database(format!("bad hash at sequence {seq}"))))
}

/// Which index walks the matching events in sequence order with the fewest
/// rows to skip. Without a hint, SQLite's planner (which has no statistics
/// on a fresh index, and no value histogram) would often walk the primary
/// key and read the whole log to find a rare actor. Each secondary index
/// ends with `seq`, so an equality on its column yields rows already in
/// order; columns are tried from the most to the least selective in audit
/// data.
fn index_hint(f: &AuditEventFilter) -> &'static str {
    if f.resource_id.is_some() {
        "INDEXED BY events_resource"
    } else if f.actor_email.is_some() {
        "INDEXED BY events_actor_email"
    } else if f.actor_id.is_some() {
        "INDEXED BY events_actor_id"
    } else if f.event_type.is_some() {
        "INDEXED BY events_type"
    } else if f.project_id.is_some() {
        "INDEXED BY events_project"
    } else if f.event_category.is_some() {
        "INDEXED BY events_category"
    } else {
        // Time ranges become sequence bounds on the primary key (see below).
        ""
    }
}

fn sqlite_params(params: Vec<Param>) -> impl Iterator<Item = Value> {
    params.into_iter().map(|p| match p {
        Param::Text(t) => Value::Text(t),
        Param::Int(i) => Value::Integer(i),
    })
}

/// One event by id. `INDEXED BY`: without statistics SQLite prefers the
/// primary key's `org = ?` prefix here (the table is `WITHOUT ROWID`, so
/// the id index needs a second lookup), which walks every row of the
/// organization — 1.3 s per lookup on a 10M-event log, for every event page
/// and proof of the console and the API.
fn find_event_sql() -> String {
    format!("SELECT {HIT_COLUMNS} FROM events INDEXED BY events_event_id WHERE org = ? AND event_id = ?")
}

#[async_trait]
impl EventIndex for SqliteIndex {
    async fn progress(&self, organization_id: &str) -> Result<Option<Progress>, IndexError> {
        let org = organization_id.to_owned();
        self.with(move |conn| {
            conn.query_row(
                "SELECT next_seq, chunk_first, chunk_name, next_off FROM progress WHERE org = ?",
                [org],
                |r| {
                    Ok(Progress {
                        next_sequence: r.get::<_, i64>(0)? as u64,
                        chunk: Chunk { first_sequence: r.get::<_, i64>(1)? as u64, name: r.get(2)? },
                        offset: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn apply(&self, organization_id: &str, rows: Vec<IndexRow>, progress: Progress) -> Result<(), IndexError> {
        let org = organization_id.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        &format!(
                        "INSERT OR IGNORE INTO events (org, {ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    )
                    .map_err(db)?;
                for r in &rows {
                    insert
                        .execute(params![
                            org,
                            r.sequence as i64,
                            r.event_id,
                            r.timestamp.as_micros(),
                            r.project_id,
                            r.event_category.as_str(),
                            r.event_type,
                            r.action.as_str(),
                            r.severity.as_str(),
                            r.actor_type.as_str(),
                            r.actor_id,
                            r.actor_email,
                            r.resource_type,
                            r.resource_id,
                            &r.hash.as_bytes()[..],
                            r.location.chunk.first_sequence as i64,
                            r.location.chunk.name,
                            r.location.offset as i64,
                            r.location.len as i64,
                        ])
                        .map_err(db)?;
                }
            }
            tx.execute(
                &progress_upsert(Placeholders::Question),
                params![
                    org,
                    progress.next_sequence as i64,
                    progress.chunk.first_sequence as i64,
                    progress.chunk.name,
                    progress.offset as i64
                ],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn query(&self, filter: &AuditEventFilter) -> Result<Vec<Hit>, IndexError> {
        filter.check()?;
        let Statement { sql, params, .. } = page_query(filter, Placeholders::Question, index_hint(filter));
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
            let rows = stmt.query_map(params_from_iter(sqlite_params(params)), hit_from_row).map_err(db)?;
            rows.map(|row| row.map_err(db)?).collect()
        })
        .await
    }

    async fn find_event(&self, organization_id: &str, event_id: &str) -> Result<Option<Hit>, IndexError> {
        let (org, id) = (organization_id.to_owned(), event_id.to_owned());
        let sql = find_event_sql();
        self.with(move |conn| conn.query_row(&sql, [org, id], hit_from_row).optional().map_err(db)?.transpose()).await
    }

    async fn clear(&self, organization_id: Option<&str>) -> Result<(), IndexError> {
        let org = organization_id.map(str::to_owned);
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db)?;
            match &org {
                Some(o) => {
                    tx.execute("DELETE FROM events WHERE org = ?", [o]).map_err(db)?;
                    tx.execute("DELETE FROM progress WHERE org = ?", [o]).map_err(db)?;
                }
                None => tx.execute_batch("DELETE FROM events; DELETE FROM progress;").map_err(db)?,
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn forget_actor_email(&self, organization_id: &str, value: &str) -> Result<u64, IndexError> {
        let (org, value) = (organization_id.to_owned(), value.to_owned());
        self.with(move |conn| {
            conn.execute("UPDATE events SET actor_email = NULL WHERE org = ?1 AND actor_email = ?2", [&org, &value])
                .map(|n| n as u64)
                .map_err(db)
        })
        .await
    }

    async fn forget_before(&self, organization_id: &str, first_kept: u64) -> Result<u64, IndexError> {
        let org = organization_id.to_owned();
        let first_kept = i64::try_from(first_kept).unwrap_or(i64::MAX);
        self.with(move |conn| {
            conn.execute("DELETE FROM events WHERE org = ?1 AND seq < ?2", rusqlite::params![org, first_kept])
                .map(|n| n as u64)
                .map_err(db)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event is found through its id index, never by walking the
    /// organization's rows (what SQLite's planner picked on its own).
    #[test]
    fn an_event_is_found_through_the_id_index() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open(&dir.path().join("index.sqlite3")).unwrap();
        let conn = index.conn.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", find_event_sql()))
            .unwrap()
            .query_map(["org-1", "01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b"], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("INDEX events_event_id (org=? AND event_id=?)")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.contains("PRIMARY KEY (org=?)")), "{plan:?}");
    }
}
