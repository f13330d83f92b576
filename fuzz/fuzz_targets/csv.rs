//! The CSV encoder: a cell is either unchanged or prefixed with `'`, and it
//! is prefixed whenever a spreadsheet would read it as a formula; a stored
//! event's record reads back, field for field, through a CSV reader.
#![no_main]

use audit_core::stored::StoredEvent;
use audit_core::csv::{CSV_COLUMNS, csv_cell, csv_record};
use libfuzzer_sys::fuzz_target;

const TRIGGERS: &[char] = &['=', '+', '-', '@', '|', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}', '\u{ff5c}'];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let cell = csv_cell(text);
        let guarded = cell.len() == text.len() + 1 && cell.starts_with('\'') && cell[1..] == *text;
        assert!(cell == text || guarded, "a cell is kept or prefixed, never rewritten");
        let formula = text.starts_with(['\t', '\r']) || text.trim_start().starts_with(TRIGGERS);
        assert_eq!(guarded, formula, "{text:?}");
    }
    if let Ok(event) = StoredEvent::parse_line(data) {
        let record = csv_record(&event);
        assert_eq!(record.len(), CSV_COLUMNS.len());
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&record).expect("writes to memory");
        let bytes = writer.into_inner().expect("flushes to memory");
        let read: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice())
            .records()
            .next()
            .expect("one record")
            .expect("a valid record")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(read, record, "the record reads back");
    }
});
