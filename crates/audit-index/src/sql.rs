//! The SQL both database indexes share: one schema shape, one translation of
//! a filter into a WHERE clause. Only placeholders and column types differ
//! between SQLite (`?`, INTEGER/BLOB) and PostgreSQL (`$n`, BIGINT/BYTEA).

use audit_core::filter::{AuditEventFilter, Order};

/// A query parameter, in the two types the index columns use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// How a database spells the `n`th (1-based) placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Placeholders {
    /// `?` (SQLite).
    Question,
    /// `$1`, `$2`, … (PostgreSQL).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Dollar,
}

/// A statement under construction: text plus its parameters, numbered as they are pushed.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
    style: Placeholders,
}

impl Statement {
    fn new(style: Placeholders) -> Statement {
        Statement { sql: String::new(), params: Vec::new(), style }
    }

    /// Appends `sql`, binding each `?` in it to the next of `params`.
    fn push(&mut self, sql: &str, params: impl IntoIterator<Item = Param>) {
        let mut params = params.into_iter();
        for (i, piece) in sql.split('?').enumerate() {
            if i > 0 {
                self.params.push(params.next().expect("one parameter per placeholder"));
                self.style.write(self.params.len(), &mut self.sql);
            }
            self.sql.push_str(piece);
        }
        debug_assert!(params.next().is_none(), "more parameters than placeholders in {sql}");
    }
}

impl Placeholders {
    fn write(self, n: usize, sql: &mut String) {
        match self {
            Placeholders::Question => sql.push('?'),
            Placeholders::Dollar => sql.push_str(&format!("${n}")),
        }
    }

    /// `sql` with its `?`s spelled in this style.
    pub(crate) fn apply(self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 8);
        for (i, piece) in sql.split('?').enumerate() {
            if i > 0 {
                self.write(i, &mut out);
            }
            out.push_str(piece);
        }
        out
    }
}

/// The SELECT of one page of a filter's hits (columns [`HIT_COLUMNS`]).
/// `hint` goes right after the table name (SQLite's `INDEXED BY`).
pub(crate) fn page_query(f: &AuditEventFilter, style: Placeholders, hint: &str) -> Statement {
    let mut st = Statement::new(style);
    st.push(
        &format!("SELECT {HIT_COLUMNS} FROM events {hint} WHERE org = ?"),
        [Param::Text(f.organization_id.clone())],
    );
    let mut eq = |column: &str, v: Option<String>| {
        if let Some(v) = v {
            st.push(&format!(" AND {column} = ?"), [Param::Text(v)]);
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
    let org = || Param::Text(f.organization_id.clone());
    let first_at_or_after =
        "coalesce((SELECT seq FROM events WHERE org = ? AND ts >= ? ORDER BY ts, seq LIMIT 1), 9223372036854775807)";
    if let Some(s) = f.start_time {
        let t = s.as_micros();
        st.push(&format!(" AND ts >= ? AND seq >= {first_at_or_after}"), [Param::Int(t), org(), Param::Int(t)]);
    }
    if let Some(e) = f.end_time {
        let t = e.as_micros();
        st.push(&format!(" AND ts < ? AND seq < {first_at_or_after}"), [Param::Int(t), org(), Param::Int(t)]);
    }
    if let Some(c) = f.cursor {
        let op = if c.order == Order::Asc { ">" } else { "<" };
        st.push(&format!(" AND seq {op} ?"), [Param::Int(c.after_sequence as i64)]);
    }
    let order = if f.order == Order::Asc { "ASC" } else { "DESC" };
    st.push(
        &format!(" ORDER BY seq {order} LIMIT ? OFFSET ?"),
        [Param::Int(i64::from(f.page_size())), Param::Int(i64::from(f.offset.unwrap_or(0)))],
    );
    st
}

/// The columns every hit is read from, in this order.
pub(crate) const HIT_COLUMNS: &str = "seq, hash, chunk_first, chunk_name, off, len";

/// The event table's columns in insert order (after `org`).
pub(crate) const ROW_COLUMNS: &str = "seq, event_id, ts, project_id, event_category, event_type, action, severity, \
     actor_type, actor_id, actor_email, resource_type, resource_id, hash, chunk_first, chunk_name, off, len";

/// The two tables, with the database's spelling of a 64-bit integer, a
/// byte string, and what ends the events table (`WITHOUT ROWID` in SQLite).
pub(crate) fn tables(int: &str, bytes: &str, events_suffix: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS events (
    org TEXT NOT NULL,
    seq {int} NOT NULL,
    event_id TEXT NOT NULL,
    ts {int} NOT NULL,
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
    hash {bytes} NOT NULL,
    chunk_first {int} NOT NULL,
    chunk_name TEXT NOT NULL,
    off {int} NOT NULL,
    len {int} NOT NULL,
    PRIMARY KEY (org, seq)
){events_suffix};
CREATE TABLE IF NOT EXISTS progress (
    org TEXT PRIMARY KEY,
    next_seq {int} NOT NULL,
    chunk_first {int} NOT NULL,
    chunk_name TEXT NOT NULL,
    next_off {int} NOT NULL
);"
    )
}

/// The secondary indexes: each leads with the organization and ends with
/// the sequence, so an equality on its column yields rows in log order.
pub(crate) const SECONDARY_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_ts ON events (org, ts, seq);
CREATE INDEX IF NOT EXISTS events_event_id ON events (org, event_id);
CREATE INDEX IF NOT EXISTS events_actor_email ON events (org, actor_email, seq);
CREATE INDEX IF NOT EXISTS events_actor_id ON events (org, actor_id, seq);
CREATE INDEX IF NOT EXISTS events_resource ON events (org, resource_id, seq);
CREATE INDEX IF NOT EXISTS events_type ON events (org, event_type, seq);
CREATE INDEX IF NOT EXISTS events_category ON events (org, event_category, seq);
CREATE INDEX IF NOT EXISTS events_project ON events (org, project_id, seq);
";

/// The statement that moves an organization's progress mark, only ever
/// forward (two indexers may race); parameters: org, next_seq,
/// chunk_first, chunk_name, next_off.
pub(crate) fn progress_upsert(style: Placeholders) -> String {
    style.apply(
        "INSERT INTO progress (org, next_seq, chunk_first, chunk_name, next_off) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (org) DO UPDATE SET next_seq = excluded.next_seq, chunk_first = excluded.chunk_first, \
         chunk_name = excluded.chunk_name, next_off = excluded.next_off WHERE excluded.next_seq > progress.next_seq",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_for_postgres() {
        let f = AuditEventFilter {
            actor_id: Some("u1".into()),
            start_time: Some(audit_core::Timestamp::from_micros(5)),
            ..AuditEventFilter::for_organization("acme")
        };
        let st = page_query(&f, Placeholders::Dollar, "");
        assert!(st.sql.contains("org = $1 AND actor_id = $2 AND ts >= $3"), "{}", st.sql);
        assert!(st.sql.ends_with("LIMIT $6 OFFSET $7"), "{}", st.sql);
        assert_eq!(st.params.len(), 7);
        assert_eq!(st.params[1], Param::Text("u1".into()));
        assert_eq!(st.params[3], Param::Text("acme".into()));
        let q = page_query(&f, Placeholders::Question, "");
        assert_eq!(q.sql.matches('?').count(), 7);
        assert_eq!(q.params, st.params);
    }
}
