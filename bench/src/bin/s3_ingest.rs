//! Durable ingest on S3 (an S3 API on loopback, e.g. moto_server), by batch
//! size, against a same-run baseline.
//!
//! Baseline: plain conditional, Object-Locked PUTs of the same number of
//! objects of the same size, one after another, with the raw SDK client —
//! what the S3 endpoint allows with no audit logic. Measured:
//! `AuditService::capture_durable` from `2 × batch` concurrent callers into
//! one organization, with batches capped at `batch` events (one object per
//! batch). Prints events/s, the mean events per object, and the ratio of
//! objects/s to the baseline's.
//!
//!   s3_ingest --endpoint http://127.0.0.1:PORT [--events N] [--batches 1,10,100,1000]

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::sample::sample_draft;
use audit_service::{AuditConfig, AuditService};
use audit_storage_s3::S3Store;

async fn bucket(endpoint: &str) -> audit_testkit::TestBucket {
    // SAFETY of the test switch: this bench needs the server, so a missing one is fatal.
    audit_testkit::fresh_bucket("s3_ingest bench", true).await.unwrap_or_else(|| panic!("no S3 API at {endpoint}"))
}

/// Objects/s of plain conditional, locked PUTs of `size` bytes.
async fn baseline(b: &audit_testkit::TestBucket, objects: usize, size: usize) -> f64 {
    let body = vec![b'x'; size];
    let until = aws_sdk_s3::primitives::DateTime::from_secs(
        (std::time::SystemTime::now() + Duration::from_secs(86_400))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let start = Instant::now();
    for n in 0..objects {
        b.client
            .put_object()
            .bucket(&b.bucket)
            .key(format!("baseline/{size}/{n:020}"))
            .body(body.clone().into())
            .if_none_match("*")
            .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until)
            .send()
            .await
            .unwrap();
    }
    objects as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let endpoint = audit_bench::arg_str("--endpoint").expect("--endpoint http://127.0.0.1:PORT (moto_server)");
    // The testkit reads the endpoint from the environment.
    assert_eq!(
        std::env::var("AUDIT_TEST_S3_ENDPOINT").ok().as_deref(),
        Some(endpoint.as_str()),
        "set AUDIT_TEST_S3_ENDPOINT to the same endpoint"
    );
    let events = audit_bench::arg("--events", 2000) as usize;
    let batches: Vec<usize> = audit_bench::arg_str("--batches")
        .unwrap_or_else(|| "1,10,100,1000".into())
        .split(',')
        .map(|b| b.trim().parse().expect("--batches: whole numbers"))
        .collect();
    let line_bytes = 560; // a typical stored event (sample_draft), for the baseline's object size
    for batch in batches {
        let b = bucket(&endpoint).await;
        let store = S3Store::connect(b.config()).await.unwrap();
        let config = AuditConfig {
            enable_deduplication: false,
            max_batch_events: batch,
            batch_size: batch,
            ..AuditConfig::default()
        };
        let service = AuditService::start(Arc::new(store), config).await;
        let callers = (2 * batch).max(1);
        let per_caller = events.div_ceil(callers);
        let start = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|c| {
                let service = service.clone();
                tokio::spawn(async move {
                    for n in 0..per_caller {
                        service.capture_durable(sample_draft("bench-org", (c * per_caller + n) as u64)).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let health = service.health();
        let count = |name: &str| health.counters.named().iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);
        let (committed, objects) = (count("committed"), count("batches"));
        service.stop().await;
        // A restart: the first durable capture opens the log again (listing,
        // tail, and reading back the deduplication/idempotency window).
        let restarted = AuditService::start(
            Arc::new(S3Store::connect(b.config()).await.unwrap()),
            AuditConfig { enable_deduplication: false, ..AuditConfig::default() },
        )
        .await;
        let t = Instant::now();
        restarted.capture_durable(sample_draft("bench-org", u64::MAX / 2)).await.unwrap();
        let reopen = t.elapsed().as_secs_f64();
        restarted.stop().await;
        let per_object = committed as f64 / objects.max(1) as f64;
        let base = baseline(&b, (objects as usize).clamp(20, 300), (per_object * line_bytes as f64) as usize).await;
        let ours = objects as f64 / secs;
        println!(
            "batch ≤ {batch:>4}: {:>7.0} events/s durable, {per_object:>6.1} events/object, {ours:>6.1} objects/s vs plain PUTs {base:>6.1} objects/s (ratio {:.2}); first capture after a restart {:.2} s ({objects} objects to read back)",
            committed as f64 / secs,
            ours / base,
            reopen
        );
    }
}
