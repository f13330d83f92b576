//! The shared index suite: queries through each index backend (SQLite
//! always, PostgreSQL when reachable; see audit-testkit) against a brute-force filter over the
//! exported log; paging; reindex; catch-up; exports.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, Category, EventDraft, Severity};
use audit_core::filter::{AuditEventFilter, Cursor, Order};
use audit_core::json::{Object, Value};
use audit_core::stored::StoredEvent;
use audit_index::{EventIndex, catch_up};
use audit_service::{AuditConfig, AuditService, Clock, ExportFormat, TimeRange, export_jsonl};
use audit_storage::local::LocalStore;
use proptest::prelude::*;

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}

const ORG: &str = "org-q";
const START: i64 = 1_764_000_000_000_000;

/// A generated event: small value sets so that filters often match.
#[derive(Debug, Clone)]
struct Spec {
    project: Option<u8>,
    kind: u8,
    actor: Option<u8>,
    email: Option<u8>,
    resource: Option<u8>,
    severity: Option<u8>,
    gap_ms: u16,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<Option<u8>>(),
        0u8..6,
        any::<Option<u8>>(),
        any::<Option<u8>>(),
        any::<Option<u8>>(),
        any::<Option<u8>>(),
        0u16..3000,
    )
        .prop_map(|(p, kind, a, e, r, s, gap_ms)| Spec {
            project: p.map(|v| v % 3),
            kind,
            actor: a.map(|v| v % 4),
            email: e.map(|v| v % 3),
            resource: r.map(|v| v % 5),
            severity: s.map(|v| v % 3),
            gap_ms,
        })
}

const KINDS: [(&str, Category, Action); 6] = [
    ("trace.deleted", Category::Data, Action::Delete),
    ("trace.viewed", Category::Data, Action::Read),
    ("user.login", Category::Auth, Action::Login),
    ("project.updated", Category::Config, Action::Update),
    ("widget.spun", Category::Eval, Action::Execute),
    ("trace.exported", Category::Data, Action::Export),
];
const SEVERITIES: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

fn draft(s: &Spec, n: usize) -> EventDraft {
    let (event_type, category, action) = KINDS[s.kind as usize];
    let mut metadata = Object::new();
    metadata.insert("n", Value::Number(n as f64));
    EventDraft {
        organization_id: ORG.into(),
        project_id: s.project.map(|p| format!("proj-{p}")),
        event_category: Some(category),
        event_type: event_type.into(),
        action: Some(action),
        severity: s.severity.map(|i| SEVERITIES[i as usize]),
        actor_type: Some(if s.actor.is_some() { ActorType::User } else { ActorType::System }),
        actor_id: s.actor.map(|a| format!("user-{a}")),
        actor_email: s.email.map(|e| format!("person{e}@example.com")),
        resource_type: s.resource.map(|_| "trace".into()),
        resource_id: s.resource.map(|r| format!("trace-{r}")),
        metadata: Some(metadata.into()),
        ..Default::default()
    }
}

/// A filter drawn over the same small value sets, with time bounds.
#[derive(Debug, Clone)]
struct FilterSpec {
    project: Option<u8>,
    kind: Option<u8>,
    category: Option<u8>,
    action: Option<u8>,
    severity: Option<u8>,
    actor: Option<u8>,
    email: Option<u8>,
    resource: Option<u8>,
    since: Option<u16>,
    until: Option<u16>,
    desc: bool,
    limit: Option<u16>,
    offset: Option<u16>,
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    let small = |n: u8| prop::option::weighted(0.3, 0..n);
    (
        (small(3), small(6), small(6), small(6), small(3), small(4), small(3), small(5)),
        (prop::option::weighted(0.3, 0u16..1000), prop::option::weighted(0.3, 0u16..1000), any::<bool>()),
        (prop::option::of(1u16..60), prop::option::weighted(0.3, 0u16..40)),
    )
        .prop_map(
            |(
                (project, kind, category, action, severity, actor, email, resource),
                (since, until, desc),
                (limit, offset),
            )| {
                FilterSpec {
                    project,
                    kind,
                    category,
                    action,
                    severity,
                    actor,
                    email,
                    resource,
                    since,
                    until,
                    desc,
                    limit,
                    offset,
                }
            },
        )
}

/// Time bounds are positions in the log's span, in thousandths.
fn at(span: (i64, i64), permille: u16) -> Timestamp {
    Timestamp::from_micros(span.0 + (span.1 - span.0) * i64::from(permille) / 1000)
}

fn to_filter(f: &FilterSpec, span: (i64, i64)) -> AuditEventFilter {
    AuditEventFilter {
        organization_id: ORG.into(),
        project_id: f.project.map(|p| format!("proj-{p}")),
        event_type: f.kind.map(|k| KINDS[k as usize].0.to_owned()),
        event_category: f.category.map(|c| Category::ALL[c as usize]),
        action: f.action.map(|a| {
            [Action::Delete, Action::Read, Action::Login, Action::Update, Action::Execute, Action::Export][a as usize]
        }),
        severity: f.severity.map(|s| SEVERITIES[s as usize]),
        actor_type: None,
        actor_id: f.actor.map(|a| format!("user-{a}")),
        actor_email: f.email.map(|e| format!("person{e}@example.com")),
        resource_type: None,
        resource_id: f.resource.map(|r| format!("trace-{r}")),
        start_time: f.since.map(|p| at(span, p)),
        end_time: f.until.map(|p| at(span, p)),
        limit: f.limit.map(u32::from),
        offset: f.offset.map(u32::from),
        order: if f.desc { Order::Desc } else { Order::Asc },
        cursor: None,
    }
}

/// The oracle: written independently of `AuditEventFilter::matches`, over
/// the raw stored JSON of the exported log.
fn brute_force(log: &[StoredEvent], f: &AuditEventFilter) -> Vec<u64> {
    let field = |e: &StoredEvent, name: &str| -> Option<String> {
        let line = e.to_line();
        match audit_core::json::parse(&line, audit_core::json::NumberPolicy::Exact).unwrap() {
            Value::Object(o) => match o.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    let want = |e: &StoredEvent, name: &str, v: &Option<String>| v.is_none() || field(e, name) == *v;
    let mut hits: Vec<u64> = log
        .iter()
        .filter(|e| {
            want(e, "project_id", &f.project_id)
                && want(e, "event_type", &f.event_type)
                && want(e, "event_category", &f.event_category.map(|c| c.as_str().to_owned()))
                && want(e, "action", &f.action.map(|a| a.as_str().to_owned()))
                && want(e, "severity", &f.severity.map(|s| s.as_str().to_owned()))
                && want(e, "actor_id", &f.actor_id)
                && want(e, "actor_email", &f.actor_email)
                && want(e, "resource_id", &f.resource_id)
                && f.start_time.is_none_or(|s| e.timestamp >= s)
                && f.end_time.is_none_or(|t| e.timestamp < t)
        })
        .map(|e| e.sequence)
        .collect();
    if f.order == Order::Desc {
        hits.reverse();
    }
    hits.into_iter().skip(f.offset.unwrap_or(0) as usize).take(f.page_size() as usize).collect()
}

struct Fixture {
    _dirs: (tempfile::TempDir, Arc<tempfile::TempDir>),
    backend: &'static str,
    service: AuditService,
    clock: Arc<ManualClock>,
    store: Arc<LocalStore>,
    index: Arc<dyn EventIndex>,
}

/// One fixture per index backend, each with its own log and service.
async fn fixtures(test: &str, config: AuditConfig) -> Vec<Fixture> {
    let index_dir = Arc::new(tempfile::tempdir().unwrap());
    let mut out = Vec::new();
    for (backend, index) in audit_testkit::index_backends(test, index_dir.path()).await {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path()));
        let clock = Arc::new(ManualClock(AtomicI64::new(START)));
        let service = AuditService::builder(store.clone())
            .config(config.clone())
            .clock(clock.clone())
            .index(index.clone())
            .start()
            .await;
        out.push(Fixture { _dirs: (dir, index_dir.clone()), backend, service, clock, store, index });
    }
    out
}

async fn exported(store: &LocalStore) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    export_jsonl(store, ORG, TimeRange::default(), &mut out).await.unwrap();
    out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| StoredEvent::parse_line(l).unwrap()).collect()
}

fn no_dedup() -> AuditConfig {
    AuditConfig { enable_deduplication: false, ..AuditConfig::default() }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Every filter, on random logs, agrees with the brute-force oracle.
    #[test]
    fn every_filter_matches_brute_force(specs in prop::collection::vec(spec(), 20..150), filters in prop::collection::vec(filter_spec(), 60)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            for fx in fixtures("every_filter_matches_brute_force", no_dedup()).await {
            for (n, s) in specs.iter().enumerate() {
                fx.clock.0.fetch_add(i64::from(s.gap_ms) * 1000, Ordering::SeqCst);
                fx.service.capture_durable(draft(s, n)).await.unwrap();
            }
            fx.service.wait_for_index().await;
            let log = exported(&fx.store).await;
            assert_eq!(log.len(), specs.len());
            let span = (log[0].timestamp.as_micros(), log[log.len() - 1].timestamp.as_micros() + 1);
            for f in &filters {
                let filter = to_filter(f, span);
                if filter.check().is_err() {
                    continue;
                }
                let page = fx.service.query_events(&filter).await.unwrap();
                let got: Vec<u64> = page.events.iter().map(|e| e.sequence).collect();
                assert_eq!(got, brute_force(&log, &filter), "{}: {filter:?}", fx.backend);
                assert_eq!(page.indexed_through, specs.len() as u64);
                for e in &page.events {
                    assert!(filter.matches(e));
                }
            }
            fx.service.stop().await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_covers_every_event_once_while_the_log_grows() {
    for fx in fixtures("the_cursor_covers_every_event_once_while_the_log_grows", no_dedup()).await {
        let spec = |n: u8| Spec {
            project: Some(0),
            kind: 1,
            actor: Some(n % 2),
            email: None,
            resource: None,
            severity: None,
            gap_ms: 1,
        };
        for n in 0..120 {
            fx.service.capture_durable(draft(&spec(n as u8), n)).await.unwrap();
        }
        fx.service.wait_for_index().await;
        for order in [Order::Asc, Order::Desc] {
            let mut seen = Vec::new();
            let mut filter = AuditEventFilter {
                actor_id: Some("user-0".into()),
                limit: Some(7),
                order,
                ..AuditEventFilter::for_organization(ORG)
            };
            let mut appended = 0;
            loop {
                let page = fx.service.query_events(&filter).await.unwrap();
                seen.extend(page.events.iter().map(|e| e.sequence));
                // The log grows between pages.
                for _ in 0..5 {
                    fx.service.capture_durable(draft(&spec(0), 1000 + appended)).await.unwrap();
                    appended += 1;
                }
                fx.service.wait_for_index().await;
                match page.next_cursor {
                    Some(c) => filter.cursor = Some(Cursor::decode(&c).unwrap()),
                    None => break,
                }
                assert!(seen.len() < 10_000, "paging must end");
            }
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), seen.len(), "{order}: no event twice");
            let log = exported(&fx.store).await;
            let before_paging: Vec<u64> = log
                .iter()
                .filter(|e| e.body.draft().actor_id.as_deref() == Some("user-0") && e.sequence < 120)
                .map(|e| e.sequence)
                .collect();
            for s in &before_paging {
                assert!(seen.contains(s), "{order}: event {s}, present before paging began, was skipped");
            }
            if order == Order::Asc {
                let all: Vec<u64> = log
                    .iter()
                    .filter(|e| e.body.draft().actor_id.as_deref() == Some("user-0"))
                    .map(|e| e.sequence)
                    .collect();
                assert!(all.len() > before_paging.len());
                // Ascending pages also reach the events appended while paging, up to the last page.
                assert!(seen.iter().any(|s| *s >= 120));
            }
        }
        fx.service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_paging_covers_a_still_log_exactly() {
    for fx in fixtures("offset_paging_covers_a_still_log_exactly", no_dedup()).await {
        for n in 0..95 {
            let s = Spec {
                project: None,
                kind: (n % 6) as u8,
                actor: None,
                email: None,
                resource: None,
                severity: None,
                gap_ms: 2,
            };
            fx.service.capture_durable(draft(&s, n)).await.unwrap();
        }
        fx.service.wait_for_index().await;
        let mut seen = Vec::new();
        for page in 0.. {
            let filter = AuditEventFilter {
                limit: Some(10),
                offset: Some(page * 10),
                ..AuditEventFilter::for_organization(ORG)
            };
            let events = fx.service.query_events(&filter).await.unwrap().events;
            if events.is_empty() {
                break;
            }
            seen.extend(events.iter().map(|e| e.sequence));
        }
        assert_eq!(seen, (0..95).collect::<Vec<u64>>());
        fx.service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_index_catches_up_on_start_and_reindex_gives_identical_answers() {
    let index_dir = tempfile::tempdir().unwrap();
    let backends = audit_testkit::index_backends("a_lagging_index_catches_up", index_dir.path()).await;
    for (backend, index) in backends {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path()));
        // Events committed while no index was kept (as after a kill between
        // commit and index write).
        let plain = AuditService::start(store.clone(), no_dedup()).await;
        for n in 0..40 {
            let s = Spec {
                project: Some((n % 3) as u8),
                kind: (n % 6) as u8,
                actor: Some((n % 4) as u8),
                email: None,
                resource: None,
                severity: None,
                gap_ms: 0,
            };
            plain.capture_durable(draft(&s, n)).await.unwrap();
        }
        plain.stop().await;

        let service = AuditService::builder(store.clone()).config(no_dedup()).index(index.clone()).start().await;
        let filters = [
            AuditEventFilter::for_organization(ORG),
            AuditEventFilter { project_id: Some("proj-1".into()), ..AuditEventFilter::for_organization(ORG) },
            AuditEventFilter {
                actor_id: Some("user-2".into()),
                order: Order::Desc,
                ..AuditEventFilter::for_organization(ORG)
            },
        ];
        // Catch-up on start happens in the background: wait for it.
        let mut first = Vec::new();
        for _ in 0..500 {
            first = Vec::new();
            for f in &filters {
                first.push(service.query_events(f).await.unwrap().events);
            }
            if first[0].len() == 40 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(first[0].len(), 40, "{backend}: the index caught up with storage on start");

        index.clear(None).await.unwrap();
        assert_eq!(service.query_events(&filters[0]).await.unwrap().events.len(), 0);
        assert_eq!(catch_up(store.as_ref(), index.as_ref(), ORG, None).await.unwrap(), 40);
        for (f, before) in filters.iter().zip(&first) {
            assert_eq!(&service.query_events(f).await.unwrap().events, before);
        }
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_never_return_what_storage_does_not_hold() {
    for fx in fixtures("queries_never_return_what_storage_does_not_hold", no_dedup()).await {
        for n in 0..10 {
            let s =
                Spec { project: None, kind: 0, actor: None, email: None, resource: Some(1), severity: None, gap_ms: 1 };
            fx.service.capture_durable(draft(&s, n)).await.unwrap();
        }
        fx.service.wait_for_index().await;
        fx.service.stop().await;
        // Storage is altered behind the index's back.
        let path = fx.store.log_dir(ORG).join("00000000000000000000.jsonl");
        let text = std::fs::read_to_string(&path).unwrap().replacen("trace-1", "trace-9", 1);
        std::fs::write(&path, text).unwrap();
        let err = audit_service::query_events(
            fx.store.as_ref(),
            fx.index.as_ref(),
            &AuditEventFilter::for_organization(ORG),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_csv_safely_and_json_equals_jsonl() {
    for fx in fixtures("exports_csv_safely_and_json_equals_jsonl", no_dedup()).await {
        let tricky =
            ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tTab", "plain, with \"quotes\"\nand a newline"];
        for (n, t) in tricky.iter().enumerate() {
            let mut d = draft(
                &Spec { project: None, kind: 0, actor: None, email: None, resource: None, severity: None, gap_ms: 1 },
                n,
            );
            d.actor_id = Some(format!("actor-{n}"));
            let mut meta = Object::new();
            meta.insert("note", Value::String((*t).into()));
            d.metadata = Some(meta.into());
            // Single-line members cannot hold control characters; resource_id shows the first-byte cases.
            if !t.contains(['\n', '\t']) {
                d.resource_id = Some((*t).into());
            }
            fx.service.capture_durable(d).await.unwrap();
        }
        let filter = AuditEventFilter::for_organization(ORG);
        let mut csv_out = Vec::new();
        assert_eq!(
            fx.service.export_events(&filter, ExportFormat::Csv, &mut csv_out).await.unwrap(),
            tricky.len() as u64
        );
        let mut reader = csv::Reader::from_reader(&csv_out[..]);
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header, audit_service::CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), tricky.len());
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        for (row, t) in rows.iter().zip(tricky) {
            if !t.contains(['\n', '\t']) {
                let cell = &row[col("resource_id")];
                if t.starts_with(['=', '+', '-', '@']) {
                    assert_eq!(cell, format!("'{t}"), "formula neutralised");
                } else {
                    assert_eq!(cell, t, "quoted and restored by a CSV parser");
                }
            }
            // Nested objects are canonical JSON text, restored exactly by a CSV parser.
            let meta = audit_core::json::parse(row[col("metadata")].as_bytes(), audit_core::json::NumberPolicy::Exact)
                .unwrap();
            let Value::Object(meta) = meta else { panic!("metadata is not a JSON object") };
            assert_eq!(meta.get("note"), Some(&Value::String((*t).into())));
        }
        let mut jsonl = Vec::new();
        fx.service.export_events(&filter, ExportFormat::Jsonl, &mut jsonl).await.unwrap();
        let mut json = Vec::new();
        fx.service.export_events(&filter, ExportFormat::Json, &mut json).await.unwrap();
        let Value::Array(items) = audit_core::json::parse(&json, audit_core::json::NumberPolicy::Exact).unwrap() else {
            panic!()
        };
        let lines: Vec<Value> = jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| audit_core::json::parse(l, audit_core::json::NumberPolicy::Exact).unwrap())
            .collect();
        assert_eq!(items, lines);
        // A filtered JSON export goes through the other path and must agree too.
        let one = AuditEventFilter { actor_id: Some("actor-2".into()), ..filter.clone() };
        let mut json_one = Vec::new();
        assert_eq!(fx.service.export_events(&one, ExportFormat::Json, &mut json_one).await.unwrap(), 1);
        let Value::Array(one_items) =
            audit_core::json::parse(&json_one, audit_core::json::NumberPolicy::Exact).unwrap()
        else {
            panic!()
        };
        assert_eq!(one_items, vec![lines[2].clone()]);
        fx.service.stop().await;
    }
}

/// A CSV export is parsed and encoded in parts on every core: over a log
/// many blocks long, and over a time range that starts and ends inside
/// blocks, each row is exactly the stored event it stands for, in log
/// order, no row lost or repeated: every cell equals the stored member of
/// its column's name (strings as they are, numbers in JSON's decimal form,
/// objects as canonical JSON, absent members empty), formulas guarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_cells_are_the_stored_members_across_parts_and_ranges() {
    let fx = fixtures("csv_cells_are_the_stored_members", no_dedup()).await.into_iter().next().unwrap();
    const EVENTS: usize = 3_000;
    for n in 0..EVENTS {
        let s = Spec {
            project: Some((n % 3) as u8),
            kind: (n % 6) as u8,
            actor: (!n.is_multiple_of(5)).then_some((n % 4) as u8),
            email: n.is_multiple_of(2).then_some((n % 3) as u8),
            resource: (!n.is_multiple_of(7)).then_some((n % 5) as u8),
            severity: (!n.is_multiple_of(4)).then_some((n % 3) as u8),
            gap_ms: 1,
        };
        let mut d = draft(&s, n);
        if n.is_multiple_of(3) {
            d.request = Some(audit_core::event::RequestInfo {
                method: Some("POST".into()),
                path: Some(format!("/v1/traces/{n}")),
                status: Some(201),
                duration_ms: Some(n as f64 / 8.0),
                truncated: n.is_multiple_of(9).then(|| vec!["request.path".to_owned()]),
                ..Default::default()
            });
        }
        if n.is_multiple_of(5) {
            d.resource_id = Some(format!("=cmd|' /C calc'!A{n}"));
            d.occurred_at = Some(Timestamp::from_micros(START - n as i64));
            d.producer_id = Some("producer-1".into());
            d.producer_sequence = Some(n as u64);
            let mut state = Object::new();
            state.insert("name", Value::String(format!("ü \"quoted\",\n{n}")));
            d.previous_state = Some(state.into());
        }
        fx.clock.0.fetch_add(1000, Ordering::SeqCst);
        fx.service.capture(d).await.unwrap();
        if (n + 1).is_multiple_of(500) {
            // A batch never spans more than 500 events, however slow the
            // worker is (on a loaded machine it could take all of them at
            // one timestamp and leave no range to cut).
            fx.service.flush().await;
        }
    }
    fx.service.flush().await;
    let log = exported(&fx.store).await;
    assert_eq!(log.len(), EVENTS);
    let stored: Vec<Value> = log
        .iter()
        .map(|e| audit_core::json::parse(&e.to_line(), audit_core::json::NumberPolicy::Exact).unwrap())
        .collect();
    let whole = AuditEventFilter::for_organization(ORG);
    let ranged = AuditEventFilter {
        start_time: Some(log[777].timestamp),
        end_time: Some(log[2_345].timestamp),
        ..whole.clone()
    };
    // Events sealed in one batch share a timestamp: the range is what the
    // stored timestamps say, not the indices.
    let (since, until) = (log[777].timestamp, log[2_345].timestamp);
    let in_range =
        log.iter().position(|e| e.timestamp >= since).unwrap()..log.iter().position(|e| e.timestamp >= until).unwrap();
    assert!(in_range.start > 0 && in_range.end < EVENTS && in_range.len() > 1_000, "{in_range:?}");
    for (filter, expected) in [(&whole, 0..EVENTS), (&ranged, in_range)] {
        let mut csv_out = Vec::new();
        let count = fx.service.export_events(filter, ExportFormat::Csv, &mut csv_out).await.unwrap();
        assert_eq!(count, expected.len() as u64);
        assert!(csv_out.len() > 64 * 1024, "the export spans several parts");
        let mut reader = csv::Reader::from_reader(&csv_out[..]);
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header, audit_service::CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), expected.len());
        for (row, n) in rows.iter().zip(expected) {
            let Value::Object(member) = &stored[n] else { panic!("a stored event is an object") };
            for (column, cell) in header.iter().zip(row.iter()) {
                let want = match member.get(column) {
                    None => String::new(),
                    Some(Value::String(s)) => audit_service::csv_cell(s).into_owned(),
                    Some(other) => String::from_utf8(audit_core::canonical::to_canonical(other)).unwrap(),
                };
                assert_eq!(cell, want, "event {n}, column {column}");
            }
        }
    }
    fx.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_how_far_the_index_has_got() {
    for fx in fixtures("health_reports_how_far_the_index_has_got", no_dedup()).await {
        for n in 0..7 {
            let s =
                Spec { project: None, kind: 0, actor: None, email: None, resource: None, severity: None, gap_ms: 1 };
            fx.service.capture_durable(draft(&s, n)).await.unwrap();
        }
        fx.service.wait_for_index().await;
        let health = fx.service.health();
        let org = health.organizations.iter().find(|o| o.organization_id == ORG).unwrap();
        assert_eq!((org.committed_through, org.indexed_through), (Some(7), Some(7)));
        assert_eq!(health.index_error, None);
        fx.service.stop().await;
    }
}
