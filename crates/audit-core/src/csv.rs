//! The CSV form of stored events (SPEC §8): fixed columns, one record per
//! event, and the spreadsheet-formula guard every cell goes through. Pure:
//! the export writes the records with the `csv` crate.

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
/// cell that [starts a formula](starts_a_formula) gets a leading `'`.
pub fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if starts_a_formula(text.as_bytes()) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Whether a spreadsheet would read the UTF-8 `cell` as a formula: it
/// begins with tab or CR, or its first character after any whitespace
/// (spaces, NBSP and other Unicode spaces) is `=`, `+`, `-`, `@` or `|`, or
/// the fullwidth `＝`, `＋`, `－`, `＠`, `｜` that spreadsheets also read as
/// operators. Reads only the cell's leading characters.
pub fn starts_a_formula(cell: &[u8]) -> bool {
    match cell.first() {
        Some(b'\t' | b'\r') => return true,
        // Most cells (ids, hashes, times, vocabulary words): a letter or a
        // digit is neither whitespace nor an operator.
        Some(b) if b.is_ascii_alphanumeric() => return false,
        _ => {}
    }
    let mut at = 0;
    while at < cell.len() {
        let width = match cell[at] {
            0..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        let first = cell.get(at..at + width).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.chars().next());
        match first {
            Some(c) if c.is_whitespace() => at += width,
            Some(c) => {
                return matches!(
                    c,
                    '=' | '+' | '-' | '@' | '|' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}' | '\u{ff5c}'
                );
            }
            None => return false,
        }
    }
    false
}

/// The cells of one record, handed to a sink in column order: borrowed
/// from the event where it holds the text, written in one scratch buffer
/// where it does not (numbers, times, hashes, the request object).
struct Cells<'a, F: FnMut(&[u8])> {
    scratch: &'a mut Vec<u8>,
    sink: F,
}

impl<F: FnMut(&[u8])> Cells<'_, F> {
    fn put(&mut self, cell: &[u8]) {
        (self.sink)(cell);
    }

    fn opt(&mut self, cell: Option<&str>) {
        (self.sink)(cell.unwrap_or_default().as_bytes());
    }

    fn written(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.scratch.clear();
        write(self.scratch);
        (self.sink)(self.scratch);
    }

    fn object(&mut self, obj: Option<&crate::event::JsonObject>) {
        match obj {
            Some(crate::event::JsonObject::Canonical(c)) => (self.sink)(c.as_bytes()),
            Some(tree) => self.written(|out| tree.write_canonical(out)),
            None => (self.sink)(b""),
        }
    }
}

/// Hands `cell` the CSV record of one stored event, a cell at a time in
/// [`CSV_COLUMNS`] order, as UTF-8 text not yet guarded against formulas
/// (see [`starts_a_formula`]). Nested objects are their canonical JSON;
/// `scratch` is reused for cells the event does not hold as text, so a
/// record costs no allocation.
pub fn write_csv_record(e: &StoredEvent, scratch: &mut Vec<u8>, cell: impl FnMut(&[u8])) {
    use crate::canonical::write_decimal;
    let d = e.body.draft();
    let mut c = Cells { scratch, sink: cell };
    c.written(|out| write_decimal(e.sequence, out));
    c.put(e.event_id.as_bytes());
    c.written(|out| e.timestamp.write_to(out));
    match d.occurred_at {
        Some(t) => c.written(|out| t.write_to(out)),
        None => c.put(b""),
    }
    c.put(d.organization_id.as_bytes());
    c.opt(d.project_id.as_deref());
    c.put(e.body.category().as_str().as_bytes());
    c.put(d.event_type.as_bytes());
    c.put(e.body.action().as_str().as_bytes());
    c.put(e.body.severity().as_str().as_bytes());
    c.put(e.body.actor_type().as_str().as_bytes());
    c.opt(d.actor_id.as_deref());
    c.opt(d.actor_email.as_deref());
    c.opt(d.actor_ip.as_deref());
    c.opt(d.user_agent.as_deref());
    c.opt(d.session_id.as_deref());
    c.opt(d.resource_type.as_deref());
    c.opt(d.resource_id.as_deref());
    match &d.request {
        Some(r) => c.written(|out| r.write_canonical(out)),
        None => c.put(b""),
    }
    c.object(d.previous_state.as_ref());
    c.object(d.new_state.as_ref());
    c.object(d.metadata.as_ref());
    c.opt(d.idempotency_key.as_deref());
    c.opt(d.producer_id.as_deref());
    match d.producer_sequence {
        Some(n) => c.written(|out| write_decimal(n, out)),
        None => c.put(b""),
    }
    c.written(|out| e.previous_hash.write_hex(out));
    c.written(|out| e.hash.write_hex(out));
    c.written(|out| write_decimal(crate::event::SCHEMA_VERSION, out));
}

/// The CSV record of one stored event, in [`CSV_COLUMNS`] order (see
/// [`write_csv_record`]), as owned strings.
pub fn csv_record(e: &StoredEvent) -> Vec<String> {
    let mut cells = Vec::with_capacity(CSV_COLUMNS.len());
    write_csv_record(e, &mut Vec::new(), |cell| cells.push(String::from_utf8_lossy(cell).into_owned()));
    cells
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
            ("1-2", "1-2"),
            ("Z+1", "Z+1"),
            ("\u{a0}\u{ff0d}1", "'\u{a0}\u{ff0d}1"),
            ("  ", "  "),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), out);
        }
    }
}
