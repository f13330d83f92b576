//! A zero-copy checker of RFC 8785 canonical JSON.
//!
//! Verification reads every stored line of a log. Parsing each into a tree
//! and serialising it again to compare would cost several allocations and
//! passes per event; this scanner checks in one pass, without allocating
//! for the common case, that a text *is* canonical — no whitespace, members
//! strictly ordered by UTF-16 code units (so no duplicates), minimal string
//! escapes, ECMAScript number forms — and hands back the raw bytes of the
//! top-level members for the caller to interpret.

use std::borrow::Cow;
use std::ops::Range;

use crate::canonical::compare_utf16;

/// Where and why a text is not canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not canonical JSON at byte {offset}: {why}")]
pub struct ScanError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub why: &'static str,
}

/// A top-level member: its name and the raw bytes of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMember<'a> {
    /// The name as written between the quotes (escapes not decoded).
    pub name: &'a [u8],
    /// The value's bytes exactly as in the text.
    pub value: &'a [u8],
}

/// Depth at which the scanner gives up (as the parser does).
const MAX_DEPTH: usize = crate::json::MAX_PARSE_DEPTH;

/// Checks that `text` is one canonical JSON object and returns its members.
pub fn scan_object(text: &[u8]) -> Result<Vec<RawMember<'_>>, ScanError> {
    let mut members = Vec::with_capacity(TYPICAL_MEMBERS);
    scan_top_level(text, false, &mut |name, value| {
        members.push(RawMember { name: &text[name], value: &text[value] });
    })?;
    Ok(members)
}

/// A top-level member of text known to be UTF-8: its name as written
/// between the quotes (escapes not decoded) and its value's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrMember<'a> {
    /// The name as written between the quotes.
    pub name: &'a str,
    /// The value's text exactly as written.
    pub value: &'a str,
}

/// [`scan_object`] for text already known to be UTF-8: the strings are not
/// checked again one by one, and the members come back as text, so a
/// caller reading many of them (a stored line read back) converts nothing.
pub fn scan_object_str(text: &str) -> Result<Vec<StrMember<'_>>, ScanError> {
    let mut members = Vec::with_capacity(TYPICAL_MEMBERS);
    // Every place starts and ends next to an ASCII delimiter (a quote, a
    // colon, a comma or a brace), so each is on character boundaries.
    scan_top_level(text.as_bytes(), true, &mut |name, value| {
        members.push(StrMember { name: &text[name], value: &text[value] });
    })?;
    Ok(members)
}

/// Room for a stored event's top-level members without growing the list.
const TYPICAL_MEMBERS: usize = 24;

/// Told where each top-level member's name (between its quotes) and value
/// are in the text, in order, as the scanner passes them.
type MemberSink<'s> = &'s mut dyn FnMut(Range<usize>, Range<usize>);

/// Checks that `text` is one canonical object, telling `members` where
/// each top-level member is on the way (no list of places in between).
fn scan_top_level(text: &[u8], utf8_known: bool, members: MemberSink<'_>) -> Result<(), ScanError> {
    let mut s = Scanner { text, pos: 0, utf8_known };
    if s.peek() != Some(b'{') {
        return Err(s.err("expected an object"));
    }
    s.object(1, Some(members))?;
    if s.pos != text.len() {
        return Err(s.err("trailing data"));
    }
    Ok(())
}

/// Decodes the contents of a canonical JSON string (between its quotes).
pub fn decode_string(raw: &[u8]) -> Cow<'_, str> {
    // Callers pass bytes the scanner accepted: valid UTF-8, canonical escapes.
    decode_str(std::str::from_utf8(raw).unwrap_or_default())
}

/// [`decode_string`] of text the scanner accepted.
pub fn decode_str(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('b') => out.push('\u{8}'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('f') => out.push('\u{c}'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                }
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// What [`Scanner::string`] learnt of a string on the way: what
/// [`names_ascending`] needs to know to compare two names as bytes.
#[derive(Clone, Copy)]
struct StringShape {
    escaped: bool,
    ascii: bool,
}

struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    /// The whole text is known to be UTF-8: strings need no check of their own.
    utf8_known: bool,
}

impl<'a> Scanner<'a> {
    fn err(&self, why: &'static str) -> ScanError {
        ScanError { offset: self.pos, why }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8, why: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(why))
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1, None),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(self.err("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize, mut out: Option<MemberSink<'_>>) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.pos += 1;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut previous: Option<(&'a [u8], StringShape)> = None;
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a member name"));
            }
            let name_at = self.pos;
            let (name, shape) = self.string()?;
            if let Some(prev) = previous
                && !names_ascending(prev, (name, shape))
            {
                return Err(ScanError { offset: name_at, why: "member names out of order or repeated" });
            }
            previous = Some((name, shape));
            self.eat(b':', "expected ':' (no whitespace in canonical form)")?;
            let value_at = self.pos;
            self.value(depth)?;
            if let Some(out) = out.as_deref_mut() {
                out(name_at + 1..name_at + 1 + name.len(), value_at..self.pos);
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.pos += 1;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// Checks a string and returns its raw contents (between the quotes)
    /// and what it holds.
    fn string(&mut self) -> Result<(&'a [u8], StringShape), ScanError> {
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let t = self.text;
        let start = self.pos + 1;
        let mut i = start;
        // The bytes seen, ORed: their high bits say whether any was not ASCII.
        let mut seen = 0u64;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none is a quote, a backslash or a
            // control character (most of any string).
            if let Some(word) = t.get(i..i + 8) {
                let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
                if !crate::canonical::any_byte_needs_escape(word) {
                    seen |= word;
                    i += 8;
                    continue;
                }
            }
            let Some(&b) = t.get(i) else {
                return Err(ScanError { offset: t.len(), why: "unterminated string" });
            };
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.pos = i;
                    i += self.escape()?;
                }
                0x00..=0x1f => return Err(ScanError { offset: i, why: "raw control character in string" }),
                _ => {
                    seen |= u64::from(b);
                    i += 1;
                }
            }
        }
        let raw = &t[start..i];
        let ascii = seen & HIGHS == 0;
        if !ascii && !self.utf8_known && std::str::from_utf8(raw).is_err() {
            return Err(ScanError { offset: start, why: "invalid UTF-8 in string" });
        }
        self.pos = i + 1;
        Ok((raw, StringShape { escaped, ascii }))
    }

    /// Checks the escape at `self.pos` (a backslash) and returns its length.
    fn escape(&self) -> Result<usize, ScanError> {
        match self.text.get(self.pos + 1).copied() {
            Some(b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r') => Ok(2),
            Some(b'u') => {
                let hex = self.text.get(self.pos + 2..self.pos + 6).ok_or(self.err("short \\u escape"))?;
                // Canonical \u escapes are only for control characters
                // without a short form, in lowercase hex.
                let ok = hex[0] == b'0'
                    && hex[1] == b'0'
                    && matches!(hex[2], b'0' | b'1')
                    && matches!(hex[3], b'0'..=b'9' | b'a'..=b'f')
                    && !matches!((hex[2], hex[3]), (b'0', b'8' | b'9' | b'a' | b'c' | b'd'));
                if ok { Ok(6) } else { Err(self.err("escape not in canonical form")) }
            }
            _ => Err(self.err("escape not in canonical form")),
        }
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        let t = self.text;
        let mut i = self.pos;
        if t.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        while matches!(t.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        let int_digits = i - int_start;
        let mut plain_integer = true;
        if t.get(i) == Some(&b'.') {
            plain_integer = false;
            i += 1;
            while matches!(t.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(t.get(i), Some(b'e' | b'E')) {
            plain_integer = false;
            i += 1;
            if matches!(t.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            while matches!(t.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        let text = &t[start..i];
        // Fast path: a short integer with no leading zero (and not -0) is
        // exactly its ECMAScript form.
        if plain_integer && (1..=15).contains(&int_digits) {
            let first = t[int_start];
            if first != b'0' || (int_digits == 1 && text[0] != b'-') {
                return Ok(());
            }
            return Err(ScanError { offset: start, why: "number not in canonical form" });
        }
        let Some(value) = std::str::from_utf8(text).ok().and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite())
        else {
            return Err(ScanError { offset: start, why: "invalid number" });
        };
        let mut canonical = Vec::with_capacity(24);
        crate::canonical::write_number(value, &mut canonical);
        if canonical != text {
            return Err(ScanError { offset: start, why: "number not in canonical form" });
        }
        Ok(())
    }
}

/// True when member name `a` sorts strictly before `b` (raw canonical bytes).
fn names_ascending((a, a_shape): (&[u8], StringShape), (b, b_shape): (&[u8], StringShape)) -> bool {
    // Without escapes, and with one of the two ASCII, byte order is UTF-16
    // order (they differ only between two characters both above U+007F).
    if !a_shape.escaped && !b_shape.escaped && (a_shape.ascii || b_shape.ascii) {
        return a < b;
    }
    compare_utf16(&decode_string(a), &decode_string(b)).is_lt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{NumberPolicy, parse};

    fn canonical_of(text: &str) -> Vec<u8> {
        crate::canonical::to_canonical(&parse(text.as_bytes(), NumberPolicy::RoundToDouble).unwrap())
    }

    #[test]
    fn accepts_what_the_canonicalizer_writes() {
        for text in [
            r#"{"b":[1,2.5,-3,1e+30,0.002,1e-27,null,true,false],"a":{"z":"\u0001\n\"\\/€😂","y":{}}}"#,
            r#"{"\u20ac":1,"1":2,"\u0080":3,"\ud83d\ude02":4,"\u00f6":5,"\ufb33":6}"#,
            r#"{"n":[0,-1,123456789012345,9007199254740992,0.1,-0.5,5e-324]}"#,
        ] {
            let canonical = canonical_of(text);
            let members =
                scan_object(&canonical).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&canonical)));
            assert!(!members.is_empty());
        }
    }

    #[test]
    fn rejects_every_non_canonical_form() {
        for (text, why) in [
            (r#"{"a": 1}"#, "expected a value"),
            (r#"{"b":1,"a":2}"#, "member names out of order or repeated"),
            (r#"{"a":1,"a":1}"#, "member names out of order or repeated"),
            (r#"{"a":1.0}"#, "number not in canonical form"),
            (r#"{"a":01}"#, "number not in canonical form"),
            (r#"{"a":-0}"#, "number not in canonical form"),
            (r#"{"a":1E30}"#, "number not in canonical form"),
            (r#"{"a":"\/"}"#, "escape not in canonical form"),
            (r#"{"a":"\u0041"}"#, "escape not in canonical form"),
            (r#"{"a":"\u000A"}"#, "escape not in canonical form"),
            (r#"{"a":"\u000a"}"#, "escape not in canonical form"),
            (r#"{"a":1}x"#, "trailing data"),
            ("[1]", "expected an object"),
        ] {
            let err = scan_object(text.as_bytes()).unwrap_err();
            assert_eq!(err.why, why, "{text}");
        }
        assert_eq!(scan_object(b"{\"a\":\"\xff\"}").unwrap_err().why, "invalid UTF-8 in string");
        assert_eq!(scan_object(b"{\"a\":\"\x01\"}").unwrap_err().why, "raw control character in string");
        // Strings are read eight bytes at a time: a bad byte in any lane of
        // a word, or in the tail after the last whole word, is found at its
        // offset, and a string cut off inside a word is unterminated.
        for at in 0..20 {
            let mut text = b"{\"name\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ\"}".to_vec();
            text[9 + at] = 0x1f;
            assert_eq!(
                scan_object(&text).unwrap_err(),
                ScanError { offset: 9 + at, why: "raw control character in string" }
            );
            text[9 + at] = 0xff;
            assert_eq!(scan_object(&text).unwrap_err(), ScanError { offset: 9, why: "invalid UTF-8 in string" });
            text[9 + at] = b'\\';
            assert_eq!(
                scan_object(&text).unwrap_err(),
                ScanError { offset: 9 + at, why: "escape not in canonical form" }
            );
            assert_eq!(scan_object(&text[..9 + at]).unwrap_err().why, "unterminated string");
        }
    }

    #[test]
    fn text_members_are_the_byte_members() {
        for text in [
            r#"{"b":[1,2.5,-3],"a":{"z":"\u0001\n\"\\/€😂 and some more text","y":{}}}"#,
            r#"{"\u20ac":1,"1":2,"\u0080":3,"\ud83d\ude02":4,"\u00f6":"long enough for whole words: ÄÖÜ","\ufb33":6}"#,
        ] {
            let canonical = String::from_utf8(canonical_of(text)).unwrap();
            let bytes = scan_object(canonical.as_bytes()).unwrap();
            let text = scan_object_str(&canonical).unwrap();
            assert_eq!(bytes.len(), text.len());
            for (b, t) in bytes.iter().zip(&text) {
                assert_eq!((b.name, b.value), (t.name.as_bytes(), t.value.as_bytes()));
                assert_eq!(decode_string(b.name), decode_str(t.name));
            }
        }
        assert_eq!(scan_object_str(r#"{"b":1,"a":2}"#).unwrap_err().why, "member names out of order or repeated");
    }

    #[test]
    fn returns_raw_member_values() {
        let members = scan_object(br#"{"a":{"x":[1]},"b":"t\nu","c":12}"#).unwrap();
        let pairs: Vec<(&[u8], &[u8])> = members.iter().map(|m| (m.name, m.value)).collect();
        assert_eq!(pairs, vec![(&b"a"[..], &br#"{"x":[1]}"#[..]), (b"b", br#""t\nu""#), (b"c", b"12")]);
        assert_eq!(decode_string(br"t\nu\u001f"), "t\nu\u{1f}");
    }
}
