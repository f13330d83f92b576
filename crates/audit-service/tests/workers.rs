//! Log workers over real local storage: idle workers release their files,
//! the number of open logs stays bounded whatever the number of
//! organizations, and an accepted event that storage loses is counted and
//! recorded, never silently gone.

use std::sync::Arc;
use std::time::Duration;

use audit_core::sample::sample_draft;
use audit_service::{AuditConfig, AuditService, TimeRange, Verifier, export_jsonl};
use audit_storage::LogStore;
use audit_storage::local::LocalStore;

async fn stored_lines(store: &LocalStore, org: &str) -> Vec<String> {
    let mut out = Vec::new();
    export_jsonl(store, org, TimeRange::default(), &mut out).await.unwrap();
    String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
}

/// File descriptors this process has open now.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test]
async fn an_idle_worker_releases_its_log_and_the_next_event_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { worker_idle_timeout: Duration::from_millis(200), ..AuditConfig::default() };
    let service = AuditService::start(Arc::new(LocalStore::new(dir.path())), config).await;
    let first = service.capture_durable(sample_draft("org-1", 1)).await.unwrap();
    // While the worker lives, it holds the log's fence.
    let other = LocalStore::new(dir.path());
    assert!(other.open_writer("org-1").await.is_err(), "the worker holds the lock");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(service.health().open_logs, 0);
    drop(other.open_writer("org-1").await.expect("an idle worker released the lock"));
    let second = service.capture_durable(sample_draft("org-1", 2)).await.unwrap();
    assert_eq!((first.receipt.sequence, second.receipt.sequence), (0, 1));
    // Deduplication memory is rebuilt from storage by the new worker.
    let again = service.capture_durable(sample_draft("org-1", 1)).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.receipt, first.receipt);
    service.stop().await;
    let report = Verifier::new(&other).danger_unsigned_checkpoints().verify("org-1").await.unwrap();
    assert!(report.valid && report.total_events == 2, "{report:?}");
}

#[tokio::test]
async fn open_logs_stay_bounded_whatever_the_number_of_organizations() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { max_open_logs: 4, ..AuditConfig::default() };
    let service = AuditService::start(Arc::new(LocalStore::new(dir.path())), config).await;
    let before = open_fds();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let s = service.clone();
            tokio::spawn(async move {
                let org = format!("org-{}", n % 50);
                s.capture_durable(sample_draft(&org, n)).await.map(|r| (org, r))
            })
        })
        .collect();
    let mut max_open = 0;
    let mut receipts = Vec::new();
    for t in tasks {
        max_open = max_open.max(service.health().open_logs);
        receipts.push(t.await.unwrap().expect("every durable capture is stored"));
        max_open = max_open.max(service.health().open_logs);
    }
    assert!(max_open <= 4, "at most 4 logs open at once, saw {max_open}");
    assert!(open_fds() <= before + 4 * 3, "file descriptors bounded: {} then {}", before, open_fds());
    service.stop().await;
    let store = LocalStore::new(dir.path());
    for n in 0..50 {
        let org = format!("org-{n}");
        let report = Verifier::new(&store).danger_unsigned_checkpoints().verify(&org).await.unwrap();
        assert!(report.valid && report.total_events == 4, "{org}: {report:?}");
    }
    assert_eq!(receipts.len(), 200);
}

#[tokio::test]
async fn accepted_events_storage_cannot_take_are_counted_and_recorded_with_their_producer_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(Arc::new(LocalStore::new(dir.path())), AuditConfig::default()).await;
    // Another writer holds org-1's log for good: its worker cannot open it.
    let holder = LocalStore::new(dir.path());
    let _fence = holder.open_writer("org-1").await.unwrap();
    for n in 0..3u64 {
        let mut draft = sample_draft("org-1", n);
        draft.producer_id = Some("app-1".into());
        draft.producer_sequence = Some(10 + n);
        service.capture(draft).await.expect("accepted: the queue has room");
    }
    // The worker gives up after its retries; the reporter records the loss.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if !stored_lines(&holder, "agenttrace-system").await.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(service.health().counters.dropped, 3);
    // The organization's own copy keeps failing (its log is still held) and
    // is retried every second; the system log's copy is written once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let system = stored_lines(&holder, "agenttrace-system").await;
    assert_eq!(system.len(), 1, "{system:?}");
    let record = &system[0];
    for part in [
        r#""event_type":"audit_log.events_dropped""#,
        r#""count":3"#,
        r#""organization_id":"org-1""#,
        r#""reasons":["storage_failed"]"#,
        r#""producers":[{"from":10,"producer_id":"app-1","to":12}]"#,
    ] {
        assert!(record.contains(part), "{part} missing in {record}");
    }
    service.stop().await;
}
