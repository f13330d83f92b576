use super::*;
use crate::canonical::to_canonical;
use crate::json::parse;

fn canon(text: &str) -> String {
    String::from_utf8(canonicalize(text.as_bytes(), NumberPolicy::RoundToDouble).unwrap()).unwrap()
}

/// The RFC 8785 reference vectors the tree serialiser is tested on (see
/// `crate::canonical`), through the one-pass path.
#[test]
fn rfc8785_reference_vectors_canonicalise_in_one_pass() {
    for (input, output) in crate::canonical::tests::RFC8785_VECTORS {
        assert_eq!(canon(input), output);
    }
    assert_eq!(
        canon("[-0, 0, -12, 123456789012345, 1234567890123456, 1e0, 10.0]"),
        "[0,0,-12,123456789012345,1234567890123456,1,10]"
    );
}

#[test]
fn agrees_with_the_tree_on_errors_and_their_offsets() {
    for text in [
        "{\"a\":1,\"a\":2}",
        "{\"b\":1,\"a\":2,\"b\":3}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":1,}",
        "[1 2]",
        "01",
        "\"\\x\"",
        "tru",
        "{} x",
        "9007199254740993",
        "[\"\\ud800\"]",
        "\"a\nb\"",
    ] {
        let tree = parse(text.as_bytes(), NumberPolicy::Exact).map(|v| to_canonical(&v));
        assert_eq!(canonicalize(text.as_bytes(), NumberPolicy::Exact), tree, "{text}");
        assert_eq!(validate(text.as_bytes(), NumberPolicy::Exact), tree.map(drop), "{text}");
    }
    let deep = "[".repeat(10_000);
    assert_eq!(
        canonicalize(deep.as_bytes(), NumberPolicy::Exact).unwrap_err().kind,
        JsonErrorKind::TooDeep(MAX_PARSE_DEPTH)
    );
}

#[test]
fn duplicates_in_a_large_unordered_object_are_found_at_their_offset() {
    let mut members: Vec<String> = (0..5_000).map(|n| format!("\"k{n}\":{n}")).collect();
    members.reverse();
    let dup = format!("{{{},\"k17\":0}}", members.join(","));
    let err = canonicalize(dup.as_bytes(), NumberPolicy::Exact).unwrap_err();
    assert_eq!(err.kind, JsonErrorKind::DuplicateMember("k17".into()));
    assert_eq!(err.offset, dup.len() - r#""k17":0}"#.len());
}

#[test]
fn canonical_objects_know_their_depth_and_read_back() {
    let obj = match parse(br#"{"b":[1,{"c":[]}],"a":"x"}"#, NumberPolicy::Exact).unwrap() {
        Value::Object(o) => o,
        _ => unreachable!(),
    };
    let canonical = CanonicalObject::of_object(&obj).unwrap();
    assert_eq!(canonical.as_bytes(), br#"{"a":"x","b":[1,{"c":[]}]}"#);
    assert_eq!(canonical.depth(), 4);
    assert_eq!(CanonicalObject::from_checked(canonical.as_bytes()), canonical);
    assert_eq!(canonical.to_object().get("a"), Some(&Value::String("x".into())));
    let mut nan = Object::new();
    nan.insert("n", Value::Number(f64::NAN));
    assert_eq!(CanonicalObject::of_object(&nan), None);
    assert_eq!(nesting_of(br#"{"a":"[[[{{","b":[[]]}"#), 3);
}

#[test]
fn member_reader_reads_what_the_caller_asks_and_checks_the_rest() {
    let text = br#" {"s":"x\n","o":{"z":1,"a":[2]},"n":5,"skip":{"q":[1,2]}} "#;
    let TopLevel::Object(mut r) = MemberReader::open(text, NumberPolicy::Exact).unwrap() else { panic!("an object") };
    assert_eq!(r.next_name().unwrap().as_deref(), Some("s"));
    assert_eq!(r.string_or_value().unwrap(), Ok(Cow::Owned::<str>("x\n".into())));
    assert_eq!(r.next_name().unwrap().as_deref(), Some("o"));
    let o = r.object_or_value().unwrap().unwrap();
    assert_eq!((o.as_bytes(), o.depth()), (&br#"{"a":[2],"z":1}"#[..], 2));
    assert_eq!(r.next_name().unwrap().as_deref(), Some("n"));
    assert_eq!(r.object_or_value().unwrap(), Err(Value::Number(5.0)));
    assert_eq!(r.next_name().unwrap().as_deref(), Some("skip"));
    r.skip().unwrap();
    assert_eq!(r.next_name().unwrap(), None);

    for (bad, offset) in [(&br#"{"a":1,"a":2}"#[..], 7), (br#"{"a":1} x"#, 8), (br#"{"a":1,}"#, 7)] {
        let TopLevel::Object(mut r) = MemberReader::open(bad, NumberPolicy::Exact).unwrap() else { panic!() };
        let err = loop {
            match r.next_name() {
                Ok(Some(_)) => r.skip().unwrap(),
                Ok(None) => panic!("{bad:?} accepted"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.offset, offset, "{}", String::from_utf8_lossy(bad));
        assert_eq!(Err(err), parse(bad, NumberPolicy::Exact).map(drop));
    }
}

#[test]
fn array_items_are_located_after_the_whole_text_is_checked() {
    let text = br#" [ {"a":1} , 2,"x" ] "#;
    let items = array_items(text, NumberPolicy::Exact).unwrap().unwrap();
    let items: Vec<&[u8]> = items.into_iter().map(|r| &text[r]).collect();
    assert_eq!(items, [&br#"{"a":1}"#[..], b"2", br#""x""#]);
    assert_eq!(array_items(b"[]", NumberPolicy::Exact), Ok(Some(vec![])));
    assert_eq!(array_items(br#"{"a":1}"#, NumberPolicy::Exact), Ok(None));
    let late_error = br#"[{"a":1},{"b":1,"b":2}]"#;
    assert_eq!(
        array_items(late_error, NumberPolicy::Exact).unwrap_err(),
        parse(late_error, NumberPolicy::Exact).unwrap_err()
    );
}
