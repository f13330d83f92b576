//! Nothing acknowledged is lost, and the audit of the audit is whole —
//! through the real binary over loopback HTTP: a file-descriptor limit far
//! below the number of organizations, tenants' health, reads, exports and
//! key changes.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use audit_service::Verifier;
use audit_storage::local::LocalStore;
use audit_testkit::serve::{Served, free_port, http};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The stored lines of `org`'s log, read from its segment files.
fn log_lines(data: &Path, org: &str) -> Vec<String> {
    let dir = LocalStore::new(data).log_dir(org);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut segments: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn event(org: &str, n: usize) -> String {
    format!(
        r#"{{"organization_id":"{org}","event_type":"trace.viewed","action":"read","actor_type":"user","actor_id":"u-{n}","resource_id":"r-{n}"}}"#
    )
}

/// `serve` under `ulimit -n 256`, 2,000 organizations written through the
/// API: every 201 receipt is stored and verifies, every 202 event is stored
/// or recorded as dropped, and `/health` answers throughout.
#[test]
fn two_thousand_organizations_under_256_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut command = Command::new("bash");
    command
        .args(["-c", r#"ulimit -n 256 && exec "$0" "$@""#, BIN, "--data-dir"])
        .arg(&data)
        .args(["serve", "--no-auth", "--listen", &format!("127.0.0.1:{port}")])
        .env("AUDIT_CHECKPOINT_INTERVAL", "1");
    let server = Served::start(command, port);

    let stop_health = Arc::new(AtomicBool::new(false));
    let (health_ok, health_failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let health = {
        let (stop, ok, failed) = (stop_health.clone(), health_ok.clone(), health_failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match http(port, "GET", "/health", None, "") {
                    Some((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let clients: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for i in 0..1000 {
                    let org = format!("o-{t}-{i}");
                    let durable = i % 2 == 1;
                    let path = if durable { "/v1/events" } else { "/v1/events?wait=none" };
                    let answer = http(port, "POST", path, None, &event(&org, i));
                    out.push((org, durable, answer));
                }
                out
            })
        })
        .collect();
    let results: Vec<_> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    stop_health.store(true, Ordering::Relaxed);
    health.join().unwrap();
    assert!(server.stop().success(), "a graceful stop exits 0");

    assert_eq!(health_failed.load(Ordering::Relaxed), 0, "/health answered throughout");
    assert!(health_ok.load(Ordering::Relaxed) > 0);
    let system = log_lines(&data, "agenttrace-system").join("\n");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = LocalStore::new(&data);
    for (org, durable, answer) in &results {
        let (status, body) = answer.as_ref().unwrap_or_else(|| panic!("{org}: no answer"));
        let lines = log_lines(&data, org);
        if *durable {
            assert_eq!(*status, 201, "{org}: {body}");
            let receipt = &json(body)["receipts"][0];
            let hash = receipt["hash"].as_str().unwrap();
            assert!(lines.iter().any(|l| l.contains(hash)), "{org}: the 201 receipt's event is stored");
        } else {
            assert_eq!(*status, 202, "{org}: {body}");
            let id = json(body)["accepted"][0]["event_id"].as_str().unwrap().to_owned();
            let stored = lines.iter().any(|l| l.contains(&id));
            let dropped = system.contains(&format!(r#""organization_id":"{org}""#))
                && system.contains("audit_log.events_dropped");
            assert!(stored || dropped, "{org}: a 202 event is stored or recorded as dropped");
        }
        let report = rt.block_on(Verifier::new(&store).danger_unsigned_checkpoints().verify(org)).unwrap();
        assert!(report.valid && report.total_events == 1, "{org}: {report:?}");
    }
}

/// Tenants see their own figures only; every read is one event with the
/// right figures; key changes are audited; refusals are counted; a read of
/// an organization without a log creates nothing.
#[test]
fn the_audit_of_the_audit_is_whole_and_tenants_see_only_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = |args: &[&str]| {
        let out = Command::new(BIN).arg("--data-dir").arg(&data).arg("keys").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // Created with no server running: the CLI records it itself.
    let a = keys(&["create", "--org", "a", "--scopes", "ingest,read,export,verify"]);
    let server = Served::binary(BIN, &data, &[], &[]);
    // Created while the server runs: the server records it.
    let ab = keys(&["create", "--org", "a:b", "--scopes", "ingest,read,export,verify"]);
    let admin = keys(&["create", "--org", "a:b", "--scopes", "admin"]);

    let post = |token: &str, body: &str| server.request("POST", "/v1/events", Some(token), body).unwrap();
    for n in 0..7 {
        assert_eq!(post(&ab, &event("a:b", n)).0, 201);
    }
    // Refusals are counted.
    assert_eq!(post(&ab, "{not json").0, 400);
    assert_eq!(post(&ab, r#"[{"event_type":"trace.viewed"},{"action":"read"}]"#).0, 400);

    // Three identical queries are three reads.
    for _ in 0..3 {
        let (s, body) = server.request("GET", "/v1/events?limit=5", Some(&ab), "").unwrap();
        assert_eq!(s, 200, "{body}");
    }
    let (s, body) = server.request("GET", "/v1/export?format=jsonl&actor_type=user", Some(&ab), "").unwrap();
    assert_eq!(s, 200);
    assert_eq!(body.lines().filter(|l| l.contains(r#""hash":"#)).count(), 7, "{body}");

    // Health: `a` sees nothing of `a:b` (whose id it is a prefix of).
    let (s, body) = server.request("GET", "/v1/audit/health", Some(&a), "").unwrap();
    assert_eq!(s, 200, "{body}");
    let h = json(&body);
    assert_eq!((h["last_flush"].clone(), h["committed_through"].clone()), (Value::Null, Value::Null), "{h}");
    assert_eq!(h["queue_size"], 0);
    assert_eq!(h["storage"], "ok");
    assert!(h.get("counters").is_none() && h.get("service").is_none(), "{h}");
    let mine = json(&server.request("GET", "/v1/audit/health", Some(&ab), "").unwrap().1);
    assert!(mine["last_flush"].is_string(), "{mine}");
    let operator = json(&server.request("GET", "/v1/audit/health", Some(&admin), "").unwrap().1);
    assert_eq!(operator["counters"]["rejected_invalid"], 3, "{operator}");

    let revoked_id = keys(&["list", "--org", "a"]);
    let revoked_id = json(revoked_id.lines().next().unwrap())["id"].as_str().unwrap().to_owned();
    keys(&["revoke", &revoked_id]);
    std::thread::sleep(Duration::from_millis(1500)); // the server's key watch and the read recorder
    assert!(server.stop().success());

    let own = log_lines(&data, "a:b");
    let count = |t: &str| own.iter().filter(|l| l.contains(&format!(r#""event_type":"{t}""#))).count();
    assert_eq!(count("audit_log.queried"), 3, "three reads, three events");
    let exported: Vec<&String> = own.iter().filter(|l| l.contains("audit_log.exported")).collect();
    assert_eq!(exported.len(), 1);
    assert!(
        exported[0].contains(r#""result_count":7"#) && exported[0].contains(r#""format":"jsonl""#),
        "{}",
        exported[0]
    );
    assert_eq!(count("api_key.created"), 2, "both keys of a:b are on its own record");

    let system = log_lines(&data, "agenttrace-system");
    let in_system = |t: &str| system.iter().filter(|l| l.contains(&format!(r#""event_type":"{t}""#))).count();
    assert_eq!(in_system("api_key.created"), 3, "every key, once, whoever recorded it");
    assert_eq!(in_system("api_key.revoked"), 1);
    let own_a = log_lines(&data, "a");
    assert_eq!(own_a.iter().filter(|l| l.contains("api_key.created")).count(), 1);
    assert_eq!(own_a.iter().filter(|l| l.contains("api_key.revoked")).count(), 1);
}

#[test]
fn reads_of_an_organization_without_a_log_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::binary(BIN, &data, &["--no-auth"], &[]);
    for path in ["/v1/events?organization_id=ghost", "/v1/export?format=csv&organization_id=ghost"] {
        let (s, body) = server.request("GET", path, None, "").unwrap();
        assert_eq!(s, 200, "{path}: {body}");
    }
    // Verifying what does not exist is not "valid".
    let (s, body) = server.request("GET", "/v1/integrity?organization_id=ghost", None, "").unwrap();
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("no log for organization ghost"), "{body}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.stop().success());
    assert!(!data.join("logs").join("ghost").try_exists().unwrap(), "no directory for a log-less organization");
    let system = log_lines(&data, "agenttrace-system");
    for t in ["audit_log.queried", "audit_log.exported"] {
        assert!(
            system.iter().any(|l| l.contains(t) && l.contains(r#""organization_id":"ghost""#)),
            "{t} of ghost is recorded in the system log"
        );
    }
}
