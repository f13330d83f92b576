//! Alerts through the real binary: a tampered log found by a verification
//! is posted to a webhook receiver on loopback, signed, retried until the
//! receiver accepts it; a receiver that never answers is given up on; both
//! outcomes are recorded in the system organization's log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_testkit::serve::Served;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");
const SECRET: &str = "webhook-test-secret";

/// What a receiver got: (the signature header, the body).
type Received = Arc<Mutex<Vec<(Option<String>, String)>>>;

/// A webhook receiver on loopback answering the n-th request with
/// `statuses[n]` (the last one repeated), or never answering when `None`.
fn receiver(statuses: Vec<Option<u16>>) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let log = Arc::clone(&got);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let (mut length, mut signature) = (0, None);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-agenttrace-signature:") {
                    signature = Some(line.split_once(':').unwrap().1.trim().to_owned());
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push((signature, String::from_utf8_lossy(&body).into_owned()));
            match statuses.get(n).or(statuses.last()).copied().flatten() {
                Some(status) => {
                    let mut stream = reader.into_inner();
                    let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
                None => held.push(reader), // never answered
            }
        }
    });
    (port, got)
}

fn wait_for(got: &Received, count: usize, within: Duration) -> Vec<(Option<String>, String)> {
    let start = Instant::now();
    while got.lock().unwrap().len() < count && start.elapsed() < within {
        std::thread::sleep(Duration::from_millis(50));
    }
    got.lock().unwrap().clone()
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).arg("--data-dir").arg(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A log of five events, then one byte of the third changed on disk.
fn tampered_log(data: &Path) -> String {
    let token = cli(data, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read,verify"]).trim().to_owned();
    let input = data.with_file_name("in.jsonl");
    let lines: String = (0..5)
        .map(|n| format!("{{\"event_type\":\"trace.deleted\",\"action\":\"delete\",\"actor_type\":\"user\",\"actor_id\":\"u{n}\",\"resource_id\":\"trace-{n}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    cli(data, &["ingest", "--org", "org-1", input.to_str().unwrap()]);
    let segment = data.join("logs/org-1/00000000000000000000.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap().replacen("trace-2", "trace-9", 1);
    std::fs::write(&segment, text).unwrap();
    token
}

fn system_log(data: &Path) -> String {
    cli(data, &["export", "--org", "agenttrace-system", "--format", "jsonl"])
}

#[test]
fn a_failed_verification_is_posted_signed_and_retried_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = tampered_log(&data);
    let (port, got) = receiver(vec![Some(500), Some(503), Some(204)]);
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = [
        ("AUDIT_ALERT_WEBHOOK_URL", url.as_str()),
        ("AUDIT_ALERT_WEBHOOK_SECRET", SECRET),
        ("AUDIT_ALERT_WEBHOOK_TIMEOUT", "1"),
    ];
    let server = Served::binary(BIN, &data, &[], &env);
    let (status, report) = server.request("GET", "/v1/integrity", Some(&token), "").unwrap();
    assert_eq!(status, 200);
    assert!(report.contains("\"valid\":false"), "{report}");

    let posts = wait_for(&got, 3, Duration::from_secs(20));
    assert_eq!(posts.len(), 3, "two refusals, then accepted: {posts:?}");
    let (signature, body) = &posts[2];
    assert!(
        body.contains("\"kind\":\"verification_failed\"") && body.contains("\"organization_id\":\"org-1\""),
        "{body}"
    );
    assert_eq!(signature.as_deref(), Some(audit_service::signature(SECRET, body.as_bytes()).as_str()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(got.lock().unwrap().len(), 3, "nothing more once accepted");
    server.stop();
    let system = system_log(&data);
    let delivered: Vec<&str> = system.lines().filter(|l| l.contains("audit_log.alert_delivered")).collect();
    assert_eq!(delivered.len(), 1, "{system}");
    assert!(
        delivered[0].contains("\"attempts\":3") && delivered[0].contains("verification_failed"),
        "{}",
        delivered[0]
    );
}

#[test]
fn a_receiver_that_never_answers_is_given_up_on_and_that_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = tampered_log(&data);
    let (port, got) = receiver(vec![None]);
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = [
        ("AUDIT_ALERT_WEBHOOK_URL", url.as_str()),
        ("AUDIT_ALERT_WEBHOOK_SECRET", SECRET),
        ("AUDIT_ALERT_WEBHOOK_ATTEMPTS", "2"),
        ("AUDIT_ALERT_WEBHOOK_TIMEOUT", "1"),
    ];
    let server = Served::binary(BIN, &data, &[], &env);
    assert_eq!(server.request("GET", "/v1/integrity", Some(&token), "").unwrap().0, 200);
    assert_eq!(wait_for(&got, 2, Duration::from_secs(20)).len(), 2, "both attempts reached the receiver");
    // Two 1 s timeouts and a 0.1 s pause: the failure is recorded well
    // within the 4 s waited here (a graceful stop writes what is queued).
    std::thread::sleep(Duration::from_secs(4));
    server.stop();
    let system = system_log(&data);
    let failed: Vec<&str> = system.lines().filter(|l| l.contains("audit_log.alert_failed")).collect();
    assert_eq!(failed.len(), 1, "{system}");
    assert!(failed[0].contains("\"attempts\":2") && failed[0].contains("no answer within"), "{}", failed[0]);
}

/// `AUDIT_VERIFY_SCHEDULE`: the next scheduled run finds the tampered log
/// with nobody asking, alerts, and records its result in the system log.
#[test]
fn a_tampered_log_is_caught_by_the_next_scheduled_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = tampered_log(&data);
    let (port, got) = receiver(vec![Some(200)]);
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = [
        ("AUDIT_ALERT_WEBHOOK_URL", url.as_str()),
        ("AUDIT_ALERT_WEBHOOK_SECRET", SECRET),
        // Every two seconds (six fields: seconds first).
        ("AUDIT_VERIFY_SCHEDULE", "*/2 * * * * *"),
    ];
    let server = Served::binary(BIN, &data, &[], &env);
    let posts = wait_for(&got, 1, Duration::from_secs(20));
    let (signature, body) = posts.first().expect("an alert within 20 s, without any request");
    assert!(body.contains("verification_failed") && body.contains("scheduled verification"), "{body}");
    // Sequence 0 is the token's api_key.created; trace-2 is the fourth event.
    assert!(body.contains("hash_mismatch at sequence 3"), "{body}");
    assert_eq!(signature.as_deref(), Some(audit_service::signature(SECRET, body.as_bytes()).as_str()));
    let (status, shown) = server.request("GET", "/v1/integrity/status", Some(&token), "").unwrap();
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("\"schedule\":\"*/2 * * * * *\"") && shown.contains("\"valid\":false"), "{shown}");
    server.stop();
    let system = system_log(&data);
    // One record per log and run: org-1's say invalid (the system log's own are valid).
    let runs: Vec<&str> = system
        .lines()
        .filter(|l| l.contains("audit_log.verified") && l.contains("\"organization_id\":\"org-1\",\"scheduled\":true"))
        .collect();
    assert!(!runs.is_empty(), "{system}");
    assert!(runs.iter().all(|r| r.contains("\"valid\":false")), "{runs:?}");
}

#[test]
fn a_bad_schedule_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for variable in ["AUDIT_VERIFY_SCHEDULE", "AUDIT_VERIFY_FULL_SCHEDULE"] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(variable, "every night")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(&format!("{variable}: \"every night\"")), "{err}");
    }
}

/// A store restored from an old copy (checkpoints and all) looks valid on
/// its own; held to the checkpoint mirror, the scheduled run sees the
/// rollback and alerts.
#[test]
fn a_rollback_against_the_checkpoint_mirror_is_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mirror, backup) = (dir.path().join("data"), dir.path().join("mirror"), dir.path().join("backup"));
    let mirror_env = ("AUDIT_CHECKPOINT_MIRROR", mirror.to_str().unwrap());
    let ingest = |n: usize| {
        let input = dir.path().join(format!("in{n}.jsonl"));
        let lines: String = (0..n)
            .map(|i| format!("{{\"event_type\":\"trace.viewed\",\"action\":\"read\",\"actor_type\":\"user\",\"actor_id\":\"u{n}-{i}\"}}\n"))
            .collect();
        std::fs::write(&input, lines).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["ingest", "--org", "org-1"])
            .arg(&input)
            .env(mirror_env.0, mirror_env.1)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    ingest(3);
    assert!(Command::new("cp").arg("-a").arg(&data).arg(&backup).status().unwrap().success());
    ingest(4);
    std::fs::remove_dir_all(&data).unwrap();
    assert!(Command::new("cp").arg("-a").arg(&backup).arg(&data).status().unwrap().success());

    let (port, got) = receiver(vec![Some(200)]);
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = [
        ("AUDIT_ALERT_WEBHOOK_URL", url.as_str()),
        ("AUDIT_ALERT_WEBHOOK_SECRET", SECRET),
        ("AUDIT_VERIFY_SCHEDULE", "*/2 * * * * *"),
        mirror_env,
    ];
    let server = Served::binary(BIN, &data, &[], &env);
    let posts = wait_for(&got, 1, Duration::from_secs(20));
    server.stop();
    let (_, body) = posts.first().expect("an alert within 20 s");
    assert!(body.contains("verification_failed") && body.contains("truncated"), "{body}");
    assert!(body.contains("\"organization_id\":\"org-1\""), "{body}");
}
