//! The conformance suite every [`EventIndex`] passes (feature `testing`):
//! the index's own tests run it against SQLite and PostgreSQL, each on a
//! fresh, empty index. Each check panics with what went wrong. (Queries
//! checked against storage, cursors while a log grows and reindexing are
//! service-level and tested in `audit-service` over both backends too.)
//!
//! ```text
//! progress     applies move progress forward only; re-applying changes nothing
//! filters      every filter answers what a brute-force scan of the rows answers
//! paging       limit + cursor cover every event once, ascending and descending
//! find         an event by id in its own organization, nowhere else
//! clear        one organization, then all
//! appended     batches taken from memory where they continue the index, and only there
//! ```

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, Category, Severity};
use audit_core::filter::{AuditEventFilter, Cursor, Order};
use audit_core::sample::sample_log;
use audit_core::stored::StoredEvent;
use std::sync::Arc;

use audit_storage::{Batch, Chunk, Placement};

use crate::{EventIndex, Hit, IndexRow, Location, Progress, index_appended, index_row};

const ORG: &str = "Suite:Index-1";
const OTHER: &str = "suite-index-2";

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-28T00:00:00Z").expect("a valid time")
}

/// A log of `count` events in one chunk, as rows and their stored events.
fn log(org: &str, count: u64) -> (Vec<IndexRow>, Vec<StoredEvent>, Chunk) {
    let chunk = Chunk { first_sequence: 0, name: "00000000000000000000.jsonl".into() };
    let mut offset = 0;
    let mut rows = Vec::new();
    let mut events = Vec::new();
    for line in sample_log(org, count, start()) {
        let location = Location { chunk: chunk.clone(), offset, len: line.len() as u64 };
        offset += line.len() as u64 + 1;
        rows.push(index_row(&line, location).expect("sample lines index"));
        events.push(StoredEvent::parse_line(&line).expect("sample lines parse"));
    }
    (rows, events, chunk)
}

fn progress_after(rows: &[IndexRow], chunk: &Chunk) -> Progress {
    let last = rows.last().expect("rows");
    Progress {
        next_sequence: rows.len() as u64,
        chunk: chunk.clone(),
        offset: last.location.offset + last.location.len + 1,
    }
}

/// Indexes `count` sample events of `org` in two applies.
async fn indexed(index: &dyn EventIndex, org: &str, count: u64) -> Vec<StoredEvent> {
    let (rows, events, chunk) = log(org, count);
    let half = rows.len() / 2;
    index.apply(org, rows[..half].to_vec(), progress_after(&rows[..half], &chunk)).await.expect("applies");
    index.apply(org, rows[half..].to_vec(), progress_after(&rows, &chunk)).await.expect("applies");
    events
}

fn sequences(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.sequence).collect()
}

/// Every check, in turn, each on its own organization's rows in `index`
/// (which starts empty).
pub async fn run_all(index: &dyn EventIndex) {
    progress(index).await;
    filters(index).await;
    paging(index).await;
    find(index).await;
    clear(index).await;
    forget_actor_email(index).await;
    forget_before(index).await;
    appended(index).await;
}

/// Progress moves forward only, and re-applying rows stores nothing twice.
pub async fn progress(index: &dyn EventIndex) {
    let org = "suite-progress";
    assert_eq!(index.progress(org).await.expect("reads"), None, "nothing indexed yet");
    let (rows, _, chunk) = log(org, 10);
    index.apply(org, rows.clone(), progress_after(&rows, &chunk)).await.expect("applies");
    assert_eq!(index.progress(org).await.expect("reads").map(|p| p.next_sequence), Some(10));
    // The first half again, with its older progress: nothing changes.
    index.apply(org, rows[..5].to_vec(), progress_after(&rows[..5], &chunk)).await.expect("re-applies");
    assert_eq!(index.progress(org).await.expect("reads").map(|p| p.next_sequence), Some(10), "never backwards");
    let all = index.query(&AuditEventFilter::for_organization(org)).await.expect("queries");
    assert_eq!(sequences(&all), (0..10).collect::<Vec<_>>(), "each event once");
}

/// Which events a filter should keep, for the brute-force scan.
type Keep<'a> = Box<dyn Fn(&StoredEvent) -> bool + 'a>;

/// Each filter answers exactly what a scan of the events answers.
pub async fn filters(index: &dyn EventIndex) {
    let events = indexed(index, ORG, 40).await;
    indexed(index, OTHER, 5).await;
    let base = || AuditEventFilter { limit: Some(1000), ..AuditEventFilter::for_organization(ORG) };
    let cases: Vec<(&str, AuditEventFilter, Keep<'_>)> = vec![
        ("all", base(), Box::new(|_| true)),
        (
            "actor_id",
            AuditEventFilter { actor_id: Some("user-3".into()), ..base() },
            Box::new(|e| e.body.draft().actor_id.as_deref() == Some("user-3")),
        ),
        (
            "actor_email",
            AuditEventFilter { actor_email: Some("user5@example.com".into()), ..base() },
            Box::new(|e| e.body.draft().actor_email.as_deref() == Some("user5@example.com")),
        ),
        (
            "project_id",
            AuditEventFilter { project_id: Some("proj-2".into()), ..base() },
            Box::new(|e| e.body.draft().project_id.as_deref() == Some("proj-2")),
        ),
        (
            "resource",
            AuditEventFilter { resource_type: Some("trace".into()), resource_id: Some("trace-17".into()), ..base() },
            Box::new(|e| e.body.draft().resource_id.as_deref() == Some("trace-17")),
        ),
        ("event_type", AuditEventFilter { event_type: Some("trace.deleted".into()), ..base() }, Box::new(|_| true)),
        (
            "category",
            AuditEventFilter { event_category: Some(Category::Data), ..base() },
            Box::new(|e| e.body.category() == Category::Data),
        ),
        ("action", AuditEventFilter { action: Some(Action::Read), ..base() }, Box::new(|_| false)),
        (
            "severity",
            AuditEventFilter { severity: Some(Severity::Warning), ..base() },
            Box::new(|e| e.body.severity() == Severity::Warning),
        ),
        ("actor_type", AuditEventFilter { actor_type: Some(ActorType::User), ..base() }, Box::new(|_| true)),
        (
            "time",
            AuditEventFilter { start_time: Some(events[10].timestamp), end_time: Some(events[20].timestamp), ..base() },
            Box::new(|e| e.timestamp >= events[10].timestamp && e.timestamp < events[20].timestamp),
        ),
    ];
    for (name, filter, keep) in cases {
        let got = sequences(&index.query(&filter).await.expect("queries"));
        let expected: Vec<u64> = events.iter().filter(|e| keep(e)).map(|e| e.sequence).collect();
        assert_eq!(got, expected, "filter {name}");
    }
    // Hits carry what a reader needs to fetch and check the event.
    let hits = index.query(&AuditEventFilter { limit: Some(3), ..base() }).await.expect("queries");
    for h in &hits {
        assert_eq!(h.hash, events[h.sequence as usize].hash);
    }
}

/// Limit and cursor cover every event once, in either order; offsets skip exactly.
pub async fn paging(index: &dyn EventIndex) {
    let org = "suite-paging";
    indexed(index, org, 23).await;
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let filter = AuditEventFilter { limit: Some(5), order, cursor, ..AuditEventFilter::for_organization(org) };
            let page = index.query(&filter).await.expect("queries");
            seen.extend(sequences(&page));
            match page.last() {
                Some(last) if page.len() == 5 => cursor = Some(Cursor { after_sequence: last.sequence, order }),
                _ => break,
            }
        }
        let mut expected: Vec<u64> = (0..23).collect();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}");
    }
    let filter = AuditEventFilter { limit: Some(4), offset: Some(20), ..AuditEventFilter::for_organization(org) };
    assert_eq!(sequences(&index.query(&filter).await.expect("queries")), vec![20, 21, 22]);
}

/// An event is found by id in its own organization only.
pub async fn find(index: &dyn EventIndex) {
    let org = "suite-find";
    let events = indexed(index, org, 6).await;
    let hit = index.find_event(org, &events[4].event_id).await.expect("finds").expect("present");
    assert_eq!((hit.sequence, hit.hash), (4, events[4].hash));
    // Sample event ids follow the sequence: OTHER (5 events) has no event 5.
    assert_eq!(index.find_event(OTHER, &events[5].event_id).await.expect("finds"), None, "never across organizations");
    assert_eq!(index.find_event(org, "01937a2b-3c4d-7e5f-8a6b-ffffffffffff").await.expect("finds"), None);
}

/// Clearing one organization leaves the others; clearing all leaves nothing.
pub async fn clear(index: &dyn EventIndex) {
    let (a, b) = ("suite-clear-a", "suite-clear-b");
    indexed(index, a, 3).await;
    indexed(index, b, 3).await;
    index.clear(Some(a)).await.expect("clears");
    assert_eq!(index.progress(a).await.expect("reads"), None);
    assert!(index.query(&AuditEventFilter::for_organization(a)).await.expect("queries").is_empty());
    assert_eq!(index.query(&AuditEventFilter::for_organization(b)).await.expect("queries").len(), 3);
    index.clear(None).await.expect("clears");
    assert!(index.query(&AuditEventFilter::for_organization(b)).await.expect("queries").is_empty());
}

/// Forgetting an email value unlinks exactly its rows, in one organization.
pub async fn forget_actor_email(index: &dyn EventIndex) {
    let (a, b) = ("suite-forget-a", "suite-forget-b");
    indexed(index, a, 40).await;
    indexed(index, b, 40).await;
    let by_email = |org: &str| AuditEventFilter {
        actor_email: Some("user5@example.com".into()),
        limit: Some(1000),
        ..AuditEventFilter::for_organization(org)
    };
    let before = index.query(&by_email(a)).await.expect("queries").len();
    assert!(before > 0, "the sample log has user5's events");
    assert_eq!(index.forget_actor_email(a, "user5@example.com").await.expect("forgets"), before as u64);
    assert!(index.query(&by_email(a)).await.expect("queries").is_empty(), "no longer found");
    assert_eq!(index.query(&by_email(b)).await.expect("queries").len(), before, "another organization keeps its rows");
    let all = index.query(&AuditEventFilter { limit: Some(1000), ..AuditEventFilter::for_organization(a) }).await;
    assert_eq!(all.expect("queries").len(), 40, "the rows themselves stay");
    assert_eq!(index.forget_actor_email(a, "user5@example.com").await.expect("forgets"), 0, "twice: nothing");
}

/// Forgetting the rows before a cut (retention) removes exactly those, in
/// one organization.
pub async fn forget_before(index: &dyn EventIndex) {
    let (a, b) = ("suite-prune-a", "suite-prune-b");
    indexed(index, a, 30).await;
    indexed(index, b, 30).await;
    let all = |org: &str| AuditEventFilter { limit: Some(1000), ..AuditEventFilter::for_organization(org) };
    assert_eq!(index.forget_before(a, 12).await.expect("forgets"), 12);
    let left = index.query(&all(a)).await.expect("queries");
    assert_eq!(left.len(), 18);
    assert!(left.iter().all(|h| h.sequence >= 12), "only events from the cut on");
    assert_eq!(index.query(&all(b)).await.expect("queries").len(), 30, "another organization keeps its rows");
    assert_eq!(index.forget_before(a, 12).await.expect("forgets"), 0, "twice: nothing");
}

/// Batches a worker appended are indexed from memory while each continues
/// the index where it stands — in the same chunk at its offset, or at the
/// start of the next chunk — with the locations storage gave them; batches
/// already indexed are passed over; a gap or a wrong place indexes nothing
/// and says so (`None`: the caller reads storage instead).
pub async fn appended(index: &dyn EventIndex) {
    let org = "suite-appended";
    let lines = sample_log(org, 12, start());
    let first = Chunk { first_sequence: 0, name: "00000000000000000000.jsonl".into() };
    let second = Chunk { first_sequence: 5, name: "00000000000000000005.jsonl".into() };
    let batch = |from: usize, to: usize| {
        let bytes: Vec<u8> = lines[from..to].iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        Arc::new(Batch { first_sequence: from as u64, count: (to - from) as u64, bytes })
    };
    let offset_of = |line: usize| lines[..line].iter().map(|l| l.len() as u64 + 1).sum::<u64>();
    assert_eq!(
        index_appended(index, org, None, [(batch(0, 3), Placement { chunk: first.clone(), offset: 0 })])
            .await
            .expect("reads"),
        None,
        "a new index is built from storage"
    );
    let (rows, _, _) = log(org, 3);
    index.apply(org, rows.clone(), progress_after(&rows, &first)).await.expect("applies");

    let fed = [
        (batch(0, 3), Placement { chunk: first.clone(), offset: 0 }),
        (batch(3, 5), Placement { chunk: first.clone(), offset: offset_of(3) }),
        (batch(5, 8), Placement { chunk: second.clone(), offset: 0 }),
        (batch(8, 9), Placement { chunk: second.clone(), offset: offset_of(8) - offset_of(5) }),
    ];
    assert_eq!(index_appended(index, org, None, fed).await.expect("indexes"), Some(9));
    let hits = index.query(&AuditEventFilter::for_organization(org)).await.expect("queries");
    assert_eq!(sequences(&hits), (0..9).collect::<Vec<_>>(), "each event once");
    for hit in &hits {
        let n = hit.sequence as usize;
        let (chunk, offset) = if n < 5 { (&first, offset_of(n)) } else { (&second, offset_of(n) - offset_of(5)) };
        let expected = Location { chunk: chunk.clone(), offset, len: lines[n].len() as u64 };
        assert_eq!(hit.location, expected, "event {n} is where storage put it");
        assert_eq!(hit.hash, StoredEvent::parse_line(&lines[n]).expect("parses").hash);
    }
    let at = index.progress(org).await.expect("reads").expect("indexed");
    assert_eq!((at.next_sequence, &at.chunk, at.offset), (9, &second, offset_of(9) - offset_of(5)));

    let gap = [(batch(10, 12), Placement { chunk: second.clone(), offset: offset_of(10) - offset_of(5) })];
    assert_eq!(index_appended(index, org, None, gap).await.expect("reads"), None, "event 9 is missing");
    let elsewhere = [(batch(9, 10), Placement { chunk: second.clone(), offset: 7 })];
    assert_eq!(index_appended(index, org, None, elsewhere).await.expect("reads"), None, "not where the index stands");
    let not_next = [(batch(9, 10), Placement { chunk: Chunk { first_sequence: 8, name: "x".into() }, offset: 0 })];
    assert_eq!(
        index_appended(index, org, None, not_next).await.expect("reads"),
        None,
        "a chunk that cannot start at 9"
    );
    assert_eq!(
        index.progress(org).await.expect("reads").map(|p| p.next_sequence),
        Some(9),
        "nothing indexed past the gap"
    );
    assert_eq!(index.query(&AuditEventFilter::for_organization(org)).await.expect("queries").len(), 9);
}
