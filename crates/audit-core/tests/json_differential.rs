//! Differential tests of the I-JSON parser against `serde_json`, a widely
//! used parser: on every text `serde_json` writes (valid JSON within
//! I-JSON's limits) ours must agree on the value; on arbitrary text, ours
//! may refuse more (duplicates, inexact numbers) but never accept a text
//! `serde_json` refuses, nor read it differently.
//!
//! (`serde_json` is built with `float_roundtrip` here: its default number
//! reader is not correctly rounded — it read `20501287805319942e+208` one
//! double off, which this test found; Python's `float` agrees with ours.)

use audit_core::canonical::to_canonical;
use audit_core::json::{NumberPolicy, Value, canonicalize, parse, validate};
use proptest::prelude::*;

/// Whether our value and `serde_json`'s are the same JSON value.
fn same(ours: &Value, theirs: &serde_json::Value) -> bool {
    match (ours, theirs) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::Number(a), serde_json::Value::Number(b)) => b.as_f64() == Some(*a),
        (Value::String(a), serde_json::Value::String(b)) => a == b,
        (Value::Array(a), serde_json::Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), serde_json::Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

/// Any JSON value whose numbers a double holds exactly (I-JSON), nested a
/// few levels, with member names and strings over all of Unicode
/// (control characters included: `serde_json` escapes them).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let exact_integer = (-(1i64 << 53)..=(1i64 << 53)).prop_map(serde_json::Value::from);
    let finite = any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        exact_integer,
        finite,
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_text_serde_json_writes_parses_to_the_same_value(value in json_value(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap();
        let ours = parse(&text, NumberPolicy::Exact)
            .unwrap_or_else(|e| panic!("refused {}: {e}", String::from_utf8_lossy(&text)));
        prop_assert!(same(&ours, &value), "{} read as {ours:?}", String::from_utf8_lossy(&text));
    }

    #[test]
    fn what_we_accept_serde_json_accepts_and_reads_alike(
        text in r#"[ \t\r\n\[\]{}",:0-9eE+.\-a-z\\/\u{0}-\u{1f}\u{e9}\u{1F600}]{0,48}"#
    ) {
        if let Ok(ours) = parse(text.as_bytes(), NumberPolicy::RoundToDouble) {
            let theirs: serde_json::Value = serde_json::from_slice(text.as_bytes())
                .unwrap_or_else(|e| panic!("we accepted {text:?}, serde_json refused it: {e}"));
            prop_assert!(same(&ours, &theirs), "{text:?}: ours {ours:?}, serde_json {theirs:?}");
        }
    }

    #[test]
    fn a_text_one_edit_from_valid_is_read_alike_or_refused(
        value in json_value(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(b"{}[]\",:0123456789.eE+-\\ u\x00\x1fn".to_vec()),
        edit in 0..3u8,
    ) {
        let mut text = serde_json::to_vec(&value).unwrap();
        let i = at.index(text.len() + 1);
        match edit {
            0 => text.insert(i, byte),
            1 if i < text.len() => { text.remove(i); }
            _ if i < text.len() => text[i] = byte,
            _ => text.push(byte),
        }
        if let Ok(ours) = parse(&text, NumberPolicy::RoundToDouble) {
            let theirs: serde_json::Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
                panic!("we accepted {}, serde_json refused it: {e}", String::from_utf8_lossy(&text))
            });
            prop_assert!(same(&ours, &theirs), "{}: ours {ours:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes, NumberPolicy::Exact);
        let _ = parse(&bytes, NumberPolicy::RoundToDouble);
    }
}

/// The one-pass canonicaliser must say exactly what the tree path says:
/// the same canonical bytes, or the same error at the same offset.
fn one_pass_agrees_with_the_tree(text: &[u8]) -> Result<(), TestCaseError> {
    for numbers in [NumberPolicy::Exact, NumberPolicy::RoundToDouble] {
        let tree = parse(text, numbers).map(|v| to_canonical(&v));
        prop_assert_eq!(&canonicalize(text, numbers), &tree, "{}", String::from_utf8_lossy(text));
        prop_assert_eq!(validate(text, numbers), tree.map(drop));
    }
    Ok(())
}

/// `value` written with its members in reverse order and every string
/// character escaped as `\uXXXX` when `escape` says so: input that is far
/// from canonical, for the re-ordering and decoding paths.
fn write_scrambled(value: &serde_json::Value, escape: bool, out: &mut String) {
    match value {
        serde_json::Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,");
                }
                write_scrambled(&serde_json::Value::String(k.clone()), escape, out);
                out.push_str(" : ");
                write_scrambled(v, escape, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_scrambled(v, escape, out);
            }
            out.push(']');
        }
        serde_json::Value::String(s) if escape => {
            out.push('"');
            for unit in s.encode_utf16() {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            out.push('"');
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn one_pass_canonical_form_equals_the_trees_on_valid_texts(value in json_value(), escape in any::<bool>()) {
        one_pass_agrees_with_the_tree(&serde_json::to_vec_pretty(&value).unwrap())?;
        let mut scrambled = String::new();
        write_scrambled(&value, escape, &mut scrambled);
        one_pass_agrees_with_the_tree(scrambled.as_bytes())?;
    }

    #[test]
    fn one_pass_errors_equal_the_trees_one_edit_from_valid(
        value in json_value(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(b"{}[]\",:0123456789.eE+-\\ u\x00\x1fn".to_vec()),
        edit in 0..3u8,
    ) {
        let mut text = String::new();
        write_scrambled(&value, false, &mut text);
        let mut text = text.into_bytes();
        let i = at.index(text.len() + 1);
        match edit {
            0 => text.insert(i, byte),
            1 if i < text.len() => { text.remove(i); }
            _ if i < text.len() => text[i] = byte,
            _ => text.push(byte),
        }
        one_pass_agrees_with_the_tree(&text)?;
    }

    #[test]
    fn one_pass_errors_equal_the_trees_on_arbitrary_text(
        text in r#"[ \t\r\n\[\]{}",:0-9eE+.\-a-z\\/\u{0}-\u{1f}\u{e9}\u{1F600}]{0,48}"#,
        bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        one_pass_agrees_with_the_tree(text.as_bytes())?;
        one_pass_agrees_with_the_tree(&bytes)?;
    }
}
