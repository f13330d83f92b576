//! The S3 backend against a real S3 API (moto_server on loopback, started
//! by `.ci/run`): Object Lock on every object, the conditional-write fence,
//! restarts, several writers on one log, outages and uncertain writes.
//! Without a server these tests print why they skip (and fail under
//! `AUDIT_REQUIRE_SERVICES=1`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use audit_core::event::{Action, ActorType, Category, EventDraft, Severity};
use audit_core::verify::FindingKind;
use audit_service::{AuditConfig, AuditService, TimeRange, Verifier};
use audit_storage::{Batch, LogStore, StorageErrorKind};
use audit_storage_s3::S3Store;
use audit_testkit::{FlakyProxy, ProxyMode, TestBucket, fresh_bucket};

const ORG: &str = "org-s3";

fn draft(n: usize) -> EventDraft {
    EventDraft {
        organization_id: ORG.into(),
        event_category: Some(Category::Data),
        event_type: "data.read".into(),
        action: Some(Action::Read),
        severity: Some(Severity::Info),
        actor_type: Some(ActorType::User),
        actor_id: Some(format!("user-{n}")),
        ..Default::default()
    }
}

fn config() -> AuditConfig {
    AuditConfig { enable_deduplication: false, ..AuditConfig::default() }
}

async fn store(bucket: &TestBucket) -> S3Store {
    S3Store::connect(bucket.config()).await.expect("connect to the test bucket")
}

/// Every object under the log's prefix: (key, version id).
async fn objects(bucket: &TestBucket) -> Vec<(String, String)> {
    let out = bucket.client.list_object_versions().bucket(&bucket.bucket).send().await.unwrap();
    out.versions().iter().map(|v| (v.key().unwrap().to_owned(), v.version_id().unwrap().to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_is_locked_in_compliance_mode_and_cannot_be_deleted() {
    let Some(bucket) = fresh_bucket("every_object_is_locked", true).await else { return };
    let store = store(&bucket).await;
    assert!(store.object_lock());
    let service = AuditService::start(Arc::new(store.clone()), config()).await;
    for n in 0..5 {
        service.capture_durable(draft(n)).await.unwrap();
    }
    service.stop().await;
    let objects = objects(&bucket).await;
    assert_eq!(objects.len(), 5, "one object per durable batch: {objects:?}");
    let now = SystemTime::now();
    for (key, version) in &objects {
        let head = bucket.client.head_object().bucket(&bucket.bucket).key(key).send().await.unwrap();
        assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("COMPLIANCE"), "{key}");
        // Retained until commit time + AUDIT_RETENTION_DAYS (1 day in this test).
        let until = head.object_lock_retain_until_date().expect("a retain-until date");
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(until.secs() as u64);
        let left = until.duration_since(now).expect("retention ends in the future");
        assert!(left > Duration::from_secs(86_400 - 120) && left <= Duration::from_secs(86_400), "{left:?}");
        let deleted = bucket.client.delete_object().bucket(&bucket.bucket).key(key).version_id(version).send().await;
        assert!(deleted.is_err(), "deleting a locked version of {key} must be refused");
    }
    let report = Verifier::new(&store).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_without_object_lock_is_refused_unless_waived() {
    let Some(bucket) = fresh_bucket("a_bucket_without_object_lock", false).await else { return };
    let err = S3Store::connect(bucket.config()).await.unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Unexpected);
    assert!(err.to_string().contains("Object Lock") && err.to_string().contains(&bucket.bucket), "{err}");
    let mut waived = bucket.config();
    waived.require_object_lock = false;
    let store = S3Store::connect(waived).await.unwrap();
    assert!(!store.object_lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_the_same_chain() {
    let Some(bucket) = fresh_bucket("a_restart_continues_the_same_chain", true).await else { return };
    for round in 0..3 {
        // A new store each time: nothing is remembered but what S3 holds.
        let service = AuditService::start(Arc::new(store(&bucket).await), config()).await;
        for n in 0..4 {
            let receipt = service.capture_durable(draft(round * 4 + n)).await.unwrap();
            assert_eq!(receipt.receipt.sequence, (round * 4 + n) as u64);
        }
        service.stop().await;
    }
    let report = Verifier::new(&store(&bucket).await).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 12);
}

/// A stored batch for `ORG` at the given position, taken from a scratch
/// local log (so that it is a real, correctly chained batch).
async fn batch_from(log: &AuditService, local: &audit_storage::local::LocalStore, n: usize) -> Batch {
    log.capture_durable(draft(n)).await.unwrap();
    let chunks = local.chunks(ORG).await.unwrap();
    let bytes = local.read_chunk(ORG, chunks.last().unwrap()).await.unwrap();
    let last = bytes[..bytes.len() - 1].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Batch { first_sequence: n as u64, count: 1, bytes: bytes[last..].to_vec() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_loses_the_conditional_write_and_stores_nothing() {
    let Some(bucket) = fresh_bucket("a_stale_writer_loses", true).await else { return };
    // Two scratch logs that fork at sequence 1: their batches 1 differ.
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let locals = (
        Arc::new(audit_storage::local::LocalStore::new(dirs.0.path())),
        Arc::new(audit_storage::local::LocalStore::new(dirs.1.path())),
    );
    let a = AuditService::start(locals.0.clone(), config()).await;
    let genesis = batch_from(&a, &locals.0, 0).await;
    let ours = batch_from(&a, &locals.0, 1).await;
    a.stop().await;
    let b = AuditService::start(locals.1.clone(), config()).await;
    let theirs_genesis = batch_from(&b, &locals.1, 0).await;
    b.stop().await;

    let (s1, s2) = (store(&bucket).await, store(&bucket).await);
    let mut first = s1.open_writer(ORG).await.unwrap();
    first.append(Arc::new(genesis)).await.unwrap();
    // Both writers now read the same tail (sequence 1)…
    let mut w1 = s1.open_writer(ORG).await.unwrap();
    let mut w2 = s2.open_writer(ORG).await.unwrap();
    assert_eq!(w1.recovery().tail, w2.recovery().tail);
    w1.append(Arc::new(ours.clone())).await.unwrap();
    // …and the one that comes second (a paused instance waking up) loses.
    let mut late = ours.clone();
    late.bytes = theirs_genesis.bytes.clone(); // different bytes for the same key
    let err = w2.append(Arc::new(late)).await.unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Conflict, "{err}");
    // It stays stale until reopened.
    assert_eq!(w2.append(Arc::new(ours.clone())).await.unwrap_err().kind, StorageErrorKind::Conflict);
    // The same bytes again (a retried, already-successful PUT) are not a conflict.
    let objects = objects(&bucket).await;
    assert_eq!(objects.len(), 2, "nothing of the losing batch was stored: {objects:?}");
    let report = Verifier::new(&s1).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_log_never_fork_it() {
    let Some(bucket) = fresh_bucket("two_services_on_one_log", true).await else { return };
    let a = AuditService::start(Arc::new(store(&bucket).await), config()).await;
    let b = AuditService::start(Arc::new(store(&bucket).await), config()).await;
    let per_service = 60;
    let run = |service: AuditService, offset: usize| async move {
        let mut sequences = Vec::new();
        for n in 0..per_service {
            // Irregular pacing, so that the two writers interleave and race.
            tokio::time::sleep(Duration::from_millis(((n * 7 + offset) % 13) as u64)).await;
            let r = service.capture_durable(draft(offset + n)).await.expect("a durable receipt despite contention");
            sequences.push(r.receipt.sequence);
        }
        (service, sequences)
    };
    let (a, b) = tokio::join!(tokio::spawn(run(a, 0)), tokio::spawn(run(b, 1000)));
    let ((a, sa), (b, sb)) = (a.unwrap(), b.unwrap());
    let conflicts_of = |s: &AuditService| s.health().counters.write_conflicts;
    let conflicts = conflicts_of(&a) + conflicts_of(&b);
    a.stop().await;
    b.stop().await;
    let mut all: Vec<u64> = sa.iter().chain(&sb).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..2 * per_service as u64).collect::<Vec<_>>(), "every receipt a distinct sequence, no gap");
    let report = Verifier::new(&store(&bucket).await).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 2 * per_service as u64);
    eprintln!("two writers, {} events: {conflicts} lost races re-sequenced", 2 * per_service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_durable_captures_clearly_and_the_service_recovers() {
    let Some(bucket) = fresh_bucket("an_outage_fails_durable_captures", true).await else { return };
    let proxy = FlakyProxy::start(&bucket.endpoint).await;
    let store = S3Store::connect(bucket.config_via(&proxy.endpoint)).await.unwrap();
    let service = AuditService::start(Arc::new(store), config()).await;
    let mut acknowledged = Vec::new();
    for n in 0..3 {
        acknowledged.push(service.capture_durable(draft(n)).await.unwrap().receipt);
    }
    proxy.set(ProxyMode::Down);
    let started = std::time::Instant::now();
    let err = service.capture_durable(draft(3)).await.unwrap_err();
    assert!(err.to_string().contains("S3 did not accept"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "fails after the append deadline, not never");
    proxy.set(ProxyMode::Up);
    // Resumes by itself: no restart, no operator.
    for n in 4..7 {
        acknowledged.push(service.capture_durable(draft(n)).await.unwrap().receipt);
    }
    service.stop().await;
    let direct = S3Store::connect(bucket.config()).await.unwrap();
    let report = Verifier::new(&direct).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    let mut stored = Vec::new();
    audit_service::export_jsonl(&direct, ORG, TimeRange::default(), &mut stored).await.unwrap();
    let text = String::from_utf8(stored).unwrap();
    for r in &acknowledged {
        assert!(text.contains(&r.event_id), "acknowledged event {} is stored", r.event_id);
    }
    assert_eq!(report.total_events, acknowledged.len() as u64, "the failed capture stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_write_is_settled_by_reading_back_not_by_writing_again() {
    let Some(bucket) = fresh_bucket("an_uncertain_write_is_settled", true).await else { return };
    let proxy = FlakyProxy::start(&bucket.endpoint).await;
    let mut cfg = bucket.config_via(&proxy.endpoint);
    cfg.append_deadline = Duration::from_secs(10);
    let store = S3Store::connect(cfg).await.unwrap();
    let service = AuditService::start(Arc::new(store), config()).await;
    service.capture_durable(draft(0)).await.unwrap();
    // The next PUT reaches S3 but its answer is lost; then the network heals.
    proxy.set(ProxyMode::SwallowAnswers);
    let heal = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.set(ProxyMode::Up);
    };
    let (receipt, ()) = tokio::join!(service.capture_durable(draft(1)), heal);
    let receipt = receipt.expect("the write took effect, so the capture succeeds").receipt;
    assert_eq!(receipt.sequence, 1);
    service.stop().await;
    let direct = S3Store::connect(bucket.config()).await.unwrap();
    let report = Verifier::new(&direct).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 2);
    assert_eq!(objects(&bucket).await.len(), 2, "one object per batch, no second version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_delete_markers_and_extra_versions() {
    let Some(bucket) = fresh_bucket("verify_reports_delete_markers", true).await else { return };
    let store = store(&bucket).await;
    let service = AuditService::start(Arc::new(store.clone()), config()).await;
    for n in 0..3 {
        service.capture_durable(draft(n)).await.unwrap();
    }
    service.stop().await;
    // Someone with delete rights hides the middle object behind a marker and
    // writes a replacement under its key.
    let key = store.key(ORG, "00000000000000000001.jsonl");
    bucket.client.delete_object().bucket(&bucket.bucket).key(&key).send().await.unwrap();
    bucket.client.put_object().bucket(&bucket.bucket).key(&key).body(b"{}\n".to_vec().into()).send().await.unwrap();
    // A fresh reader still reads the locked original version…
    let fresh = S3Store::connect(bucket.config()).await.unwrap();
    let report = Verifier::new(&fresh).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert_eq!(report.total_events, 3, "the original version is read, not the replacement");
    // …and reports the tampering.
    assert!(!report.valid);
    let kinds: Vec<FindingKind> = report.errors.iter().map(|f| f.kind).collect();
    assert!(kinds.iter().all(|k| *k == FindingKind::UnexpectedObjectVersion), "{:?}", report.errors);
    let details: Vec<&str> = report.errors.iter().map(|f| f.detail.as_str()).collect();
    assert!(details.iter().any(|d| d.contains("delete marker") && d.contains(&key)), "{details:?}");
    assert!(details.iter().any(|d| d.contains("2 versions") && d.contains(&key)), "{details:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_bucket_setup_works_unchanged() {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    };
    let Some(bucket) = fresh_bucket("the_seed_bucket_setup_works_unchanged", true).await else { return };
    // The seed's `aws s3api put-object-lock-configuration`: COMPLIANCE, 2555 days by default.
    let rule = ObjectLockRule::builder()
        .default_retention(DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(2555).build())
        .build();
    let lock = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).rule(rule).build();
    bucket
        .client
        .put_object_lock_configuration()
        .bucket(&bucket.bucket)
        .object_lock_configuration(lock)
        .send()
        .await
        .unwrap();
    let store = store(&bucket).await;
    let service = AuditService::start(Arc::new(store.clone()), config()).await;
    service.capture_durable(draft(0)).await.unwrap();
    service.stop().await;
    let key = store.key(ORG, "00000000000000000000.jsonl");
    let head = bucket.client.head_object().bucket(&bucket.bucket).key(&key).send().await.unwrap();
    assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("COMPLIANCE"));
    assert!(Verifier::new(&store).danger_unsigned_checkpoints().verify(ORG).await.unwrap().valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reported_failed_that_landed_is_adopted_not_forked() {
    let Some(bucket) = fresh_bucket("a_write_reported_failed_that_landed", true).await else { return };
    let proxy = FlakyProxy::start(&bucket.endpoint).await;
    let mut cfg = bucket.config_via(&proxy.endpoint);
    cfg.append_deadline = Duration::from_millis(800);
    let service = AuditService::start(Arc::new(S3Store::connect(cfg).await.unwrap()), config()).await;
    service.capture_durable(draft(0)).await.unwrap();
    // Every answer is lost for longer than the deadline: the PUT lands, the
    // capture is reported failed (no receipt was given).
    proxy.set(ProxyMode::SwallowAnswers);
    let lost = service.capture_durable(draft(1)).await;
    assert!(lost.is_err(), "no receipt while no answer comes back");
    proxy.set(ProxyMode::Up);
    // The next batch finds its key taken by those bytes, adopts them and follows.
    let next = service.capture_durable(draft(2)).await.unwrap().receipt;
    assert_eq!(next.sequence, 2, "sealed after the landed event, not over it");
    service.stop().await;
    let direct = S3Store::connect(bucket.config()).await.unwrap();
    let report = Verifier::new(&direct).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(report.total_events, 3, "at least once: the event reported failed is stored, once");
    assert_eq!(objects(&bucket).await.len(), 3);
}

/// The backend conformance suite, each check on a fresh Object-Locked bucket.
struct S3Harness;

#[async_trait::async_trait]
impl audit_storage::test_suite::Harness for S3Harness {
    async fn fresh(&self) -> Arc<dyn LogStore> {
        let bucket =
            fresh_bucket("the_s3_backend_passes_the_conformance_suite", true).await.expect("checked at the start");
        Arc::new(store(&bucket).await)
    }
    async fn tear_tail(&self, _: &dyn LogStore, _: &str, _: &[u8]) -> bool {
        false // objects are written whole: there is no torn tail to cut
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_backend_passes_the_conformance_suite() {
    let Some(_) = fresh_bucket("the_s3_backend_passes_the_conformance_suite", true).await else { return };
    audit_storage::test_suite::run_all(&S3Harness).await;
}

/// `AUDIT_S3_SSE`: every object the service writes — segments, signed
/// checkpoints, tiles — carries the server-side encryption asked
/// for (moto records the headers as S3 does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_is_written_with_the_server_side_encryption_asked_for() {
    for (name, sse, expected) in [
        ("sse_aes256", audit_storage_s3::Sse::Aes256, "AES256"),
        ("sse_kms", audit_storage_s3::Sse::Kms(None), "aws:kms"),
    ] {
        let Some(bucket) = fresh_bucket(name, true).await else { return };
        let mut s3 = bucket.config();
        s3.sse = Some(sse);
        let store = S3Store::connect(s3).await.expect("connect to the test bucket");
        let signer = audit_core::note::SignerKey::from_seed("sse.test", [2; 32]).unwrap();
        let service = AuditService::builder(Arc::new(store))
            .config(config())
            .checkpoints(audit_service::CheckpointConfig {
                origin: "sse.test".into(),
                signer,
                interval: Duration::from_millis(1),
                mirror: None,
            })
            .start()
            .await;
        for n in 0..3 {
            service.capture_durable(draft(n)).await.unwrap();
        }
        service.stop().await;
        let objects = objects(&bucket).await;
        let kinds = |suffix: &str| objects.iter().filter(|(k, _)| k.ends_with(suffix)).count();
        assert!(
            kinds(".jsonl") > 0 && kinds(".note") > 0 && objects.iter().any(|(k, _)| k.contains("/tile/")),
            "{objects:?}"
        );
        for (key, _) in &objects {
            let head = bucket.client.head_object().bucket(&bucket.bucket).key(key).send().await.unwrap();
            assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some(expected), "{key}");
        }
    }
}
