//! Exports (SPEC §8): `jsonl` (the stored lines, byte for byte), `json` (the
//! same events as one array) and `csv` (RFC 4180, fixed columns, formula
//! injection neutralised). Exports stream from storage: memory stays flat
//! whatever their size, and no page limit applies.

use std::io::Write;

use audit_core::filter::AuditEventFilter;
use audit_core::json::{Object, Value};
use audit_core::stored::StoredEvent;
use audit_storage::LogStore;

use crate::read::stored::{ExportError, TimeRange, for_each_stored_line};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON array of stored events.
    Json,
    /// Stored events, one per line, byte-identical to storage.
    Jsonl,
    /// RFC 4180 CSV with [`CSV_COLUMNS`].
    Csv,
}

impl ExportFormat {
    /// Parses `json`, `jsonl` or `csv` (any case).
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Some(ExportFormat::Json),
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    /// The MIME type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

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

fn json_text(obj: &Option<Object>) -> String {
    obj.as_ref().map_or_else(String::new, |o| {
        String::from_utf8(audit_core::canonical::to_canonical(&Value::Object(o.clone()))).unwrap_or_default()
    })
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
        o
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
        audit_core::event::SCHEMA_VERSION.to_string(),
    ]
}

/// Streams the events matching `filter` (paging ignored) to `out` and
/// returns how many were written. `progress` is called with the running
/// count every 10,000 events.
pub async fn export_events(
    store: &dyn LogStore,
    filter: &AuditEventFilter,
    format: ExportFormat,
    out: &mut (dyn Write + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ExportError> {
    filter.check()?;
    let range = TimeRange { since: filter.start_time, until: filter.end_time };
    let org = &filter.organization_id;
    let mut written = 0u64;
    let mut count = |written: &mut u64| {
        *written += 1;
        if (*written).is_multiple_of(10_000) {
            progress(*written);
        }
    };
    match format {
        // Fast paths: the stored bytes are the export.
        ExportFormat::Jsonl if filter.is_time_range_only() => {
            written = crate::read::stored::export_jsonl(store, org, range, out).await?;
        }
        ExportFormat::Json if filter.is_time_range_only() => {
            let mut array = ArrayWriter::new(&mut *out)?;
            written = crate::read::stored::export_jsonl(store, org, range, &mut array).await?;
            array.finish()?;
        }
        ExportFormat::Jsonl | ExportFormat::Json => {
            let json = format == ExportFormat::Json;
            if json {
                out.write_all(b"[")?;
            }
            for_each_stored_line(store, org, range, &mut |line, event| {
                if filter.matches(event) {
                    if json && written > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(line)?;
                    if !json {
                        out.write_all(b"\n")?;
                    }
                    count(&mut written);
                }
                Ok(())
            })
            .await?;
            if json {
                out.write_all(b"]\n")?;
            }
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_COLUMNS).map_err(csv_error)?;
            for_each_stored_line(store, org, range, &mut |_, event| {
                if filter.matches(event) {
                    w.write_record(csv_record(event).iter().map(|c| csv_cell(c).into_owned())).map_err(csv_error)?;
                    count(&mut written);
                }
                Ok(())
            })
            .await?;
            w.flush()?;
        }
    }
    out.flush()?;
    progress(written);
    Ok(written)
}

fn csv_error(e: csv::Error) -> ExportError {
    ExportError::Output(std::io::Error::other(e.to_string()))
}

/// Turns a stream of JSON Lines into one JSON array, without buffering.
#[derive(Debug)]
pub struct ArrayWriter<W: Write> {
    inner: W,
    at_line_start: bool,
    first: bool,
}

impl<W: Write> ArrayWriter<W> {
    /// Starts the array.
    pub fn new(mut inner: W) -> std::io::Result<Self> {
        inner.write_all(b"[")?;
        Ok(ArrayWriter { inner, at_line_start: true, first: true })
    }

    /// Ends the array and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.inner.write_all(b"]\n")?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ArrayWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Each newline ends an element; the next element is preceded by a comma.
        for piece in buf.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                if !self.first {
                    self.inner.write_all(b",")?;
                }
                self.first = false;
                self.at_line_start = false;
            }
            match piece.strip_suffix(b"\n") {
                Some(line) => {
                    self.inner.write_all(line)?;
                    self.at_line_start = true;
                }
                None => self.inner.write_all(piece)?,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_writer_joins_lines_whatever_the_write_boundaries() {
        let mut array = ArrayWriter::new(Vec::new()).unwrap();
        for piece in [&b"{\"a\""[..], b":1}\n{\"b\":2}", b"\n"] {
            array.write_all(piece).unwrap();
        }
        assert_eq!(array.finish().unwrap(), b"[{\"a\":1},{\"b\":2}]\n");
        assert_eq!(ArrayWriter::new(Vec::new()).unwrap().finish().unwrap(), b"[]\n");
    }

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
