//! `ingest` through the real binary, as the README documents it: standard
//! input (with and without `-`), files, repeated lines, repeated and
//! distinct inputs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use audit_core::json::{self, NumberPolicy, Value};

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

fn line(actor: &str, resource: &str) -> String {
    format!(
        r#"{{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"{actor}","resource_id":"{resource}"}}"#
    )
}

/// Runs `ingest` with `args` (after `--data-dir`), feeding `stdin`, with extra environment.
fn ingest(data: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("ingest")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn receipts(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| json::parse(l.as_bytes(), NumberPolicy::Exact).unwrap())
        .collect()
}

fn get<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Object(o) => o.get(name),
        _ => None,
    }
}

fn sequence(r: &Value) -> u64 {
    match get(r, "sequence") {
        Some(Value::Number(n)) => *n as u64,
        other => panic!("no sequence: {other:?}"),
    }
}

fn deduplicated(r: &Value) -> bool {
    get(r, "deduplicated") == Some(&Value::Bool(true))
}

/// Events stored in `org`'s log, by exporting it.
fn stored(data: &Path, org: &str) -> usize {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["export", "--org", org, "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn standard_input_is_stored_with_dash_without_file_and_a_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n\n{}\n", line("u1", "r1"), line("u2", "r2"));
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, &text).unwrap();
    for (name, args) in [
        ("dash", vec!["--org", "o", "-"]),
        ("no-file", vec!["--org", "o"]),
        ("file", vec!["--org", "o", file.to_str().unwrap()]),
    ] {
        let data = dir.path().join(name);
        let stdin = if name == "file" { "" } else { text.as_str() };
        let out = ingest(&data, &args, stdin, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        let r = receipts(&out);
        assert_eq!(r.len(), 2, "{name}: one receipt per line: {err}");
        assert_eq!(get(&r[1], "line"), Some(&Value::Number(3.0)), "{name}: line numbers count blank lines");
        assert_eq!(stored(&data, "o"), 2, "{name}: both events are in the log");
        assert!(err.contains("2 stored"), "{name}: {err}");
    }
}

#[test]
fn a_line_repeating_an_earlier_line_gets_the_original_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = format!("{}\n{}\n{}\n", line("u1", "r1"), line("u2", "r2"), line("u1", "r1"));
    let out = ingest(&data, &["--org", "o"], &text, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r = receipts(&out);
    assert_eq!(r.len(), 3);
    assert!(deduplicated(&r[2]), "line 3 repeats line 1: {:?}", r[2]);
    assert_eq!(get(&r[2], "event_id"), get(&r[0], "event_id"));
    assert_eq!(sequence(&r[2]), sequence(&r[0]));
    assert_eq!(stored(&data, "o"), 2);
}

#[test]
fn a_rerun_stores_nothing_twice_but_another_input_is_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let monday = format!("{}\n{}\n", line("u1", "r1"), line("u2", "r2"));
    // Tuesday's line 1 happens to equal Monday's line 1: a real, second event.
    let tuesday = format!("{}\n{}\n", line("u1", "r1"), line("u3", "r3"));
    let no_dedup = [("AUDIT_ENABLE_DEDUPLICATION", "false")];

    let first = ingest(&data, &["--org", "o"], &monday, &no_dedup);
    assert_eq!(first.status.code(), Some(0));
    let again = ingest(&data, &["--org", "o"], &monday, &no_dedup);
    assert_eq!(again.status.code(), Some(0), "{}", String::from_utf8_lossy(&again.stderr));
    let r = receipts(&again);
    assert!(r.iter().all(deduplicated), "the same input again is answered from the log: {r:?}");
    assert_eq!(stored(&data, "o"), 2);

    let out = ingest(&data, &["--org", "o"], &tuesday, &no_dedup);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r = receipts(&out);
    assert!(!deduplicated(&r[0]), "another input's line 1 is a new event: {:?}", r[0]);
    assert_eq!(sequence(&r[0]), 2);
    assert_eq!(stored(&data, "o"), 4);

    // --input-id names the input: the same bytes under a new id are new events,
    // under the same id again they are a re-run.
    let named = ingest(&data, &["--org", "o", "--input-id", "batch-7"], &monday, &no_dedup);
    assert!(receipts(&named).iter().all(|r| !deduplicated(r)));
    let named_again = ingest(&data, &["--org", "o", "--input-id", "batch-7", "-"], &monday, &no_dedup);
    assert!(receipts(&named_again).iter().all(deduplicated));
    assert_eq!(stored(&data, "o"), 6);

    let bad = ingest(&data, &["--org", "o", "--input-id", "no spaces"], &monday, &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--input-id"));
}

/// An input larger than what the first pass keeps: the lines past the kept
/// ones are read and validated again in the second pass, and the outcome
/// is the same as for an input kept whole — every line stored in order,
/// invalid lines skipped under `--skip-invalid`, the same derived keys (a
/// re-run with everything kept stores nothing twice).
#[test]
fn an_input_too_large_to_keep_is_read_again_with_the_same_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut text = String::new();
    for n in 0..40 {
        if n == 25 {
            text.push_str("{\"event_type\":\"Not A Type\"}\n");
        }
        text.push_str(&line(&format!("u{n}"), &format!("r{n}")));
        text.push('\n');
    }
    let no_dedup = [("AUDIT_ENABLE_DEDUPLICATION", "false"), ("AUDIT_INGEST_RETAINED_BYTES", "4000")];
    let out = ingest(&data, &["--org", "o", "--skip-invalid"], &text, &no_dedup);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the invalid line fails the run: {err}");
    assert!(err.contains("line 26: event_type"), "{err}");
    let r = receipts(&out);
    assert_eq!(r.len(), 40, "{err}");
    let lines: Vec<&Value> = r.iter().map(|r| get(r, "line").unwrap()).collect();
    assert_eq!(lines[24..27], [&Value::Number(25.0), &Value::Number(27.0), &Value::Number(28.0)]);
    assert!((0..40).all(|i| sequence(&r[i]) == i as u64), "stored in input order");
    assert_eq!(stored(&data, "o"), 40);

    let all_kept = [("AUDIT_ENABLE_DEDUPLICATION", "false")];
    let again = ingest(&data, &["--org", "o", "--skip-invalid"], &text, &all_kept);
    let r = receipts(&again);
    assert_eq!(r.len(), 40);
    assert!(r.iter().all(deduplicated), "the keys derived when re-reading are the ones derived when keeping");
    assert_eq!(stored(&data, "o"), 40);
}

/// A deployment's first start creates its keys (the master key, the
/// checkpoint signing key, the key file). Two commands started together
/// on a fresh data directory must agree on one of each: created in place
/// and then written, the second could read a key file still empty and fail.
#[test]
fn ingests_started_together_on_a_fresh_data_directory_all_succeed_and_verify() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let children: Vec<_> = (0..4)
            .map(|i| {
                let mut child = Command::new(BIN)
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["ingest", "--org", &format!("org-{i}"), "-"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(format!("{}\n", line("u", &format!("r{i}"))).as_bytes()).unwrap();
                child
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}, ingest {i}: {}", String::from_utf8_lossy(&out.stderr));
        }
        for i in 0..4 {
            let org = format!("org-{i}");
            assert_eq!(stored(&data, &org), 1, "round {round}: {org}");
            let out = Command::new(BIN).arg("--data-dir").arg(&data).args(["verify", "--org", &org]).output().unwrap();
            assert!(out.status.success(), "round {round}, verify {org}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
