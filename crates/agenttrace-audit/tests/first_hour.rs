//! The first hour of a new user, run exactly as they would: the README's
//! first session, a second `serve` on a directory in use, exports that
//! would overwrite files, one-line errors, configuration typos, reads that
//! must create nothing, unknown routes.

use std::process::{Command, Output, Stdio};

use audit_testkit::serve::{Served, free_port, http};

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

fn run(data: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(data).args(args).envs(env.iter().copied()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The README's "first session" block, run by bash as written, with the
/// binary in place of `cargo run -q --release -p agenttrace-audit --` and
/// the server's port in place of 8080.
#[test]
fn the_readme_first_session_runs_verbatim() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("A first session against the running service:").expect("the README has its first session");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    assert!(block.contains("keys create") && block.contains("/v1/integrity"), "{block}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("audit_logs");
    // The README's server runs in ./audit_logs of the current directory.
    let port = free_port();
    let mut serve = Command::new(BIN);
    serve.current_dir(dir.path()).args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    let server = Served::start(serve, port);
    let script = block
        .replace("cargo run -q --release -p agenttrace-audit --", BIN)
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let script = format!("set -e\n{}", script.replace("\\\n", " "));
    // Each curl's output, one per line, to check what the user would see.
    let script = script.replace("curl -s ", "curl -s -w '\\n%{http_code}\\n' ");
    for attempt in 0..3 {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "attempt {attempt}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        let codes: Vec<&str> = text.lines().filter(|l| l.len() == 3 && l.chars().all(|c| c.is_ascii_digit())).collect();
        assert_eq!(codes, ["201", "200", "200"], "attempt {attempt}: a new key works at once, every time:\n{text}");
        assert!(text.contains(r#""valid":true"#), "{text}");
    }
    assert!(data.join("keys.json").try_exists().unwrap());
    assert!(server.stop().success());
}

#[test]
fn a_second_serve_on_a_directory_in_use_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Served::binary(BIN, dir.path(), &["--no-auth"], &[]);
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--no-auth", "--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("is in use by process"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // The first one is ready, and unknown routes answer JSON.
    assert_eq!(first.request("GET", "/health/ready", None, "").unwrap().0, 200);
    let (s, body) = first.request("GET", "/v1/nothing-here", None, "").unwrap();
    assert_eq!(s, 404);
    assert!(body.contains(r#""code":"not_found""#), "{body}");
    let (s, body) = first.request("DELETE", "/v1/events", None, "").unwrap();
    assert_eq!(s, 405);
    assert!(body.contains(r#""code":"method_not_allowed""#), "{body}");
    // The API takes the CLI's time forms; an unencoded '+' gets a hint.
    let (s, body) = first.request("GET", "/v1/events?organization_id=o&start_time=7d", None, "").unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, body) =
        first.request("GET", "/v1/events?organization_id=o&start_time=2026-11-01T00:00:00+01:00", None, "").unwrap();
    assert_eq!(s, 400);
    assert!(body.contains("%2B"), "{body}");
    assert!(first.stop().success());
}

#[test]
fn export_never_overwrites_a_file_unless_told_and_never_leaves_half_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ingest = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--org", "o"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    ingest
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"event_type\":\"trace.deleted\",\"action\":\"delete\",\"actor_type\":\"user\",\"actor_id\":\"u\"}\n",
        )
        .unwrap();
    assert!(ingest.wait().unwrap().success());
    let precious = dir.path().join("input.jsonl");
    std::fs::write(&precious, "the user's own file\n").unwrap();
    let target = precious.to_str().unwrap();

    let out = run(&data, &["export", "--org", "o", "--format", "CSV", "-o", target], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("exists; pass --force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "the user's own file\n", "untouched");

    let out = run(&data, &["export", "--org", "o", "--format", "CSV", "-o", target, "--force"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&precious).unwrap().starts_with("sequence,event_id"));

    // A failed export (no such log) leaves no file behind, half or whole.
    let fresh = dir.path().join("fresh.csv");
    let out = run(&data, &["export", "--org", "nobody", "--format", "csv", "-o", fresh.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.try_exists().unwrap());
    // (data-keys: the key store of personal data, beside the data directory.)
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name != "data-keys")
        .collect();
    assert_eq!(leftovers.len(), 2, "input.jsonl and data only, no temporary files: {leftovers:?}");
}

#[test]
fn errors_are_one_line_without_colour_and_typos_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A log locked by a running server: one line, no tracing, no ANSI codes.
    let server = Served::binary(BIN, &data, &["--no-auth"], &[]);
    let (s, _) = http(
        server.port,
        "POST",
        "/v1/events",
        None,
        r#"{"organization_id":"o","event_type":"trace.deleted","action":"delete","actor_type":"user"}"#,
    )
    .unwrap();
    assert_eq!(s, 201);
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--org", "o"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"event_type\":\"trace.deleted\",\"action\":\"delete\",\"actor_type\":\"user\",\"actor_id\":\"x\"}\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("locked by process"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {err:?}");
    assert!(!err.contains("ERROR"), "no tracing lines without -v: {err}");
    assert!(err.lines().count() <= 3, "a line per problem, not a log: {err}");
    assert!(server.stop().success());

    // A typo in a variable is named, with the closest real one.
    let out = run(&data, &["verify", "--org", "o"], &[("AUDIT_BATCH_SIZ", "10")]);
    assert!(
        stderr(&out).contains("AUDIT_BATCH_SIZ is not a setting and is ignored (did you mean AUDIT_BATCH_SIZE?)"),
        "{}",
        stderr(&out)
    );
    // The README's variables work in the TOML file too.
    let config = dir.path().join("audit.toml");
    std::fs::write(
        &config,
        "checkpoint_interval = 2\nlog_origin = \"audit.example.com\"\nsigning_key_file = \"/nonexistent/k\"\ncheckpoint_mirror = \"/tmp/m\"\n",
    )
    .unwrap();
    let out = run(&data, &["--config", config.to_str().unwrap(), "verify", "--org", "o"], &[]);
    assert!(!stderr(&out).contains("unknown field"), "{}", stderr(&out));
}

#[test]
fn read_only_commands_on_a_missing_data_directory_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [
        vec!["query", "--org", "o"],
        vec!["export", "--org", "o", "--format", "jsonl"],
        vec!["verify", "--org", "o"],
        vec!["prove", "--org", "o", "--from", "0", "--to", "1"],
    ] {
        let out = run(&missing, &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{args:?}: {}", stderr(&out));
        assert!(!missing.try_exists().unwrap(), "{args:?} created the data directory");
    }
}

#[test]
fn messages_say_what_they_mean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines: String = (0..84)
        .map(|n| format!("{{\"event_type\":\"trace.viewed\",\"action\":\"read\",\"actor_type\":\"user\",\"resource_id\":\"r{n}\"}}\n"))
        .collect();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines).unwrap();
    assert!(run(&data, &["ingest", "--org", "o", input.to_str().unwrap()], &[]).status.success());
    // Sequence 9 is not in a tree of 5 events: said as a sequence.
    let out = run(&data, &["prove", "--org", "o", "--sequence", "9", "--tree-size", "5"], &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("sequence 9 is not in a tree of 5 events"), "{}", stderr(&out));
    // One line of 84 deleted: the report says how many remain and where they stop following each other.
    let segment = audit_storage::local::LocalStore::new(&data).log_dir("o").join("00000000000000000000.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap();
    let kept: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != 20).map(|(_, l)| l).collect();
    std::fs::write(&segment, kept.join("\n") + "\n").unwrap();
    let out = run(&data, &["verify", "--org", "o"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the log holds 83 lines but they follow each other only through sequence 19"), "{err}");
}

/// Long work shows progress on a terminal (run under `script`, which gives
/// the command a pseudo-terminal), and nothing of it when stderr is a file.
#[test]
fn long_work_shows_progress_on_a_terminal_only() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED long_work_shows_progress_on_a_terminal_only: no `script` (util-linux) for a pseudo-terminal"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines: String = (0..50_000)
        .map(|n| format!("{{\"event_type\":\"trace.viewed\",\"action\":\"read\",\"actor_type\":\"user\",\"resource_id\":\"r{n}\"}}\n"))
        .collect();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines).unwrap();
    let command = format!("{BIN} --data-dir {} ingest --org o {} > /dev/null", data.display(), input.display());
    let out = Command::new("script").args(["-qec", &command, "/dev/null"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("lines stored"), "a progress bar on the terminal: {shown:?}");
    // The same work with stderr to a file: the summary line, no bar.
    let quiet = run(&data, &["verify", "--org", "o"], &[]);
    assert!(!stderr(&quiet).contains("verified ") || stderr(&quiet).lines().count() == 1, "{}", stderr(&quiet));
    assert!(!stderr(&quiet).contains('\r'), "no bar drawn into a file: {:?}", stderr(&quiet));
}
