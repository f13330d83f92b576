//! Issue 14's benchmark: an incremental verification (what a scheduled run
//! does) after `--new` events (default 10,000) appended to a log of
//! `--events` events (default 10M), against a full verification of a log
//! holding only `--new` events, timed alternately in the same run.
//!
//! ```text
//! cargo run --release -p audit-bench --bin verify_incremental -- --dir /path/on/disk [--events N] [--new M] [--rounds R]
//! ```
//!
//! Both logs are written through the local store's append path with a
//! signed checkpoint at their end, exactly what `serve` leaves behind; the
//! big log is verified whole once (timed too) to get the place the
//! incremental runs resume from.

use std::time::Instant;

use audit_core::Hash;
use audit_core::Timestamp;
use audit_core::merkle::{Frontier, leaf_hash};
use audit_core::note::{Checkpoint, SignerKey, VerifierKey, sign};
use audit_service::{VerifiedThrough, Verifier};
use audit_storage::LogStore as _;
use audit_storage::local::LocalStore;

const ORG: &str = "bench-org";
const ORIGIN: &str = "bench.example";

fn signer() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [3; 32]).unwrap().renamed(&format!("{ORIGIN}/{ORG}")).unwrap()
}

/// The `hash` member of a sample line (its first `"hash":"` member: the
/// sample events have no other).
fn line_hash(line: &[u8]) -> Hash {
    let at = line.windows(8).position(|w| w == b"\"hash\":\"").expect("a hash member") + 8;
    Hash::from_hex(std::str::from_utf8(&line[at..at + 64]).unwrap()).unwrap()
}

/// Appends sample events `from..to` to `dir`'s log, growing `tree`, then
/// signs and stores a checkpoint of the whole log. Returns the last hash.
async fn grow(dir: &std::path::Path, from: u64, to: u64, mut previous: Hash, tree: &mut Frontier) -> Hash {
    let store = LocalStore::new(dir);
    let mut writer = store.open_writer(ORG).await.expect("open the log");
    assert_eq!(writer.recovery().tail.next_sequence, from, "{} holds another log", dir.display());
    let start = Timestamp::from_micros(1_764_000_000_000_000);
    let mut first = from;
    while first < to {
        let last = (first + 10_000).min(to);
        let lines = audit_core::sample::sample_log_from(ORG, first..last, previous, start);
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in &lines {
            previous = line_hash(l);
            tree.push(leaf_hash(previous.as_bytes()));
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        let batch = audit_storage::Batch { first_sequence: first, count: last - first, bytes };
        writer.append(std::sync::Arc::new(batch)).await.expect("append");
        first = last;
    }
    drop(writer);
    let checkpoint = Checkpoint { origin: format!("{ORIGIN}/{ORG}"), size: to, root: tree.root() };
    let note = sign(&checkpoint.to_text(), &signer()).unwrap();
    store.put_checkpoint(ORG, to, note.as_bytes()).await.expect("store the checkpoint");
    previous
}

async fn verify(
    dir: &std::path::Path,
    key: &VerifierKey,
    after: Option<&VerifiedThrough>,
) -> (f64, u64, Option<VerifiedThrough>) {
    let store = LocalStore::new(dir);
    let mut verifier = Verifier::new(&store).key(key);
    if let Some(through) = after {
        verifier = verifier.after(through);
    }
    let started = Instant::now();
    let (report, through) = verifier.verify_and_keep(ORG).await.expect("verify");
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.valid, "{:?}", report.errors);
    (seconds, report.total_events, through)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 10_000_000);
    let new = audit_bench::arg("--new", 10_000);
    let rounds = audit_bench::arg("--rounds", 7);
    let dir = std::path::PathBuf::from(
        audit_bench::arg_str("--dir").expect("--dir DIR (on the disk to measure) is required"),
    );
    let (big, small) = (dir.join("big"), dir.join("small"));
    for d in [&big, &small] {
        if std::fs::read_dir(d).is_ok() {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    let key = signer().verifier();

    let started = Instant::now();
    let mut tree = Frontier::new();
    let last = grow(&big, 0, events, Hash::GENESIS, &mut tree).await;
    eprintln!("wrote {events} events in {:.0} s", started.elapsed().as_secs_f64());
    let (full_seconds, _, through) = verify(&big, &key, None).await;
    let through = through.expect("a valid log with a checkpoint can be resumed");
    println!("full verification of {events} events: {full_seconds:.2} s");
    grow(&big, events, events + new, last, &mut tree).await;
    grow(&small, 0, new, Hash::GENESIS, &mut Frontier::new()).await;

    let (mut incremental, mut alone) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (s, n, _) = verify(&big, &key, Some(&through)).await;
        assert_eq!(n, new, "the incremental run read only the new events");
        incremental.push(s);
        let (s, n, _) = verify(&small, &key, None).await;
        assert_eq!(n, new);
        alone.push(s);
    }
    let (i, a) = (median(incremental.clone()), median(alone.clone()));
    println!("incremental run after {new} new events on {events}: {:?} ms (median {:.1})", ms(&incremental), i * 1e3);
    println!("verifying a log of those {new} events alone: {:?} ms (median {:.1})", ms(&alone), a * 1e3);
    println!("ratio incremental / alone: {:.2} (aim <= 2)", i / a);
}

fn ms(v: &[f64]) -> Vec<u64> {
    v.iter().map(|s| (s * 1e3).round() as u64).collect()
}
