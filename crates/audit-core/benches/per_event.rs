//! Per-event CPU costs of the core, each beside SHA-256 of the same stored
//! line (the floor any verifier pays), so figures read as ratios.
//!
//! `cargo bench -p audit-core --bench per_event`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use audit_core::event::{EventDraft, Limits};
use audit_core::sample::{sample_draft, sample_log};
use audit_core::stored::{Seal, StoredEvent, check_line, seal};
use audit_core::{Hash, Timestamp};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn per_event(c: &mut Criterion) {
    let line = sample_log("org-1", 3, Timestamp::from_micros(1_764_000_000_000_000)).remove(2);
    let event = sample_draft("org-1", 2).validate(&Limits::default()).unwrap();
    let input_json = String::from_utf8(event.canonical_input().to_vec()).unwrap();
    let s = Seal {
        event_id: "01937a2b-3c4d-7e5f-8a6b-000000000002".into(),
        sequence: 2,
        timestamp: Timestamp::from_micros(1_764_000_000_000_000),
        previous_hash: Hash::GENESIS,
    };
    let mut g = c.benchmark_group("per_event");
    g.bench_function("sha256 of the stored line (baseline)", |b| b.iter(|| Hash::of(black_box(&line))));
    g.bench_function("check_line (verify fast path)", |b| b.iter(|| check_line(black_box(&line)).unwrap().sequence));
    g.bench_function("StoredEvent::parse_line (full parse)", |b| {
        b.iter(|| StoredEvent::parse_line(black_box(&line)).unwrap().sequence)
    });
    g.bench_function("seal", |b| b.iter(|| seal(black_box(&event), black_box(&s)).hash));
    // Personal data protection (SPEC §9): the sample's personal members
    // sealed under a cached subject key (the service caches the sealer
    // with it), beside the clone it starts from.
    let sealer = audit_core::personal::Sealer::new(
        &audit_core::personal::DataKey::from_bytes([7; 32]),
        audit_core::personal::KeyId::from_bytes([3; 16]),
    );
    g.bench_function("clone of a validated event (for the next line)", |b| b.iter(|| black_box(&event).clone()));
    g.bench_function("clone + seal personal values", |b| {
        b.iter(|| black_box(&event).clone().sealed(&[], &sealer, || [9; 12]).canonical_input().len())
    });
    // What a checkpointing service adds per event: the leaf hash and the
    // amortised merges of the Merkle frontier.
    g.bench_function("merkle leaf + frontier push", |b| {
        let mut frontier = audit_core::merkle::Frontier::new();
        let hash = Hash::of(&line);
        b.iter(|| frontier.push(audit_core::merkle::leaf_hash(black_box(hash.as_bytes()))))
    });
    g.bench_function("from_json + validate", |b| {
        b.iter(|| {
            EventDraft::from_json(black_box(input_json.as_bytes()))
                .unwrap()
                .validate(&Limits::default())
                .unwrap()
                .severity()
        })
    });
    // A caller's JSON is rarely canonical: the same members in reverse
    // order, with spaces, and the metadata's members reversed too.
    let unsorted = {
        let members = audit_core::scan::scan_object(event.canonical_input()).unwrap();
        let text: Vec<String> = members
            .iter()
            .rev()
            .map(|m| {
                let value = String::from_utf8_lossy(m.value).into_owned();
                let value = if m.name == b"metadata" { reversed_object(&value) } else { value };
                format!("\"{}\" : {value}", String::from_utf8_lossy(m.name))
            })
            .collect();
        format!("{{ {} }}", text.join(" , "))
    };
    g.bench_function("from_json + validate (unsorted input)", |b| {
        b.iter(|| {
            EventDraft::from_json(black_box(unsorted.as_bytes()))
                .unwrap()
                .validate(&Limits::default())
                .unwrap()
                .severity()
        })
    });
    g.finish();
}

/// A flat canonical object with its members in reverse order.
fn reversed_object(canonical: &str) -> String {
    let members = audit_core::scan::scan_object(canonical.as_bytes()).unwrap();
    let text: Vec<String> = members
        .iter()
        .rev()
        .map(|m| format!("\"{}\":{}", String::from_utf8_lossy(m.name), String::from_utf8_lossy(m.value)))
        .collect();
    format!("{{{}}}", text.join(","))
}

criterion_group!(benches, per_event);
criterion_main!(benches);
