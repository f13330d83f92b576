//! The embedded index: one SQLite file in the data directory.
//!
//! One row per event, keyed by (organization, sequence), with the filter
//! columns, the hash and the location; secondary indexes lead with the
//! organization and end with the sequence so that every filtered, paged
//! query walks an index in sequence order.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use audit_core::filter::{AuditEventFilter, Order};
use audit_storage::Chunk;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};

use crate::row::hash_from_blob;
use crate::{EventIndex, Hit, IndexError, IndexRow, Location, Progress};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    org TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    project_id TEXT,
    event_category TEXT NOT NULL,
    event_type TEXT NOT NULL,
    action TEXT NOT NULL,
    severity TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    actor_email TEXT,
    resource_type TEXT,
    resource_id TEXT,
    hash BLOB NOT NULL,
    chunk_first INTEGER NOT NULL,
    chunk_name TEXT NOT NULL,
    off INTEGER NOT NULL,
    len INTEGER NOT NULL,
    PRIMARY KEY (org, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_ts ON events (org, ts, seq);
CREATE INDEX IF NOT EXISTS events_event_id ON events (org, event_id);
CREATE INDEX IF NOT EXISTS events_actor_email ON events (org, actor_email, seq);
CREATE INDEX IF NOT EXISTS events_actor_id ON events (org, actor_id, seq);
CREATE INDEX IF NOT EXISTS events_resource ON events (org, resource_id, seq);
CREATE INDEX IF NOT EXISTS events_type ON events (org, event_type, seq);
CREATE INDEX IF NOT EXISTS events_category ON events (org, event_category, seq);
CREATE INDEX IF NOT EXISTS events_project ON events (org, project_id, seq);
CREATE TABLE IF NOT EXISTS progress (
    org TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    chunk_first INTEGER NOT NULL,
    chunk_name TEXT NOT NULL,
    next_off INTEGER NOT NULL
);
";

/// SQLite index (the embedded default).
#[derive(Debug, Clone)]
pub struct SqliteIndex {
    conn: Arc<Mutex<Connection>>,
}

fn db(e: rusqlite::Error) -> IndexError {
    IndexError::Database(e.to_string())
}

impl SqliteIndex {
    /// Opens (creating if needed) the index file at `path`.
    pub fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        let conn = Connection::open(path).map_err(db)?;
        // Derived data: a crash may lose the newest index transactions, which
        // the next catch-up redoes from storage; it never loses storage.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536;",
        )
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(SqliteIndex { conn: Arc::new(Mutex::new(conn)) })
    }

    /// An index held in memory (tests).
    pub fn in_memory() -> Result<SqliteIndex, IndexError> {
        let conn = Connection::open_in_memory().map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
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

/// The columns every hit is read from, in this order.
const HIT_COLUMNS: &str = "seq, hash, chunk_first, chunk_name, off, len";

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

/// The WHERE clause and parameters of a filter (paging aside).
fn where_clause(f: &AuditEventFilter) -> (String, Vec<Value>) {
    let mut sql = String::from("org = ?");
    let mut params: Vec<Value> = vec![Value::Text(f.organization_id.clone())];
    let mut eq = |column: &str, v: Option<String>| {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {column} = ?"));
            params.push(Value::Text(v));
        }
    };
    eq("project_id", f.project_id.clone());
    eq("event_category", f.event_category.map(|c| c.as_str().to_owned()));
    eq("event_type", f.event_type.clone());
    eq("action", f.action.map(|a| a.as_str().to_owned()));
    eq("severity", f.severity.map(|s| s.as_str().to_owned()));
    eq("actor_type", f.actor_type.map(|a| a.as_str().to_owned()));
    eq("actor_id", f.actor_id.clone());
    eq("actor_email", f.actor_email.clone());
    eq("resource_type", f.resource_type.clone());
    eq("resource_id", f.resource_id.clone());
    // Timestamps never decrease along a log (the chain guarantees it), so a
    // time range is a sequence range: bound `seq` through the time index,
    // and the scan in sequence order touches only the range.
    let org = Value::Text(f.organization_id.clone());
    if let Some(s) = f.start_time {
        sql.push_str(" AND ts >= ? AND seq >= coalesce((SELECT seq FROM events WHERE org = ? AND ts >= ? ORDER BY ts, seq LIMIT 1), 9223372036854775807)");
        params.extend([Value::Integer(s.as_micros()), org.clone(), Value::Integer(s.as_micros())]);
    }
    if let Some(e) = f.end_time {
        sql.push_str(" AND ts < ? AND seq < coalesce((SELECT seq FROM events WHERE org = ? AND ts >= ? ORDER BY ts, seq LIMIT 1), 9223372036854775807)");
        params.extend([Value::Integer(e.as_micros()), org, Value::Integer(e.as_micros())]);
    }
    (sql, params)
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
                        "INSERT OR IGNORE INTO events (org, seq, event_id, ts, project_id, event_category, event_type, action, \
                         severity, actor_type, actor_id, actor_email, resource_type, resource_id, hash, chunk_first, \
                         chunk_name, off, len) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            // Progress only moves forward (two indexers may race).
            tx.execute(
                "INSERT INTO progress (org, next_seq, chunk_first, chunk_name, next_off) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (org) DO UPDATE SET next_seq = excluded.next_seq, chunk_first = excluded.chunk_first, \
                 chunk_name = excluded.chunk_name, next_off = excluded.next_off WHERE excluded.next_seq > progress.next_seq",
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
        let (mut sql, mut params) = where_clause(filter);
        if let Some(c) = filter.cursor {
            sql.push_str(if c.order == Order::Asc { " AND seq > ?" } else { " AND seq < ?" });
            params.push(Value::Integer(c.after_sequence as i64));
        }
        let order = if filter.order == Order::Asc { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM events {} WHERE {sql} ORDER BY seq {order} LIMIT ? OFFSET ?",
            index_hint(filter)
        );
        params.push(Value::Integer(i64::from(filter.page_size())));
        params.push(Value::Integer(i64::from(filter.offset.unwrap_or(0))));
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
            let rows = stmt.query_map(params_from_iter(params), hit_from_row).map_err(db)?;
            rows.map(|row| row.map_err(db)?).collect()
        })
        .await
    }

    async fn find_event(&self, organization_id: &str, event_id: &str) -> Result<Option<Hit>, IndexError> {
        let (org, id) = (organization_id.to_owned(), event_id.to_owned());
        let sql = format!("SELECT {HIT_COLUMNS} FROM events WHERE org = ? AND event_id = ?");
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
}
