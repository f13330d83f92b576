//! Incremental verification over real local storage: a run resumed after a
//! verified prefix reads only the events appended since, holds them to the
//! newest checkpoints through the prefix's Merkle tree, and catches a log
//! cut or rolled back below the prefix. What it cannot see (a rewrite inside
//! the prefix) a full run still finds.

use std::sync::Arc;
use std::time::Duration;

use audit_core::note::{SignerKey, VerifierKey};
use audit_core::sample::sample_draft;
use audit_core::verify::FindingKind;
use audit_service::{AuditConfig, AuditService, CheckpointConfig, VerifiedThrough, Verifier};
use audit_storage::LogStore;
use audit_storage::local::LocalStore;

const ORG: &str = "org-1";

fn signer() -> SignerKey {
    SignerKey::from_seed("audit.test", [7; 32]).unwrap()
}

fn key() -> VerifierKey {
    signer().renamed(&format!("audit.test/{ORG}")).unwrap().verifier()
}

fn local(dir: &tempfile::TempDir) -> LocalStore {
    // Small segments: the log spans many files, the prefix ends mid-log.
    LocalStore::new(dir.path()).with_segment_bytes(4096)
}

/// Appends events `from..to` and stops, which writes a checkpoint of the
/// whole log.
async fn append(dir: &tempfile::TempDir, from: u64, to: u64) {
    let checkpoints = CheckpointConfig {
        origin: "audit.test".into(),
        signer: signer(),
        interval: Duration::from_secs(3600),
        mirror: None,
    };
    let service = AuditService::builder(Arc::new(local(dir)))
        .config(AuditConfig { enable_deduplication: false, ..AuditConfig::default() })
        .checkpoints(checkpoints)
        .start()
        .await;
    for n in from..to {
        service.capture_durable(sample_draft(ORG, n)).await.unwrap();
    }
    service.stop().await;
}

async fn full(store: &LocalStore) -> (audit_core::verify::VerificationReport, Option<VerifiedThrough>) {
    let key = key();
    Verifier::new(store).key(&key).verify_and_keep(ORG).await.unwrap()
}

async fn after(
    store: &LocalStore,
    through: &VerifiedThrough,
) -> (audit_core::verify::VerificationReport, Option<VerifiedThrough>) {
    let key = key();
    Verifier::new(store).key(&key).after(through).verify_and_keep(ORG).await.unwrap()
}

fn first_error(report: &audit_core::verify::VerificationReport) -> (FindingKind, String) {
    assert!(!report.valid);
    (report.errors[0].kind, report.errors[0].detail.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_checks_only_what_was_appended_and_keeps_its_place() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir, 0, 120).await;
    let store = local(&dir);
    let (report, through) = full(&store).await;
    assert!(report.valid, "{:?}", report.errors);
    let through = through.expect("a valid run with a checkpoint can be resumed");
    assert_eq!(through.size(), 120);

    append(&dir, 120, 170).await;
    let (report, next) = after(&store, &through).await;
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!((report.total_events, report.first_sequence, report.last_sequence), (50, Some(120), Some(169)));
    let next = next.unwrap();
    assert_eq!(next.size(), 170);
    let (whole, whole_through) = full(&store).await;
    assert_eq!(whole_through.map(|t| t.root()), Some(next.root()), "the same tree as a full run: {whole:?}");

    // Nothing new: nothing read, and the place is kept.
    let (report, again) = after(&store, &next).await;
    assert!(report.valid && report.total_events == 0, "{report:?}");
    assert_eq!(again.as_ref(), Some(&next));

    // A rewrite inside the prefix is not read by an incremental run: the
    // next full run is what finds it (hence AUDIT_VERIFY_FULL_SCHEDULE).
    let first_segment = store.chunks(ORG).await.unwrap()[0].name.clone();
    let path = dir.path().join("logs").join(ORG).join(&first_segment);
    let text = std::fs::read_to_string(&path).unwrap();
    let forged = text.replacen("scheduled cleanup #0", "scheduled cleanup #9", 1);
    assert_ne!(forged, text, "the first event has a reason to change");
    std::fs::write(&path, forged).unwrap();
    assert!(after(&store, &next).await.0.valid, "incremental runs do not reread the prefix");
    let (kind, _) = first_error(&full(&store).await.0);
    assert_eq!(kind, FindingKind::HashMismatch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_below_the_verified_prefix_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir, 0, 80).await;
    let store = local(&dir);
    let through = full(&store).await.1.unwrap();
    // Someone removes the tail of the log: the last segment loses lines.
    let chunks = store.chunks(ORG).await.unwrap();
    let last = dir.path().join("logs").join(ORG).join(&chunks.last().unwrap().name);
    let text = std::fs::read_to_string(&last).unwrap();
    let kept: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&last, kept).unwrap();
    let (report, next) = after(&store, &through).await;
    let (kind, detail) = first_error(&report);
    assert_eq!(kind, FindingKind::Truncated, "{detail}");
    assert!(detail.contains("80 events verified earlier"), "{detail}");
    assert!(next.is_none(), "nothing to resume from after a failure: the next run is full");

    // Or removes the whole last segment.
    std::fs::remove_file(&last).unwrap();
    let (kind, detail) = first_error(&after(&store, &through).await.0);
    assert_eq!(kind, FindingKind::Truncated);
    assert!(detail.contains("is gone"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rolled_back_and_regrown_is_caught_by_the_resumed_tree() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir, 0, 60).await;
    // A copy of the store at 60 events, to restore later.
    let snapshot = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), snapshot.path());
    append(&dir, 60, 100).await;
    let store = local(&dir);
    let through = full(&store).await.1.unwrap();
    assert_eq!(through.size(), 100);

    // Restored to 60: the newest checkpoint went back in time.
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(snapshot.path(), dir.path());
    let (kind, detail) = first_error(&after(&store, &through).await.0);
    assert!(matches!(kind, FindingKind::InconsistentCheckpoint | FindingKind::Truncated), "{kind:?}: {detail}");

    // ... and regrown past 100 with other events: same sizes, another tree.
    append(&dir, 500, 560).await;
    let report = after(&store, &through).await.0;
    assert!(!report.valid, "a regrown log does not pass as the one verified: {report:?}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
