//! Durable ingest over HTTP in batches of 1000 events, against in-process
//! `capture_durable` of the same events in the same run.
//!
//! `http_ingest --events 200000 --clients 4 --dir DIR`

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use audit_core::sample::sample_draft;
use audit_index::sqlite::SqliteIndex;
use audit_server::{AppState, app};
use audit_service::{AuditConfig, AuditService};
use audit_storage::local::LocalStore;

fn batch_body(first: u64, count: u64) -> String {
    let events: Vec<String> = (first..first + count)
        .map(|n| {
            let d = sample_draft("bench-org", n).validate(&Default::default()).unwrap();
            String::from_utf8(d.canonical_input().to_vec()).unwrap()
        })
        .collect();
    format!("[{}]", events.join(","))
}

/// Posts one batch; the error is what went wrong (the response's status line).
fn post(port: u16, body: &str) -> Result<(), String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    match out.starts_with("HTTP/1.1 201") {
        true => Ok(()),
        false => Err(out.lines().next().unwrap_or("no response").to_owned()),
    }
}

async fn fresh_service(dir: &std::path::Path) -> AuditService {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    AuditService::builder(Arc::new(LocalStore::new(dir)))
        .config(AuditConfig::default())
        .index(Arc::new(SqliteIndex::open(&dir.join("index.sqlite3")).unwrap()))
        .start()
        .await
}

#[tokio::main]
async fn main() {
    let events = audit_bench::arg("--events", 200_000);
    let clients = audit_bench::arg("--clients", 4);
    let base = std::path::PathBuf::from(audit_bench::arg_str("--dir").unwrap_or_else(|| "/tmp/http-ingest".into()));
    let batches = events / 1000;
    let bodies: Arc<Vec<String>> = Arc::new((0..batches).map(|b| batch_body(b * 1000, 1000)).collect());

    for round in 1..=2 {
        // HTTP: `clients` threads post batches of 1000, durably.
        let service = fresh_service(&base.join("http")).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = app(AppState::new(service.clone(), &base.join("http"), true, None), false);
        tokio::spawn(async move { axum::serve(listener, router).await });
        let started = Instant::now();
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let bodies = Arc::clone(&bodies);
                std::thread::spawn(move || {
                    (c..bodies.len() as u64).step_by(clients as usize).try_for_each(|i| post(port, &bodies[i as usize]))
                })
            })
            .collect();
        let outcome: Result<(), String> = threads.into_iter().try_for_each(|t| t.join().unwrap());
        let http_rate = (batches * 1000) as f64 / started.elapsed().as_secs_f64();
        if let Err(e) = outcome {
            panic!("a batch was not stored: {e}");
        }
        service.stop().await;

        // In process: the same events through capture_durable from `clients` tasks.
        let service = fresh_service(&base.join("inproc")).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let s = service.clone();
                tokio::spawn(async move {
                    let mut n = c * 1000;
                    while n < batches * 1000 {
                        let mut pending = Vec::with_capacity(1000);
                        for k in n..n + 1000 {
                            pending.push(s.submit_durable(sample_draft("bench-org", k)).await.unwrap());
                        }
                        for p in pending {
                            p.wait().await.unwrap();
                        }
                        n += clients * 1000;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let inproc_rate = (batches * 1000) as f64 / started.elapsed().as_secs_f64();
        service.stop().await;
        println!(
            "round {round}: HTTP POST /v1/events (1000 a batch, {clients} clients, durable) {http_rate:.0} events/s; in-process capture_durable {inproc_rate:.0} events/s; ratio {:.2}",
            http_rate / inproc_rate
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}
