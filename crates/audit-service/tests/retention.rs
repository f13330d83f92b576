//! Retention over real local storage: old sealed segments are removed with a
//! signed prune record; the rest verifies against it (`pruned_through`);
//! proofs of removed events are refused while trees spanning the cut keep
//! their roots and consistency proofs; a writer restarted after a prune
//! resumes the same tree; a record or kept hashes tampered with are caught.

use std::sync::Arc;
use std::time::Duration;

use audit_core::merkle::verify_consistency;
use audit_core::note::{SignerKey, VerifierKey};
use audit_core::sample::sample_draft;
use audit_core::verify::FindingKind;
use audit_service::proofs::{ProofRequestError, consistency_proof, inclusion_proof};
use audit_service::{AuditConfig, AuditService, CheckpointConfig, Clock, ManualClock, Verifier};
use audit_storage::LogStore;
use audit_storage::local::LocalStore;

const ORG: &str = "org-1";
const DAY: i64 = 86_400 * 1_000_000;
const YEAR: Duration = Duration::from_secs(365 * 86_400);

fn signer() -> SignerKey {
    SignerKey::from_seed("audit.test", [5; 32]).unwrap()
}

fn key() -> VerifierKey {
    signer().renamed(&format!("audit.test/{ORG}")).unwrap().verifier()
}

fn local(dir: &tempfile::TempDir) -> LocalStore {
    LocalStore::new(dir.path()).with_segment_bytes(4096)
}

async fn start(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> AuditService {
    let checkpoints = CheckpointConfig {
        origin: "audit.test".into(),
        signer: signer(),
        interval: Duration::from_secs(3600),
        mirror: None,
    };
    AuditService::builder(Arc::new(local(dir)))
        .config(AuditConfig { enable_deduplication: false, ..AuditConfig::default() })
        .clock(clock)
        .checkpoints(checkpoints)
        .start()
        .await
}

/// A log whose first 20 events are eight years old and the next 20 new,
/// with a checkpoint of all 40; returns the signed root at 20.
async fn old_and_new(dir: &tempfile::TempDir, clock: &Arc<ManualClock>) -> audit_core::Hash {
    let now = clock.now().as_micros();
    clock.set_micros(now - 8 * 365 * DAY);
    let service = start(dir, clock.clone()).await;
    for n in 0..20 {
        service.capture_durable(sample_draft(ORG, n)).await.unwrap();
    }
    service.stop().await;
    let (_, note) = local(dir).latest_checkpoint(ORG).await.unwrap().unwrap();
    let text = audit_core::note::open(std::str::from_utf8(&note).unwrap(), &key()).unwrap();
    let old_root = audit_core::note::Checkpoint::parse(text).unwrap().root;
    clock.set_micros(now);
    let service = start(dir, clock.clone()).await;
    for n in 20..40 {
        service.capture_durable(sample_draft(ORG, n)).await.unwrap();
    }
    service.stop().await;
    old_root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_segments_are_pruned_with_proof_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_micros(1_765_000_000_000_000));
    let old_root = old_and_new(&dir, &clock).await;
    let store = local(&dir);
    let segments_before = store.chunks(ORG).await.unwrap().len();

    let (_, before_prune) = Verifier::new(&store).key(&key()).verify_and_keep(ORG).await.unwrap();
    let before_prune = before_prune.expect("a valid log with a checkpoint");
    let service = start(&dir, clock.clone()).await;
    let outcome = service.prune_expired(ORG, YEAR).await.unwrap().expect("old segments to remove");
    assert!(outcome.first_kept > 0 && outcome.first_kept <= 20, "only old events go: {outcome:?}");
    assert_eq!(outcome.removed_events, outcome.first_kept);
    assert_eq!(store.chunks(ORG).await.unwrap().len(), segments_before - outcome.removed_segments);
    assert!(service.prune_expired(ORG, YEAR).await.unwrap().is_none(), "nothing more is past retention");
    service.capture_durable(sample_draft(ORG, 40)).await.unwrap();
    service.stop().await;

    // A place verified before the prune, past its cut, still resumes.
    let resumed = Verifier::new(&store).key(&key()).after(&before_prune).verify(ORG).await.unwrap();
    assert!(resumed.valid && resumed.first_sequence == Some(40), "{resumed:?}");
    let report = Verifier::new(&store).key(&key()).verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.pruned_through, Some(outcome.first_kept - 1));
    assert_eq!(report.first_sequence, Some(outcome.first_kept));
    let json = String::from_utf8(audit_core::canonical::to_canonical(&report.to_value())).unwrap();
    assert!(json.contains(&format!("\"pruned_through\":{}", outcome.first_kept - 1)), "{json}");
    // The prune is in the log itself (the event after the 40 sample events).
    let mut out = Vec::new();
    audit_service::export_jsonl(&store, ORG, audit_service::TimeRange::default(), &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"event_type\":\"audit_log.pruned\""), "recorded");
    assert!(!text.contains("\"sequence\":0,"), "the removed events are gone");

    // A removed event has no proof; a kept one does, in the signed tree.
    let size = report.last_sequence.unwrap() + 1;
    let refused = inclusion_proof(&store, ORG, 0, size).await.unwrap_err();
    assert!(matches!(refused, ProofRequestError::Pruned(_)), "{refused}");
    assert!(refused.to_string().contains("removed under retention"), "{refused}");
    inclusion_proof(&store, ORG, outcome.first_kept, size).await.unwrap();
    // Consistency across the cut, from the checkpoint signed when only the
    // old events existed: the kept hashes still have its root.
    let proof = consistency_proof(&store, ORG, 20, size).await.unwrap();
    assert_eq!(proof.from_root, old_root, "the tree of the first 20 events is the one signed back then");
    verify_consistency(20, size, &proof.proof, &proof.from_root, &proof.to_root).unwrap();
    let small = consistency_proof(&store, ORG, 3, size).await.unwrap();
    verify_consistency(3, size, &small.proof, &small.from_root, &small.to_root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_rebuilds_the_tree_across_the_cut_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_micros(1_765_000_000_000_000));
    old_and_new(&dir, &clock).await;
    let service = start(&dir, clock.clone()).await;
    let outcome = service.prune_expired(ORG, YEAR).await.unwrap().unwrap();
    service.stop().await;
    // Without the stored frontiers the writer rebuilds its tree from the
    // kept hashes and the remaining segments.
    let checkpoints = dir.path().join("logs").join(ORG).join("checkpoints");
    for entry in std::fs::read_dir(&checkpoints).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "frontier") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let service = start(&dir, clock.clone()).await;
    service.capture_durable(sample_draft(ORG, 41)).await.unwrap();
    service.stop().await;
    let store = local(&dir);
    let report = Verifier::new(&store).key(&key()).verify(ORG).await.unwrap();
    assert!(report.valid, "the rebuilt tree signed the same history: {:?}", report.errors);

    // One kept hash changed: the record no longer matches.
    let hashes = dir.path().join("logs").join(ORG).join("pruned").join(format!("{:020}.hashes", outcome.first_kept));
    let mut bytes = std::fs::read(&hashes).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&hashes, &bytes).unwrap();
    let report = Verifier::new(&store).key(&key()).verify(ORG).await.unwrap();
    let first = &report.errors[0];
    assert_eq!(first.kind, FindingKind::CheckpointMismatch, "{first:?}");
    assert!(first.detail.contains("prune record"), "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_pruned_from_a_log_that_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_micros(1_765_000_000_000_000));
    old_and_new(&dir, &clock).await;
    let store = local(&dir);
    let first = store.chunks(ORG).await.unwrap()[0].name.clone();
    let path = dir.path().join("logs").join(ORG).join(&first);
    let text = std::fs::read_to_string(&path).unwrap().replacen("scheduled cleanup #1\"", "scheduled cleanup #7\"", 1);
    std::fs::write(&path, text).unwrap();
    let service = start(&dir, clock.clone()).await;
    let refused = service.prune_expired(ORG, YEAR).await.unwrap_err();
    assert!(refused.to_string().contains("does not verify"), "{refused}");
    service.stop().await;
    assert_eq!(store.chunks(ORG).await.unwrap()[0].name, first, "the evidence stays");
}
