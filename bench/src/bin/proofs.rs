//! Issue 16's benchmark: inclusion and consistency proofs on a log of
//! `--events` events (default 10M) from its tiles, against the same proofs
//! computed by reading the log (what every proof cost before tiles), in the
//! same run; and an evidence bundle of 1,000 events (a time window) made
//! with tiles and without.
//!
//! ```text
//! cargo run --release -p audit-bench --bin proofs -- --dir /path/on/disk [--events N] [--proofs P]
//! ```
//!
//! The log is written through the local store's append path with its tiles
//! and a signed checkpoint, as `serve` leaves it (kept in `--dir` and
//! reused by the next run with the same `--events`). Each proof goes
//! through `audit_service::proofs`, as the proof routes and `prove` do.

use std::time::Instant;

use async_trait::async_trait;
use audit_core::Hash;
use audit_core::Timestamp;
use audit_core::note::{Checkpoint, SignerKey, sign};
use audit_core::tiles::TileBuilder;
use audit_storage::local::LocalStore;
use audit_storage::{Chunk, LogStore, LogWriter, StorageError};

const ORG: &str = "bench-org";
const ORIGIN: &str = "bench.example";

/// The `hash` member of a sample line.
fn line_hash(line: &[u8]) -> Hash {
    let at = line.windows(8).position(|w| w == b"\"hash\":\"").expect("a hash member") + 8;
    Hash::from_hex(std::str::from_utf8(&line[at..at + 64]).unwrap()).unwrap()
}

/// Writes `events` sample events with their tiles and a checkpoint.
async fn build(store: &LocalStore, events: u64) {
    let mut writer = store.open_writer(ORG).await.expect("open the log");
    assert_eq!(writer.recovery().tail.next_sequence, 0, "the directory holds another log");
    let start = Timestamp::from_micros(1_764_000_000_000_000);
    let (mut first, mut previous, mut tree) = (0, Hash::GENESIS, TileBuilder::new());
    while first < events {
        let last = (first + 10_000).min(events);
        let lines = audit_core::sample::sample_log_from(ORG, first..last, previous, start);
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in &lines {
            previous = line_hash(l);
            tree.push(&previous);
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        let batch = audit_storage::Batch { first_sequence: first, count: last - first, bytes };
        writer.append(std::sync::Arc::new(batch)).await.expect("append");
        store.put_tiles(ORG, &tree.take_full()).await.expect("tiles");
        first = last;
    }
    drop(writer);
    store.put_tiles(ORG, &tree.partials()).await.expect("partial tiles");
    let signer = SignerKey::from_seed(ORIGIN, [3; 32]).unwrap().renamed(&format!("{ORIGIN}/{ORG}")).unwrap();
    let checkpoint = Checkpoint { origin: format!("{ORIGIN}/{ORG}"), size: events, root: tree.root() };
    store.put_checkpoint(ORG, events, sign(&checkpoint.to_text(), &signer).unwrap().as_bytes()).await.unwrap();
}

/// The local store without its tiles: proofs read the log, as before tiles.
#[derive(Debug)]
struct WithoutTiles(LocalStore);

#[async_trait]
impl LogStore for WithoutTiles {
    async fn open_writer(&self, org: &str) -> Result<Box<dyn LogWriter>, StorageError> {
        self.0.open_writer(org).await
    }
    async fn organizations(&self) -> Result<Vec<String>, StorageError> {
        self.0.organizations().await
    }
    async fn chunks(&self, org: &str) -> Result<Vec<Chunk>, StorageError> {
        self.0.chunks(org).await
    }
    async fn read_chunk(&self, org: &str, chunk: &Chunk) -> Result<Vec<u8>, StorageError> {
        self.0.read_chunk(org, chunk).await
    }
    async fn read_chunk_into(&self, org: &str, chunk: &Chunk, buf: &mut Vec<u8>) -> Result<(), StorageError> {
        self.0.read_chunk_into(org, chunk, buf).await
    }
    async fn put_checkpoint(&self, org: &str, size: u64, note: &[u8]) -> Result<(), StorageError> {
        self.0.put_checkpoint(org, size, note).await
    }
    async fn latest_checkpoint(&self, org: &str) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.0.latest_checkpoint(org).await
    }
    async fn unexpected_versions(&self, org: &str) -> Result<Vec<String>, StorageError> {
        self.0.unexpected_versions(org).await
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// xorshift: reproducible positions without a dependency.
fn positions(n: usize, below: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % below
        })
        .collect()
}

/// One evidence bundle of the 1,000 events `filter` selects: its time (ms) and bytes.
async fn evidence(
    store: &dyn LogStore,
    filter: &audit_core::filter::AuditEventFilter,
    key: &audit_core::note::VerifierKey,
) -> (f64, Vec<u8>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let summary = audit_service::export_evidence(store, filter, Some(key), &mut out, None, &mut |_| {})
        .await
        .expect("an evidence bundle");
    assert_eq!(summary.events, 1000, "the window holds 1,000 events");
    (started.elapsed().as_secs_f64() * 1e3, out)
}

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 10_000_000);
    let proofs = audit_bench::arg("--proofs", 1000) as usize;
    let dir = std::path::PathBuf::from(
        audit_bench::arg_str("--dir").expect("--dir DIR (on the disk to measure) is required"),
    )
    .join(format!("proofs-{events}"));
    let store = LocalStore::new(&dir);
    if store.latest_checkpoint(ORG).await.unwrap().map(|(s, _)| s) != Some(events) {
        if std::fs::read_dir(&dir).is_ok() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let started = Instant::now();
        build(&store, events).await;
        eprintln!("wrote {events} events and their tiles in {:.0} s", started.elapsed().as_secs_f64());
    }

    let mut inclusion = Vec::with_capacity(proofs);
    for seq in positions(proofs, events) {
        let started = Instant::now();
        let p = audit_service::proofs::inclusion_proof(&store, ORG, seq, events).await.expect("a proof");
        inclusion.push(started.elapsed().as_secs_f64() * 1e3);
        audit_core::merkle::verify_inclusion(seq, events, &p.leaf_hash, &p.proof, &p.root).expect("valid");
    }
    let mut consistency = Vec::with_capacity(proofs);
    for from in positions(proofs, events) {
        let started = Instant::now();
        audit_service::proofs::consistency_proof(&store, ORG, from.max(1), events).await.expect("a proof");
        consistency.push(started.elapsed().as_secs_f64() * 1e3);
    }
    // The same proofs from the log (a few: each reads every event).
    let without = WithoutTiles(store.clone());
    let mut from_log = Vec::new();
    for seq in positions(3, events) {
        let started = Instant::now();
        let p = audit_service::proofs::inclusion_proof(&without, ORG, seq, events).await.expect("a proof");
        from_log.push(started.elapsed().as_secs_f64() * 1e3);
        let tiles = audit_service::proofs::inclusion_proof(&store, ORG, seq, events).await.unwrap();
        assert_eq!(p, tiles, "the same proof either way");
    }
    // An evidence bundle of 1,000 events (a time window in the middle of
    // the log; sample events are 1 ms apart), with tiles and without.
    let key = SignerKey::from_seed(ORIGIN, [3; 32]).unwrap().renamed(&format!("{ORIGIN}/{ORG}")).unwrap().verifier();
    let start = Timestamp::from_micros(1_764_000_000_000_000);
    let middle = (events / 2) as i64;
    let filter = audit_core::filter::AuditEventFilter {
        start_time: Some(start.add_micros(middle * 1000)),
        end_time: Some(start.add_micros((middle + 1000) * 1000)),
        ..audit_core::filter::AuditEventFilter::for_organization(ORG)
    };
    let mut bundle_tiles = Vec::new();
    let mut bundle_log = Vec::new();
    let mut reference = None;
    for round in 0..5 {
        let (ms, out) = evidence(&store, &filter, &key).await;
        bundle_tiles.push(ms);
        if round < 2 {
            let (ms, from_log) = evidence(&without, &filter, &key).await;
            bundle_log.push(ms);
            assert_eq!(out, from_log, "the same bundle either way");
        }
        reference.get_or_insert(out);
    }
    for v in [&mut inclusion, &mut consistency, &mut from_log, &mut bundle_tiles, &mut bundle_log] {
        v.sort_by(f64::total_cmp);
    }
    let row = |name: &str, v: &[f64]| {
        println!(
            "{name}: {} proofs, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v[v.len() - 1]
        );
    };
    row(&format!("inclusion from tiles, tree of {events}"), &inclusion);
    row(&format!("consistency from tiles, tree of {events}"), &consistency);
    row(&format!("inclusion from the log (before tiles), tree of {events}"), &from_log);
    println!("ratio p99 tiles / median log: {:.5}", percentile(&inclusion, 0.99) / percentile(&from_log, 0.5));
    let bundle = |name: &str, v: &[f64]| {
        println!("{name}: {} runs, median {:.1} ms, max {:.1} ms", v.len(), percentile(v, 0.5), v[v.len() - 1]);
    };
    bundle(&format!("evidence bundle of 1,000 events from tiles, log of {events}"), &bundle_tiles);
    bundle(&format!("evidence bundle of 1,000 events from the log (before tiles), log of {events}"), &bundle_log);
    println!(
        "ratio evidence tiles / log (medians): {:.4}",
        percentile(&bundle_tiles, 0.5) / percentile(&bundle_log, 0.5)
    );
}
