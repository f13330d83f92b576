use super::*;
use crate::event::from_json::InputError;

fn input(json: &str) -> Result<ValidatedEvent, String> {
    EventDraft::from_json(json.as_bytes())
        .map_err(|e| e.to_string())?
        .validate(&Limits::default())
        .map_err(|e| e.to_string())
}

const MINIMAL: &str =
    r#"{"organization_id":"org-1","event_type":"trace.deleted","action":"DELETE","actor_type":"User"}"#;

#[test]
fn minimal_catalog_event_gets_category_and_severity_from_the_catalog() {
    let e = input(MINIMAL).unwrap();
    assert_eq!(e.category(), Category::Data);
    assert_eq!(e.severity(), Severity::Warning);
    let canonical = String::from_utf8(e.canonical_input().to_vec()).unwrap();
    assert_eq!(
        canonical,
        r#"{"action":"delete","actor_type":"user","event_category":"data","event_type":"trace.deleted","organization_id":"org-1","severity":"warning"}"#
    );
}

#[test]
fn uncatalogued_types_need_a_category_and_default_severity_from_the_action() {
    let err = input(r#"{"organization_id":"o","event_type":"widget.spun","action":"update","actor_type":"user"}"#)
        .unwrap_err();
    assert!(err.starts_with("event_category:"), "{err}");
    let e = input(r#"{"organization_id":"o","event_type":"widget.spun","event_category":"Data","action":"export","actor_type":"user"}"#).unwrap();
    assert_eq!(e.severity(), Severity::Warning);
    let e = input(r#"{"organization_id":"o","event_type":"widget.spun","event_category":"data","action":"read","actor_type":"user"}"#).unwrap();
    assert_eq!(e.severity(), Severity::Info);
}

#[test]
fn catalog_category_mismatch_is_named() {
    let err = input(r#"{"organization_id":"o","event_type":"user.login","event_category":"data","action":"login","actor_type":"user"}"#).unwrap_err();
    assert!(err.contains("event_category") && err.contains("auth"), "{err}");
}

#[test]
fn unknown_and_service_owned_members_are_rejected_by_name() {
    for (extra, field, why) in [
        (r#""colour":"red""#, "colour", "not a member"),
        (r#""sequence":5"#, "sequence", "set by the service"),
        (r#""hash":"00""#, "hash", "set by the service"),
        (r#""timestamp":"2026-01-01T00:00:00Z""#, "timestamp", "set by the service"),
        (r#""request":{"verb":"GET"}"#, "request.verb", "not a member"),
    ] {
        let json = MINIMAL.replacen('{', &format!("{{{extra},"), 1);
        let err = input(&json).unwrap_err();
        assert!(err.starts_with(&format!("{field}:")) && err.contains(why), "{json}: {err}");
    }
}

#[test]
fn missing_required_members_are_named() {
    for (field, json) in [
        ("organization_id", r#"{"event_type":"trace.deleted","action":"delete","actor_type":"user"}"#),
        ("event_type", r#"{"organization_id":"o","action":"delete","actor_type":"user"}"#),
        ("action", r#"{"organization_id":"o","event_type":"trace.deleted","actor_type":"user"}"#),
        ("actor_type", r#"{"organization_id":"o","event_type":"trace.deleted","action":"delete"}"#),
    ] {
        let err = input(json).unwrap_err();
        assert_eq!(err, format!("{field}: is required"));
    }
}

#[test]
fn bad_values_are_named() {
    for (member, field) in [
        (r#""action":"remove""#, "action"),
        (r#""organization_id":"-bad""#, "organization_id"),
        (r#""organization_id":"a/b""#, "organization_id"),
        (r#""project_id":"p q""#, "project_id"),
        (r#""event_type":"Trace.Deleted""#, "event_type"),
        (r#""event_type":"trace""#, "event_type"),
        (r#""actor_id":"a\nb""#, "actor_id"),
        (r#""actor_email":"a\u202eb@x""#, "actor_email"),
        (r#""actor_ip":"999.1.1.1""#, "actor_ip"),
        (r#""occurred_at":"yesterday""#, "occurred_at"),
        (r#""metadata":[1]"#, "metadata"),
        (r#""metadata":null"#, "metadata"),
        (r#""producer_sequence":1"#, "producer_id"),
        (r#""request":{"status":-1}"#, "request.status"),
        (r#""resource_id":"""#, "resource_id"),
    ] {
        // Put the member first; where MINIMAL already has that member, drop its copy.
        let key = member.split(':').next().unwrap();
        let base: Vec<&str> = MINIMAL[1..MINIMAL.len() - 1].split(',').filter(|m| !m.starts_with(key)).collect();
        let json = format!("{{{member},{}}}", base.join(","));
        let err = input(&json).unwrap_err();
        assert!(err.starts_with(&format!("{field}:")), "{json}: {err}");
    }
}

#[test]
fn limits_are_enforced_and_reported_as_too_large() {
    let long_id = "x".repeat(257);
    let json = MINIMAL.replacen('{', &format!(r#"{{"actor_id":"{long_id}","#), 1);
    let err = EventDraft::from_json(json.as_bytes()).unwrap().validate(&Limits::default()).unwrap_err();
    assert!(err.is_too_large());
    assert_eq!(err.to_string(), "actor_id: exceeds the limit of 256 bytes");

    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let json = MINIMAL.replacen('{', &format!(r#"{{"metadata":{{"d":{deep}}},"#), 1);
    let err = EventDraft::from_json(json.as_bytes()).unwrap().validate(&Limits::default()).unwrap_err();
    assert_eq!(err.field, "metadata");
    assert!(err.is_too_large());

    let big = "y".repeat(70_000);
    let json = MINIMAL.replacen('{', &format!(r#"{{"new_state":{{"blob":"{big}"}},"#), 1);
    let err = EventDraft::from_json(json.as_bytes()).unwrap().validate(&Limits::default()).unwrap_err();
    assert_eq!(err.to_string(), "new_state: exceeds the limit of 65536 bytes");
}

#[test]
fn ijson_violations_are_errors_not_resolved_silently() {
    let dup = r#"{"organization_id":"a","organization_id":"b","event_type":"trace.deleted","action":"delete","actor_type":"user"}"#;
    assert!(matches!(EventDraft::from_json(dup.as_bytes()), Err(InputError::Json(_))));
    let big = MINIMAL.replacen('{', r#"{"metadata":{"n":12345678901234567890},"#, 1);
    let err = EventDraft::from_json(big.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("cannot be represented exactly"), "{err}");
}

#[test]
fn normalises_ip_and_occurred_at() {
    let json = MINIMAL.replacen('{', r#"{"actor_ip":"2001:DB8:0:0::1","occurred_at":"2026-11-28T07:00:00+01:00","#, 1);
    let e = input(&json).unwrap();
    assert_eq!(e.draft().actor_ip.as_deref(), Some("2001:db8::1"));
    assert_eq!(e.draft().occurred_at.unwrap().to_string(), "2026-11-28T06:00:00.000000Z");
}

#[test]
fn fingerprint_covers_occurred_at_and_ignores_member_order_and_case() {
    let a = input(MINIMAL).unwrap();
    let b = input(r#"{"actor_type":"user","action":"delete","event_type":"trace.deleted","organization_id":"org-1"}"#)
        .unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    let c = input(&MINIMAL.replacen('{', r#"{"occurred_at":"2026-01-01T00:00:00Z","#, 1)).unwrap();
    assert_ne!(a.fingerprint(), c.fingerprint());
}

#[test]
fn fingerprint_leaves_the_idempotency_key_out() {
    let plain = input(MINIMAL).unwrap();
    let keyed = |k: &str| input(&MINIMAL.replacen('{', &format!(r#"{{"idempotency_key":{k},"#), 1)).unwrap();
    // A key is retry bookkeeping: the same content under any key is one event.
    assert_eq!(keyed(r#""ingest:a:1:00""#).fingerprint(), plain.fingerprint());
    assert_eq!(keyed(r#""k\"\\,\"idempotency_key\":\"x""#).fingerprint(), plain.fingerprint());
    // Content still counts, also beside a key, and a key-like text in the
    // metadata is content, not a key.
    let other = input(&MINIMAL.replacen('{', r#"{"idempotency_key":"k","resource_id":"r2","#, 1)).unwrap();
    assert_ne!(other.fingerprint(), plain.fingerprint());
    let meta =
        input(&MINIMAL.replacen('{', r#"{"idempotency_key":"k","metadata":{"idempotency_key":"k"},"#, 1)).unwrap();
    assert_ne!(meta.fingerprint(), plain.fingerprint());
}

#[test]
fn depth_limit_is_exact() {
    let nested =
        |k: usize| MINIMAL.replacen('{', &format!(r#"{{"metadata":{{"d":{}1{}}},"#, "[".repeat(k), "]".repeat(k)), 1);
    // The metadata object is level 1; k arrays inside it reach level 1 + k.
    assert!(input(&nested(31)).is_ok());
    let err = input(&nested(32)).unwrap_err();
    assert_eq!(err, "metadata: exceeds the limit of 32 levels of nesting");
}
