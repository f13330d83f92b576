//! Scheduled verification through the real binary: after a first full run,
//! `AUDIT_VERIFY_SCHEDULE` runs read only the events appended since the
//! last valid run (shown by `GET /v1/integrity/status` and recorded in the
//! system log), and `AUDIT_VERIFY_FULL_SCHEDULE` runs read every log whole,
//! so a rewrite of events verified long ago is still found.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use audit_testkit::serve::Served;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).arg("--data-dir").arg(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn post(server: &Served, token: &str, from: u32, to: u32) {
    for n in from..to {
        let body = format!(
            r#"{{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u{n}","resource_id":"trace-{n}"}}"#
        );
        let (status, answer) = server.request("POST", "/v1/events", Some(token), &body).unwrap();
        assert_eq!(status, 201, "{answer}");
    }
}

/// Polls the status route until `done` accepts its last run.
fn wait_for_run(
    server: &Served,
    token: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (status, body) = server.request("GET", "/v1/integrity/status", Some(token), "").unwrap();
        assert_eq!(status, 200, "{body}");
        let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
        if done(&shown["last_run"]) {
            return shown;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no run {what} within 30 s; last: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn scheduled_runs_read_only_new_events_and_full_runs_still_find_old_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = cli(&data, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read,verify"]).trim().to_owned();
    // Incremental runs every second (six fields: seconds first), no full ones yet.
    let incremental = [("AUDIT_VERIFY_SCHEDULE", "* * * * * *"), ("AUDIT_VERIFY_FULL_SCHEDULE", "off")];
    let server = Served::binary(BIN, &data, &[], &incremental);
    post(&server, &token, 0, 20);
    // The first run since the start reads the whole log (nothing to resume
    // from); once a checkpoint covers all 21 events (the token's creation
    // and 20 posts), the runs after it are incremental.
    let shown = wait_for_run(&server, &token, "covering 21 events", |run| run["checkpoint_size"] == 21);
    assert_eq!((shown["schedule"].as_str(), shown["full_schedule"].as_str()), (Some("* * * * * *"), None));
    post(&server, &token, 20, 27);
    let run = wait_for_run(&server, &token, "covering the 7 new events", |run| run["checkpoint_size"] == 28);
    assert_eq!(run["last_run"]["mode"], "incremental", "{run}");
    server.stop();
    // The run that reached the checkpoint of 28 resumed after an earlier one
    // and read only what came after it (runs come every second: the status
    // shows the last, the records show each).
    let records = verified_records(&data);
    let reached = records
        .iter()
        .map(|e| &e["metadata"])
        .find(|m| m["checkpoint_size"] == 28)
        .unwrap_or_else(|| panic!("no run reached the checkpoint of 28: {records:?}"));
    let verified_from = reached["verified_from"].as_u64().unwrap();
    assert_eq!(reached["mode"], "incremental", "{reached}");
    assert!((1..28).contains(&verified_from), "resumed after an earlier checkpoint: {reached}");
    assert_eq!(reached["total_events"].as_u64(), Some(28 - verified_from), "only the new events were read: {reached}");

    // Rewrite an event verified long ago (same length). Incremental runs
    // (resumed after the restart from the kept place) do not reread it...
    let segment = data.join("logs/org-1/00000000000000000000.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap().replacen("trace-2\"", "trace-8\"", 1);
    std::fs::write(&segment, text).unwrap();
    let before = verified_records(&data).len();
    let server = Served::binary(BIN, &data, &[], &incremental);
    wait_for_run(&server, &token, "after the restart", |run| run["checkpoint_size"].is_u64());
    server.stop();
    let after_restart = &verified_records(&data)[before]["metadata"];
    assert_eq!((after_restart["mode"].as_str(), after_restart["valid"].as_bool()), (Some("incremental"), Some(true)));

    // ... the full runs of AUDIT_VERIFY_FULL_SCHEDULE do, and say where.
    let full = [("AUDIT_VERIFY_SCHEDULE", "off"), ("AUDIT_VERIFY_FULL_SCHEDULE", "* * * * * *")];
    let server = Served::binary(BIN, &data, &[], &full);
    let run = wait_for_run(&server, &token, "finding the rewrite", |run| run["valid"] == false)["last_run"].clone();
    assert_eq!(run["mode"], "full", "{run}");
    assert_eq!(run["checkpoint_size"], serde_json::Value::Null, "{run}");
    server.stop();
    let last = verified_records(&data).pop().unwrap();
    assert_eq!((last["metadata"]["mode"].as_str(), last["metadata"]["valid"].as_bool()), (Some("full"), Some(false)));
}

#[test]
fn a_restarted_serve_resumes_incremental_runs_from_its_signed_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = cli(&data, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read,verify"]).trim().to_owned();
    let env = [("AUDIT_VERIFY_SCHEDULE", "* * * * * *"), ("AUDIT_VERIFY_FULL_SCHEDULE", "off")];
    let server = Served::binary(BIN, &data, &[], &env);
    post(&server, &token, 0, 10);
    wait_for_run(&server, &token, "covering 11 events", |run| run["checkpoint_size"] == 11);
    server.stop();
    let kept = data.join("verified/org-1.note");
    assert!(std::fs::read_to_string(&kept).unwrap().contains("\n\n\u{2014} "), "kept as a signed note");

    // Restarted: the first run already starts where the last one stopped.
    let server = Served::binary(BIN, &data, &[], &env);
    post(&server, &token, 10, 15);
    let run =
        wait_for_run(&server, &token, "covering 16 events", |run| run["checkpoint_size"] == 16)["last_run"].clone();
    assert_eq!(run["mode"], "incremental", "{run}");
    assert!(run["verified_from"].as_u64().unwrap() >= 11, "{run}");
    server.stop();

    // A kept place that does not open with the key is ignored: the first
    // run after the next start is full.
    let before = verified_records(&data).len();
    let forged = std::fs::read_to_string(&kept).unwrap().replace("\"offset\":", "\"offset\":1");
    std::fs::write(&kept, forged).unwrap();
    let server = Served::binary(BIN, &data, &[], &env);
    wait_for_run(&server, &token, "after the restart", |run| run["checkpoint_size"].is_u64());
    server.stop();
    let first = &verified_records(&data)[before]["metadata"];
    assert_eq!((first["mode"].as_str(), first["valid"].as_bool()), (Some("full"), Some(true)), "{first}");
}

/// The `audit_log.verified` records of org-1's scheduled runs, oldest first.
fn verified_records(data: &Path) -> Vec<serde_json::Value> {
    cli(data, &["export", "--org", "agenttrace-system", "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == "audit_log.verified" && e["metadata"]["organization_id"] == "org-1")
        .collect()
}

/// Full runs compare the stored tiles with the events: a tile altered in
/// storage fails the run (and raises the alert), naming the tile.
#[test]
fn full_runs_find_an_altered_tile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = cli(&data, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read,verify"]).trim().to_owned();
    let quiet = [("AUDIT_VERIFY_SCHEDULE", "off"), ("AUDIT_VERIFY_FULL_SCHEDULE", "off")];
    let server = Served::binary(BIN, &data, &[], &quiet);
    post(&server, &token, 0, 300); // more than one full tile of 256 leaves
    server.stop();
    let tile = data.join("logs/org-1/tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[100] ^= 1;
    std::fs::remove_file(&tile).unwrap();
    std::fs::write(&tile, &bytes).unwrap();
    let full = [("AUDIT_VERIFY_SCHEDULE", "off"), ("AUDIT_VERIFY_FULL_SCHEDULE", "* * * * * *")];
    let server = Served::binary(BIN, &data, &[], &full);
    let run = wait_for_run(&server, &token, "finding the tile", |run| run["valid"] == false)["last_run"].clone();
    assert_eq!(run["mode"], "full", "{run}");
    server.stop();
    let record = verified_records(&data).into_iter().rev().find(|r| r["metadata"]["valid"] == false).unwrap();
    assert_eq!(record["metadata"]["mode"], "full", "{record}");
    // The events themselves are intact: the failure is the tile's.
    let events_only = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["verify", "--org", "org-1", "--skip-tiles"])
        .output()
        .unwrap();
    assert_eq!(events_only.status.code(), Some(0), "{}", String::from_utf8_lossy(&events_only.stderr));
    let with_tiles =
        Command::new(BIN).arg("--data-dir").arg(&data).args(["verify", "--org", "org-1", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&with_tiles.stdout).contains("tile/0/000"));
}
