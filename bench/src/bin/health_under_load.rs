//! `/health` latency while range verifications run, against `/health`
//! latency on the idle server in the same run (issue: no single client can
//! stall the service). Each verifying client asks for a range no other has
//! asked for (its start moves a microsecond each time), so nothing is
//! shared between them: every request reads and hashes its range.
//!
//! `health_under_load --events 100000 --verifiers 8 --dir DIR`

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use audit_core::Timestamp;
use audit_index::sqlite::SqliteIndex;
use audit_server::{AppState, ConnectionLimits, app, serve};
use audit_service::{AuditConfig, AuditService};
use audit_storage::local::LocalStore;

const ORG: &str = "bench-org";

/// One GET over a fresh loopback connection; the status code.
fn get(port: u16, path: &str) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    if write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// p50 and p99 of `n` sequential `/health` requests, in milliseconds.
fn health_latency(port: u16, n: usize) -> (f64, f64) {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(5));
            let started = Instant::now();
            assert_eq!(get(port, "/health"), 200);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[n / 2], times[n * 99 / 100])
}

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 100_000);
    let verifiers = audit_bench::arg("--verifiers", 8);
    let dir =
        std::path::PathBuf::from(audit_bench::arg_str("--dir").unwrap_or_else(|| "/tmp/health-under-load".into()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The log, through the local store's append path.
    let start = Timestamp::from_micros(1_764_000_000_000_000);
    audit_bench::write_sample_log(&dir, ORG, events, start).await;

    let service = AuditService::builder(Arc::new(LocalStore::new(&dir)))
        .config(AuditConfig::default())
        .index(Arc::new(SqliteIndex::open(&dir.join("index.sqlite3")).unwrap()))
        .start()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = app(AppState::new(service.clone(), &dir, true, None), false);
    tokio::spawn(serve(listener, router, ConnectionLimits::default(), std::future::pending()));

    for round in 1..=2 {
        let (idle_p50, idle_p99) = tokio::task::spawn_blocking(move || health_latency(port, 400)).await.unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..verifiers)
            .map(|c| {
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // A range starting within the first event's millisecond, never the same twice.
                        let since = start.add_micros((c * 100_000 + k % 1000) as i64);
                        let path = format!("/v1/integrity?organization_id={ORG}&start_time={since}");
                        assert_eq!(get(port, &path), 200, "{path}");
                        done.fetch_add(1, Ordering::Relaxed);
                        k += 1;
                    }
                })
            })
            .collect();
        // Let every verifier get going before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (busy_p50, busy_p99) = tokio::task::spawn_blocking(move || health_latency(port, 400)).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        println!(
            "round {round}: /health idle p50 {idle_p50:.2} ms p99 {idle_p99:.2} ms; with {verifiers} range verifications running ({} done meanwhile) p50 {busy_p50:.2} ms p99 {busy_p99:.2} ms; p99 ratio {:.2}",
            done.load(Ordering::Relaxed),
            busy_p99 / idle_p99
        );
    }
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
