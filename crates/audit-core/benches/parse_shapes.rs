//! Parse time by body shape: a 1 MiB object of many small members (the
//! shape that made duplicate-name detection quadratic) and a 1 MiB array
//! of numbers, each against a 1 MiB body holding one long string — the
//! cheapest 1 MiB a client can send, so the ratios say how much more a
//! hostile shape costs per byte (aim: ≤ 3). Each is read by the tree
//! parser and by the one-pass paths the service uses (validate, and
//! canonicalize for an event's free-form objects).
//!
//! `cargo bench -p audit-core --bench parse_shapes`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use audit_core::json::{NumberPolicy, canonicalize, parse, validate};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

/// The allocator of the `agenttrace-audit` binary, which parses request bodies.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZE: usize = 1 << 20;

/// `{"k0":0,"k1":1,…}` up to about `SIZE` bytes: distinct names, small values.
fn many_members() -> Vec<u8> {
    let mut body = b"{".to_vec();
    let mut n = 0u64;
    while body.len() < SIZE - 32 {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!("\"k{n}\":{}", n % 10).as_bytes());
        n += 1;
    }
    body.push(b'}');
    body
}

/// `[0,0,…]` up to about `SIZE` bytes.
fn many_items() -> Vec<u8> {
    let mut body = b"[0".to_vec();
    while body.len() < SIZE - 1 {
        body.extend_from_slice(b",0");
    }
    body.push(b']');
    body
}

/// `{"s":"xxxx…"}` of `SIZE` bytes.
fn one_string() -> Vec<u8> {
    let mut body = b"{\"s\":\"".to_vec();
    body.resize(SIZE - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

fn shapes(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse 1 MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    for (name, body) in
        [("one string (baseline)", one_string()), ("many members", many_members()), ("many array items", many_items())]
    {
        g.bench_function(name, |b| b.iter(|| parse(black_box(&body), NumberPolicy::Exact).is_ok()));
        // What `POST /v1/events` does to a body: check it whole (no tree),
        // then read each event, keeping free-form objects canonical.
        g.bench_function(format!("{name}, validate (one pass)"), |b| {
            b.iter(|| validate(black_box(&body), NumberPolicy::Exact).is_ok())
        });
        g.bench_function(format!("{name}, canonicalize (one pass)"), |b| {
            b.iter(|| canonicalize(black_box(&body), NumberPolicy::Exact).is_ok())
        });
        g.bench_function(format!("{name}, serde_json (reference)"), |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, shapes);
criterion_main!(benches);
