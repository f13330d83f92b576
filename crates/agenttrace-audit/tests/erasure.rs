//! The right to erasure (SPEC §9) through the real binary and the API, on
//! the embedded default (local files, SQLite index, SQLite key store beside
//! the data directory): personal data is sealed at ingest, readable through
//! the API, `json` and `csv` exports and `query`, found by email; erased,
//! it reads `"[erased]"` everywhere, is found by nothing, appears nowhere
//! on disk; the log still verifies, offline too; a legal hold blocks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use audit_testkit::serve::Served;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");
const ORG: &str = "org-1";
const PATHS: (&str, &str) = ("AUDIT_PERSONAL_PATHS", "new_state.email");

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(data).args(args).env(PATHS.0, PATHS.1).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn event(email: &str, ip: &str, resource: &str) -> String {
    format!(
        r#"{{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u-{resource}","actor_email":"{email}","actor_ip":"{ip}","user_agent":"curl/8.1","resource_id":"{resource}","new_state":{{"email":"{email}","plan":"pro"}}}}"#
    )
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The files under `dirs` whose bytes contain `needle` (case-insensitive).
fn holding(dirs: &[&Path], needle: &str) -> Vec<PathBuf> {
    let needle = needle.to_lowercase();
    dirs.iter()
        .flat_map(|d| files(d))
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap_or_default();
            String::from_utf8_lossy(&bytes).to_lowercase().contains(&needle)
        })
        .collect()
}

#[test]
fn a_subject_is_readable_then_erased_everywhere_while_the_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys_dir = dir.path().join("data-keys");
    let admin = ok(run(&data, &["keys", "create", "--org", ORG, "--scopes", "ingest,read,export,verify,admin"]))
        .trim()
        .to_owned();
    let input = dir.path().join("in.jsonl");
    let lines = [
        event("Ada@Example.com", "192.0.2.7", "t1"),
        event("ada@example.com", "192.0.2.7", "t2"),
        event("grace@example.org", "198.51.100.9", "t3"),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    ok(run(&data, &["ingest", "--org", ORG, input.to_str().unwrap()]));
    assert!(keys_dir.join("master.key").is_file(), "the master key is made beside the data directory");

    // Stored: ciphertext only.
    for secret in ["ada@example.com", "192.0.2.7", "grace@example.org", "curl/8.1"] {
        assert_eq!(holding(&[&data], secret), Vec::<PathBuf>::new(), "{secret} is stored in plaintext");
    }
    let jsonl = ok(run(&data, &["export", "--org", ORG, "--format", "jsonl"]));
    assert_eq!(jsonl.matches("enc:v1:").count(), 3 * 4, "four sealed values per event:\n{jsonl}");

    let server = Served::binary(BIN, &data, &[], &[PATHS, ("AUDIT_RATE_LIMIT", "0")]);
    let get = |path: &str| server.request("GET", path, Some(&admin), "").expect("answers");
    // Found by email (any case), readable.
    let (status, body) = get("/v1/events?organization_id=org-1&actor_email=ADA@example.com");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("\"event_id\"").count(), 2, "ada's two events: {body}");
    assert!(body.contains("Ada@Example.com") && body.contains("192.0.2.7") && body.contains("curl/8.1"), "{body}");
    assert!(!body.contains("enc:v1:"), "{body}");
    let (_, csv) = get("/v1/export?organization_id=org-1&format=csv");
    assert!(csv.contains("grace@example.org"), "{csv}");
    // Right of access: everything about one person, readable, through the
    // API and the CLI; and a verifiable bundle of the same events.
    let (_, access) = get("/v1/export?organization_id=org-1&format=json&actor_email=ada@example.com");
    assert_eq!(access.matches("\"event_id\"").count(), 2, "{access}");
    assert!(access.contains("192.0.2.7") && !access.contains("grace"), "{access}");
    let access = ok(run(&data, &["export", "--org", ORG, "--format", "csv", "--actor-email", "ADA@example.com"]));
    assert_eq!(access.lines().count(), 1 + 2, "header and ada's two events: {access}");
    let bundle = dir.path().join("ada.evidence.jsonl");
    let args = ["export", "--org", ORG, "--format", "jsonl", "--actor-email", "ada@example.com", "--with-proof", "-o"];
    ok(run(&data, &[&args[..], &[bundle.to_str().unwrap()]].concat()));
    let checked = ok(Command::new(BIN).arg("verify-export").arg(&bundle).arg("--json").output().unwrap());
    assert!(checked.contains("\"total_events\":2"), "the bundle holds ada's two events, sealed: {checked}");

    // A hold blocks the erasure.
    let (status, hold) = server
        .request("POST", "/v1/legal-holds", Some(&admin), r#"{"email":"ada@example.com","reason":"case 7"}"#)
        .unwrap();
    assert_eq!(status, 201, "{hold}");
    let erase = r#"{"email":"ada@example.com"}"#;
    let (status, refused) = server.request("POST", "/v1/subjects/erase", Some(&admin), erase).unwrap();
    assert_eq!((status, refused.contains("legal_hold")), (409, true), "{refused}");
    let hold_id = hold.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let (status, _) = get("/v1/legal-holds?organization_id=org-1");
    assert_eq!(status, 200);
    let lift = server.request("DELETE", &format!("/v1/legal-holds/{hold_id}"), Some(&admin), "").unwrap();
    assert_eq!(lift.0, 200, "{}", lift.1);

    // Erased: 200 with what it did; twice: already erased.
    let (status, done) = server.request("POST", "/v1/subjects/erase", Some(&admin), erase).unwrap();
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("\"already_erased\":false") && done.contains("\"affected_events\":2"), "{done}");
    let (status, again) = server.request("POST", "/v1/subjects/erase", Some(&admin), erase).unwrap();
    assert_eq!(status, 200);
    assert!(again.contains("\"already_erased\":true"), "{again}");

    // Nothing finds or shows ada any more; grace is untouched.
    let (_, found) = get("/v1/events?organization_id=org-1&actor_email=ada@example.com");
    assert_eq!(found.matches("\"event_id\"").count(), 0, "an erased email finds nothing: {found}");
    let (_, all) = get("/v1/events?organization_id=org-1&event_type=trace.deleted");
    assert_eq!(all.matches("[erased]").count(), 2 * 4, "ada's four personal values in two events: {all}");
    assert!(all.contains("grace@example.org") && !all.to_lowercase().contains("ada@example.com"), "{all}");
    let (_, json) = get("/v1/export?organization_id=org-1&format=json&event_type=trace.deleted");
    assert!(json.contains("[erased]") && !json.to_lowercase().contains("ada@"), "{json}");
    let (_, csv) = get("/v1/export?organization_id=org-1&format=csv&event_type=trace.deleted");
    assert!(csv.contains("[erased]") && !csv.to_lowercase().contains("ada@"), "{csv}");
    let (_, records) = get("/v1/events?organization_id=org-1&event_type=subject.erased");
    assert_eq!(records.matches("\"subject.erased\"").count(), 2, "both erasures recorded: {records}");
    assert!(!records.to_lowercase().contains("ada@"), "the record names a token, not the subject: {records}");
    let (_, holds) = get("/v1/events?organization_id=org-1&event_type=legal_hold.placed");
    assert_eq!(holds.matches("legal_hold.placed").count(), 1, "{holds}");
    server.stop();

    // The CLI agrees, and the email is nowhere on disk: log, index, key store.
    let table = ok(run(&data, &["query", "--org", ORG, "--event-type", "trace.deleted", "--format", "csv"]));
    assert!(table.contains("[erased]") && table.contains("grace@example.org"), "{table}");
    assert_eq!(holding(&[&data, &keys_dir], "ada@example.com"), Vec::<PathBuf>::new(), "plaintext left on disk");
    // The chain, the checkpoints and an offline check are as before.
    ok(run(&data, &["verify", "--org", ORG]));
    let export = dir.path().join("export.jsonl");
    ok(run(&data, &["export", "--org", ORG, "--format", "jsonl", "--output", export.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(&export).unwrap().lines().take(3).collect::<Vec<_>>().join("\n"),
        jsonl.lines().take(3).collect::<Vec<_>>().join("\n"),
        "stored lines unchanged"
    );
    ok(Command::new(BIN).args(["verify-export"]).arg(&export).output().unwrap());
    // An evidence bundle of the erased subject's events (found by actor id:
    // the email finds nothing now) still checks against the signed checkpoint.
    let bundle = dir.path().join("evidence.jsonl");
    let args = ["export", "--org", ORG, "--format", "jsonl", "--actor-id", "u-t1", "--with-proof", "-o"];
    ok(run(&data, &[&args[..], &[bundle.to_str().unwrap()]].concat()));
    let key = ok(run(&data, &["keys", "public", "--org", ORG])).trim().to_owned();
    let checked =
        ok(Command::new(BIN).arg("verify-export").arg(&bundle).args(["--key", &key, "--json"]).output().unwrap());
    assert!(checked.contains("\"total_events\":1"), "{checked}");

    // The CLI erases by actor id and time as well; unknown subjects are recorded too.
    let unknown = ok(run(&data, &["erase-subject", "--org", ORG, "--email", "nobody@example.com"]));
    assert!(unknown.contains("\"already_erased\":true"), "{unknown}");
    let by_time = ok(run(&data, &["erase-subject", "--org", ORG, "--unattributed-before", "2000-01-01"]));
    assert!(by_time.contains("\"keys_destroyed\":0"), "{by_time}");
}

#[test]
fn a_wrong_master_key_stops_the_start_naming_the_variable_and_protection_off_stores_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, event("ada@example.com", "192.0.2.7", "t1") + "\n").unwrap();
    ok(run(&data, &["ingest", "--org", ORG, input.to_str().unwrap()]));

    // Another master key for the same key store: refused, naming the setting.
    let other = dir.path().join("other.key");
    let made = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("scratch"))
        .args(["ingest", "--org", ORG])
        .arg(&input)
        .env("AUDIT_KEY_STORE_PATH", dir.path().join("scratch-keys"))
        .output()
        .unwrap();
    assert!(made.status.success());
    std::fs::copy(dir.path().join("scratch-keys/master.key"), &other).unwrap();
    let wrong = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--org", ORG])
        .arg(&input)
        .env("AUDIT_MASTER_KEY_FILE", &other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && err.contains("AUDIT_MASTER_KEY_FILE"), "{err}");
    let missing = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("AUDIT_MASTER_KEY_FILE", dir.path().join("absent.key"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && err.contains("AUDIT_MASTER_KEY_FILE"), "{err}");

    // A personal path that names no object member is refused, naming the setting.
    let bad = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--org", ORG])
        .arg(&input)
        .env("AUDIT_PERSONAL_PATHS", "email")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("AUDIT_PERSONAL_PATHS"), "{err}");

    // Switched off: stored as sent (and the docs say existing sealed events stay sealed).
    let plain = dir.path().join("plain");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&plain)
        .args(["ingest", "--org", ORG])
        .arg(&input)
        .env("AUDIT_PERSONAL_DATA_PROTECTION", "off")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!holding(&[&plain], "ada@example.com").is_empty(), "off means plaintext");
    assert!(!dir.path().join("plain-keys").try_exists().unwrap(), "and no key store");
    let erase = Command::new(BIN)
        .arg("--data-dir")
        .arg(&plain)
        .args(["erase-subject", "--org", ORG, "--email", "ada@example.com"])
        .env("AUDIT_PERSONAL_DATA_PROTECTION", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&erase.stderr);
    assert!(!erase.status.success() && err.contains("AUDIT_PERSONAL_DATA_PROTECTION"), "{err}");
}

/// Events posted while a subject is being erased: every acknowledged event
/// is stored, the log verifies, and the other subject's data stays readable.
#[test]
fn concurrent_ingest_during_an_erasure_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = ok(run(&data, &["keys", "create", "--org", ORG, "--scopes", "ingest,read,export,verify,admin"]))
        .trim()
        .to_owned();
    let server = Served::binary(BIN, &data, &[], &[PATHS, ("AUDIT_RATE_LIMIT", "0")]);
    let port = server.port;
    let posters: Vec<_> = ["ada@example.com", "grace@example.org"]
        .into_iter()
        .map(|email| {
            let token = admin.clone();
            std::thread::spawn(move || {
                let mut acknowledged = 0;
                for n in 0..60 {
                    let body = event(email, "192.0.2.7", &format!("{}-{n}", &email[..3]));
                    let (status, answer) =
                        audit_testkit::serve::http(port, "POST", "/v1/events", Some(&token), &body).unwrap();
                    assert_eq!(status, 201, "{answer}");
                    acknowledged += 1;
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (status, erased) =
        server.request("POST", "/v1/subjects/erase", Some(&admin), r#"{"email":"ada@example.com"}"#).unwrap();
    assert_eq!(status, 200, "{erased}");
    let acknowledged: u64 = posters.into_iter().map(|p| p.join().unwrap()).sum();
    assert_eq!(acknowledged, 120);
    server.stop();
    // Counted from storage (the index catches up asynchronously).
    let shown = ok(run(&data, &["export", "--org", ORG, "--format", "json", "--event-type", "trace.deleted"]));
    assert_eq!(shown.matches("\"event_id\"").count(), 120, "every acknowledged event is stored");
    assert_eq!(shown.matches("grace@example.org").count(), 2 * 60, "grace's email and new_state.email, readable");
    assert!(shown.contains("[erased]"), "ada's events from before the erasure read [erased]");
    let report = ok(run(&data, &["verify", "--org", ORG, "--json"]));
    assert!(report.contains("\"valid\":true"), "{report}");
}

/// A KMS key on the test AWS API (moto), or `None` after saying why.
fn kms_key(test: &str, endpoint: &str) -> Option<String> {
    let script = format!(
        "import boto3; c = boto3.client('kms', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing'); print(c.create_key()['KeyMetadata']['KeyId'])"
    );
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        Ok(out) => {
            audit_testkit::missing_service(
                test,
                &format!("no KMS at {endpoint}: {}", String::from_utf8_lossy(&out.stderr)),
            );
            None
        }
        Err(e) => {
            audit_testkit::missing_service(test, &format!("python3 (boto3) to make a KMS key: {e}"));
            None
        }
    }
}

/// The production shape: subject keys in PostgreSQL, wrapped by a KMS key
/// (moto), nothing of it on the local disk; erasure works the same.
#[test]
fn the_key_store_in_postgresql_with_the_master_key_in_kms() {
    let test = "the_key_store_in_postgresql_with_the_master_key_in_kms";
    let endpoint = audit_testkit::s3_endpoint();
    let Some(kms_key_id) = kms_key(test, &endpoint) else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A schema of its own (the `audit_test_` prefix: .ci/run drops leftovers).
    let schema = format!(
        "audit_test_keys_{}",
        dir.path().file_name().unwrap().to_string_lossy().to_lowercase().replace(['.', '-'], "_")
    );
    let env = [
        ("AUDIT_KEY_STORE_URL", audit_testkit::postgres_url()),
        ("AUDIT_KEY_STORE_SCHEMA", schema),
        ("AUDIT_KMS_KEY_ID", kms_key_id),
        ("AUDIT_KMS_ENDPOINT", endpoint),
        ("AUDIT_KMS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        (PATHS.0, PATHS.1.into()),
    ];
    let cli =
        |args: &[&str]| Command::new(BIN).arg("--data-dir").arg(&data).args(args).envs(env.clone()).output().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, event("ada@example.com", "192.0.2.7", "t1") + "\n").unwrap();
    let stored = cli(&["ingest", "--org", ORG, input.to_str().unwrap()]);
    if !stored.status.success() && String::from_utf8_lossy(&stored.stderr).contains("AUDIT_KEY_STORE_URL") {
        audit_testkit::missing_service(test, &String::from_utf8_lossy(&stored.stderr));
        return;
    }
    ok(stored);
    assert!(!dir.path().join("data-keys").try_exists().unwrap(), "no local key store, no local master key");
    assert_eq!(holding(&[&data], "ada@example.com"), Vec::<PathBuf>::new());
    let found = ok(cli(&["query", "--org", ORG, "--actor-email", "ada@example.com", "--format", "csv"]));
    assert!(found.contains("ada@example.com") && found.contains("192.0.2.7"), "{found}");
    let erased = ok(cli(&["erase-subject", "--org", ORG, "--email", "ada@example.com"]));
    assert!(erased.contains("\"keys_destroyed\":1"), "{erased}");
    let after = ok(cli(&["export", "--org", ORG, "--format", "csv"]));
    assert!(after.contains("[erased]") && !after.contains("ada@example.com"), "{after}");

    // Without a shared master key, a PostgreSQL key store is refused.
    let alone = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--org", ORG])
        .arg(&input)
        .env("AUDIT_KEY_STORE_URL", audit_testkit::postgres_url())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(
        !alone.status.success() && err.contains("AUDIT_MASTER_KEY_FILE") && err.contains("AUDIT_KMS_KEY_ID"),
        "{err}"
    );
}

/// A sealed value altered on disk: `verify` names the event, exports read
/// it as "[unreadable]" and go on, nothing panics.
#[test]
fn a_tampered_ciphertext_fails_verification_and_reads_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in.jsonl");
    let lines = [event("ada@example.com", "192.0.2.7", "t1"), event("grace@example.org", "198.51.100.9", "t2")];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    ok(run(&data, &["ingest", "--org", ORG, input.to_str().unwrap()]));
    let segment =
        files(&data.join("logs").join(ORG)).into_iter().find(|f| f.extension().is_some_and(|e| e == "jsonl")).unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    // Flip one base64 character of the first event's sealed actor_ip.
    let at = text.find(r#""actor_ip":"enc:v1:"#).unwrap() + r#""actor_ip":"enc:v1:"#.len() + 33 + 20;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&segment, bytes).unwrap();

    let verify = run(&data, &["verify", "--org", ORG, "--json"]);
    assert_eq!(verify.status.code(), Some(1), "{}", String::from_utf8_lossy(&verify.stderr));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("hash_mismatch"));
    let csv = ok(run(&data, &["export", "--org", ORG, "--format", "csv"]));
    assert!(csv.contains("[unreadable]") && csv.contains("198.51.100.9"), "{csv}");
    assert!(!csv.contains("enc:v1:"), "{csv}");
}

/// The operator's commands as the README spells them: `holds place|list|lift`,
/// `erase-subject --actor-id`, and the refusal while a `serve` holds the log.
#[test]
fn holds_and_erasure_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in.jsonl");
    // u-t1 has no email here: its subject is its actor id.
    let line = r#"{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u-t1","actor_ip":"192.0.2.7","resource_id":"t1"}"#;
    std::fs::write(&input, format!("{line}\n")).unwrap();
    ok(run(&data, &["ingest", "--org", ORG, input.to_str().unwrap()]));

    let placed = ok(run(&data, &["holds", "place", "--org", ORG, "--actor-id", "u-t1", "--reason", "case 9"]));
    assert!(placed.contains("\"scope\":\"subject\"") && placed.contains("\"reason\":\"case 9\""), "{placed}");
    let id = placed.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let listed = ok(run(&data, &["holds", "list", "--org", ORG]));
    assert!(listed.contains(&id), "{listed}");
    let refused = run(&data, &["erase-subject", "--org", ORG, "--actor-id", "u-t1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("legal hold"));
    ok(run(&data, &["holds", "lift", "--org", ORG, &id]));
    assert_eq!(run(&data, &["holds", "lift", "--org", ORG, &id]).status.code(), Some(1), "lifted once");

    // While a serve has the log open for writing, the CLI changes nothing
    // and says where to go.
    let token = ok(run(&data, &["keys", "create", "--org", ORG, "--scopes", "ingest"])).trim().to_owned();
    let server = Served::binary(BIN, &data, &[], &[PATHS]);
    let posted = server.request("POST", "/v1/events", Some(&token), &line.replace("t1\"}", "t2\"}")).unwrap();
    assert_eq!(posted.0, 201, "{}", posted.1);
    let busy = run(&data, &["erase-subject", "--org", ORG, "--actor-id", "u-t1"]);
    server.stop();
    assert!(!busy.status.success() && String::from_utf8_lossy(&busy.stderr).contains("POST /v1/subjects/erase"));

    let erased = ok(run(&data, &["erase-subject", "--org", ORG, "--actor-id", "u-t1", "--requested-by", "dpo"]));
    assert!(erased.contains("\"keys_destroyed\":1") && erased.contains("\"affected_events\":2"), "{erased}");
    let shown = ok(run(&data, &["export", "--org", ORG, "--format", "csv", "--event-type", "trace.deleted"]));
    assert!(shown.contains("[erased]") && !shown.contains("192.0.2.7"), "{shown}");
    let records = ok(run(&data, &["export", "--org", ORG, "--format", "jsonl", "--event-type", "subject.erased"]));
    assert!(records.contains("\"actor_id\":\"dpo\"") && records.contains("\"subject_kind\":\"actor_id\""), "{records}");
    let holds = ok(run(&data, &["export", "--org", ORG, "--format", "jsonl", "--event-type", "legal_hold.lifted"]));
    assert_eq!(holds.lines().count(), 1, "{holds}");
}
