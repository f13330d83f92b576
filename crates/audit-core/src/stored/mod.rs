//! Stored events: sealing a validated event into its canonical line, and
//! reading a stored line back.
//!
//! A stored line is the RFC 8785 form of the whole event, `hash` included.
//! `hash` is SHA-256 of the canonical event without `hash`. Because members
//! are sorted and `action` precedes `hash`, the hash is also SHA-256 of the
//! line with its `,"hash":"<64 hex>"` member cut out — which is how the
//! verifier computes it, after checking the line is canonical.

mod check;

use memchr::memmem;

pub use check::{EVENTS_DROPPED, LineFacts, check_line};

use std::borrow::Cow;

use crate::event::from_json::{DraftBuilder, Input, OBJECT_MEMBERS};
use crate::event::{SCHEMA_VERSION, SERVICE_MEMBERS, ValidatedEvent, ValidationError};
use crate::hash::Hash;
use crate::json::{self, CanonicalObject, NumberPolicy};
use crate::timestamp::Timestamp;

/// What the sequencer adds to a validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// UUIDv7, lowercase hyphenated.
    pub event_id: String,
    /// Position in the organization's log.
    pub sequence: u64,
    /// The service's time of sequencing.
    pub timestamp: Timestamp,
    /// Hash of the event at `sequence - 1`, or [`Hash::GENESIS`].
    pub previous_hash: Hash,
}

/// A sealed event: its stored line (no trailing newline) and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    /// The canonical stored line.
    pub line: Vec<u8>,
    /// Its `hash` member.
    pub hash: Hash,
}

/// Seals `event` with the service members and returns its stored line.
///
/// The event's canonical input is already sorted, and where each service
/// member goes in it was recorded when it was written: the members are
/// copied in between its bytes, the line is hashed without its `hash`
/// member, and the hash is written into the place kept for it. No tree is
/// built and no member is written again: this runs once per stored event.
pub fn seal(event: &ValidatedEvent, seal: &Seal) -> SealedEvent {
    let mut line = Vec::new();
    let hash = seal_into(event, seal, &mut line);
    SealedEvent { line, hash }
}

/// [`seal`], appending the stored line to `out` (a batch being written)
/// instead of returning it: the line is written once, where it goes.
pub fn seal_into(event: &ValidatedEvent, seal: &Seal, out: &mut Vec<u8>) -> Hash {
    event.write_stored_line(seal, None, out)
}

/// The most bytes [`seal`] adds to an event's canonical input: the six
/// service members at their longest (`sequence` up to 2^53, 16 digits).
/// A stored line is at most `canonical_input().len() + SEAL_MAX_BYTES`
/// bytes (plus its newline) — what batching counts, before sealing.
pub const SEAL_MAX_BYTES: usize = sealed_member(b"event_id", 36 + 2)
    + sealed_member(b"hash", 64 + 2)
    + sealed_member(b"previous_hash", 64 + 2)
    + sealed_member(b"schema_version", 1)
    + sealed_member(b"sequence", 16)
    + sealed_member(b"timestamp", 27 + 2);

/// `,"<name>":<value>`: a comma, the quoted name, a colon and the value.
const fn sealed_member(name: &[u8], value_bytes: usize) -> usize {
    name.len() + 4 + value_bytes
}

/// The `,"hash":"` marker that precedes the hash in a canonical line.
pub(crate) const HASH_MARKER: &[u8] = b",\"hash\":\"";

/// Computes the hash of a canonical stored line by cutting out its `hash`
/// member. Returns the computed hash and the hash the line claims, or `None`
/// when the line has no well-formed top-level `hash` member.
///
/// Only meaningful for a line already known to be canonical: in canonical
/// form no string can contain a raw `"` so the first marker is the member,
/// and `hash` is preceded by at least `action`.
pub fn hash_line(line: &[u8]) -> Option<(Hash, Hash)> {
    let (at, claimed, hex_end) = hash_member(line)?;
    let computed = Hash::of_parts(&[&line[..at], &line[hex_end + 1..]]);
    Some((computed, claimed))
}

/// The hash a canonical stored line claims, without recomputing it (for
/// readers that only need the leaf of the Merkle tree: proofs, the
/// checkpointer; the content is checked by `verify`).
pub fn claimed_hash(line: &[u8]) -> Option<Hash> {
    hash_member(line).map(|(_, claimed, _)| claimed)
}

/// The `timestamp` a canonical stored line claims, without parsing the
/// line (for readers that only place lines in time: a time range's start).
/// Members are sorted, and only `user_agent` — a string, in which a quote
/// is always escaped — follows `timestamp`, so the top-level member is the
/// last occurrence of `,"timestamp":"` even when an object member (e.g.
/// `metadata`) holds a `timestamp` of its own.
pub fn claimed_timestamp(line: &[u8]) -> Option<Timestamp> {
    const MARKER: &[u8] = b",\"timestamp\":\"";
    static FINDER: std::sync::LazyLock<memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memmem::FinderRev::new(MARKER));
    let start = FINDER.rfind(line)? + MARKER.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    Timestamp::parse_stored(std::str::from_utf8(&line[start..start + len]).ok()?).ok()
}

/// The pieces of `bytes` between `\n`s, exactly as
/// `bytes.split(|b| *b == b'\n')` gives them, found with `memchr`: a
/// chunk's lines are a few hundred bytes each, and a predicate called per
/// byte cost an export as much as reading each event's hashes.
pub fn split_lines(bytes: &[u8]) -> SplitLines<'_> {
    SplitLines { rest: Some(bytes) }
}

/// The iterator of [`split_lines`].
#[derive(Debug, Clone)]
pub struct SplitLines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for SplitLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match memchr::memchr(b'\n', rest) {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Where the top-level `hash` member starts, the hash it holds, and where its hex ends.
fn hash_member(line: &[u8]) -> Option<(usize, Hash, usize)> {
    static FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(HASH_MARKER));
    let at = FINDER.find(line)?;
    let hex_start = at + HASH_MARKER.len();
    let hex_end = hex_start + 64;
    if line.get(hex_end) != Some(&b'"') {
        return None;
    }
    let claimed = Hash::from_hex(std::str::from_utf8(&line[hex_start..hex_end]).ok()?).ok()?;
    Some((at, claimed, hex_end))
}

/// A stored event read back from its line.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The caller's members, re-validated for shape.
    pub body: ValidatedEvent,
    /// `event_id`.
    pub event_id: String,
    /// `sequence`.
    pub sequence: u64,
    /// `timestamp`.
    pub timestamp: Timestamp,
    /// `previous_hash`.
    pub previous_hash: Hash,
    /// `hash` as stored (not recomputed: see [`hash_line`]).
    pub hash: Hash,
}

/// Why a stored line is not a well-formed stored event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoredLineError {
    /// Not I-JSON.
    #[error("not valid JSON: {0}")]
    Json(#[from] json::JsonError),
    /// Valid JSON but not in RFC 8785 canonical form.
    #[error("not in RFC 8785 canonical form")]
    NotCanonical,
    /// A service member is missing or ill-formed.
    #[error("member {field}: {why}")]
    Member {
        /// The member.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Valid, but not in the normalised form the service stores.
    #[error("not in the stored (normalised) form")]
    NotNormalised,
    /// The caller's members do not form a valid event.
    #[error("invalid event body: {0}")]
    Body(#[from] ValidationError),
}

/// A service member of a stored line, its raw canonical value.
fn service_member<'a>(raw: Option<&'a str>, field: &'static str) -> Result<&'a str, StoredLineError> {
    raw.ok_or(StoredLineError::Member { field, why: "is missing".into() })
}

/// The text of a string value (its raw canonical form, quotes included).
fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).map(crate::scan::decode_str)
}

fn raw_str<'a>(raw: Option<&'a str>, field: &'static str) -> Result<Cow<'a, str>, StoredLineError> {
    string_value(service_member(raw, field)?).ok_or(StoredLineError::Member { field, why: "must be a string".into() })
}

fn raw_uint(raw: Option<&str>, field: &'static str) -> Result<u64, StoredLineError> {
    // Canonical numbers: an integer up to 2^53 is written as its digits.
    Some(service_member(raw, field)?)
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|n| *n <= crate::event::MAX_SAFE_INTEGER)
        .ok_or(StoredLineError::Member { field, why: "must be a non-negative integer".into() })
}

fn raw_hash(raw: Option<&str>, field: &'static str) -> Result<Hash, StoredLineError> {
    let text = raw_str(raw, field)?;
    Hash::from_hex(&text).map_err(|e| StoredLineError::Member { field, why: e.to_string() })
}

/// A member of a stored event's body, from its raw canonical value.
fn body_member(name: &str, raw: &str) -> Result<Input<'static>, StoredLineError> {
    Ok(match raw.as_bytes().first() {
        Some(b'"') => Input::String(Cow::Owned(crate::scan::decode_str(&raw[1..raw.len() - 1]).into_owned())),
        Some(b'{') if OBJECT_MEMBERS.contains(&name) => {
            Input::Object(CanonicalObject::from_checked(raw.as_bytes()).into())
        }
        _ => Input::Other(json::parse(raw.as_bytes(), NumberPolicy::Exact)?),
    })
}

/// True when `text` is a lowercase hyphenated UUID of version 7.
pub fn is_uuid_v7(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        })
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

impl StoredEvent {
    /// Parses a stored line, checking that it is canonical and well-formed.
    /// The hash is *not* checked here (see [`hash_line`]).
    pub fn parse_line(line: &[u8]) -> Result<StoredEvent, StoredLineError> {
        // The line is checked to be UTF-8 once, as a whole; its members
        // then come back as text, with nothing to convert one by one.
        let scanned = std::str::from_utf8(line).ok().and_then(|text| crate::scan::scan_object_str(text).ok());
        let Some(members) = scanned else {
            // Not canonical: say whether it is JSON at all.
            json::parse(line, NumberPolicy::Exact)?;
            return Err(StoredLineError::NotCanonical);
        };
        let mut service: [Option<&str>; 6] = [None; 6];
        let mut body = DraftBuilder::default();
        for m in &members {
            // Canonical names of service and body members have no escapes.
            let name = m.name;
            match SERVICE_MEMBERS.iter().position(|s| *s == name) {
                Some(at) => service[at] = Some(m.value),
                None => body.put(name, body_member(name, m.value)?)?,
            }
        }
        let [schema_version, event_id, sequence, timestamp, previous_hash, hash] = service;
        let version = raw_uint(schema_version, "schema_version")?;
        if version != SCHEMA_VERSION {
            return Err(StoredLineError::Member {
                field: "schema_version",
                why: format!("{version} is not supported (expected {SCHEMA_VERSION})"),
            });
        }
        let event_id = raw_str(event_id, "event_id")?.into_owned();
        if !is_uuid_v7(&event_id) {
            return Err(StoredLineError::Member { field: "event_id", why: "must be a lowercase UUIDv7".into() });
        }
        let sequence = raw_uint(sequence, "sequence")?;
        let timestamp = Timestamp::parse_stored(&raw_str(timestamp, "timestamp")?)
            .map_err(|e| StoredLineError::Member { field: "timestamp", why: e.to_string() })?;
        let previous_hash = raw_hash(previous_hash, "previous_hash")?;
        let hash = raw_hash(hash, "hash")?;
        let body = body.finish(None)?.validate_stored()?;
        let event = StoredEvent { body, event_id, sequence, timestamp, previous_hash, hash };
        // Stored events are normalised (lowercase vocabularies, UTC times,
        // canonical IPs, defaults written out): a line that validates only
        // after normalisation is not a stored event.
        if event.to_line() != line {
            return Err(StoredLineError::NotNormalised);
        }
        Ok(event)
    }

    /// The stored line this event has (canonical, `hash` as stored).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = Vec::new();
        self.body.write_stored_line(&self.seal(), Some(self.hash), &mut line);
        line
    }

    /// Whether any string of the event may be a sealed personal value
    /// (SPEC §9): only then is there anything to reveal. A sealed value is a
    /// string that starts with `enc:v1:`, and in canonical text a quote
    /// followed by that prefix can only open a string (quotes inside
    /// strings are escaped); a member *name* of that form is a harmless
    /// false positive.
    pub fn holds_sealed_values(&self) -> bool {
        static FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memmem::Finder::new(concat!("\"", "enc:v1:").as_bytes()));
        debug_assert_eq!(crate::personal::SEALED_PREFIX, "enc:v1:");
        FINDER.find(self.body.canonical_input()).is_some()
    }

    /// The service members this event was sealed with.
    fn seal(&self) -> Seal {
        Seal {
            event_id: self.event_id.clone(),
            sequence: self.sequence,
            timestamp: self.timestamp,
            previous_hash: self.previous_hash,
        }
    }

    /// This event for display, its personal values revealed by `key_for`
    /// (see [`ValidatedEvent::revealed`]): service members unchanged, body
    /// readable. Never hash it or write it back.
    pub fn revealed(
        &self,
        paths: &[crate::personal::PersonalPath],
        key_for: impl FnMut(crate::personal::KeyId) -> Option<crate::personal::DataKey>,
    ) -> (StoredEvent, crate::personal::Revealing) {
        let (body, outcome) = self.body.revealed(paths, key_for);
        (StoredEvent { body, ..self.clone() }, outcome)
    }

    /// The receipt a caller gets for this event.
    pub fn receipt(&self) -> Receipt {
        Receipt { event_id: self.event_id.clone(), sequence: self.sequence, timestamp: self.timestamp, hash: self.hash }
    }
}

/// Proof of durable storage handed to a caller (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The stored event's id.
    pub event_id: String,
    /// Its position in the organization's log.
    pub sequence: u64,
    /// Its service timestamp.
    pub timestamp: Timestamp,
    /// Its hash.
    pub hash: Hash,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::to_canonical;
    use crate::event::{Action, ActorType, Category, EventDraft, Limits};
    use crate::json::{Object, Value};

    fn sample() -> ValidatedEvent {
        EventDraft {
            organization_id: "org-1".into(),
            event_category: Some(Category::Data),
            event_type: "trace.deleted".into(),
            action: Some(Action::Delete),
            actor_type: Some(ActorType::User),
            actor_email: Some("a@example.com".into()),
            ..Default::default()
        }
        .validate(&Limits::default())
        .unwrap()
    }

    fn seal0() -> Seal {
        Seal {
            event_id: "01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b".into(),
            sequence: 0,
            timestamp: Timestamp::parse_rfc3339("2026-11-28T06:46:34.123456Z").unwrap(),
            previous_hash: Hash::GENESIS,
        }
    }

    #[test]
    fn split_lines_gives_what_slice_split_gives() {
        for bytes in [&b""[..], b"\n", b"a", b"a\n", b"a\nb", b"a\n\nb\n", b"\n\n", b"{\"x\":1}\n{\"y\":2}\n"] {
            let want: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            assert_eq!(split_lines(bytes).collect::<Vec<_>>(), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn the_claimed_timestamp_is_the_top_level_one() {
        let mut draft = EventDraft {
            organization_id: "org-1".into(),
            event_type: "trace.deleted".into(),
            action: Some(Action::Delete),
            actor_type: Some(ActorType::User),
            user_agent: Some(r#"agent ,"timestamp":"1999-01-01T00:00:00.000000Z"#.into()),
            ..Default::default()
        };
        let mut nested = Object::new();
        nested.insert("timestamp", Value::String("2001-01-01T00:00:00.000000Z".into()));
        draft.metadata = Some(nested.clone().into());
        draft.new_state = Some(nested.into());
        let sealed = seal(&draft.validate(&Limits::default()).unwrap(), &seal0());
        assert_eq!(claimed_timestamp(&sealed.line), Some(seal0().timestamp));
        assert_eq!(claimed_timestamp(&seal(&sample(), &seal0()).line), Some(seal0().timestamp));
        assert_eq!(
            claimed_timestamp(br#"{"timestamp":"2026-11-28T06:46:34.123456Z"}"#),
            None,
            "not a member after another"
        );
    }

    #[test]
    fn sealed_line_is_canonical_and_hash_cut_matches_reserialisation() {
        let sealed = seal(&sample(), &seal0());
        let text = std::str::from_utf8(&sealed.line).unwrap();
        assert!(text.starts_with(r#"{"action":"delete","actor_email":"a@example.com","actor_type":"user","event_category":"data","event_id":"#), "{text}");
        assert!(text.contains(r#""previous_hash":"0000000000000000000000000000000000000000000000000000000000000000""#));
        assert!(text.contains(
            r#""schema_version":1,"sequence":0,"severity":"warning","timestamp":"2026-11-28T06:46:34.123456Z"}"#
        ));
        let (computed, claimed) = hash_line(&sealed.line).unwrap();
        assert_eq!(computed, claimed);
        assert_eq!(computed, sealed.hash);
        let back = StoredEvent::parse_line(&sealed.line).unwrap();
        assert_eq!(back.sequence, 0);
        assert_eq!(back.hash, sealed.hash);
        assert_eq!(back.body, sample());
    }

    /// The tree-based construction the byte merge must equal.
    fn seal_reference(event: &ValidatedEvent, seal: &Seal) -> SealedEvent {
        let mut obj = event.to_object();
        obj.insert("schema_version", Value::Number(SCHEMA_VERSION as f64));
        obj.insert("event_id", Value::String(seal.event_id.clone()));
        obj.insert("sequence", Value::Number(seal.sequence as f64));
        obj.insert("timestamp", Value::String(seal.timestamp.to_string()));
        obj.insert("previous_hash", Value::String(seal.previous_hash.to_hex()));
        let hash = Hash::of(&to_canonical(&Value::Object(obj.clone())));
        obj.insert("hash", Value::String(hash.to_hex()));
        SealedEvent { line: to_canonical(&Value::Object(obj)), hash }
    }

    #[test]
    fn sealing_adds_at_most_seal_max_bytes() {
        let event = sample();
        let longest = Seal { sequence: crate::event::MAX_SAFE_INTEGER, ..seal0() };
        assert_eq!(seal(&event, &longest).line.len(), event.canonical_input().len() + SEAL_MAX_BYTES);
        assert!(seal(&event, &seal0()).line.len() < event.canonical_input().len() + SEAL_MAX_BYTES);
    }

    #[test]
    fn byte_merge_equals_the_tree_construction() {
        let mut rich = crate::sample::sample_draft("Org:9", 3);
        rich.occurred_at = Some(Timestamp::from_micros(1));
        rich.user_agent = Some("curl/8 \u{e9}\u{1f600}".into());
        rich.session_id = Some("s-1".into());
        rich.idempotency_key = Some("k".into());
        rich.producer_id = Some("p".into());
        rich.producer_sequence = Some(9_007_199_254_740_992);
        rich.request = Some(crate::event::RequestInfo {
            method: Some("GET".into()),
            status: Some(200),
            duration_ms: Some(0.25),
            ..Default::default()
        });
        for draft in [crate::sample::sample_draft("org-1", 1), rich] {
            let event = draft.validate(&Limits::default()).unwrap();
            for s in [seal0(), Seal { sequence: 123_456_789, ..seal0() }] {
                assert_eq!(seal(&event, &s), seal_reference(&event, &s));
            }
        }
        assert_eq!(seal(&sample(), &seal0()), seal_reference(&sample(), &seal0()));
    }

    #[test]
    fn non_canonical_lines_are_refused() {
        let sealed = seal(&sample(), &seal0());
        let mut spaced = sealed.line.clone();
        spaced.insert(1, b' ');
        assert_eq!(StoredEvent::parse_line(&spaced), Err(StoredLineError::NotCanonical));
    }

    #[test]
    fn uuid_v7_shape() {
        assert!(is_uuid_v7("01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b"));
        assert!(!is_uuid_v7("01937a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b"));
        assert!(!is_uuid_v7("01937A2B-3C4D-7E5F-8A6B-7C8D9E0F1A2B"));
    }

    #[test]
    fn a_sealed_event_is_stored_checked_and_revealed_and_keeps_its_input_fingerprint() {
        use crate::personal::{DataKey, KeyId, PersonalPath, SEALED_PREFIX};
        let key = DataKey::from_bytes([3; 32]);
        let id = KeyId::from_bytes([0x5a; 16]);
        let paths = [PersonalPath::parse("new_state.email").unwrap()];
        let mut draft = sample().draft().clone();
        draft.actor_ip = Some("2001:db8::7".into());
        draft.user_agent = Some("curl/8".into());
        let mut state = Object::new();
        state.insert("email", Value::String("b@example.com".into()));
        draft.new_state = Some(state.into());
        let plain = draft.validate(&Limits::default()).unwrap();
        let mut n = 0u8;
        let sealed_event = plain.clone().sealed(&paths, &crate::personal::Sealer::new(&key, id), || {
            n += 1;
            [n; 12]
        });
        assert_eq!(sealed_event.fingerprint(), plain.fingerprint(), "a retry of the input is still recognised");
        let stored = seal(&sealed_event, &seal0());
        let text = std::str::from_utf8(&stored.line).unwrap();
        for secret in ["a@example.com", "b@example.com", "2001:db8::7", "curl/8"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(text.matches(SEALED_PREFIX).count(), 4, "{text}");
        assert!(check_line(&stored.line).is_ok(), "the fast checker accepts a sealed actor_ip");
        let back = StoredEvent::parse_line(&stored.line).unwrap();
        assert_eq!(hash_line(&stored.line).unwrap().0, back.hash);
        let (shown, outcome) = back.revealed(&paths, |k| (k == id).then(|| key.clone()));
        assert_eq!(outcome.opened, 4);
        assert_eq!(shown.body.draft(), plain.draft());
        let (erased, outcome) = back.revealed(&paths, |_| None);
        assert_eq!(outcome.erased, 4);
        assert_eq!(erased.body.draft().actor_ip.as_deref(), Some(crate::personal::ERASED));
    }

    #[test]
    fn input_in_the_sealed_form_is_refused_naming_the_member() {
        for field in ["actor_email", "actor_ip", "user_agent", "session_id"] {
            let mut draft = sample().draft().clone();
            let forged = Some("enc:v1:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a:AAAA".to_owned());
            match field {
                "actor_email" => draft.actor_email = forged,
                "actor_ip" => draft.actor_ip = forged,
                "user_agent" => draft.user_agent = forged,
                _ => draft.session_id = forged,
            }
            let e = draft.validate(&Limits::default()).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.to_string().contains("reserved"), "{e}");
        }
    }

    #[test]
    fn only_events_with_sealed_values_are_revealed() {
        let s = Seal {
            event_id: "01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b".into(),
            sequence: 0,
            timestamp: crate::Timestamp::from_micros(1_764_312_394_123_456),
            previous_hash: Hash::GENESIS,
        };
        let plain = crate::sample::sample_draft("org-1", 1).validate(&Limits::default()).unwrap();
        let read = |e: &ValidatedEvent| StoredEvent::parse_line(&seal(e, &s).line).unwrap();
        assert!(!read(&plain).holds_sealed_values());
        let sealer = crate::personal::Sealer::new(
            &crate::personal::DataKey::from_bytes([7; 32]),
            crate::personal::KeyId::from_bytes([1; 16]),
        );
        let sealed = plain.sealed(&[], &sealer, || [3; 12]);
        assert!(read(&sealed).holds_sealed_values());
    }
}
