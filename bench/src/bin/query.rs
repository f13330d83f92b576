//! Query latency over a large indexed log (`make_log` first).
//!
//! Indexes the log (reports the indexing rate), then runs `--queries` of
//! each shape and prints p50/p99 latency of `query_events` (index lookup +
//! reading each event back from storage + checking it), beside the time of
//! the storage reads alone for the same events (the baseline). With
//! `--index-url postgres://...` the index is PostgreSQL instead of the SQLite
//! file in the data directory.

use std::time::Instant;

use audit_core::Timestamp;
use audit_core::event::Category;
use audit_core::filter::{AuditEventFilter, Order};
use audit_index::sqlite::SqliteIndex;
use audit_index::{EventIndex, catch_up};
use audit_storage::LogStore;
use audit_storage::local::LocalStore;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let data_dir = audit_bench::arg_str("--data-dir").expect("--data-dir DIR (made by make_log)");
    let org = audit_bench::arg_str("--org").unwrap_or_else(|| "bench-org".into());
    let queries = audit_bench::arg("--queries", 500);
    let store = LocalStore::new(&data_dir);
    // `--index-url postgres://...` measures the PostgreSQL index on the same log.
    let index: Box<dyn EventIndex> = match audit_bench::arg_str("--index-url") {
        Some(url) => Box::new(audit_index::postgres::PostgresIndex::connect(&url).await.unwrap()),
        None => Box::new(SqliteIndex::open(&std::path::Path::new(&data_dir).join("index.sqlite3")).unwrap()),
    };
    let index = index.as_ref();

    let before = index.progress(&org).await.unwrap().map_or(0, |p| p.next_sequence);
    let start = Instant::now();
    let total = catch_up(&store, index, &org, None).await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    if total > before {
        println!("indexed {} events in {secs:.1} s ({:.0} events/s)", total - before, (total - before) as f64 / secs);
    }
    println!("log: {total} events");
    // make_log spaces events 1 ms apart from this instant.
    let first = 1_764_000_000_000_000i64;
    let last = first + total as i64 * 1000;
    let week = 7 * 86_400 * 1_000_000i64;

    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    type MakeFilter = Box<dyn Fn(&mut dyn FnMut(u64) -> u64) -> AuditEventFilter>;
    let shapes: [(&str, MakeFilter); 4] = [
        (
            "one actor, one category, 7-day window, limit 100",
            Box::new(move |r| {
                let end = first + r((last - first) as u64 + 1) as i64 + week / 2;
                AuditEventFilter {
                    actor_id: Some(format!("user-{}", r(13))),
                    event_category: Some(Category::Data),
                    start_time: Some(Timestamp::from_micros(end - week)),
                    end_time: Some(Timestamp::from_micros(end)),
                    limit: Some(100),
                    ..AuditEventFilter::for_organization("bench-org")
                }
            }),
        ),
        (
            "one actor email, newest first, limit 100",
            Box::new(|r| AuditEventFilter {
                actor_email: Some(format!("user{}@example.com", r(13))),
                order: Order::Desc,
                limit: Some(100),
                ..AuditEventFilter::for_organization("bench-org")
            }),
        ),
        (
            "one resource id (1 event), limit 100",
            Box::new(move |r| AuditEventFilter {
                resource_id: Some(format!("trace-{}", r(total))),
                limit: Some(100),
                ..AuditEventFilter::for_organization("bench-org")
            }),
        ),
        (
            "one project, 1-hour window, offset 1000, limit 100",
            Box::new(move |r| {
                let s = first + r((last - first).max(1) as u64) as i64;
                AuditEventFilter {
                    project_id: Some(format!("proj-{}", r(7))),
                    start_time: Some(Timestamp::from_micros(s)),
                    end_time: Some(Timestamp::from_micros(s + 3_600_000_000)),
                    offset: Some(1000),
                    limit: Some(100),
                    ..AuditEventFilter::for_organization("bench-org")
                }
            }),
        ),
    ];
    for (name, make) in &shapes {
        let mut full = Vec::new();
        let mut reads = Vec::new();
        let mut returned = 0usize;
        for _ in 0..queries {
            let filter = make(&mut next);
            let t = Instant::now();
            let page = audit_service::query_events(&store, index, &filter, None).await.unwrap();
            full.push(t.elapsed().as_secs_f64() * 1000.0);
            returned += page.events.len();
            // Baseline: just reading the same events' bytes from storage.
            let hits = index.query(&filter).await.unwrap();
            let t = Instant::now();
            for h in &hits {
                store.read_ranges(&org, &h.location.chunk, &[(h.location.offset, h.location.len)]).await.unwrap();
            }
            reads.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        full.sort_by(f64::total_cmp);
        reads.sort_by(f64::total_cmp);
        println!(
            "{name}: p50 {:.2} ms, p99 {:.2} ms (storage reads alone: p50 {:.2} ms, p99 {:.2} ms), {:.0} events/query",
            percentile(&full, 0.5),
            percentile(&full, 0.99),
            percentile(&reads, 0.5),
            percentile(&reads, 0.99),
            returned as f64 / queries as f64
        );
    }
}
