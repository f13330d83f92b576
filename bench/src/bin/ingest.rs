//! Durable ingest throughput against a same-run baseline.
//!
//! Baseline: the same stored lines written to a file by a plain loop of
//! `write` + `fdatasync`, 1024 lines a batch — what the disk allows with no
//! audit logic at all. Measured: `AuditService::capture_durable` from
//! `--callers` concurrent tasks into one organization's log on the same
//! disk. Rounds alternate baseline and service so both see the same machine.
//!
//! `--mode protection` measures the cost of sealing personal data (SPEC §9):
//! the same durable ingest with protection off and on (SQLite key store,
//! local master key), alternated (`--mode protection-only` and
//! `--mode plain-only` run one side, for a profiler); `--subjects N` spreads the events over N
//! data subjects (default 13, the sample's; each new subject costs one
//! synchronous key-store insert).
//!
//! `--mode flood` instead captures `--events` events without waiting for
//! durability, as fast as producers can, and prints the peak RSS: with a
//! bounded queue it stays flat however many events are pushed.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use audit_core::Timestamp;
use audit_core::sample::{sample_draft, sample_log};
use audit_index::sqlite::SqliteIndex;
use audit_service::{AuditConfig, AuditService};
use audit_storage::local::LocalStore;

fn baseline(dir: &std::path::Path, lines: &[Vec<u8>]) -> f64 {
    let path = dir.join("baseline.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let start = Instant::now();
    let mut buf = Vec::with_capacity(1 << 20);
    for batch in lines.chunks(1024) {
        buf.clear();
        for l in batch {
            buf.extend_from_slice(l);
            buf.push(b'\n');
        }
        file.write_all(&buf).unwrap();
        file.sync_data().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    lines.len() as f64 / secs
}

/// Events/s of durable ingest; with an index, also the events/s until the
/// index has caught up with the last commit.
#[derive(Debug, Clone, Copy, Default)]
struct Extras {
    index: bool,
    checkpoints: bool,
    protection: bool,
    /// Distinct data subjects (0: the sample's own).
    subjects: u64,
}

async fn service_durable(dir: &std::path::Path, events: u64, callers: u64, extras: Extras) -> (f64, Option<f64>) {
    let Extras { index: with_index, checkpoints, protection, subjects } = extras;
    let data = dir.join("service");
    let keys = dir.join("service-keys");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&keys);
    std::fs::create_dir_all(&data).unwrap();
    let mut builder = AuditService::builder(Arc::new(LocalStore::new(&data)));
    if protection {
        let master = audit_keystore::LocalMaster(audit_core::personal::MasterKey::from_bytes([5; 32]));
        let store = audit_keystore::sqlite::SqliteSubjectKeys::open(&keys, Arc::new(master)).await.unwrap();
        builder = builder.protection(Arc::new(audit_service::Protection::new(Arc::new(store), Vec::new())));
    }
    if with_index {
        builder = builder.index(Arc::new(SqliteIndex::open(&data.join("index.sqlite3")).unwrap()));
    }
    if checkpoints {
        let signer = audit_core::note::SignerKey::from_seed("bench.local", [1; 32]).unwrap();
        builder = builder.checkpoints(audit_service::CheckpointConfig {
            origin: "bench.local".into(),
            signer,
            interval: std::time::Duration::from_secs(1),
            mirror: None,
        });
    }
    let service = builder.start().await;
    let start = Instant::now();
    let per = events / callers;
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let s = service.clone();
            tokio::spawn(async move {
                for n in 0..per {
                    let mut draft = sample_draft("bench-org", c * per + n);
                    if subjects > 0 {
                        draft.actor_email = Some(format!("user{}@example.com", (c * per + n) % subjects));
                    }
                    s.capture_durable(draft).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let indexed = if with_index {
        service.wait_for_index().await;
        Some((per * callers) as f64 / start.elapsed().as_secs_f64())
    } else {
        None
    };
    service.stop().await;
    std::fs::remove_dir_all(&data).unwrap();
    let _ = std::fs::remove_dir_all(&keys);
    ((per * callers) as f64 / secs, indexed)
}

async fn flood(dir: &std::path::Path, events: u64) {
    let data = dir.join("flood");
    let _ = std::fs::remove_dir_all(&data);
    let service = AuditService::start(Arc::new(LocalStore::new(&data)), AuditConfig::default()).await;
    let start = Instant::now();
    for n in 0..events {
        service.capture(sample_draft("bench-org", n)).await.unwrap();
    }
    service.stop().await;
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&data).unwrap();
    println!(
        "flood: {events} events in {secs:.2} s ({:.0} events/s), queue capacity {}, peak RSS {} KiB",
        events as f64 / secs,
        AuditConfig::default().queue_capacity,
        audit_bench::peak_rss_kib().unwrap_or(0)
    );
}

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 200_000);
    let callers = audit_bench::arg("--callers", 1024);
    let rounds = audit_bench::arg("--rounds", 2);
    let dir = audit_bench::arg_str("--dir")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("audit-bench-ingest");
    std::fs::create_dir_all(&dir).unwrap();
    if audit_bench::arg_str("--mode").as_deref() == Some("flood") {
        flood(&dir, events).await;
        return;
    }
    if let Some(protection @ ("protection-only" | "plain-only")) = audit_bench::arg_str("--mode").as_deref() {
        // For a profiler: the protected run alone, or the same run
        // unprotected (what to subtract).
        let protection = protection == "protection-only";
        let subjects = audit_bench::arg("--subjects", 0);
        let extras = Extras { protection, subjects, ..Extras::default() };
        let (rate, _) = service_durable(&dir, events, callers, extras).await;
        println!("durable ingest, protection {}: {rate:.0} events/s", if protection { "on" } else { "off" });
        return;
    }
    if audit_bench::arg_str("--mode").as_deref() == Some("protection") {
        let subjects = audit_bench::arg("--subjects", 0);
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let plain = Extras { subjects, ..Extras::default() };
            let cpu = || audit_bench::cpu_seconds().unwrap_or(0.0);
            let before = cpu();
            let (off, _) = service_durable(&dir, events, callers, plain).await;
            let between = cpu();
            let (on, _) = service_durable(&dir, events, callers, Extras { protection: true, ..plain }).await;
            let after = cpu();
            let per_event = |secs: f64| secs / events as f64 * 1e6;
            ratios.push(on / off);
            println!(
                "round {round}: durable ingest, protection off {off:.0} events/s ({:.1} µs CPU/event), on {on:.0} events/s ({:.1} µs CPU/event) (ratio {:.2})",
                per_event(between - before),
                per_event(after - between),
                on / off
            );
        }
        println!("mean ratio protection on / off: {:.2}", ratios.iter().sum::<f64>() / ratios.len() as f64);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let lines = sample_log("bench-org", events, Timestamp::from_micros(1_764_000_000_000_000));
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    println!(
        "{events} events, {:.0} bytes/event, {callers} concurrent callers, dir {}",
        bytes as f64 / events as f64,
        dir.display()
    );
    let mut ratios = Vec::new();
    let mut index_ratios = Vec::new();
    let mut checkpoint_ratios = Vec::new();
    for round in 1..=rounds {
        let base = baseline(&dir, &lines);
        let (svc, _) = service_durable(&dir, events, callers, Extras::default()).await;
        let (with_checkpoints, _) =
            service_durable(&dir, events, callers, Extras { checkpoints: true, ..Extras::default() }).await;
        let (with_index, caught_up) =
            service_durable(&dir, events, callers, Extras { index: true, ..Extras::default() }).await;
        checkpoint_ratios.push(with_checkpoints / svc);
        println!(
            "round {round}: with signed checkpoints (1 s interval) {with_checkpoints:.0} events/s, ratio to without {:.2}",
            with_checkpoints / svc
        );
        let caught_up = caught_up.unwrap_or(0.0);
        ratios.push(svc / base);
        index_ratios.push(with_index / svc);
        println!(
            "round {round}: baseline write+fdatasync {base:.0} events/s, capture_durable {svc:.0} events/s (ratio {:.2}); \
             with the SQLite index {with_index:.0} events/s (index caught up at {caught_up:.0} events/s)",
            svc / base
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!("mean ratio capture_durable / baseline: {:.2}", mean(&ratios));
    println!("mean ratio ingest with index / without: {:.2}", mean(&index_ratios));
    println!("mean ratio ingest with checkpoints / without: {:.2}", mean(&checkpoint_ratios));
    let _ = std::fs::remove_dir_all(&dir);
}
