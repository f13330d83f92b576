//! Validating and canonicalising in one pass, without building a tree.
//!
//! The tree parser ([`super::parse`]) allocates a node per value and a
//! string per member name; an event's `metadata` and states only need to
//! be *checked* (I-JSON, depth) and *written* in RFC 8785 form. This pass
//! does both at once: every value is validated exactly as the tree parser
//! validates it (same errors, same offsets) and its canonical bytes are
//! appended to an output buffer as it goes. Strings without escapes and
//! short integers are copied as they are; an object whose names arrive in
//! order (canonical input, most machine-written JSON) is written as read;
//! only an object with names out of order is re-ordered, once, when it
//! closes.
//!
//! [`MemberReader`] reads the members of one top-level object one by one,
//! so the event parser can decode the few members it types (strings,
//! vocabularies) and canonicalise the rest.

use std::borrow::Cow;

use super::{JsonError, JsonErrorKind, MAX_PARSE_DEPTH, NameCheck, NumberPolicy, Object, Parser, Value};
use crate::canonical::{compare_utf16, write_number, write_string};

/// A JSON object in RFC 8785 canonical form, valid I-JSON with finite
/// numbers (the only ways to make one check that), and how deeply it nests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalObject {
    bytes: Box<[u8]>,
    /// Levels of nesting, the object itself included (`{}` is 1).
    depth: usize,
}

impl CanonicalObject {
    /// The canonical text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Levels of nesting, the object itself included (`{}` is 1).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The canonical form of `obj`, or `None` when it holds a number that
    /// is not finite (which JSON cannot express).
    pub fn of_object(obj: &Object) -> Option<CanonicalObject> {
        fn finite(v: &Value) -> bool {
            match v {
                Value::Number(n) => n.is_finite(),
                Value::Array(items) => items.iter().all(finite),
                Value::Object(o) => o.iter().all(|(_, v)| finite(v)),
                _ => true,
            }
        }
        if !obj.iter().all(|(_, v)| finite(v)) {
            return None;
        }
        let depth = 1 + obj.iter().map(|(_, v)| v.depth()).max().unwrap_or(0);
        let mut bytes = Vec::new();
        crate::canonical::write_object(obj, &mut bytes);
        Some(CanonicalObject { depth, bytes: bytes.into() })
    }

    /// An object from text already checked to be one canonical JSON object
    /// (by [`crate::scan::scan_object`]): a stored line's member.
    pub(crate) fn from_checked(bytes: &[u8]) -> CanonicalObject {
        debug_assert_eq!(canonicalize(bytes, NumberPolicy::Exact).as_deref(), Ok(bytes));
        CanonicalObject { depth: nesting_of(bytes), bytes: bytes.into() }
    }

    /// The object as a tree (for code that edits or walks it).
    pub fn to_object(&self) -> Object {
        match super::parse(&self.bytes, NumberPolicy::Exact) {
            Ok(Value::Object(o)) => o,
            // Unreachable: the bytes were made or checked canonical, and
            // canonical numbers are the shortest round-trip forms.
            other => unreachable!("a canonical object reads back as an object, not {other:?}"),
        }
    }
}

/// Nesting depth of valid JSON text, strings skipped (their brackets are text).
fn nesting_of(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    super::for_each_structural(text, |b| {
        match b {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        true
    });
    deepest
}

/// Checks one complete I-JSON text (surrounding whitespace allowed) and
/// returns its RFC 8785 canonical form: the result and every error are
/// those of `to_canonical(&parse(input)?)`, without the tree.
pub fn canonicalize(input: &[u8], numbers: NumberPolicy) -> Result<Vec<u8>, JsonError> {
    let mut p = Parser { input, pos: 0, numbers };
    let mut out = Vec::with_capacity(input.len());
    p.skip_ws();
    p.canon_value::<true>(0, &mut out, &mut Vec::new())?;
    p.skip_ws();
    if p.pos != input.len() {
        return Err(p.err(JsonErrorKind::TrailingData));
    }
    Ok(out)
}

/// Checks one complete I-JSON text without keeping anything: the errors of
/// [`super::parse`], at a fraction of its cost.
pub fn validate(input: &[u8], numbers: NumberPolicy) -> Result<(), JsonError> {
    let mut p = Parser { input, pos: 0, numbers };
    p.skip_ws();
    p.canon_value::<false>(0, &mut Vec::new(), &mut Vec::new())?;
    p.skip_ws();
    if p.pos != input.len() {
        return Err(p.err(JsonErrorKind::TrailingData));
    }
    Ok(())
}

/// The items of a top-level array, as byte ranges of `input`, after
/// checking the whole text as [`validate`] does; `None` when the text is
/// valid but not an array.
pub fn array_items(input: &[u8], numbers: NumberPolicy) -> Result<Option<Vec<std::ops::Range<usize>>>, JsonError> {
    let mut p = Parser { input, pos: 0, numbers };
    p.skip_ws();
    if p.peek() != Some(b'[') {
        validate(input, numbers)?;
        return Ok(None);
    }
    p.pos += 1;
    let mut items = Vec::new();
    let (mut sink, mut stack) = (Vec::new(), Vec::new());
    p.skip_ws();
    if p.peek() == Some(b']') {
        p.pos += 1;
    } else {
        loop {
            p.skip_ws();
            let start = p.pos;
            p.canon_value::<false>(1, &mut sink, &mut stack)?;
            items.push(start..p.pos);
            if !p.more(b']')? {
                break;
            }
        }
    }
    p.skip_ws();
    if p.pos != input.len() {
        return Err(p.err(JsonErrorKind::TrailingData));
    }
    Ok(Some(items))
}

/// A member of an object being canonicalised: its name and where its
/// `"name":value` bytes sit in the output.
struct Member<'a> {
    name: Cow<'a, str>,
    start: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    /// Checks the value at the cursor and, when `WRITE`, appends its
    /// canonical form to `out`. Returns its nesting depth (scalars 0).
    /// `stack` holds the members of the objects being read (shared by the
    /// nested ones, so an object costs no allocation of its own).
    fn canon_value<const WRITE: bool>(
        &mut self,
        depth: usize,
        out: &mut Vec<u8>,
        stack: &mut Vec<Member<'a>>,
    ) -> Result<usize, JsonError> {
        let literal: &[u8] = match self.peek() {
            None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(b'n') => b"null",
            Some(b't') => b"true",
            Some(b'f') => b"false",
            Some(b'"') => {
                let text = self.string_cow()?;
                if WRITE {
                    write_str(&text, matches!(text, Cow::Owned(_)), out);
                }
                return Ok(0);
            }
            Some(b'[') => return self.canon_array::<WRITE>(depth + 1, out, stack),
            Some(b'{') => return self.canon_object::<WRITE>(depth + 1, out, stack),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                let n = self.number_value()?;
                if WRITE {
                    let text = &self.input[start..self.pos];
                    let digits = &text[usize::from(text[0] == b'-')..];
                    // An integer of up to 15 digits is its own shortest
                    // form (as `number` knows); `-0` is written `0`.
                    if digits.len() <= f64::DIGITS as usize && digits.iter().all(u8::is_ascii_digit) && n != 0.0 {
                        out.extend_from_slice(text);
                    } else {
                        write_number(n, out);
                    }
                }
                return Ok(0);
            }
            Some(b) => return Err(self.err(JsonErrorKind::UnexpectedByte(b))),
        };
        self.literal(literal, Value::Null)?;
        if WRITE {
            out.extend_from_slice(literal);
        }
        Ok(0)
    }

    fn canon_array<const WRITE: bool>(
        &mut self,
        depth: usize,
        out: &mut Vec<u8>,
        stack: &mut Vec<Member<'a>>,
    ) -> Result<usize, JsonError> {
        if depth > MAX_PARSE_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep(MAX_PARSE_DEPTH)));
        }
        self.pos += 1;
        if WRITE {
            out.push(b'[');
        }
        self.skip_ws();
        let mut deepest = 0;
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                deepest = deepest.max(self.canon_value::<WRITE>(depth, out, stack)?);
                if !self.more(b']')? {
                    break;
                }
                if WRITE {
                    out.push(b',');
                }
            }
        }
        if WRITE {
            out.push(b']');
        }
        Ok(1 + deepest)
    }

    fn canon_object<const WRITE: bool>(
        &mut self,
        depth: usize,
        out: &mut Vec<u8>,
        stack: &mut Vec<Member<'a>>,
    ) -> Result<usize, JsonError> {
        if depth > MAX_PARSE_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep(MAX_PARSE_DEPTH)));
        }
        self.pos += 1;
        let open = out.len();
        if WRITE {
            out.push(b'{');
        }
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            if WRITE {
                out.push(b'}');
            }
            return Ok(1);
        }
        let base = stack.len();
        let mut names = NameCheck::default();
        let mut deepest = 0;
        loop {
            let (name_at, name) = self.member_name()?;
            let count = stack.len() - base;
            if names.repeats(count, |i| &*stack[base + i].name, &name) {
                return Err(JsonError { kind: JsonErrorKind::DuplicateMember(name.into_owned()), offset: name_at });
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            if WRITE && count > 0 {
                out.push(b',');
            }
            let start = out.len();
            if WRITE {
                write_str(&name, matches!(name, Cow::Owned(_)), out);
                out.push(b':');
            }
            deepest = deepest.max(self.canon_value::<WRITE>(depth, out, stack)?);
            stack.push(Member { name, start, end: out.len() });
            if !self.more(b'}')? {
                break;
            }
        }
        if WRITE && names.out_of_order {
            sort_members(out, open + 1, &mut stack[base..]);
        }
        stack.truncate(base);
        if WRITE {
            out.push(b'}');
        }
        Ok(1 + deepest)
    }
}

/// A string's canonical form: as read when it had no escapes (`decoded`
/// false: the bytes are then already canonical — no quote, backslash or
/// control byte), else re-escaped.
fn write_str(text: &str, decoded: bool, out: &mut Vec<u8>) {
    if decoded {
        write_string(text, out);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Re-writes the members after `from` (written in input order, commas
/// between) in RFC 8785 order. Names are unique, so the order is total.
fn sort_members(out: &mut Vec<u8>, from: usize, members: &mut [Member<'_>]) {
    members.sort_unstable_by(|a, b| compare_utf16(&a.name, &b.name));
    let written = out.split_off(from);
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&written[m.start - from..m.end - from]);
    }
}

/// Reads the members of one top-level object one at a time: each name is
/// checked (and refused when repeated) as it comes, and the caller chooses
/// how to read its value — decoded, as a tree, canonicalised, or skipped.
/// The whole text is checked: after the last member, only whitespace may
/// follow.
pub struct MemberReader<'a> {
    p: Parser<'a>,
    names: Vec<Cow<'a, str>>,
    check: NameCheck,
    stack: Vec<Member<'a>>,
    sink: Vec<u8>,
}

impl std::fmt::Debug for MemberReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberReader").field("at", &self.p.pos).field("names", &self.names).finish_non_exhaustive()
    }
}

/// What a JSON text holds at its top: an object to read member by member,
/// or another value (parsed whole).
#[derive(Debug)]
pub enum TopLevel<'a> {
    /// An object.
    Object(MemberReader<'a>),
    /// Any other value.
    Other(Value),
}

impl<'a> MemberReader<'a> {
    /// Starts reading `input`.
    pub fn open(input: &'a [u8], numbers: NumberPolicy) -> Result<TopLevel<'a>, JsonError> {
        let mut p = Parser { input, pos: 0, numbers };
        p.skip_ws();
        if p.peek() != Some(b'{') {
            return super::parse(input, numbers).map(TopLevel::Other);
        }
        p.pos += 1;
        Ok(TopLevel::Object(MemberReader {
            p,
            names: Vec::with_capacity(24),
            check: NameCheck::default(),
            stack: Vec::new(),
            sink: Vec::new(),
        }))
    }

    /// The next member's name, the cursor left on its value; `None` after
    /// the last member (and the end of the text).
    pub fn next_name(&mut self) -> Result<Option<Cow<'a, str>>, JsonError> {
        let p = &mut self.p;
        p.skip_ws();
        let ended = if self.names.is_empty() {
            p.peek() == Some(b'}') && {
                p.pos += 1;
                true
            }
        } else {
            !p.more(b'}')?
        };
        if ended {
            return self.end().map(|()| None);
        }
        let (name_at, name) = p.member_name()?;
        let names = &self.names;
        if self.check.repeats(names.len(), |i| &*names[i], &name) {
            return Err(JsonError { kind: JsonErrorKind::DuplicateMember(name.into_owned()), offset: name_at });
        }
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        self.names.push(name.clone());
        Ok(Some(name))
    }

    /// After the closing brace: only whitespace may follow.
    fn end(&mut self) -> Result<(), JsonError> {
        let p = &mut self.p;
        p.skip_ws();
        if p.pos != p.input.len() {
            return Err(p.err(JsonErrorKind::TrailingData));
        }
        Ok(())
    }

    /// The value as a string when it is one (borrowed when unescaped),
    /// else as a tree.
    pub fn string_or_value(&mut self) -> Result<Result<Cow<'a, str>, Value>, JsonError> {
        if self.p.peek() == Some(b'"') { self.p.string_cow().map(Ok) } else { self.value().map(Err) }
    }

    /// The value as a canonical object when it is one, else as a tree.
    pub fn object_or_value(&mut self) -> Result<Result<CanonicalObject, Value>, JsonError> {
        if self.p.peek() != Some(b'{') {
            return self.value().map(Err);
        }
        let mut out = Vec::new();
        let depth = self.p.canon_value::<true>(1, &mut out, &mut self.stack)?;
        Ok(Ok(CanonicalObject { bytes: out.into(), depth }))
    }

    /// The value as a tree.
    pub fn value(&mut self) -> Result<Value, JsonError> {
        self.p.value(1)
    }

    /// Checks the value and keeps nothing of it.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        self.p.canon_value::<false>(1, &mut self.sink, &mut self.stack).map(drop)
    }
}

#[cfg(test)]
mod tests;
