//! Retention through the real binary (SPEC §15): a three-segment log whose
//! first segment is eight years old is pruned by `prune` (refused while a
//! legal hold stands), verifies with `pruned_through`, refuses a proof of a
//! removed event and keeps a valid consistency proof across the cut; and
//! `serve` prunes on `AUDIT_PRUNE_SCHEDULE` and takes per-organization
//! retention through `PUT /v1/retention`, never below the floor.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::note::SignerKey;
use audit_service::{AuditConfig, AuditService, CheckpointConfig, ManualClock};
use audit_storage::local::LocalStore;
use audit_testkit::serve::Served;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");
const ORG: &str = "org-1";
const DAY: i64 = 86_400 * 1_000_000;

fn signer() -> SignerKey {
    SignerKey::from_seed("agenttrace-audit.local", [11; 32]).unwrap()
}

/// Five events written at `micros` as one batch (so one segment: the store
/// rolls over before every batch), signed with the deployment's key.
async fn batch_at(data: &Path, micros: i64, first: u64) {
    let checkpoints = CheckpointConfig {
        origin: "agenttrace-audit.local".into(),
        signer: signer(),
        interval: Duration::from_secs(3600),
        mirror: None,
    };
    let config = AuditConfig {
        batch_size: 5,
        batch_interval: Duration::from_secs(3600),
        enable_deduplication: false,
        ..AuditConfig::default()
    };
    let service = AuditService::builder(Arc::new(LocalStore::new(data).with_segment_bytes(1)))
        .config(config)
        .clock(Arc::new(ManualClock::at_micros(micros)))
        .checkpoints(checkpoints)
        .start()
        .await;
    for n in first..first + 5 {
        service.capture(audit_core::sample::sample_draft(ORG, n)).await.unwrap();
    }
    service.stop().await;
}

/// Segment 0: eight years old; segments 1 and 2: now.
fn three_segments(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("signing.key"), format!("{}\n", signer().to_private_string())).unwrap();
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        batch_at(data, now - 8 * 365 * DAY, 0).await;
        batch_at(data, now, 5).await;
        batch_at(data, now, 10).await;
    });
    let segments: Vec<_> = std::fs::read_dir(data.join("logs").join(ORG))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    assert_eq!(segments.len(), 3, "{segments:?}");
}

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(data).args(args).env("AUDIT_RETENTION_DAYS", "365").output().unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn prune_removes_the_old_segment_with_proof_and_a_hold_blocks_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    three_segments(&data);
    let first = data.join("logs").join(ORG).join("00000000000000000000.jsonl");

    // A legal hold suspends retention.
    let hold = json(&ok(&data, &["holds", "place", "--org", ORG, "--reason", "litigation 2026-17"]));
    let refused = run(&data, &["prune", "--org", ORG]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("legal hold") && err.contains("retention is suspended"), "{err}");
    assert!(first.is_file(), "nothing removed under a hold");
    ok(&data, &["holds", "lift", "--org", ORG, hold["id"].as_str().unwrap()]);

    let pruned = json(&ok(&data, &["prune", "--org", ORG]));
    assert_eq!(pruned["removed_events"], 5, "{pruned}");
    assert_eq!(pruned["removed_segments"], 1, "{pruned}");
    assert_eq!(pruned["first_kept"], 5, "{pruned}");
    assert!(!first.try_exists().unwrap(), "the old segment is gone");
    let again = json(&ok(&data, &["prune", "--org", ORG]));
    assert_eq!(again["removed_events"], 0, "the new segments are kept: {again}");

    let report = json(&ok(&data, &["verify", "--org", ORG, "--json"]));
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["pruned_through"], 4, "{report}");
    assert_eq!(report["first_sequence"], 5, "{report}");
    let exported = ok(&data, &["export", "--org", ORG, "--format", "jsonl"]);
    assert!(exported.contains("\"event_type\":\"audit_log.pruned\""), "the prune is in the log");

    // Proofs: none for a removed event; consistency across the cut holds.
    let size = report["last_sequence"].as_u64().unwrap() + 1;
    let tree = size.to_string();
    let refused = run(&data, &["prove", "--org", ORG, "--sequence", "2", "--tree-size", &tree]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("removed under retention"), "{err}");
    ok(&data, &["prove", "--org", ORG, "--sequence", "5", "--tree-size", &tree]);
    let proof = json(&ok(&data, &["prove", "--org", ORG, "--from", "5", "--to", &tree]));
    let hash = |v: &serde_json::Value| audit_core::Hash::from_hex(v.as_str().unwrap()).unwrap();
    let path: Vec<audit_core::Hash> = proof["proof"].as_array().unwrap().iter().map(hash).collect();
    let (from_root, to_root) = (hash(&proof["from_root"]), hash(&proof["to_root"]));
    audit_core::merkle::verify_consistency(5, size, &path, &from_root, &to_root).unwrap();
    // from_root is the root signed when the log held only the old events.
    let note =
        std::fs::read_to_string(data.join("logs").join(ORG).join("checkpoints/00000000000000000005.note")).unwrap();
    let key = signer().renamed(&format!("agenttrace-audit.local/{ORG}")).unwrap().verifier();
    let signed = audit_core::note::Checkpoint::parse(audit_core::note::open(&note, &key).unwrap()).unwrap();
    assert_eq!(signed.root, from_root);
}

#[test]
fn serve_prunes_on_its_schedule_and_takes_retention_per_organization() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    three_segments(&data);
    let token = ok(&data, &["keys", "create", "--org", ORG, "--scopes", "read,verify,admin"]).trim().to_owned();
    let env = [("AUDIT_RETENTION_DAYS", "365"), ("AUDIT_PRUNE_SCHEDULE", "* * * * * *")];
    let first = data.join("logs").join(ORG).join("00000000000000000000.jsonl");
    let removed_id =
        json(std::fs::read_to_string(&first).unwrap().lines().next().unwrap())["event_id"].as_str().unwrap().to_owned();
    let server = Served::binary(BIN, &data, &[], &env);
    let start = Instant::now();
    while first.try_exists().unwrap() {
        assert!(start.elapsed() < Duration::from_secs(30), "not pruned within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, report) = server.request("GET", "/v1/integrity", Some(&token), "").unwrap();
    assert_eq!(status, 200, "{report}");
    let report = json(&report);
    assert_eq!((report["valid"].clone(), report["pruned_through"].clone()), (true.into(), 4.into()), "{report}");
    let proof = format!("/v1/events/{removed_id}/proof?tree_size=10");
    let (status, gone) = server.request("GET", &proof, Some(&token), "").unwrap();
    assert_eq!(status, 404, "{gone}");
    assert!(gone.contains("removed under retention"), "a removed event's proof says why: {gone}");

    let (status, shown) = server.request("GET", "/v1/retention", Some(&token), "").unwrap();
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        json(&shown),
        serde_json::json!({"organization_id": ORG, "days": 365, "source": "default", "floor_days": 365})
    );
    let (status, refused) = server.request("PUT", "/v1/retention", Some(&token), r#"{"days":30}"#).unwrap();
    assert_eq!(status, 400, "{refused}");
    assert!(refused.contains("\"field\":\"days\"") && refused.contains("at least 365"), "{refused}");
    let (status, set) = server.request("PUT", "/v1/retention", Some(&token), r#"{"days":3650}"#).unwrap();
    assert_eq!(status, 200, "{set}");
    assert_eq!(json(&set)["source"], "organization");
    server.stop();
    let exported = ok(&data, &["export", "--org", ORG, "--format", "jsonl"]);
    let changed: Vec<&str> = exported.lines().filter(|l| l.contains("\"event_type\":\"retention.changed\"")).collect();
    assert_eq!(changed.len(), 1, "{exported}");
    assert!(changed[0].contains("\"days\":3650") && changed[0].contains("\"previous_days\":365"), "{}", changed[0]);
    // The period survives a restart (kept in the data directory).
    let stored = std::fs::read_to_string(data.join("retention.json")).unwrap();
    assert!(stored.contains("3650"), "{stored}");
}
