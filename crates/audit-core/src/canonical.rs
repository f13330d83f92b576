//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! Members are sorted by the UTF-16 code units of their names, strings use
//! the minimal ECMAScript escaping, numbers use ECMAScript's
//! `Number.prototype.toString` (via `ryu-js`), and there is no whitespace.
//! Anyone can reproduce our hashes with an off-the-shelf JCS implementation.

use crate::json::Value;

/// Appends the canonical form of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(*n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(obj) => write_object(obj, out),
    }
}

/// Appends the canonical form of an object.
pub fn write_object(obj: &crate::json::Object, out: &mut Vec<u8>) {
    let mut members: Vec<(&str, &Value)> = obj.iter().collect();
    members.sort_by(|(a, _), (b, _)| compare_utf16(a, b));
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(name, out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

/// The canonical form of `value` as bytes.
pub fn to_canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// Orders member names as RFC 8785 §3.2.3 requires: by UTF-16 code units.
pub fn compare_utf16(a: &str, b: &str) -> std::cmp::Ordering {
    // Byte order equals code-unit order while neither side has a character
    // outside the Basic Multilingual Plane; only then is the slow path needed.
    if a.is_ascii() || b.is_ascii() {
        return a.as_bytes().cmp(b.as_bytes());
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Writes a finite double the way ECMAScript's `Number.prototype.toString` does.
pub fn write_number(n: f64, out: &mut Vec<u8>) {
    if n == 0.0 {
        // Both +0 and -0 serialise as "0" (ECMAScript, RFC 8785 §3.2.2.3).
        out.push(b'0');
        return;
    }
    debug_assert!(n.is_finite(), "the parser and the event model admit finite numbers only");
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(n).as_bytes());
}

/// Writes an unsigned integer in decimal (the service's integer members,
/// and CSV cells), without a `String`.
pub fn write_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// True when one of the eight bytes of `word` needs an escape in a JSON
/// string: below 0x20, `"` or `\`. Exact as a yes/no answer (the
/// zero-byte and less-than tests of "Bit Twiddling Hacks", which may
/// misplace a hit inside the word but never invent or miss one).
pub(crate) const fn any_byte_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const fn has_zero_byte(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    (below_space | has_zero_byte(word ^ (ONES * b'"' as u64)) | has_zero_byte(word ^ (ONES * b'\\' as u64))) != 0
}

/// Writes a JSON string with RFC 8785's escaping: `"` and `\` escaped, the
/// control characters U+0000–U+001F as `\b \t \n \f \r` or `\u00xx` (lowercase
/// hex), everything else as raw UTF-8. Runs of eight bytes without anything
/// to escape (most text) are passed over a word at a time.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // `start`: the first byte not yet copied out; `i`: the next to look at.
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !any_byte_needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::json::{NumberPolicy, parse};

    fn canon(text: &str) -> String {
        let value = parse(text.as_bytes(), NumberPolicy::RoundToDouble).unwrap();
        String::from_utf8(to_canonical(&value)).unwrap()
    }

    // Known-answer tests: input/output pairs transcribed from the RFC 8785
    // reference test data, repository cyberphone/json-canonicalization,
    // files testdata/input/*.json and testdata/output/*.json: values.json,
    // structures.json, weird.json (names sorted by UTF-16 code units).
    pub(crate) const RFC8785_VECTORS: [(&str, &str); 3] = [
        (
            "{\n  \"numbers\": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],\n  \"escaping\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}",
            "{\"escaping\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\",\"literals\":[null,true,false],\"numbers\":[1e+30,4.5,333333333.3333333,0.002,1e-27]}",
        ),
        (
            "{\n  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n  \"10\": { },\n  \"\": \"empty\",\n  \"a\": { },\n  \"111\": [ { } ],\n  \"A\": { }\n}",
            "{\"\":\"empty\",\"1\":{\"\\n\":56,\"f\":{\"F\":5,\"f\":\"hi\"}},\"10\":{},\"111\":[{}],\"A\":{},\"a\":{}}",
        ),
        (
            "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"1\": \"One\",\n  \"\\u0080\": \"Control\\u007f\",\n  \"\\ud83d\\ude02\": \"Smiley\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"</script>\": \"Browser Challenge\"\n}\n",
            "{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😂\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        ),
    ];

    #[test]
    fn rfc8785_testdata_values_structures_and_sorting() {
        for (input, output) in RFC8785_VECTORS {
            assert_eq!(canon(input), output);
        }
    }

    #[test]
    fn rfc8785_testdata_french_and_unicode() {
        let input = "{\n  \"peach\": \"This sorting order\",\n  \"péché\": \"is wrong according to French\",\n  \"pêche\": \"but canonicalization MUST\",\n  \"sin\":   \"ingnore locale\"\n}\n";
        let output = "{\"peach\":\"This sorting order\",\"péché\":\"is wrong according to French\",\"pêche\":\"but canonicalization MUST\",\"sin\":\"ingnore locale\"}";
        assert_eq!(canon(input), output);
        // No Unicode normalisation: the decomposed sequence stays as sent.
        assert_eq!(
            canon("{\n  \"Unnormalized Unicode\":\"\\u1e0d\\u0307\"\n}\n"),
            "{\"Unnormalized Unicode\":\"\u{1e0d}\u{307}\"}"
        );
    }

    // The README of cyberphone/json-canonicalization gives this sample with
    // its UTF-8 bytes in hexadecimal; transcribed here.
    #[test]
    fn readme_sample_utf8_bytes() {
        let input = "{\n  \"numbers\": [1E30,4.50,6,2e-3,0.000000000000000000000000001],\n  \"escaping\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"other\":  [null, true, false]\n}";
        let hex = "7b 22 65 73 63 61 70 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c \
                   5c 5c 5c 22 2f 22 2c 22 6e 75 6d 62 65 72 73 22 3a 5b 31 65 2b 33 30 2c 34 2e 35 2c 36 2c 30 2e \
                   30 30 32 2c 31 65 2d 32 37 5d 2c 22 6f 74 68 65 72 22 3a 5b 6e 75 6c 6c 2c 74 72 75 65 2c 66 61 \
                   6c 73 65 5d 7d";
        let expected: Vec<u8> = hex.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
        let value = parse(input.as_bytes(), NumberPolicy::RoundToDouble).unwrap();
        assert_eq!(to_canonical(&value), expected);
    }

    #[test]
    fn number_forms_follow_ecmascript() {
        // ECMAScript Number::toString rules (ECMA-262 §6.1.6.1.20), as cited by RFC 8785 §3.2.2.3.
        for (input, output) in [
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("123456789012345680000", "123456789012345680000"),
            ("-1.5", "-1.5"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ] {
            assert_eq!(canon(input), output, "{input}");
        }
    }

    #[test]
    fn every_control_character_is_escaped_minimally() {
        let s: String = (0u8..0x20).map(char::from).chain(['"', '\\', '/', '\u{7f}']).collect();
        let mut out = Vec::new();
        write_string(&s, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(r#""\u0000\u0001"#));
        assert!(text.contains(r#"\b\t\n\u000b\f\r\u000e"#));
        assert!(text.ends_with("\\u001f\\\"\\\\/\u{7f}\""));
    }

    /// The escaping of RFC 8785 one byte at a time: what `write_string`
    /// did before it passed over clean words, kept as the reference.
    fn escaped_bytewise(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in s.as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x09 => out.extend_from_slice(b"\\t"),
                0x0a => out.extend_from_slice(b"\\n"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x0d => out.extend_from_slice(b"\\r"),
                0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                _ => out.push(b),
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn a_byte_that_needs_an_escape_is_found_at_every_place_in_a_word() {
        // Every ASCII byte and a multi-byte character, alone in a run of
        // plain text, at each offset across two words and a tail.
        let specials = (0u8..0x80).map(char::from).chain(['é', '€', '\u{10348}', '\u{7f}']);
        for special in specials {
            for len in 0..20 {
                for at in 0..=len {
                    let s: String = (0..len).map(|i| if i == at { special } else { 'a' }).collect();
                    let mut out = Vec::new();
                    write_string(&s, &mut out);
                    assert_eq!(out, escaped_bytewise(&s), "{s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn words_at_a_time_write_what_bytes_at_a_time_write(s in "[\\x00-\\x{7f}é€\\u{10348}]{0,64}") {
            let mut out = Vec::new();
            write_string(&s, &mut out);
            proptest::prop_assert_eq!(out, escaped_bytewise(&s));
        }
    }
}
