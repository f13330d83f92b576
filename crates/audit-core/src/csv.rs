//! The CSV form of stored events (SPEC §8): fixed columns, one record per
//! event, and the spreadsheet-formula guard every cell goes through. Pure:
//! the export writes the records with the `csv` crate.

use crate::json::{Object, Value};
use crate::stored::StoredEvent;

/// The CSV columns, in order. Nested objects are written as canonical JSON text.
pub const CSV_COLUMNS: &[&str] = &[
    "sequence",
    "event_id",
    "timestamp",
    "occurred_at",
    "organization_id",
    "project_id",
    "event_category",
    "event_type",
    "action",
    "severity",
    "actor_type",
    "actor_id",
    "actor_email",
    "actor_ip",
    "user_agent",
    "session_id",
    "resource_type",
    "resource_id",
    "request",
    "previous_state",
    "new_state",
    "metadata",
    "idempotency_key",
    "producer_id",
    "producer_sequence",
    "previous_hash",
    "hash",
    "schema_version",
];

/// Neutralises spreadsheet formulas (OWASP's CSV injection guidance): a
/// cell that begins with tab or CR, or whose first character after any
/// whitespace (spaces, NBSP and other Unicode spaces) is `=`, `+`, `-`, `@`
/// or `|` — or the fullwidth `＝`, `＋`, `－`, `＠`, `｜` that spreadsheets
/// also read as operators — gets a leading `'`.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    let starts_a_formula = match text.chars().next() {
        Some('\t' | '\r') => true,
        _ => text.trim_start().chars().next().is_some_and(|c| {
            matches!(c, '=' | '+' | '-' | '@' | '|' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}' | '\u{ff5c}')
        }),
    };
    if starts_a_formula { std::borrow::Cow::Owned(format!("'{text}")) } else { std::borrow::Cow::Borrowed(text) }
}

fn json_text(obj: &Option<crate::event::JsonObject>) -> String {
    obj.as_ref().map_or_else(String::new, |o| String::from_utf8_lossy(&o.canonical_bytes()).into_owned())
}

/// The CSV record of one stored event, in [`CSV_COLUMNS`] order.
pub fn csv_record(e: &StoredEvent) -> Vec<String> {
    let d = e.body.draft();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let request = d.request.as_ref().map(|r| {
        let mut o = Object::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                o.insert(k, Value::String(v.clone()));
            }
        };
        put("method", &r.method);
        put("path", &r.path);
        put("route", &r.route);
        put("request_id", &r.request_id);
        if let Some(s) = r.status {
            o.insert("status", Value::Number(f64::from(s)));
        }
        if let Some(ms) = r.duration_ms {
            o.insert("duration_ms", Value::Number(ms));
        }
        crate::event::JsonObject::from(o)
    });
    vec![
        e.sequence.to_string(),
        e.event_id.clone(),
        e.timestamp.to_string(),
        d.occurred_at.map(|t| t.to_string()).unwrap_or_default(),
        d.organization_id.clone(),
        opt(&d.project_id),
        e.body.category().to_string(),
        d.event_type.clone(),
        e.body.action().to_string(),
        e.body.severity().to_string(),
        e.body.actor_type().to_string(),
        opt(&d.actor_id),
        opt(&d.actor_email),
        opt(&d.actor_ip),
        opt(&d.user_agent),
        opt(&d.session_id),
        opt(&d.resource_type),
        opt(&d.resource_id),
        json_text(&request),
        json_text(&d.previous_state),
        json_text(&d.new_state),
        json_text(&d.metadata),
        opt(&d.idempotency_key),
        opt(&d.producer_id),
        d.producer_sequence.map(|n| n.to_string()).unwrap_or_default(),
        e.previous_hash.to_hex(),
        e.hash.to_hex(),
        crate::event::SCHEMA_VERSION.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for (cell, out) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            // After leading whitespace, NBSP included; fullwidth forms; pipes.
            (" =1+1", "' =1+1"),
            ("\u{a0}=1", "'\u{a0}=1"),
            ("\u{ff1d}1+1", "'\u{ff1d}1+1"),
            ("\u{ff20}SUM(A1)", "'\u{ff20}SUM(A1)"),
            ("|cmd", "'|cmd"),
            ("  -2", "'  -2"),
            ("ok", "ok"),
            ("a=1", "a=1"),
            ("  ", "  "),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), out);
        }
    }
}
