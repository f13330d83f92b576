//! Shared helpers of the macro benchmarks.

use std::time::Instant;

/// The same allocator as the `agenttrace-audit` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peak resident set size of this process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `f` and returns its result with the seconds it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// The value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The value of `--name TEXT` on the command line.
pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Writes `events` sample events for `org` (one a millisecond from
/// `start`) through the local store's real append path under `data_dir`,
/// in batches of 10,000 (an fsync each); returns the bytes written.
pub async fn write_sample_log(
    data_dir: &std::path::Path,
    org: &str,
    events: u64,
    start: audit_core::Timestamp,
) -> usize {
    use audit_storage::LogStore as _;
    let store = audit_storage::local::LocalStore::new(data_dir);
    let mut writer = store.open_writer(org).await.expect("open the log");
    assert_eq!(writer.recovery().tail.next_sequence, 0, "{} already holds a log for {org}", data_dir.display());
    let mut total = 0;
    for (i, chunk) in audit_core::sample::sample_log(org, events, start).chunks(10_000).enumerate() {
        let mut bytes = Vec::with_capacity(chunk.iter().map(|l| l.len() + 1).sum());
        for l in chunk {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        total += bytes.len();
        let batch = audit_storage::Batch { first_sequence: (i * 10_000) as u64, count: chunk.len() as u64, bytes };
        writer.append(std::sync::Arc::new(batch)).await.expect("append");
    }
    total
}

/// CPU seconds (user + system) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
