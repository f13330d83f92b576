//! Exports (SPEC §8): `jsonl` (the stored lines, byte for byte), `json` (the
//! same events as one array) and `csv` (RFC 4180, fixed columns, formula
//! injection neutralised). Exports stream from storage: memory stays flat
//! whatever their size, and no page limit applies.

use std::borrow::Cow;
use std::io::Write;

use audit_core::csv::{CSV_COLUMNS, starts_a_formula, write_csv_record};
use audit_core::filter::AuditEventFilter;
use audit_storage::LogStore;

use audit_core::personal::normalise_email;
use audit_core::stored::StoredEvent;

use crate::personal::Protection;
use crate::read::stored::{ExportError, PartEncoder, TimeRange, encode_stored_lines, for_each_stored_line_with};

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

/// Streams the events matching `filter` (paging ignored) to `out` and
/// returns how many were written. `progress` is called with the running
/// count every 10,000 events. With `protection`, `json` and `csv` show
/// personal values revealed (or `"[erased]"`) and an `actor_email` filter
/// matches the revealed address (case-insensitively, as lookups do);
/// `jsonl` is always the stored form.
pub async fn export_events(
    store: &dyn LogStore,
    filter: &AuditEventFilter,
    format: ExportFormat,
    out: &mut (dyn Write + Send),
    protection: Option<&Protection>,
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
    // What is matched and shown: the stored event, or its revealed form.
    let matcher = Matcher::new(filter, protection);
    match format {
        // Fast paths: the stored bytes are the export.
        ExportFormat::Jsonl if filter.is_time_range_only() => {
            written = crate::read::stored::export_jsonl(store, org, range, out).await?;
        }
        ExportFormat::Json if filter.is_time_range_only() && protection.is_none() => {
            let mut array = ArrayWriter::new(&mut *out)?;
            written = crate::read::stored::export_jsonl(store, org, range, &mut array).await?;
            array.finish()?;
        }
        ExportFormat::Jsonl | ExportFormat::Json => {
            let json = format == ExportFormat::Json;
            if json {
                out.write_all(b"[")?;
            }
            for_each_stored_line_with(store, org, range, protection, &mut |line, event| {
                let Some(shown) = matcher.shown_if_matching(event) else { return Ok(()) };
                if json && written > 0 {
                    out.write_all(b",")?;
                }
                match (json, &shown) {
                    (true, Cow::Owned(revealed)) => out.write_all(&revealed.to_line())?,
                    _ => out.write_all(line)?,
                }
                if !json {
                    out.write_all(b"\n")?;
                }
                count(&mut written);
                Ok(())
            })
            .await?;
            if json {
                out.write_all(b"]\n")?;
            }
        }
        ExportFormat::Csv => {
            let mut header = csv::Writer::from_writer(Vec::new());
            header.write_record(CSV_COLUMNS).map_err(csv_error)?;
            out.write_all(&header.into_inner().map_err(|e| ExportError::Output(e.into_error()))?)?;
            let encoder = CsvEncoder { matcher: &matcher };
            encode_stored_lines(store, org, range, protection, &encoder, &mut |part| {
                out.write_all(&part.rows.into_inner().map_err(|e| ExportError::Output(e.into_error()))?)?;
                for _ in 0..part.events {
                    count(&mut written);
                }
                Ok(())
            })
            .await?;
        }
    }
    out.flush()?;
    progress(written);
    Ok(written)
}

/// Filters stored events, revealing them first when personal data is
/// protected (an `actor_email` condition is about the address, not the
/// ciphertext).
struct Matcher<'a> {
    /// The filter without its `actor_email` when that is compared revealed.
    filter: Cow<'a, AuditEventFilter>,
    email: Option<String>,
    protection: Option<&'a Protection>,
}

impl<'a> Matcher<'a> {
    fn new(filter: &'a AuditEventFilter, protection: Option<&'a Protection>) -> Self {
        match (protection, &filter.actor_email) {
            (Some(_), Some(email)) => {
                let mut rest = filter.clone();
                rest.actor_email = None;
                Matcher { filter: Cow::Owned(rest), email: Some(normalise_email(email)), protection }
            }
            _ => Matcher { filter: Cow::Borrowed(filter), email: None, protection },
        }
    }

    /// The event as the export shows it — as stored (borrowed) without
    /// protection, revealed (owned) with it — if it matches.
    fn shown_if_matching<'e>(&self, event: &'e StoredEvent) -> Option<Cow<'e, StoredEvent>> {
        let Some(p) = self.protection else {
            return self.filter.matches(event).then_some(Cow::Borrowed(event));
        };
        if !self.filter.matches(event) {
            return None;
        }
        // Most events of a log kept before protection was on, and every
        // event without personal data, have nothing to open: no copy.
        let shown = if event.holds_sealed_values() { Cow::Owned(p.reveal_cached(event)) } else { Cow::Borrowed(event) };
        let email_matches = self.email.as_ref().is_none_or(|want| {
            shown.body.draft().actor_email.as_deref().is_some_and(|have| normalise_email(have) == *want)
        });
        email_matches.then_some(shown)
    }
}

/// Encodes stored events as CSV records, a part of a block at a time.
struct CsvEncoder<'a> {
    matcher: &'a Matcher<'a>,
}

/// One part's CSV records.
struct CsvPart {
    rows: csv::Writer<Vec<u8>>,
    /// Reused for the cells the event does not hold as text.
    scratch: Vec<u8>,
    /// Formula-guarded cells are written from here.
    guarded: Vec<u8>,
    events: u64,
}

impl PartEncoder for CsvEncoder<'_> {
    type Part = CsvPart;

    fn begin(&self) -> CsvPart {
        CsvPart { rows: csv::Writer::from_writer(Vec::new()), scratch: Vec::new(), guarded: Vec::new(), events: 0 }
    }

    fn event(&self, part: &mut CsvPart, _line: &[u8], event: &StoredEvent) -> Result<(), ExportError> {
        let Some(shown) = self.matcher.shown_if_matching(event) else { return Ok(()) };
        let CsvPart { rows, scratch, guarded, events } = part;
        let mut failed = None;
        write_csv_record(&shown, scratch, |cell| {
            let cell = if starts_a_formula(cell) {
                guarded.clear();
                guarded.push(b'\'');
                guarded.extend_from_slice(cell);
                &guarded[..]
            } else {
                cell
            };
            if let Err(e) = rows.write_field(cell)
                && failed.is_none()
            {
                failed = Some(e);
            }
        });
        rows.write_record(None::<&[u8]>).map_err(csv_error)?;
        if let Some(e) = failed {
            return Err(csv_error(e));
        }
        *events += 1;
        Ok(())
    }
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
}
