//! Writes a valid log of `--events N` sample events for `--org` under
//! `--data-dir`, through the local store's real append path (fsync per batch
//! of 10,000), for benchmarks of everything that reads logs.

use std::sync::Arc;

use audit_core::Timestamp;
use audit_core::sample::sample_log;
use audit_storage::local::LocalStore;
use audit_storage::{Batch, LogStore};

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 1_000_000);
    let org = audit_bench::arg_str("--org").unwrap_or_else(|| "bench-org".into());
    let data_dir = audit_bench::arg_str("--data-dir").expect("--data-dir DIR is required");
    let store = LocalStore::new(&data_dir);
    let mut writer = store.open_writer(&org).await.expect("open the log");
    assert_eq!(writer.recovery().tail.next_sequence, 0, "{data_dir} already holds a log for {org}");
    let lines = sample_log(&org, events, Timestamp::from_micros(1_764_000_000_000_000));
    let mut bytes_total = 0usize;
    for (i, chunk) in lines.chunks(10_000).enumerate() {
        let mut bytes = Vec::with_capacity(chunk.iter().map(|l| l.len() + 1).sum());
        for l in chunk {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        bytes_total += bytes.len();
        let batch = Batch { first_sequence: (i * 10_000) as u64, count: chunk.len() as u64, bytes };
        writer.append(Arc::new(batch)).await.expect("append");
    }
    eprintln!("wrote {events} events ({:.1} MiB) for {org} under {data_dir}", bytes_total as f64 / 1048576.0);
}
