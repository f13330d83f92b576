//! The stored-line checker and reader: any bytes are checked without a
//! panic; a line both accept carries the hash the checker computed.
#![no_main]

use audit_core::stored::{StoredEvent, check_line, hash_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = check_line(data);
    let parsed = StoredEvent::parse_line(data);
    let _ = hash_line(data);
    if let (Ok(_), Ok(event)) = (&checked, &parsed) {
        let (computed, claimed) = hash_line(data).expect("a checked line has a hash member");
        assert_eq!(claimed, event.hash, "the reader and the hash cutter agree on the claimed hash");
        let _ = computed;
    }
});
