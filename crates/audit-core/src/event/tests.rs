use super::*;
use crate::event::from_json::InputError;
use proptest::strategy::Strategy;

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

/// IPv4 addresses are kept as given, which is right only if every text
/// that parses is the canonical one: anything else must be refused.
#[test]
fn an_ipv4_address_is_accepted_only_in_its_canonical_text() {
    for (given, kept) in [
        ("192.0.2.7", Some("192.0.2.7")),
        ("0.0.0.0", Some("0.0.0.0")),
        ("255.255.255.255", Some("255.255.255.255")),
        ("192.0.2.07", None),
        ("0192.0.2.7", None),
        ("192.0.2.7 ", None),
        (" 192.0.2.7", None),
        ("192.0.2", None),
        ("192.0.2.256", None),
        ("192.0.2.+7", None),
        ("0x7f.0.0.1", None),
        ("::ffff:192.0.2.7", Some("::ffff:192.0.2.7")),
        ("::FFFF:192.0.2.7", Some("::ffff:192.0.2.7")),
    ] {
        let json = MINIMAL.replacen('{', &format!(r#"{{"actor_ip":"{given}","#), 1);
        let stored = input(&json).ok().map(|e| e.draft().actor_ip.clone().unwrap());
        assert_eq!(stored.as_deref(), kept, "{given:?}");
    }
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

/// Member texts the one-pass reader is compared on: valid values, wrong
/// types, nulls, escapes, unsorted and nested objects, non-finite-free
/// numbers, unknown and service-owned members.
const MEMBERS: &[(&str, &[&str])] = &[
    ("organization_id", &[r#""org-1""#, r#""org\u002d1""#, "7", "null"]),
    ("project_id", &[r#""p-1""#, r#""""#, "[]"]),
    ("event_type", &[r#""trace.deleted""#, r#""user.updated""#, r#""widget.spun""#, r#""Bad""#]),
    ("event_category", &[r#""data""#, r#""AUTH""#, r#""nope""#]),
    ("action", &[r#""DELETE""#, r#""update""#, r#""fly""#, "1"]),
    ("actor_type", &[r#""User""#, r#""service""#, "{}"]),
    ("severity", &[r#""info""#, r#""Critical""#]),
    ("actor_id", &[r#""u-1""#, r#""a\"b\\c\n""#, r#""x\u0007""#]),
    ("actor_email", &[r#""ada@example.com""#, r#""ÄDA@example.com""#]),
    ("actor_ip", &[r#""192.0.2.7""#, r#""::FFFF:192.0.2.7""#, r#""not-ip""#]),
    ("user_agent", &[r#""curl/8 (\ud83d\ude00)""#]),
    ("occurred_at", &[r#""2026-12-06T10:00:00+01:00""#, r#""yesterday""#]),
    ("request", &[r#"{"method":"GET","status":200,"duration_ms":1.5,"truncated":["path"]}"#, r#"{"x":1}"#, r#""GET""#]),
    (
        "metadata",
        &[
            r#"{"b":1,"a":[{"z":null,"y":true}],"c":"\u00e9\n"}"#,
            r#"{}"#,
            r#"{"n":[1e30,4.50,-0,0.000001,123456789012345678]}"#,
            r#"{"a":{"b":{"c":{"d":{"e":{}}}}}}"#,
            "5",
            r#""text""#,
        ],
    ),
    ("new_state", &[r#"{"email":"x@y","plan":"pro"}"#, r#"{"k":1,"k":2}"#, "null"]),
    ("previous_state", &[r#"{"€":1,"😀":2,"a":3}"#, "[]"]),
    ("producer_id", &[r#""prod""#]),
    ("producer_sequence", &["3", "-1", "2.5", "9007199254740993", r#""3""#]),
    ("idempotency_key", &[r#""k-1""#]),
    ("session_id", &[r#""s""#]),
    ("sequence", &["1"]),
    ("colour", &[r#""red""#]),
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]

    /// The one-pass reader and the tree path (parse, then read the tree)
    /// agree on every input: the same draft, or the same error; and the
    /// canonical form written from the draft is the canonical form of its
    /// members as a tree.
    #[test]
    fn one_pass_reading_equals_the_tree_path(
        chosen in proptest::sample::subsequence((0..MEMBERS.len()).collect::<Vec<_>>(), 0..MEMBERS.len())
            .prop_shuffle(),
        required in proptest::bool::weighted(0.8),
        values in proptest::collection::vec(0usize..10, MEMBERS.len()),
        repeated in proptest::option::weighted(0.05, 0..MEMBERS.len()),
        damage in proptest::option::weighted(0.1, (proptest::prelude::any::<proptest::sample::Index>(), 0u8..4)),
    ) {
        // Valid values most of the time, so that most inputs get through
        // to validation and the canonical writer.
        let value = |m: usize| {
            let options = MEMBERS[m].1;
            options[values[m].saturating_sub(5) % options.len()]
        };
        let mut picked: Vec<usize> = chosen;
        if required {
            for (m, (name, _)) in MEMBERS.iter().enumerate() {
                if ["organization_id", "event_type", "action", "actor_type"].contains(name) && !picked.contains(&m) {
                    picked.push(m);
                }
            }
        }
        picked.extend(repeated);
        let members: Vec<String> = picked.iter().map(|&m| format!("\"{}\" : {}", MEMBERS[m].0, value(m))).collect();
        let mut text = format!("{{ {} }}", members.join(" , ")).into_bytes();
        if let Some((at, how)) = damage {
            let i = at.index(text.len());
            match how {
                0 => { text.remove(i); }
                1 => text.insert(i, b','),
                2 => text.insert(i, b'"'),
                _ => text.push(b'x'),
            }
        }
        let one_pass = EventDraft::from_json(&text);
        let tree = crate::json::parse(&text, crate::json::NumberPolicy::Exact)
            .map_err(InputError::from)
            .and_then(|v| EventDraft::from_value(v).map_err(InputError::from));
        proptest::prop_assert_eq!(&one_pass, &tree, "{}", String::from_utf8_lossy(&text));
        if let (Ok(a), Ok(b)) = (one_pass, tree) {
            let (a, b) = (a.validate(&Limits::default()), b.validate(&Limits::default()));
            proptest::prop_assert_eq!(&a, &b);
            if let Ok(event) = a {
                let from_tree = crate::canonical::to_canonical(&Value::Object(event.to_object()));
                proptest::prop_assert_eq!(event.canonical_input(), &from_tree[..]);
                // Sealing personal members replaces them in place: the
                // result must be the canonical form of the sealed members.
                let sealer = crate::personal::Sealer::new(
                    &crate::personal::DataKey::from_bytes([7; 32]),
                    crate::personal::KeyId::from_bytes([1; 16]),
                );
                let protected = event.clone().sealed(&[], &sealer, || [3; 12]);
                let protected_tree = crate::canonical::to_canonical(&Value::Object(protected.to_object()));
                proptest::prop_assert_eq!(protected.canonical_input(), &protected_tree[..]);
                // Sealing writes the stored line from the draft too: it must
                // be the canonical form of the members and the service's.
                let s = crate::stored::Seal {
                    event_id: "01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b".into(),
                    sequence: 12_345,
                    timestamp: crate::Timestamp::from_micros(1_764_312_394_123_456),
                    previous_hash: crate::Hash::of(b"previous"),
                };
                // Of the plain event, and of the one whose personal members
                // were replaced (the service members' places moved).
                for event in [&event, &protected] {
                    let sealed = crate::stored::seal(event, &s);
                    let mut tree = event.to_object();
                    tree.insert("event_id", Value::String(s.event_id.clone()));
                    tree.insert("previous_hash", Value::String(s.previous_hash.to_hex()));
                    tree.insert("schema_version", Value::Number(1.0));
                    tree.insert("sequence", Value::Number(12_345.0));
                    tree.insert("timestamp", Value::String(s.timestamp.to_string()));
                    let unhashed = crate::canonical::to_canonical(&Value::Object(tree.clone()));
                    proptest::prop_assert_eq!(sealed.hash, crate::Hash::of(&unhashed));
                    tree.insert("hash", Value::String(sealed.hash.to_hex()));
                    proptest::prop_assert_eq!(sealed.line, crate::canonical::to_canonical(&Value::Object(tree)));
                }
            }
        }
    }
}
