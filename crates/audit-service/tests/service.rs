//! AuditService over real local storage: receipts, batching, deduplication,
//! backpressure, restarts, concurrency.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::sample::sample_draft;
use audit_service::{
    AuditConfig, AuditService, CaptureError, Clock, FullQueuePolicy, TimeRange, Verifier, export_jsonl,
};
use audit_storage::local::LocalStore;

fn store(dir: &tempfile::TempDir) -> Arc<LocalStore> {
    Arc::new(LocalStore::new(dir.path()))
}

/// Batches that would otherwise wait an hour: anything that completes
/// promptly did so because of a flush rule, not the interval.
fn slow_batches() -> AuditConfig {
    AuditConfig { batch_interval: Duration::from_secs(3600), batch_size: 100_000, ..AuditConfig::default() }
}

async fn stored_lines(store: &LocalStore, org: &str) -> Vec<String> {
    let mut out = Vec::new();
    export_jsonl(store, org, TimeRange::default(), &mut out).await.unwrap();
    String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn durable_capture_does_not_wait_for_the_batch_interval() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(store(&dir), slow_batches()).await;
    let receipt = tokio::time::timeout(Duration::from_secs(30), service.capture_durable(sample_draft("org-1", 1)))
        .await
        .expect("a durable capture rides the next flush, not the 1 h interval")
        .unwrap();
    assert_eq!(receipt.receipt.sequence, 0);
    assert!(!receipt.deduplicated);
    // It is in storage now, before stop.
    let lines = stored_lines(&LocalStore::new(dir.path()), "org-1").await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains(&receipt.receipt.hash.to_hex()));
    service.stop().await;
}

#[tokio::test]
async fn concurrent_durable_captures_share_writes() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(store(&dir), slow_batches()).await;
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let s = service.clone();
            tokio::spawn(async move { s.capture_durable(sample_draft("org-1", n)).await.unwrap() })
        })
        .collect();
    let mut seqs = HashSet::new();
    for t in tasks {
        seqs.insert(t.await.unwrap().receipt.sequence);
    }
    assert_eq!(seqs, (0..200).collect());
    let batches = service.health().counters.batches;
    assert!(batches < 200, "group commit: 200 durable captures took {batches} writes");
    service.stop().await;
}

#[tokio::test]
async fn graceful_stop_writes_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(store(&dir), slow_batches()).await;
    for n in 0..500 {
        service.capture(sample_draft("org-1", n)).await.unwrap();
    }
    assert!(stored_lines(&LocalStore::new(dir.path()), "org-1").await.len() < 500, "not yet flushed");
    service.stop().await;
    assert_eq!(stored_lines(&LocalStore::new(dir.path()), "org-1").await.len(), 500);
    assert!(matches!(service.capture(sample_draft("org-1", 9)).await, Err(CaptureError::Stopped)));
}

#[tokio::test]
async fn many_tasks_many_organizations_gapless_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(
        store(&dir),
        AuditConfig { batch_interval: Duration::from_millis(5), ..AuditConfig::default() },
    )
    .await;
    let orgs: Vec<String> = (0..6).map(|i| format!("org-{i}")).collect();
    let mut tasks = Vec::new();
    for org in &orgs {
        for t in 0..4u64 {
            let (s, org) = (service.clone(), org.clone());
            tasks.push(tokio::spawn(async move {
                let mut receipts = Vec::new();
                for n in 0..150 {
                    let r = if n % 3 == 0 {
                        s.capture_durable(sample_draft(&org, t * 1000 + n)).await.map(|r| Some(r.receipt.sequence))
                    } else {
                        s.capture(sample_draft(&org, t * 1000 + n)).await.map(|_| None)
                    };
                    receipts.push(r.unwrap());
                }
                (org, receipts)
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    service.stop().await;
    let storage = LocalStore::new(dir.path());
    for org in &orgs {
        let report = Verifier::new(&storage).danger_unsigned_checkpoints().verify(org).await.unwrap();
        assert!(report.valid, "{org}: {:?}", report.errors);
        assert_eq!(
            (report.total_events, report.first_sequence, report.last_sequence),
            (600, Some(0), Some(599)),
            "{org}"
        );
    }
}

#[tokio::test]
async fn duplicates_and_idempotency_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keyed = |resource: &str| EventDraft {
        idempotency_key: Some("order-42".into()),
        resource_id: Some(resource.into()),
        ..sample_draft("org-1", 7)
    };
    let service = AuditService::start(store(&dir), AuditConfig::default()).await;
    let first = service.capture_durable(sample_draft("org-1", 1)).await.unwrap();
    let keyed_first = service.capture_durable(keyed("a")).await.unwrap();
    service.stop().await;

    let service = AuditService::start(store(&dir), AuditConfig::default()).await;
    let again = service.capture_durable(sample_draft("org-1", 1)).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.receipt, first.receipt);
    let retry = service.capture_durable(keyed("a")).await.unwrap();
    assert!(retry.deduplicated);
    assert_eq!(retry.receipt, keyed_first.receipt);
    let conflict = service.capture_durable(keyed("b")).await.unwrap_err();
    assert!(matches!(conflict, CaptureError::IdempotencyConflict { ref key } if key == "order-42"), "{conflict}");
    let counters = service.health().counters;
    assert_eq!((counters.deduplicated, counters.idempotency_conflicts), (2, 1), "{counters:?}");
    service.stop().await;
    assert_eq!(stored_lines(&LocalStore::new(dir.path()), "org-1").await.len(), 2);
}

#[tokio::test]
async fn failed_logins_are_never_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(store(&dir), AuditConfig::default()).await;
    let failed_login = || EventDraft {
        organization_id: "org-1".into(),
        event_type: "user.login_failed".into(),
        action: Some(Action::Login),
        actor_type: Some(ActorType::Anonymous),
        actor_email: Some("victim@example.com".into()),
        ..Default::default()
    };
    let a = service.capture_durable(failed_login()).await.unwrap();
    let b = service.capture_durable(failed_login()).await.unwrap();
    assert!(!b.deduplicated);
    assert_eq!((a.receipt.sequence, b.receipt.sequence), (0, 1));
    service.stop().await;
}

#[tokio::test]
async fn reject_policy_hands_the_event_back_counts_it_and_records_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { queue_capacity: 5, full_queue_policy: FullQueuePolicy::Reject, ..slow_batches() };
    let service = AuditService::start(store(&dir), config).await;
    for n in 0..5 {
        service.capture(sample_draft("org-1", n)).await.unwrap();
    }
    let rejected = service.capture(sample_draft("org-1", 5)).await.unwrap_err();
    match rejected {
        CaptureError::QueueFull { event } => {
            assert_eq!(event.resource_id.as_deref(), Some("trace-5"))
        }
        other => panic!("expected queue_full, got {other}"),
    }
    assert_eq!(service.health().queue_size, 5);
    service.stop().await;
    let storage = LocalStore::new(dir.path());
    let own = stored_lines(&storage, "org-1").await;
    assert_eq!(own.len(), 6, "the five accepted events and the record of the one refused: {own:?}");
    let system = stored_lines(&storage, "agenttrace-system").await;
    assert_eq!(system.len(), 1, "{system:?}");
    for record in [&system[0], &own[5]] {
        assert!(
            record.contains(r#""event_type":"audit_log.events_dropped""#)
                && record.contains(r#""count":1"#)
                && record.contains(r#""organization_id":"org-1""#)
                && record.contains(r#""reasons":["queue_full"]"#),
            "{record}"
        );
    }
}

#[tokio::test]
async fn backpressure_keeps_the_queue_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        queue_capacity: 16,
        batch_size: 8,
        batch_interval: Duration::from_millis(1),
        ..AuditConfig::default()
    };
    let service = AuditService::start(store(&dir), config).await;
    let producer = {
        let s = service.clone();
        tokio::spawn(async move {
            for n in 0..2000 {
                s.capture(sample_draft("org-1", n)).await.unwrap();
            }
        })
    };
    let mut max_seen = 0;
    while !producer.is_finished() {
        max_seen = max_seen.max(service.health().queue_size);
        tokio::task::yield_now().await;
    }
    producer.await.unwrap();
    assert!(max_seen <= 16, "queue grew to {max_seen}");
    service.stop().await;
    assert_eq!(stored_lines(&LocalStore::new(dir.path()), "org-1").await.len(), 2000);
}

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn timestamps_never_decrease_when_the_clock_steps_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_764_300_000_000_000)));
    let service = AuditService::start_with_clock(store(&dir), AuditConfig::default(), clock.clone()).await;
    let a = service.capture_durable(sample_draft("org-1", 1)).await.unwrap();
    clock.0.fetch_sub(5_000_000, Ordering::SeqCst);
    let b = service.capture_durable(sample_draft("org-1", 2)).await.unwrap();
    assert_eq!(b.receipt.timestamp, a.receipt.timestamp);
    service.stop().await;
    assert!(
        Verifier::new(&LocalStore::new(dir.path())).danger_unsigned_checkpoints().verify("org-1").await.unwrap().valid
    );
}

#[tokio::test]
async fn invalid_events_are_refused_with_the_field_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(store(&dir), AuditConfig::default()).await;
    let bad = EventDraft { actor_email: Some("a\r\nInjected: yes".into()), ..sample_draft("org-1", 1) };
    match service.capture(bad).await {
        Err(CaptureError::Invalid(e)) => assert_eq!(e.field, "actor_email"),
        other => panic!("{other:?}"),
    }
    assert_eq!(service.health().counters.rejected_invalid, 1);
    service.stop().await;
}

#[tokio::test]
async fn time_range_verification_checks_the_link_into_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_764_300_000_000_000)));
    let service = AuditService::start_with_clock(store(&dir), AuditConfig::default(), clock.clone()).await;
    let mut stamps = Vec::new();
    for n in 0..10 {
        stamps.push(service.capture_durable(sample_draft("org-1", n)).await.unwrap().receipt.timestamp);
        clock.0.fetch_add(1_000_000, Ordering::SeqCst);
    }
    service.stop().await;
    let storage = LocalStore::new(dir.path());
    let range = TimeRange { since: Some(stamps[4]), until: Some(stamps[8]) };
    let report = Verifier::new(&storage).danger_unsigned_checkpoints().range(range).verify("org-1").await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!((report.total_events, report.first_sequence, report.last_sequence), (4, Some(4), Some(7)));

    // Break the link into the range: delete event 3 (the anchor becomes 2).
    let path = storage.log_dir("org-1").join("00000000000000000000.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != 3).map(|(_, l)| l).collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let report = Verifier::new(&storage).danger_unsigned_checkpoints().range(range).verify("org-1").await.unwrap();
    assert!(!report.valid);
    assert_eq!(report.errors[0].sequence, Some(4));
}

#[tokio::test]
async fn the_log_records_its_own_start_and_stop_in_the_system_organization() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { record_lifecycle: true, system_organization: "sys".into(), ..AuditConfig::default() };
    let service = AuditService::start(store(&dir), config).await;
    service.capture_durable(sample_draft("org-1", 1)).await.unwrap();
    service.stop().await;
    let system = stored_lines(&LocalStore::new(dir.path()), "sys").await;
    let types: Vec<&str> = system
        .iter()
        .map(|l| {
            if l.contains("audit_log.started") {
                "started"
            } else if l.contains("audit_log.stopped") {
                "stopped"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(types, ["started", "stopped"]);
    assert!(system[0].contains(r#""actor_type":"system""#));
    assert_eq!(
        stored_lines(&LocalStore::new(dir.path()), "org-1").await.len(),
        1,
        "lifecycle events stay out of tenant logs"
    );
}

/// A local store that counts chunk reads (to see what a restart reads).
#[derive(Debug)]
struct CountingStore {
    inner: LocalStore,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl audit_storage::LogStore for CountingStore {
    async fn open_writer(&self, org: &str) -> Result<Box<dyn audit_storage::LogWriter>, audit_storage::StorageError> {
        self.inner.open_writer(org).await
    }
    async fn organizations(&self) -> Result<Vec<String>, audit_storage::StorageError> {
        self.inner.organizations().await
    }
    async fn chunks(&self, org: &str) -> Result<Vec<audit_storage::Chunk>, audit_storage::StorageError> {
        self.inner.chunks(org).await
    }
    async fn read_chunk(
        &self,
        org: &str,
        chunk: &audit_storage::Chunk,
    ) -> Result<Vec<u8>, audit_storage::StorageError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_chunk(org, chunk).await
    }
    async fn put_checkpoint(&self, org: &str, size: u64, note: &[u8]) -> Result<(), audit_storage::StorageError> {
        self.inner.put_checkpoint(org, size, note).await
    }
    async fn latest_checkpoint(&self, org: &str) -> Result<Option<(u64, Vec<u8>)>, audit_storage::StorageError> {
        self.inner.latest_checkpoint(org).await
    }
    async fn put_tiles(
        &self,
        org: &str,
        tiles: &[(audit_core::tiles::TileId, Vec<u8>)],
    ) -> Result<(), audit_storage::StorageError> {
        self.inner.put_tiles(org, tiles).await
    }
    async fn tile(
        &self,
        org: &str,
        tile: &audit_core::tiles::TileId,
    ) -> Result<Option<Vec<u8>>, audit_storage::StorageError> {
        self.inner.tile(org, tile).await
    }
    async fn partial_tile_widths(
        &self,
        org: &str,
        tile: &audit_core::tiles::TileId,
    ) -> Result<Vec<u16>, audit_storage::StorageError> {
        self.inner.partial_tile_widths(org, tile).await
    }
    async fn unexpected_versions(&self, org: &str) -> Result<Vec<String>, audit_storage::StorageError> {
        self.inner.unexpected_versions(org).await
    }
}

/// A restarted writer resumes the Merkle tree from the partial tiles of the
/// newest checkpoint (reading only what follows it), and tiles that do not
/// have the signed root are ignored, not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_the_tree_from_the_checkpoint_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let signer = audit_core::note::SignerKey::from_seed("audit.test", [9; 32]).unwrap();
    let checkpoints = audit_service::CheckpointConfig {
        origin: "audit.test".into(),
        signer,
        interval: Duration::from_secs(3600),
        mirror: None,
    };
    let clock = Arc::new(ManualClock(AtomicI64::new(1_764_000_000_000_000)));
    let start = |reads: Arc<CountingStore>| {
        AuditService::builder(reads)
            .config(AuditConfig { enable_deduplication: false, ..AuditConfig::default() })
            .clock(clock.clone())
            .checkpoints(checkpoints.clone())
            .start()
    };
    let counting = || {
        Arc::new(CountingStore {
            inner: LocalStore::new(dir.path()).with_segment_bytes(2048),
            reads: std::sync::atomic::AtomicUsize::new(0),
        })
    };
    let first = start(counting()).await;
    for n in 0..200 {
        first.capture_durable(sample_draft("org-1", n)).await.unwrap();
    }
    first.stop().await; // writes the checkpoint of 200 events and its tiles
    let segments = audit_storage::LogStore::chunks(&LocalStore::new(dir.path()), "org-1").await.unwrap().len();
    assert!(segments > 20, "{segments} segments");
    // Two days later: nothing is recent enough for deduplication to read back.
    clock.0.fetch_add(2 * 86_400 * 1_000_000, Ordering::SeqCst);

    let store = counting();
    let second = start(store.clone()).await;
    second.capture_durable(sample_draft("org-1", 200)).await.unwrap();
    second.stop().await;
    let reads = store.reads.load(Ordering::SeqCst);
    assert!(reads <= 3, "resumed from the tiles: {reads} of {segments} segments read");

    // Tiles that lie (someone replaced the level 0 partial tile of the
    // checkpoint of 201) are not trusted: the tree is rebuilt from the log,
    // and the log still verifies.
    let tile = dir.path().join("logs/org-1/tile/0/000.p/201");
    let mut perms = std::fs::metadata(&tile).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&tile, perms).unwrap();
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let store = counting();
    let third = start(store.clone()).await;
    third.capture_durable(sample_draft("org-1", 201)).await.unwrap();
    third.stop().await;
    assert!(store.reads.load(Ordering::SeqCst) >= segments, "rebuilt from the whole log");
    let key = audit_core::note::SignerKey::from_seed("audit.test", [9; 32])
        .unwrap()
        .renamed("audit.test/org-1")
        .unwrap()
        .verifier();
    let report = audit_service::Verifier::new(&LocalStore::new(dir.path())).key(&key).verify("org-1").await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 202);
}

/// Proofs come from the tiles the checkpoints wrote — the same proofs as
/// from every leaf, without reading a segment — for the checkpoint's size
/// and any smaller one; a size beyond the newest checkpoint is proved from
/// the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_read_tiles_not_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let signer = audit_core::note::SignerKey::from_seed("audit.test", [9; 32]).unwrap();
    let store = Arc::new(CountingStore {
        inner: LocalStore::new(dir.path()).with_segment_bytes(64 * 1024),
        reads: std::sync::atomic::AtomicUsize::new(0),
    });
    let service = AuditService::builder(store.clone())
        .config(AuditConfig { enable_deduplication: false, ..AuditConfig::default() })
        .checkpoints(audit_service::CheckpointConfig {
            origin: "audit.test".into(),
            signer,
            interval: Duration::from_secs(3600),
            mirror: None,
        })
        .start()
        .await;
    let drafts: Vec<_> = (0..700).map(|n| sample_draft("org-1", n)).collect();
    for chunk in drafts.chunks(100) {
        futures_util::future::try_join_all(chunk.iter().cloned().map(|d| service.capture_durable(d))).await.unwrap();
    }
    service.stop().await; // the checkpoint of 700 and its tiles
    let lines = stored_lines(&LocalStore::new(dir.path()), "org-1").await;
    let leaves: Vec<audit_core::Hash> = lines
        .iter()
        .map(|l| audit_core::merkle::leaf_hash(audit_core::stored::claimed_hash(l.as_bytes()).unwrap().as_bytes()))
        .collect();
    let reads = || store.reads.load(Ordering::SeqCst);
    let before = reads();
    for size in [700u64, 699, 513, 256, 1] {
        let tree = audit_core::merkle::ProofTree::new(&leaves[..size as usize]);
        for seq in [0, size / 2, size - 1] {
            let p = audit_service::proofs::inclusion_proof(store.as_ref(), "org-1", seq, size).await.unwrap();
            assert_eq!(p.proof, tree.inclusion_proof(seq as usize).unwrap(), "{seq} in {size}");
            assert_eq!((p.leaf_hash, p.root), (leaves[seq as usize], tree.root()));
        }
        let c = audit_service::proofs::consistency_proof(store.as_ref(), "org-1", size / 3, size).await.unwrap();
        assert_eq!(c.proof, tree.consistency_proof(size as usize / 3).unwrap());
        assert_eq!((c.from_root, c.to_root), (tree.root_at(size as usize / 3), tree.root()));
    }
    assert_eq!(reads(), before, "no segment read for a proof the tiles hold");
    // An evidence bundle of one project (100 of the 700 events) proves from
    // tiles too: it reads what the export itself reads, nothing more.
    let filter = audit_core::filter::AuditEventFilter {
        project_id: Some("proj-3".into()),
        ..audit_core::filter::AuditEventFilter::for_organization("org-1")
    };
    let export_reads = {
        let before = reads();
        let mut plain = Vec::new();
        audit_service::export_events(
            store.as_ref(),
            &filter,
            audit_service::ExportFormat::Jsonl,
            &mut plain,
            None,
            &mut |_| {},
        )
        .await
        .unwrap();
        reads() - before
    };
    let key = audit_core::note::SignerKey::from_seed("audit.test/org-1", [9; 32]).unwrap().verifier();
    let bundle = |store: Arc<CountingStore>| {
        let filter = filter.clone();
        let key = key.clone();
        async move {
            let before = store.reads.load(Ordering::SeqCst);
            let mut out = Vec::new();
            let summary =
                audit_service::export_evidence(store.as_ref(), &filter, Some(&key), &mut out, None, &mut |_| {})
                    .await
                    .unwrap();
            (summary, out, store.reads.load(Ordering::SeqCst) - before)
        }
    };
    let (summary, out, evidence_reads) = bundle(store.clone()).await;
    assert_eq!((summary.events, summary.tree_size), (100, 700));
    assert_eq!(evidence_reads, export_reads, "no segment read for the proofs");
    let report =
        audit_service::verify_evidence(out.split(|&b| b == b'\n').filter(|l| !l.is_empty()), Some(&key)).unwrap();
    assert!(report.valid, "{report:?}");
    // Each proof is the one the whole tree gives.
    let tree = audit_core::merkle::ProofTree::new(&leaves);
    let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).skip(1).collect();
    for pair in lines.chunks(2) {
        let sequence = audit_core::stored::check_line(pair[0]).unwrap().sequence;
        let expected: Vec<String> =
            tree.inclusion_proof(sequence as usize).unwrap().iter().map(|h| format!("\"{}\"", h.to_hex())).collect();
        let proof = String::from_utf8_lossy(pair[1]);
        assert!(proof.contains(&format!("\"hashes\":[{}]", expected.join(","))), "{sequence}: {proof}");
    }
    // Without its tiles (a log from before tiles), the same bundle comes from every stored hash.
    std::fs::rename(dir.path().join("logs/org-1/tile"), dir.path().join("tile-aside")).unwrap();
    let (_, again, fallback_reads) = bundle(store.clone()).await;
    assert_eq!(again, out, "the same bundle either way");
    assert!(fallback_reads > export_reads, "{fallback_reads} reads without tiles");
    std::fs::rename(dir.path().join("tile-aside"), dir.path().join("logs/org-1/tile")).unwrap();
    // Events after the newest checkpoint: proved from the log.
    let service = AuditService::builder(store.clone())
        .config(AuditConfig { enable_deduplication: false, ..AuditConfig::default() })
        .start()
        .await;
    service.capture_durable(sample_draft("org-1", 700)).await.unwrap();
    service.stop().await;
    let leaf = audit_core::merkle::leaf_hash(
        audit_core::stored::claimed_hash(
            stored_lines(&LocalStore::new(dir.path()), "org-1").await.last().unwrap().as_bytes(),
        )
        .unwrap()
        .as_bytes(),
    );
    let before = reads();
    let p = audit_service::proofs::inclusion_proof(store.as_ref(), "org-1", 700, 701).await.unwrap();
    assert!(reads() > before, "701 is proved from the log");
    audit_core::merkle::verify_inclusion(700, 701, &leaf, &p.proof, &p.root).unwrap();
}

#[tokio::test]
async fn verification_without_a_key_must_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let refused = Verifier::new(&store).verify("org-1").await.unwrap_err();
    assert!(matches!(refused, audit_service::VerifyError::NoKey), "{refused}");
}
