//! The production shape, with real servers: S3 with Object Lock (moto on
//! loopback) for the log and checkpoint mirror, PostgreSQL for the index,
//! and two `serve` processes writing one organization's log at once.
//! Skips (printing why) without the servers unless AUDIT_REQUIRE_SERVICES=1.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use audit_core::json::{self, NumberPolicy, Value};

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

use audit_testkit::serve::free_port;

/// The environment of a production-shaped deployment.
fn production_env(
    bucket: &str,
    mirror: &str,
    endpoint: &str,
    index_url: &str,
    key_file: &Path,
) -> Vec<(String, String)> {
    [
        ("AUDIT_STORAGE_BACKEND", "s3"),
        ("AUDIT_S3_BUCKET", bucket),
        ("AUDIT_S3_ENDPOINT", endpoint),
        ("AUDIT_S3_REGION", "us-east-1"),
        ("AUDIT_RETENTION_DAYS", "1"),
        ("AUDIT_INDEX_URL", index_url),
        ("AUDIT_CHECKPOINT_MIRROR", &format!("s3://{mirror}/checkpoints")),
        ("AUDIT_SIGNING_KEY_FILE", key_file.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", audit_testkit::S3_TEST_CREDENTIALS.0),
        ("AWS_SECRET_ACCESS_KEY", audit_testkit::S3_TEST_CREDENTIALS.1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn command(env: &[(String, String)], data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.envs(env.iter().map(|(k, v)| (k, v))).arg("--data-dir").arg(data);
    c
}

/// A running `serve`, killed if the test fails before stopping it.
struct Server(Child);

impl Server {
    fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        assert!(self.0.wait().unwrap().success(), "graceful stop exits 0");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(env: &[(String, String)], data: &Path, port: u16) -> Server {
    let mut child = command(env, data)
        .args(["serve", "--no-auth", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Server(child);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    panic!("serve did not start on port {port}");
}

fn post(port: u16, body: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn member<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v {
        Value::Object(o) => o.get(name).unwrap_or_else(|| panic!("no {name}")),
        _ => panic!("not an object"),
    }
}

#[test]
fn two_serve_processes_on_one_bucket_and_database_never_fork_a_log() {
    let test = "two_serve_processes_on_one_bucket";
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(bucket) = rt.block_on(audit_testkit::fresh_bucket(test, true)) else { return };
    let Some(mirror) = rt.block_on(audit_testkit::fresh_bucket(test, true)) else { return };
    let Some(index_url) = rt.block_on(audit_testkit::fresh_postgres_schema(test)) else { return };
    let dir = tempfile::tempdir().unwrap();
    // One deployment, one signing key; each instance has its own data directory.
    let env =
        production_env(&bucket.bucket, &mirror.bucket, &bucket.endpoint, &index_url, &dir.path().join("signing.key"));
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let (port_a, port_b) = (free_port(), free_port());
    let a = start(&env, &data_a, port_a);
    let b = start(&env, &data_b, port_b);

    let clients: Vec<_> = [(port_a, 0), (port_a, 1), (port_b, 2), (port_b, 3)]
        .into_iter()
        .map(|(port, w)| {
            std::thread::spawn(move || {
                let mut sequences = Vec::new();
                for n in 0..25 {
                    let events: Vec<String> = (0..4)
                        .map(|i| format!(r#"{{"organization_id":"org-1","event_type":"trace.viewed","action":"read","actor_type":"user","actor_id":"w{w}","resource_id":"r{n}-{i}"}}"#))
                        .collect();
                    let (status, body) = post(port, &format!("[{}]", events.join(",")));
                    assert!(status.contains(" 201 "), "{status}: {body}");
                    let v = json::parse(body.as_bytes(), NumberPolicy::Exact).unwrap();
                    let Value::Array(receipts) = member(&v, "receipts") else { panic!("{body}") };
                    for r in receipts {
                        let Value::Number(seq) = member(r, "sequence") else { panic!() };
                        sequences.push(*seq as u64);
                    }
                }
                sequences
            })
        })
        .collect();
    let mut all: Vec<u64> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    a.stop();
    b.stop();
    all.sort_unstable();
    assert_eq!(all, (0..400).collect::<Vec<u64>>(), "400 receipts, 400 distinct sequences, no gap");

    // The log read back from S3 by object version verifies, against its
    // checkpoints and the mirror's, signed by the deployment's key.
    let verify = command(&env, &data_a).args(["verify", "--org", "org-1"]).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(0), "{said}");
    assert!(said.contains("valid: 400 events"), "{said}");
    // The shared PostgreSQL index answers for both instances' events.
    let query = command(&env, &data_b)
        .args(["query", "--org", "org-1", "--actor-id", "w2", "--limit", "1000", "--format", "json"])
        .output()
        .unwrap();
    assert!(query.status.success(), "{}", String::from_utf8_lossy(&query.stderr));
    let page = json::parse(&query.stdout, NumberPolicy::Exact).unwrap();
    let Value::Array(events) = member(&page, "events") else { panic!() };
    assert_eq!(events.len(), 100, "w2 posted 25 batches of 4");
    // Both instances' lifecycle events share the system organization's log.
    let system = command(&env, &data_b).args(["verify", "--org", "agenttrace-system"]).output().unwrap();
    assert_eq!(system.status.code(), Some(0), "{}", String::from_utf8_lossy(&system.stderr));
    // Checkpoints reached the mirror bucket.
    let listed = rt
        .block_on(mirror.client.list_objects_v2().bucket(&mirror.bucket).prefix("checkpoints/logs/org-1/").send())
        .unwrap();
    assert!(!listed.contents().is_empty(), "checkpoints are published to the mirror bucket");
}

#[test]
fn serve_refuses_a_bucket_without_object_lock_by_name() {
    let test = "serve_refuses_a_bucket_without_object_lock";
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(bucket) = rt.block_on(audit_testkit::fresh_bucket(test, false)) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut env = production_env(&bucket.bucket, &bucket.bucket, &bucket.endpoint, "sqlite://", &dir.path().join("k"));
    env.retain(|(k, _)| k != "AUDIT_INDEX_URL" && k != "AUDIT_CHECKPOINT_MIRROR");
    let out = command(&env, dir.path()).args(["serve", "--no-auth", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Object Lock") && said.contains(&bucket.bucket), "{said}");
    let missing = Command::new(BIN)
        .env("AUDIT_STORAGE_BACKEND", "s3")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--no-auth"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("AUDIT_S3_BUCKET"));
    // A bucket that does not exist: one line with the service's own words, not the SDK's dump.
    let mut env = env.clone();
    for (k, v) in env.iter_mut() {
        if k == "AUDIT_S3_BUCKET" {
            *v = "no-such-bucket-for-this-test".into();
        }
    }
    let out = command(&env, dir.path()).args(["verify", "--org", "o"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("NoSuchBucket") && said.len() < 400, "{said}");
}
