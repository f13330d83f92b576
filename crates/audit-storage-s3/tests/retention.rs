//! Retention on S3 against a real S3 API (moto_server): a prune writes its
//! record and hashes outside `logs/` and deletes nothing; once a lifecycle
//! rule has removed the covered objects (simulated here by deleting them
//! the way a rule does: a delete marker, then the old version), the log
//! still verifies with `pruned_through`, and their delete markers are
//! expected — while a delete marker on a kept object is still evidence.

use std::sync::Arc;
use std::time::Duration;

use audit_core::note::SignerKey;
use audit_core::sample::sample_draft;
use audit_core::verify::FindingKind;
use audit_service::{AuditConfig, AuditService, CheckpointConfig, ManualClock, Verifier};
use audit_storage::LogStore;
use audit_storage_s3::S3Store;
use audit_testkit::fresh_bucket;

const ORG: &str = "org-1";

fn signer() -> SignerKey {
    SignerKey::from_seed("audit.test", [4; 32]).unwrap()
}

async fn service(store: &S3Store, micros: i64) -> AuditService {
    let checkpoints = CheckpointConfig {
        origin: "audit.test".into(),
        signer: signer(),
        interval: Duration::from_secs(3600),
        mirror: None,
    };
    AuditService::builder(Arc::new(store.clone()))
        .config(AuditConfig { enable_deduplication: false, ..AuditConfig::default() })
        .clock(Arc::new(ManualClock::at_micros(micros)))
        .checkpoints(checkpoints)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_a_lifecycle_rule_removed_verifies_against_its_prune_record() {
    let Some(bucket) = fresh_bucket("a_prefix_a_lifecycle_rule_removed", false).await else { return };
    bucket
        .client
        .put_bucket_versioning()
        .bucket(&bucket.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut config = bucket.config();
    // Without Object Lock the test can delete what a lifecycle rule would.
    config.require_object_lock = false;
    let store = S3Store::connect(config).await.unwrap();
    let now = 1_765_000_000_000_000i64;
    let old = service(&store, now - 8 * 365 * 86_400 * 1_000_000).await;
    for n in 0..5 {
        old.capture_durable(sample_draft(ORG, n)).await.unwrap();
    }
    old.stop().await;
    let new = service(&store, now).await;
    for n in 5..10 {
        new.capture_durable(sample_draft(ORG, n)).await.unwrap();
    }
    let before: Vec<_> = store.chunks(ORG).await.unwrap();
    let outcome = new.prune_expired(ORG, Duration::from_secs(365 * 86_400)).await.unwrap().expect("old objects");
    new.stop().await;
    assert_eq!(outcome.first_kept, 5, "{outcome:?}");
    let key = signer().renamed(&format!("audit.test/{ORG}")).unwrap().verifier();
    let verify = || async { Verifier::new(&store).key(&key).verify(ORG).await.unwrap() };
    let report = verify().await;
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!((report.pruned_through, report.first_sequence), (Some(4), Some(5)));

    // Nothing was deleted by the prune; the lifecycle rule does that.
    let kept = audit_testkit::s3_client(&bucket.endpoint)
        .list_objects_v2()
        .bucket(&bucket.bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter(|o| o.key().is_some_and(|k| k.ends_with(".jsonl")))
        .count();
    assert!(kept >= before.len(), "{kept} objects after the prune, {} before", before.len());
    let prune_record =
        bucket.client.list_objects_v2().bucket(&bucket.bucket).prefix("retention/").send().await.unwrap();
    assert_eq!(prune_record.contents().len(), 2, "a record and its hashes, outside logs/");

    // The rule expires the old batches: a delete marker, then the version.
    let versions = bucket.client.list_object_versions().bucket(&bucket.bucket).prefix("logs/").send().await.unwrap();
    for v in versions.versions() {
        let name = v.key().unwrap().rsplit('/').next().unwrap();
        let Some(first) = name.strip_suffix(".jsonl").and_then(|d| d.parse::<u64>().ok()) else { continue };
        if first < 5 {
            let k = v.key().unwrap();
            bucket.client.delete_object().bucket(&bucket.bucket).key(k).send().await.unwrap();
            bucket
                .client
                .delete_object()
                .bucket(&bucket.bucket)
                .key(k)
                .version_id(v.version_id().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let fresh = S3Store::connect({
        let mut c = bucket.config();
        c.require_object_lock = false;
        c
    })
    .await
    .unwrap();
    let report = Verifier::new(&fresh).key(&key).verify(ORG).await.unwrap();
    assert!(report.valid, "the removed prefix is covered by the record: {:?}", report.errors);
    assert_eq!(report.pruned_through, Some(4));

    // A delete marker on a kept object is still evidence.
    let kept_key = fresh.key(ORG, &fresh.chunks(ORG).await.unwrap()[1].name);
    bucket.client.delete_object().bucket(&bucket.bucket).key(&kept_key).send().await.unwrap();
    let report = Verifier::new(&fresh).key(&key).verify(ORG).await.unwrap();
    assert!(report.errors.iter().any(|e| e.kind == FindingKind::UnexpectedObjectVersion), "{report:?}");
}
