//! Writes a valid log of `--events N` sample events for `--org` under
//! `--data-dir`, through the local store's real append path (fsync per batch
//! of 10,000), for benchmarks of everything that reads logs.

use audit_core::Timestamp;

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 1_000_000);
    let org = audit_bench::arg_str("--org").unwrap_or_else(|| "bench-org".into());
    let data_dir = audit_bench::arg_str("--data-dir").expect("--data-dir DIR is required");
    let bytes_total = audit_bench::write_sample_log(
        std::path::Path::new(&data_dir),
        &org,
        events,
        Timestamp::from_micros(1_764_000_000_000_000),
    )
    .await;
    eprintln!("wrote {events} events ({:.1} MiB) for {org} under {data_dir}", bytes_total as f64 / 1048576.0);
}
