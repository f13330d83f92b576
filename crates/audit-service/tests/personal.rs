//! Personal data protection in the service (SPEC §9) with real parts: local
//! segment files, the SQLite key store, the SQLite index.

use std::sync::Arc;

use audit_core::filter::AuditEventFilter;
use audit_core::personal::MasterKey;
use audit_core::sample::sample_draft;
use audit_index::sqlite::SqliteIndex;
use audit_keystore::LocalMaster;
use audit_keystore::sqlite::SqliteSubjectKeys;
use audit_service::{AuditService, ErasureTarget, Protection, Requester, TimeRange, Verifier, export_jsonl};
use audit_storage::local::LocalStore;

const ORG: &str = "org-p";

async fn start(dir: &std::path::Path) -> AuditService {
    let keys = SqliteSubjectKeys::open(&dir.join("keys"), Arc::new(LocalMaster(MasterKey::from_bytes([4; 32]))))
        .await
        .unwrap();
    AuditService::builder(Arc::new(LocalStore::new(dir.join("log"))))
        .index(Arc::new(SqliteIndex::open(&dir.join("index.sqlite3")).unwrap()))
        .protection(Arc::new(Protection::new(Arc::new(keys), Vec::new())))
        .start()
        .await
}

fn draft(n: u64) -> audit_core::event::EventDraft {
    let mut d = sample_draft(ORG, n);
    d.actor_email = Some("Ada@Example.com".into());
    d
}

#[tokio::test]
async fn a_retry_after_a_restart_is_recognised_though_stored_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path()).await;
    let first = service.capture_durable(draft(1)).await.unwrap();
    let mut keyed = draft(2);
    keyed.idempotency_key = Some("retry-1".into());
    let keyed_first = service.capture_durable(keyed.clone()).await.unwrap();
    service.stop().await;

    let mut stored = Vec::new();
    export_jsonl(&LocalStore::new(dir.path().join("log")), ORG, TimeRange::default(), &mut stored).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored).to_lowercase().contains("ada@example.com"), "stored sealed");

    // A new process: deduplication and idempotency rebuilt from sealed lines.
    let service = start(dir.path()).await;
    let again = service.capture_durable(draft(1)).await.unwrap();
    assert!(again.deduplicated, "the same content within the window is the same event");
    assert_eq!(again.receipt, first.receipt);
    let retried = service.capture_durable(keyed).await.unwrap();
    assert_eq!((retried.deduplicated, &retried.receipt), (true, &keyed_first.receipt));

    // Found by email through the index (blind token), any case, revealed.
    service.wait_for_index().await;
    let by_email =
        AuditEventFilter { actor_email: Some("ada@EXAMPLE.com".into()), ..AuditEventFilter::for_organization(ORG) };
    let page = service.query_events(&by_email).await.unwrap();
    assert_eq!(page.events.len(), 2);
    assert!(page.events.iter().all(|e| e.body.draft().actor_email.as_deref() == Some("Ada@Example.com")));

    // Erased: lookups find nothing, reads show [erased], the log verifies.
    let who = Requester { actor_type: audit_core::event::ActorType::User, actor_id: "dpo".into() };
    let report = service.erase_subject(ORG, &ErasureTarget::Email("ada@example.com".into()), &who).await.unwrap();
    assert_eq!((report.keys_destroyed, report.affected_events), (1, 2));
    assert!(service.query_events(&by_email).await.unwrap().events.is_empty());
    let all = service.query_events(&AuditEventFilter::for_organization(ORG)).await.unwrap();
    let erased = all.events.iter().filter(|e| e.body.draft().actor_email.as_deref() == Some("[erased]")).count();
    assert_eq!(erased, 2);
    // After the erasure the same content is new (in this process as after a
    // restart: an erased event's content can no longer be compared): stored
    // again, under a new key. A retry with an idempotency key still gets
    // its original receipt, before and after a restart.
    let fresh = service.capture_durable(draft(1)).await.unwrap();
    assert!(!fresh.deduplicated);
    let mut keyed = draft(2);
    keyed.idempotency_key = Some("retry-1".into());
    assert_eq!(service.capture_durable(keyed.clone()).await.unwrap().receipt, keyed_first.receipt);
    service.stop().await;
    let service = start(dir.path()).await;
    let after_restart = service.capture_durable(keyed).await.unwrap();
    assert_eq!((after_restart.deduplicated, &after_restart.receipt), (true, &keyed_first.receipt), "not a conflict");
    let report = Verifier::new(service.store().as_ref()).danger_unsigned_checkpoints().verify(ORG).await.unwrap();
    assert!(report.valid, "{report:?}");
    service.stop().await;
}
