//! The I-JSON parser: any bytes give a value or an error, never a panic,
//! and a value's canonical form (RFC 8785) parses back to the same form.
#![no_main]

use audit_core::canonical::to_canonical;
use audit_core::json::{NumberPolicy, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let exact = parse(data, NumberPolicy::Exact);
    let rounded = parse(data, NumberPolicy::RoundToDouble);
    if let Ok(value) = &exact {
        assert_eq!(rounded.as_ref().ok(), Some(value), "a text exact numbers accept, rounding reads alike");
    }
    if let Ok(value) = rounded {
        let canonical = to_canonical(&value);
        let again = parse(&canonical, NumberPolicy::Exact).expect("canonical text is I-JSON");
        assert_eq!(to_canonical(&again), canonical, "canonical form is a fixed point");
    }
});
