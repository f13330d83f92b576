//! A strict I-JSON (RFC 7493) parser and the JSON value it produces.
//!
//! Why our own parser: a hash over canonical JSON is only meaningful if every
//! reader agrees on what the input *was*. General-purpose parsers resolve
//! duplicate member names silently (keeping the first or the last), accept
//! numbers that a double cannot hold and round them, and so let two readers
//! see two different events behind one hash. This parser refuses all of that
//! with an error that names the problem and its byte offset.
//!
//! (Over 500 lines on purpose: the parser is one recursive-descent state
//! machine whose error offsets depend on every step; split across files it
//! would be harder to check against RFC 8259/7493, not easier.)

mod canon;

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher;

pub use canon::{CanonicalObject, MemberReader, TopLevel, array_items, canonicalize, validate};

/// A parsed JSON value. Objects keep their members in input order; member
/// names are unique (the parser guarantees it).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A finite IEEE 754 double.
    Number(f64),
    /// A string (valid Unicode: lone surrogates are rejected on input).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Object),
}

/// A JSON object: members in insertion order, names unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    members: Vec<(String, Value)>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member. Callers building objects in code must not repeat a
    /// name; a repeated name replaces the earlier value so the invariant holds.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        if let Some(slot) = self.members.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.members.push((name, value));
        }
    }

    /// The value of member `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Removes and returns member `name`.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let at = self.members.iter().position(|(n, _)| n == name)?;
        Some(self.members.remove(at).1)
    }

    /// Members in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.members.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The members in order, their values mutable (names stay as they are:
    /// they are unique).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.members.iter_mut().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl IntoIterator for Object {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.members.into_iter()
    }
}

impl Value {
    /// Nesting depth: scalars are 0, `[]` and `{}` are 1.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Object(obj) => 1 + obj.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// A short name of the value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// How the parser treats a number that a double cannot represent exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberPolicy {
    /// Reject it (I-JSON input to the audit log: the hash must cover exactly
    /// the value the caller sent).
    Exact,
    /// Round it to the nearest double, as RFC 8785 does for arbitrary JSON.
    RoundToDouble,
}

/// Why a text is not accepted as I-JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct JsonError {
    /// What is wrong.
    pub kind: JsonErrorKind,
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
}

/// The kinds of [`JsonError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Input ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot start or continue a value here.
    UnexpectedByte(u8),
    /// Non-whitespace after the value.
    TrailingData,
    /// A member name appears twice in one object.
    DuplicateMember(String),
    /// An escape or byte sequence that is not valid Unicode (lone surrogate, bad UTF-8).
    InvalidUnicode,
    /// A raw control character inside a string.
    ControlCharacterInString,
    /// A malformed escape sequence.
    InvalidEscape,
    /// A malformed number.
    InvalidNumber,
    /// A number outside the IEEE 754 double range.
    NumberOutOfRange(String),
    /// A number a double cannot hold exactly (rejected under [`NumberPolicy::Exact`]).
    InexactNumber(String),
    /// Arrays and objects nested deeper than the parser allows.
    TooDeep(usize),
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => write!(f, "unexpected end of JSON"),
            Self::UnexpectedByte(b) if b.is_ascii_graphic() => {
                write!(f, "unexpected character '{}'", *b as char)
            }
            Self::UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x}"),
            Self::TrailingData => write!(f, "trailing data after the JSON value"),
            Self::DuplicateMember(n) => write!(f, "duplicate member name {n:?}"),
            Self::InvalidUnicode => write!(f, "invalid Unicode (lone surrogate or bad UTF-8)"),
            Self::ControlCharacterInString => write!(f, "unescaped control character in string"),
            Self::InvalidEscape => write!(f, "invalid escape sequence"),
            Self::InvalidNumber => write!(f, "malformed number"),
            Self::NumberOutOfRange(n) => {
                write!(f, "number {n} is outside the IEEE 754 double range")
            }
            Self::InexactNumber(n) => {
                write!(f, "number {n} cannot be represented exactly as an IEEE 754 double; send it as a string")
            }
            Self::TooDeep(max) => write!(f, "nesting deeper than {max} levels"),
        }
    }
}

/// Nesting the parser accepts before giving up (protects the stack; the
/// event model enforces its own, lower limit with a named field).
pub const MAX_PARSE_DEPTH: usize = 128;

/// Parses one complete I-JSON text (surrounding whitespace allowed).
pub fn parse(input: &[u8], numbers: NumberPolicy) -> Result<Value, JsonError> {
    let mut p = Parser { input, pos: 0, numbers };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != input.len() {
        return Err(p.err(JsonErrorKind::TrailingData));
    }
    Ok(value)
}

/// Finds repeated member names of one object in linear time whatever the
/// order of its members. Names that arrive in increasing order (canonical
/// input, most machine-written JSON) cost one comparison each: each is
/// greater than all before it, so none repeats. After the first name out of
/// order, each new name is compared with all earlier ones while the object
/// is small, and looked up in a hash table once it is not (a body of 100k
/// members must not cost 10^10 comparisons). The table holds each member's
/// index beside the keyed SipHash of its name (random keys: a client cannot
/// aim for collisions), so no name is copied and each is hashed once.
#[derive(Default)]
struct NameCheck {
    out_of_order: bool,
    table: Option<(hashbrown::HashTable<(u64, usize)>, std::collections::hash_map::RandomState)>,
}

impl NameCheck {
    /// Members compared one by one before the hash table takes over.
    const LINEAR_MEMBER_SCAN: usize = 16;

    /// True when `name` repeats one of the `count` earlier names
    /// (`name_of(i)`, in input order); otherwise `name` is taken as the
    /// name at index `count`.
    fn repeats<'n>(&mut self, count: usize, name_of: impl Fn(usize) -> &'n str, name: &str) -> bool {
        if count == 0 {
            return false;
        }
        if !self.out_of_order {
            if crate::canonical::compare_utf16(name_of(count - 1), name).is_lt() {
                return false;
            }
            self.out_of_order = true;
        }
        if self.table.is_none() {
            if count < Self::LINEAR_MEMBER_SCAN {
                return (0..count).any(|i| name_of(i) == name);
            }
            let keys = std::collections::hash_map::RandomState::new();
            let mut table = hashbrown::HashTable::with_capacity(count * 2);
            for at in 0..count {
                let hash = keys.hash_one(name_of(at));
                table.insert_unique(hash, (hash, at), |&(h, _)| h);
            }
            self.table = Some((table, keys));
        }
        let (table, keys) = self.table.as_mut().expect("made above");
        let hash = keys.hash_one(name);
        match table.entry(hash, |&(h, i)| h == hash && name_of(i) == name, |&(h, _)| h) {
            hashbrown::hash_table::Entry::Occupied(_) => true,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((hash, count));
                false
            }
        }
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    numbers: NumberPolicy,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError { kind, offset: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.err(JsonErrorKind::UnexpectedByte(b))),
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, JsonError> {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else if self.input.len() - self.pos < word.len() && word.starts_with(&self.input[self.pos..]) {
            self.pos = self.input.len();
            Err(self.err(JsonErrorKind::UnexpectedEnd))
        } else {
            Err(self.err(JsonErrorKind::UnexpectedByte(self.input[self.pos])))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b) => Err(self.err(JsonErrorKind::UnexpectedByte(b))),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_PARSE_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep(MAX_PARSE_DEPTH)));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            if !self.more(b']')? {
                return Ok(Value::Array(items));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_PARSE_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep(MAX_PARSE_DEPTH)));
        }
        self.pos += 1;
        let mut obj = Object::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(obj));
        }
        let mut names = NameCheck::default();
        loop {
            let (name_at, name) = self.member_name()?;
            let members = &obj.members;
            if names.repeats(members.len(), |i| members[i].0.as_str(), &name) {
                return Err(JsonError { kind: JsonErrorKind::DuplicateMember(name.into_owned()), offset: name_at });
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.value(depth)?;
            obj.members.push((name.into_owned(), value));
            if !self.more(b'}')? {
                return Ok(Value::Object(obj));
            }
        }
    }

    /// After an item of an array or a member of an object (and any
    /// whitespace): `true` past a comma (another follows), `false` past
    /// `close` (the container ends).
    fn more(&mut self, close: u8) -> Result<bool, JsonError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(b) => Err(self.err(JsonErrorKind::UnexpectedByte(b))),
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
        }
    }

    /// A member name (after any whitespace) and where it starts.
    fn member_name(&mut self) -> Result<(usize, Cow<'a, str>), JsonError> {
        self.skip_ws();
        let name_at = self.pos;
        if self.peek() != Some(b'"') {
            return Err(match self.peek() {
                Some(b) => self.err(JsonErrorKind::UnexpectedByte(b)),
                None => self.err(JsonErrorKind::UnexpectedEnd),
            });
        }
        Ok((name_at, self.string_cow()?))
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let digits = self.input.get(self.pos..self.pos + 4).ok_or(self.err(JsonErrorKind::UnexpectedEnd))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err(JsonErrorKind::InvalidEscape))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err(JsonErrorKind::InvalidEscape));
        }
        let unit = u16::from_str_radix(text, 16).map_err(|_| self.err(JsonErrorKind::InvalidEscape))?;
        self.pos += 4;
        Ok(unit)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.string_cow().map(Cow::into_owned)
    }

    /// A string, borrowed from the input when it has no escapes (the
    /// common case: no copy, no allocation).
    fn string_cow(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let input: &'a [u8] = self.input;
        let rest = &input[self.pos + 1..];
        let run = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len());
        if rest.get(run) == Some(&b'"')
            && let Ok(text) = std::str::from_utf8(&rest[..run])
        {
            self.pos += run + 2;
            return Ok(Cow::Borrowed(text));
        }
        self.escaped_string().map(Cow::Owned)
    }

    /// A string with escapes (or an error), decoded into a new one.
    fn escaped_string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain bytes up to the next quote, backslash or control byte.
            let rest = &self.input[self.pos..];
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len());
            let chunk = std::str::from_utf8(&rest[..run])
                .map_err(|e| JsonError { kind: JsonErrorKind::InvalidUnicode, offset: self.pos + e.valid_up_to() })?;
            out.push_str(chunk);
            self.pos += run;
            match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or(self.err(JsonErrorKind::UnexpectedEnd))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let at = self.pos - 2;
                            let unit = self.hex4()?;
                            let ch = match unit {
                                0xD800..=0xDBFF => {
                                    if self.input[self.pos..].starts_with(b"\\u") {
                                        self.pos += 2;
                                        let low = self.hex4()?;
                                        if !(0xDC00..=0xDFFF).contains(&low) {
                                            return Err(JsonError { kind: JsonErrorKind::InvalidUnicode, offset: at });
                                        }
                                        let code = 0x10000 + (((unit as u32) - 0xD800) << 10) + ((low as u32) - 0xDC00);
                                        char::from_u32(code)
                                    } else {
                                        None
                                    }
                                }
                                0xDC00..=0xDFFF => None,
                                _ => char::from_u32(unit as u32),
                            };
                            out.push(ch.ok_or(JsonError { kind: JsonErrorKind::InvalidUnicode, offset: at })?);
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.err(JsonErrorKind::InvalidEscape));
                        }
                    }
                }
                Some(_) => return Err(self.err(JsonErrorKind::ControlCharacterInString)),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        self.number_value().map(Value::Number)
    }

    /// A number's value. Inlined into the callers: most numbers are short
    /// integers, and returning a whole `Value` through memory for each cost
    /// more than reading it (a body of many small members spent a quarter
    /// of its parse there).
    #[inline]
    fn number_value(&mut self) -> Result<f64, JsonError> {
        let start = self.pos;
        let bytes = self.input;
        let mut i = self.pos;
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(bytes.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => {
                return Err(JsonError { kind: JsonErrorKind::InvalidNumber, offset: i });
            }
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(bytes.get(i), Some(b'0'..=b'9')) {
                return Err(JsonError { kind: JsonErrorKind::InvalidNumber, offset: i });
            }
            while matches!(bytes.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(bytes.get(i), Some(b'0'..=b'9')) {
                return Err(JsonError { kind: JsonErrorKind::InvalidNumber, offset: i });
            }
            while matches!(bytes.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        // Fast path: a plain integer of at most 15 digits is exact as a
        // double and needs no general decimal conversion.
        let literal = &bytes[start..i];
        let digits = &literal[usize::from(literal[0] == b'-')..];
        if digits.len() <= f64::DIGITS as usize && digits.iter().all(u8::is_ascii_digit) {
            let magnitude = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64;
            self.pos = i;
            return Ok(if literal[0] == b'-' { -magnitude } else { magnitude });
        }
        self.decimal_number(start, i)
    }

    /// The value of the number literal at `start..end` that is not a short
    /// integer: converted, and checked to be finite and (under
    /// [`NumberPolicy::Exact`]) exact.
    #[inline(never)]
    fn decimal_number(&mut self, start: usize, end: usize) -> Result<f64, JsonError> {
        let literal = &self.input[start..end];
        // The grammar above admits only ASCII, so this cannot fail.
        let text = std::str::from_utf8(literal).map_err(|_| self.err(JsonErrorKind::InvalidNumber))?;
        let value: f64 = text.parse().map_err(|_| self.err(JsonErrorKind::InvalidNumber))?;
        if !value.is_finite() {
            return Err(JsonError { kind: JsonErrorKind::NumberOutOfRange(text.to_owned()), offset: start });
        }
        if self.numbers == NumberPolicy::Exact && !surely_exact(text) && !same_decimal_value(text, value) {
            return Err(JsonError { kind: JsonErrorKind::InexactNumber(text.to_owned()), offset: start });
        }
        self.pos = end;
        Ok(value)
    }
}

/// True for a literal of at most 15 significant digits without an
/// exponent: every such decimal survives the trip to a double and back
/// (15 is `f64::DIGITS`), so the exact check can be skipped — it costs a
/// shortest-form formatting per number, most of the parse of a body of
/// small numbers.
fn surely_exact(text: &str) -> bool {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    digits <= f64::DIGITS as usize && !text.contains(['e', 'E'])
}

/// True when the decimal literal `text` denotes exactly the value that the
/// shortest round-trip form of `value` denotes — i.e. nothing was rounded
/// away, no digit was lost, nothing under- or overflowed.
fn same_decimal_value(text: &str, value: f64) -> bool {
    let mut buf = ryu_js::Buffer::new();
    let shortest = if value == 0.0 { "0" } else { buf.format_finite(value) };
    match (DecimalParts::of(text), DecimalParts::of(shortest)) {
        (Some(a), Some(b)) => a == b || (a.digits.is_empty() && b.digits.is_empty()),
        _ => false,
    }
}

/// A decimal number reduced to sign, significant digits without leading or
/// trailing zeros, and the power of ten of the last digit.
#[derive(Debug, PartialEq, Eq)]
struct DecimalParts {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl DecimalParts {
    fn of(text: &str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut digits: String = format!("{int_part}{frac_part}");
        let mut exponent = exp - frac_part.len() as i64;
        let trimmed = digits.trim_start_matches('0').len();
        digits = digits[digits.len() - trimmed..].to_owned();
        while digits.ends_with('0') {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Some(Self { negative: false, digits, exponent: 0 });
        }
        Some(Self { negative, digits, exponent })
    }
}

/// Calls `f` with each byte of `text` that is not inside a string (a
/// string's opening quote is passed, its contents and closing quote are
/// not), until `f` returns false: the structure of a text without parsing
/// it.
pub(crate) fn for_each_structural(text: &[u8], mut f: impl FnMut(u8) -> bool) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        in_string = b == b'"';
        if !f(b) {
            return;
        }
    }
}

/// The number of items of a top-level JSON array, counted without parsing
/// (strings, escapes and nesting are followed; nothing is allocated), or
/// `None` when `text` is not an array. For refusing an oversized batch
/// before paying for a full parse; a malformed array is left to the parser.
pub fn count_array_items(text: &[u8]) -> Option<usize> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    if text[start] != b'[' {
        return None;
    }
    let (mut depth, mut commas, mut any) = (0usize, 0usize, false);
    for_each_structural(&text[start..], |b| {
        match b {
            b'"' => any = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > 1 {
                    any = true;
                }
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return false;
                }
            }
            b',' if depth == 1 => commas += 1,
            b if !b.is_ascii_whitespace() && depth == 1 => any = true,
            _ => {}
        }
        true
    });
    Some(if any { commas + 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The shortcut never calls a number exact that the full check refuses.
        #[test]
        fn surely_exact_numbers_pass_the_full_check(
            mantissa in 0u64..1_000_000_000_000_000,
            point in 0usize..16,
            negative in proptest::bool::ANY,
        ) {
            let digits = mantissa.to_string();
            let text = if point == 0 || point >= digits.len() {
                digits
            } else {
                format!("{}.{}", &digits[..digits.len() - point], &digits[digits.len() - point..])
            };
            let text = if negative { format!("-{text}") } else { text };
            if super::surely_exact(&text) {
                let value: f64 = text.parse().unwrap();
                proptest::prop_assert!(super::same_decimal_value(&text, value), "{text}");
            }
        }
    }

    use super::*;

    #[test]
    fn array_items_are_counted_without_parsing() {
        assert_eq!(count_array_items(b"[]"), Some(0));
        assert_eq!(count_array_items(b" [ 1 , 2 ,3]"), Some(3));
        assert_eq!(count_array_items(br#"[{"a":[1,2,3],"b":"x,]y"},"\",",[[4,5]]]"#), Some(3));
        assert_eq!(count_array_items(b"{\"a\":1}"), None);
        let zeros = format!("[{}0]", "0,".repeat(2_000_000));
        assert_eq!(count_array_items(zeros.as_bytes()), Some(2_000_001));
    }

    fn err_kind(text: &str) -> JsonErrorKind {
        parse(text.as_bytes(), NumberPolicy::Exact).unwrap_err().kind
    }

    #[test]
    fn rejects_duplicate_members_instead_of_picking_one() {
        assert_eq!(err_kind(r#"{"a":1,"a":2}"#), JsonErrorKind::DuplicateMember("a".into()));
        // Duplicates that differ only in escaping are still duplicates.
        assert_eq!(err_kind(r#"{"a":1,"\u0061":2}"#), JsonErrorKind::DuplicateMember("a".into()));
    }

    #[test]
    fn duplicates_are_found_in_large_objects_too_and_at_their_offset() {
        // Past the linear scan: 100k distinct members parse (in linear time),
        // and a duplicate far in is still found, at its own offset.
        let members: Vec<String> = (0..100_000).map(|n| format!("\"k{n}\":{n}")).collect();
        let body = format!("{{{}}}", members.join(","));
        let Value::Object(o) = parse(body.as_bytes(), NumberPolicy::Exact).unwrap() else { panic!("an object") };
        assert_eq!(o.iter().count(), 100_000);
        let dup = format!("{{{},\"k17\":0}}", members.join(","));
        let err = parse(dup.as_bytes(), NumberPolicy::Exact).unwrap_err();
        assert_eq!(err.kind, JsonErrorKind::DuplicateMember("k17".into()));
        assert_eq!(err.offset, dup.len() - r#""k17":0}"#.len(), "the offset of the repeated name");
    }

    #[test]
    fn rejects_lone_surrogates() {
        assert_eq!(err_kind(r#"["\ud800"]"#), JsonErrorKind::InvalidUnicode);
        assert_eq!(err_kind(r#"["\udc00\ud800"]"#), JsonErrorKind::InvalidUnicode);
        assert_eq!(err_kind(r#"["\ud800\u0041"]"#), JsonErrorKind::InvalidUnicode);
        let ok = parse(r#""\ud83d\ude02""#.as_bytes(), NumberPolicy::Exact).unwrap();
        assert_eq!(ok, Value::String("😂".into()));
    }

    #[test]
    fn rejects_invalid_utf8_and_raw_control_characters() {
        let bad = parse(b"\"a\xff\"", NumberPolicy::Exact).unwrap_err();
        assert_eq!(bad.kind, JsonErrorKind::InvalidUnicode);
        assert_eq!(bad.offset, 2);
        assert_eq!(err_kind("\"a\nb\""), JsonErrorKind::ControlCharacterInString);
    }

    #[test]
    fn exact_policy_rejects_numbers_a_double_cannot_hold() {
        assert!(matches!(err_kind("9007199254740993"), JsonErrorKind::InexactNumber(_)));
        assert!(matches!(err_kind("0.10000000000000000001"), JsonErrorKind::InexactNumber(_)));
        assert!(matches!(err_kind("1e-400"), JsonErrorKind::InexactNumber(_)));
        assert!(matches!(err_kind("1e400"), JsonErrorKind::NumberOutOfRange(_)));
        for fine in ["9007199254740992", "0.1", "4.50", "1E30", "-0", "0.0e5", "1e-27", "-12.5e-3"] {
            assert!(parse(fine.as_bytes(), NumberPolicy::Exact).is_ok(), "{fine}");
        }
        let rounded = parse(b"9007199254740993", NumberPolicy::RoundToDouble).unwrap();
        assert_eq!(rounded, Value::Number(9007199254740992.0));
    }

    #[test]
    fn rejects_malformed_texts_with_offsets() {
        for (text, offset) in
            [("{\"a\":1,}", 7), ("[1 2]", 3), ("01", 1), ("1.", 2), ("\"\\x\"", 2), ("tru", 3), ("{} x", 3)]
        {
            let e = parse(text.as_bytes(), NumberPolicy::Exact).unwrap_err();
            assert_eq!(e.offset, offset, "{text}: {e}");
        }
    }

    #[test]
    fn refuses_pathological_nesting_without_overflowing_the_stack() {
        let deep = "[".repeat(10_000);
        assert_eq!(err_kind(&deep), JsonErrorKind::TooDeep(MAX_PARSE_DEPTH));
    }
}
