//! The verifier's fast check of a stored line: canonical form and the shape
//! of every member, on borrowed bytes, in one pass plus one hash.
//!
//! It accepts exactly the lines [`super::StoredEvent::parse_line`] accepts
//! (a property test holds the two to that), without building a tree.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{StoredLineError, hash_line, is_uuid_v7};
use crate::event::{
    Action, ActorType, Category, MAX_SAFE_INTEGER, Problem, SCHEMA_VERSION, Severity, ValidationError,
    is_valid_event_type, is_valid_tenant_id,
};
use crate::hash::Hash;
use crate::scan::{RawMember, decode_string, scan_object};
use crate::timestamp::Timestamp;

/// What the chain checks need from a stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFacts<'a> {
    /// `event_id`.
    pub event_id: &'a str,
    /// `sequence`.
    pub sequence: u64,
    /// `timestamp`.
    pub timestamp: Timestamp,
    /// `previous_hash`.
    pub previous_hash: Hash,
    /// `hash` as stored.
    pub hash: Hash,
    /// The hash the line's content has.
    pub computed_hash: Hash,
    /// `organization_id`.
    pub organization_id: Cow<'a, str>,
    /// `producer_id` and `producer_sequence`, when the event has them.
    pub producer: Option<(Cow<'a, str>, u64)>,
    /// For an `audit_log.events_dropped` event: the producer ranges it
    /// reports lost (`metadata.producers`, `(producer_id, from, to)`).
    pub reported_losses: Vec<(String, u64, u64)>,
}

/// The event type whose `metadata.producers` lists ranges reported lost.
pub const EVENTS_DROPPED: &str = "audit_log.events_dropped";

/// `metadata.producers` of an `audit_log.events_dropped` event:
/// `[{"producer_id", "from", "to"}]`. Entries of another shape are ignored
/// (they report nothing verifiable).
fn reported_losses(metadata: &[u8]) -> Vec<(String, u64, u64)> {
    use crate::json::{NumberPolicy, Value, parse};
    let Ok(Value::Object(m)) = parse(metadata, NumberPolicy::Exact) else { return Vec::new() };
    let Some(Value::Array(items)) = m.get("producers") else { return Vec::new() };
    let uint = |v: Option<&Value>| match v {
        Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 && *n <= MAX_SAFE_INTEGER as f64 => Some(*n as u64),
        _ => None,
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Object(o) = item else { return None };
            let Some(Value::String(id)) = o.get("producer_id") else { return None };
            let (from, to) = (uint(o.get("from"))?, uint(o.get("to"))?);
            (from <= to).then(|| (id.clone(), from, to))
        })
        .collect()
}

fn bad(field: &str, why: impl Into<String>) -> StoredLineError {
    StoredLineError::Body(ValidationError { field: field.into(), problem: Problem::Invalid(why.into()) })
}

fn service(field: &'static str, why: impl Into<String>) -> StoredLineError {
    StoredLineError::Member { field, why: why.into() }
}

fn as_string<'a>(field: &str, raw: &'a [u8]) -> Result<Cow<'a, str>, StoredLineError> {
    match raw {
        [b'"', inner @ .., b'"'] => Ok(decode_string(inner)),
        _ => Err(bad(field, "must be a string")),
    }
}

/// A plain ASCII string value without escapes (ids, hashes, enums, times).
fn as_plain<'a>(field: &str, raw: &'a [u8]) -> Result<&'a str, StoredLineError> {
    match raw {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
            std::str::from_utf8(inner).map_err(|_| bad(field, "must be a string"))
        }
        [b'"', ..] => Err(bad(field, "contains a forbidden character")),
        _ => Err(bad(field, "must be a string")),
    }
}

fn as_uint(raw: &[u8], max: u64) -> Option<u64> {
    if raw.is_empty() || raw.len() > 16 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok().filter(|n| *n <= max)
}

/// The single-line rule of the event model: no control characters, no
/// bidirectional overrides, not empty.
fn single_line(field: &str, text: &str) -> Result<(), StoredLineError> {
    if text.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if text.chars().any(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')) {
        return Err(bad(field, "contains a forbidden character"));
    }
    Ok(())
}

fn vocabulary<T: Copy>(
    field: &str,
    raw: &[u8],
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<T, StoredLineError> {
    let text = as_plain(field, raw)?;
    all.iter()
        .copied()
        .find(|v| as_str(*v) == text)
        .ok_or_else(|| bad(field, format!("{text:?} is not a stored value")))
}

fn single_line_member(name: &[u8]) -> &'static str {
    match name {
        b"resource_type" => "resource_type",
        b"resource_id" => "resource_id",
        b"actor_id" => "actor_id",
        b"actor_email" => "actor_email",
        b"user_agent" => "user_agent",
        b"session_id" => "session_id",
        b"idempotency_key" => "idempotency_key",
        _ => "producer_id",
    }
}

fn is_object(raw: &[u8]) -> bool {
    raw.first() == Some(&b'{')
}

fn check_request(raw: &[u8]) -> Result<(), StoredLineError> {
    if !is_object(raw) {
        return Err(bad("request", "must be an object"));
    }
    let members = scan_object(raw).map_err(|_| bad("request", "must be an object"))?;
    for m in members {
        match m.name {
            b"method" | b"path" | b"route" | b"request_id" => {
                let field = format!("request.{}", String::from_utf8_lossy(m.name));
                single_line(&field, &as_string(&field, m.value)?)?;
            }
            b"status" => {
                as_uint(m.value, 999).ok_or_else(|| bad("request.status", "must be an integer from 0 to 999"))?;
            }
            b"truncated" => {
                let ok = m.value.first() == Some(&b'[') && m.value.len() > 2;
                if !ok {
                    return Err(bad("request.truncated", "must be a non-empty array of member names"));
                }
            }
            b"duration_ms" => {
                let ok = m.value.first().is_some_and(u8::is_ascii_digit);
                if !ok {
                    return Err(bad("request.duration_ms", "must be a non-negative number"));
                }
            }
            other => {
                return Err(bad(
                    &format!("request.{}", String::from_utf8_lossy(other)),
                    "is not a member of an audit event",
                ));
            }
        }
    }
    Ok(())
}

/// Checks a stored line completely and returns the facts the chain needs.
pub fn check_line(line: &[u8]) -> Result<LineFacts<'_>, StoredLineError> {
    let members: Vec<RawMember<'_>> = scan_object(line).map_err(|_| StoredLineError::NotCanonical)?;
    let (mut event_id, mut sequence, mut timestamp, mut previous_hash, mut hash) = (None, None, None, None, None);
    let (mut organization_id, mut category, mut event_type, mut action, mut severity, mut actor_type) =
        (None, None, None, None, None, None);
    let (mut producer_id, mut producer_sequence, mut schema_version) = (None, None, false);
    let mut metadata = None;
    for m in &members {
        let v = m.value;
        match m.name {
            b"schema_version" => {
                if as_uint(v, u64::MAX >> 11) != Some(SCHEMA_VERSION) {
                    return Err(service("schema_version", format!("{} is not supported", String::from_utf8_lossy(v))));
                }
                schema_version = true;
            }
            b"event_id" => {
                let id = as_plain("event_id", v).map_err(|_| service("event_id", "must be a string"))?;
                if !is_uuid_v7(id) {
                    return Err(service("event_id", "must be a lowercase UUIDv7"));
                }
                event_id = Some(id);
            }
            b"sequence" => {
                sequence = Some(
                    as_uint(v, MAX_SAFE_INTEGER)
                        .ok_or_else(|| service("sequence", "must be a non-negative integer"))?,
                )
            }
            b"timestamp" => {
                let text = as_plain("timestamp", v).map_err(|_| service("timestamp", "must be a string"))?;
                timestamp = Some(Timestamp::parse_stored(text).map_err(|e| service("timestamp", e.to_string()))?);
            }
            b"previous_hash" | b"hash" => {
                let field = if m.name == b"hash" { "hash" } else { "previous_hash" };
                let text = as_plain(field, v).map_err(|_| service(field, "must be a string"))?;
                let h = Hash::from_hex(text).map_err(|e| service(field, e.to_string()))?;
                if field == "hash" { hash = Some(h) } else { previous_hash = Some(h) }
            }
            b"organization_id" | b"project_id" => {
                let field = if m.name == b"project_id" { "project_id" } else { "organization_id" };
                let id = as_plain(field, v)?;
                if !is_valid_tenant_id(id) {
                    return Err(bad(field, "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"));
                }
                if field == "organization_id" {
                    organization_id = Some(Cow::Borrowed(id));
                }
            }
            b"occurred_at" => {
                Timestamp::parse_stored(as_plain("occurred_at", v)?).map_err(|e| bad("occurred_at", e.to_string()))?;
            }
            b"event_category" => category = Some(vocabulary("event_category", v, Category::ALL, Category::as_str)?),
            b"action" => action = Some(vocabulary("action", v, Action::ALL, Action::as_str)?),
            b"severity" => severity = Some(vocabulary("severity", v, Severity::ALL, Severity::as_str)?),
            b"actor_type" => actor_type = Some(vocabulary("actor_type", v, ActorType::ALL, ActorType::as_str)?),
            b"event_type" => {
                let t = as_plain("event_type", v)?;
                if !is_valid_event_type(t) {
                    return Err(bad("event_type", "must be dotted lowercase"));
                }
                event_type = Some(t);
            }
            b"actor_ip" => {
                let text = as_plain("actor_ip", v)?;
                if text.starts_with(crate::personal::SEALED_PREFIX) {
                    // Sealed (SPEC §9): validated as an address before sealing.
                    continue;
                }
                let ip: IpAddr = text.parse().map_err(|_| bad("actor_ip", "is not an IP address"))?;
                if ip.to_string() != text {
                    return Err(bad("actor_ip", "is not in canonical form"));
                }
            }
            b"resource_type" | b"resource_id" | b"actor_id" | b"actor_email" | b"user_agent" | b"session_id"
            | b"idempotency_key" | b"producer_id" => {
                let field = single_line_member(m.name);
                let text = as_string(field, v)?;
                single_line(field, &text)?;
                if m.name == b"producer_id" {
                    producer_id = Some(text);
                }
            }
            b"producer_sequence" => {
                producer_sequence = Some(
                    as_uint(v, MAX_SAFE_INTEGER)
                        .ok_or_else(|| bad("producer_sequence", "must be an integer from 0 to 2^53"))?,
                );
            }
            b"request" => check_request(v)?,
            b"previous_state" | b"new_state" | b"metadata" => {
                if !is_object(v) {
                    return Err(bad(&String::from_utf8_lossy(m.name), "must be an object"));
                }
                if m.name == b"metadata" {
                    metadata = Some(v);
                }
            }
            other => {
                return Err(StoredLineError::Body(ValidationError {
                    field: String::from_utf8_lossy(other).into_owned(),
                    problem: Problem::Unknown,
                }));
            }
        }
    }
    if producer_id.is_some() != producer_sequence.is_some() {
        return Err(bad("producer_id", "producer_id and producer_sequence go together"));
    }
    let missing = |field: &'static str| service(field, "is missing");
    if !schema_version {
        return Err(missing("schema_version"));
    }
    let organization_id = organization_id.ok_or_else(|| bad("organization_id", "is required"))?;
    let event_type = event_type.ok_or_else(|| bad("event_type", "is required"))?;
    let category = category.ok_or_else(|| bad("event_category", "is required"))?;
    if let Some(entry) = crate::catalog::lookup(event_type)
        && entry.category != category
    {
        return Err(bad("event_category", format!("{event_type} is a {} event", entry.category)));
    }
    action.ok_or_else(|| bad("action", "is required"))?;
    severity.ok_or_else(|| bad("severity", "is required"))?;
    actor_type.ok_or_else(|| bad("actor_type", "is required"))?;
    let (computed_hash, claimed) = hash_line(line).ok_or_else(|| missing("hash"))?;
    let facts = LineFacts {
        event_id: event_id.ok_or_else(|| missing("event_id"))?,
        sequence: sequence.ok_or_else(|| missing("sequence"))?,
        timestamp: timestamp.ok_or_else(|| missing("timestamp"))?,
        previous_hash: previous_hash.ok_or_else(|| missing("previous_hash"))?,
        hash: hash.ok_or_else(|| missing("hash"))?,
        computed_hash,
        organization_id,
        producer: producer_id.zip(producer_sequence),
        reported_losses: match metadata {
            Some(m) if event_type == EVENTS_DROPPED => reported_losses(m),
            _ => Vec::new(),
        },
    };
    debug_assert_eq!(claimed, facts.hash);
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::sample::sample_log;
    use crate::stored::StoredEvent;

    fn log() -> Vec<Vec<u8>> {
        sample_log("org-1", 4, Timestamp::from_micros(1_764_000_000_000_000))
    }

    #[test]
    fn facts_of_a_sealed_line() {
        let line = &log()[2];
        let facts = check_line(line).unwrap();
        let full = StoredEvent::parse_line(line).unwrap();
        assert_eq!((facts.sequence, facts.hash, facts.previous_hash), (2, full.hash, full.previous_hash));
        assert_eq!(facts.computed_hash, facts.hash);
        assert_eq!(facts.organization_id, "org-1");
    }

    #[test]
    fn both_checks_refuse_non_normalised_lines() {
        let line = String::from_utf8(log()[1].clone()).unwrap();
        for (from, to) in [
            (r#""action":"delete""#, r#""action":"DELETE""#),
            (r#""actor_ip":"192.0.2.10""#, r#""actor_ip":"192.000.2.10""#),
        ] {
            let altered = line.replacen(from, to, 1);
            assert!(check_line(altered.as_bytes()).is_err(), "{to}");
            assert!(StoredEvent::parse_line(altered.as_bytes()).is_err(), "{to}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The fast check and the full parse accept exactly the same lines:
        /// any byte changed, inserted or removed is judged alike.
        #[test]
        fn fast_and_full_checks_agree(line_no in 0usize..4, at in any::<prop::sample::Index>(), byte in any::<u8>(), op in 0u8..3) {
            let mut line = log()[line_no].clone();
            let i = at.index(line.len());
            match op {
                0 => line[i] = byte,
                1 => line.insert(i, byte),
                _ => { line.remove(i); }
            }
            let fast = check_line(&line).is_ok();
            let full = StoredEvent::parse_line(&line).is_ok();
            prop_assert_eq!(fast, full, "{}", String::from_utf8_lossy(&line));
        }
    }
}
