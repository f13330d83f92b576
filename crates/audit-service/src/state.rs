//! What the service knows of its own state, behind methods: per
//! organization (keyed by the organization id, exactly — never by a prefix
//! of some text) and service-wide, plus the ledger of events it lost.
//!
//! Workers, the indexer and the handle report here; health reads snapshots.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Timestamp;

/// Locks a mutex, recovering the data if a panicking thread poisoned it
/// (every critical section here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts of everything that happened to captured events. Nothing is
/// dropped, rejected or deduplicated without being counted here.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events accepted into the queue.
    pub captured: AtomicU64,
    /// Events written durably.
    pub committed: AtomicU64,
    /// Captures answered with an earlier event's receipt.
    pub deduplicated: AtomicU64,
    /// Captures refused as invalid.
    pub rejected_invalid: AtomicU64,
    /// Captures refused because the queue was full (reject policy).
    pub rejected_queue_full: AtomicU64,
    /// Captures refused for reusing an idempotency key with other content.
    pub idempotency_conflicts: AtomicU64,
    /// Events that storage failed to write (no receipt given), durable or not.
    pub failed: AtomicU64,
    /// Accepted events (no caller waiting) lost for good: storage failed
    /// them, or the queue refused them in reject mode. Each is recorded in
    /// an `audit_log.events_dropped` event.
    pub dropped: AtomicU64,
    /// Writes (batches) committed.
    pub batches: AtomicU64,
    /// Batches another instance beat to the log's tail (shared stores);
    /// each was re-sequenced after the winner's events and written again.
    pub write_conflicts: AtomicU64,
}

/// The values of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterValues {
    /// Events accepted into the queue.
    pub captured: u64,
    /// Events written durably.
    pub committed: u64,
    /// Captures answered with an earlier event's receipt.
    pub deduplicated: u64,
    /// Captures refused as invalid.
    pub rejected_invalid: u64,
    /// Captures refused because the queue was full (reject policy).
    pub rejected_queue_full: u64,
    /// Captures refused for reusing an idempotency key with other content.
    pub idempotency_conflicts: u64,
    /// Batches re-sequenced after another instance's events.
    pub write_conflicts: u64,
    /// Events storage failed to write.
    pub failed: u64,
    /// Accepted events lost for good (recorded as `audit_log.events_dropped`).
    pub dropped: u64,
    /// Writes committed.
    pub batches: u64,
}

impl CounterValues {
    /// Name and value of each counter (metrics, the health route).
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("captured", self.captured),
            ("committed", self.committed),
            ("deduplicated", self.deduplicated),
            ("rejected_invalid", self.rejected_invalid),
            ("rejected_queue_full", self.rejected_queue_full),
            ("idempotency_conflicts", self.idempotency_conflicts),
            ("write_conflicts", self.write_conflicts),
            ("failed", self.failed),
            ("dropped", self.dropped),
            ("batches", self.batches),
        ]
    }
}

impl Counters {
    /// The current values.
    pub fn values(&self) -> CounterValues {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterValues {
            captured: v(&self.captured),
            committed: v(&self.committed),
            deduplicated: v(&self.deduplicated),
            rejected_invalid: v(&self.rejected_invalid),
            rejected_queue_full: v(&self.rejected_queue_full),
            idempotency_conflicts: v(&self.idempotency_conflicts),
            write_conflicts: v(&self.write_conflicts),
            failed: v(&self.failed),
            dropped: v(&self.dropped),
            batches: v(&self.batches),
        }
    }
}

/// One organization's figures.
#[derive(Debug, Default)]
struct OrgState {
    /// Events in its log (the next sequence), as far as this service wrote or read.
    committed_through: Option<u64>,
    /// When this service last committed a batch to it.
    last_flush: Option<Timestamp>,
    /// Events queued for it and not yet done with (shared with each queued event).
    queued: Arc<AtomicU64>,
    /// Entries its worker remembers for deduplication and idempotency.
    remembered: u64,
    /// Why its log refuses appends, if it does.
    refusing_appends: Option<String>,
    /// Bytes of torn, unacknowledged tails its writers cut on opening.
    torn_bytes_removed: u64,
}

/// A snapshot of one organization's figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrganizationHealth {
    /// The organization.
    pub organization_id: String,
    /// Events in its log that this service committed through (the next sequence).
    pub committed_through: Option<u64>,
    /// Events indexed (the next sequence to index).
    pub indexed_through: Option<u64>,
    /// Events accepted for it and not yet written.
    pub queue_size: u64,
    /// Events remembered for its deduplication and idempotency.
    pub recent_events: u64,
    /// When a batch was last committed to its log.
    pub last_flush: Option<Timestamp>,
    /// Why its log refuses appends (after a failure that could not be cleaned up).
    pub refusing_appends: Option<String>,
    /// Bytes of torn, unacknowledged tails (a crash mid-write) cut when its
    /// log was opened for writing by this service.
    pub torn_bytes_removed: u64,
}

/// Events the service accepted (or refused in reject mode) and could not
/// store, per organization, not yet recorded as `audit_log.events_dropped`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) count: u64,
    pub(crate) reasons: BTreeSet<&'static str>,
    /// Per producer: the `producer_sequence` ranges lost, merged, ascending.
    pub(crate) producers: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Dropped {
    fn note(&mut self, reason: &'static str, producer: Option<(&str, u64)>) {
        self.count += 1;
        self.reasons.insert(reason);
        if let Some((id, n)) = producer {
            add_to_ranges(self.producers.entry(id.to_owned()).or_default(), n, n);
        }
    }

    /// Folds `other` (a report that could not be recorded) back in.
    pub(crate) fn merge(&mut self, other: Dropped) {
        self.count += other.count;
        self.reasons.extend(other.reasons);
        for (id, ranges) in other.producers {
            let mine = self.producers.entry(id).or_default();
            for (from, to) in ranges {
                add_to_ranges(mine, from, to);
            }
        }
    }
}

/// Adds `from..=to` to sorted, disjoint ranges, merging neighbours.
fn add_to_ranges(ranges: &mut Vec<(u64, u64)>, from: u64, to: u64) {
    ranges.push((from, to));
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(f, t) in ranges.iter() {
        match merged.last_mut() {
            Some((_, last_to)) if f <= last_to.saturating_add(1) => *last_to = (*last_to).max(t),
            _ => merged.push((f, t)),
        }
    }
    *ranges = merged;
}

/// Per-organization figures and the drop ledger.
#[derive(Debug, Default)]
pub(crate) struct State {
    orgs: Mutex<HashMap<String, OrgState>>,
    last_flush: Mutex<Option<(Timestamp, Duration)>>,
    /// Reports not yet written, by (organization that lost events, log to
    /// write the report into): each log's copy is retried on its own, so a
    /// failing organization log never duplicates the system log's copy.
    dropped: Mutex<HashMap<(String, String), Dropped>>,
}

impl State {
    fn with_org<T>(&self, organization_id: &str, f: impl FnOnce(&mut OrgState) -> T) -> T {
        let mut orgs = lock(&self.orgs);
        match orgs.get_mut(organization_id) {
            Some(o) => f(o),
            None => f(orgs.entry(organization_id.to_owned()).or_default()),
        }
    }

    /// The counter of events queued for `organization_id` (each queued event holds a clone).
    pub(crate) fn queued_counter(&self, organization_id: &str) -> Arc<AtomicU64> {
        self.with_org(organization_id, |o| Arc::clone(&o.queued))
    }

    pub(crate) fn note_committed(&self, organization_id: &str, next_sequence: u64) {
        self.with_org(organization_id, |o| o.committed_through = Some(next_sequence));
    }

    pub(crate) fn committed_through(&self, organization_id: &str) -> Option<u64> {
        lock(&self.orgs).get(organization_id).and_then(|o| o.committed_through)
    }

    /// Every organization with commits, and how far.
    pub(crate) fn committed(&self) -> Vec<(String, u64)> {
        lock(&self.orgs).iter().filter_map(|(org, o)| o.committed_through.map(|n| (org.clone(), n))).collect()
    }

    pub(crate) fn note_flush(&self, organization_id: &str, at: Timestamp, took: Duration) {
        *lock(&self.last_flush) = Some((at, took));
        self.with_org(organization_id, |o| o.last_flush = Some(at));
    }

    /// The service-wide last flush and how long its write took.
    pub(crate) fn last_flush(&self) -> Option<(Timestamp, Duration)> {
        *lock(&self.last_flush)
    }

    /// A worker's deduplication memory changed by `delta` entries.
    pub(crate) fn note_remembered(&self, organization_id: &str, delta: i64) {
        self.with_org(organization_id, |o| o.remembered = o.remembered.saturating_add_signed(delta));
    }

    pub(crate) fn note_torn(&self, organization_id: &str, bytes: u64) {
        self.with_org(organization_id, |o| o.torn_bytes_removed += bytes);
    }

    pub(crate) fn note_refusing(&self, organization_id: &str, why: &str) {
        self.with_org(organization_id, |o| {
            o.refusing_appends.get_or_insert_with(|| why.to_owned());
        });
    }

    /// Records an event lost for `organization_id` (and its producer
    /// numbering, if any), to be reported in each of `logs`.
    pub(crate) fn note_dropped(
        &self,
        organization_id: &str,
        logs: &[&str],
        reason: &'static str,
        producer: Option<(&str, u64)>,
    ) {
        let mut dropped = lock(&self.dropped);
        for log in logs {
            dropped.entry((organization_id.to_owned(), (*log).to_owned())).or_default().note(reason, producer);
        }
    }

    /// Takes every report not yet written: ((organization, log), what was lost).
    pub(crate) fn take_dropped(&self) -> Vec<((String, String), Dropped)> {
        let mut all: Vec<_> = lock(&self.dropped).drain().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Puts back a report that could not be written, for the next attempt.
    pub(crate) fn restore_dropped(&self, key: (String, String), dropped: Dropped) {
        lock(&self.dropped).entry(key).or_default().merge(dropped);
    }

    /// Totals over all organizations: (queued, remembered).
    pub(crate) fn totals(&self) -> (u64, u64) {
        lock(&self.orgs).values().fold((0, 0), |(q, r), o| (q + o.queued.load(Ordering::Relaxed), r + o.remembered))
    }

    /// A snapshot per organization (sorted), with `indexed` filled in by the caller's map.
    pub(crate) fn organizations(&self, indexed: &HashMap<String, u64>) -> Vec<OrganizationHealth> {
        let orgs = lock(&self.orgs);
        let mut names: Vec<&String> = orgs.keys().chain(indexed.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let o = orgs.get(name);
                OrganizationHealth {
                    organization_id: name.clone(),
                    committed_through: o.and_then(|o| o.committed_through),
                    indexed_through: indexed.get(name).copied(),
                    queue_size: o.map_or(0, |o| o.queued.load(Ordering::Relaxed)),
                    recent_events: o.map_or(0, |o| o.remembered),
                    last_flush: o.and_then(|o| o.last_flush),
                    refusing_appends: o.and_then(|o| o.refusing_appends.clone()),
                    torn_bytes_removed: o.map_or(0, |o| o.torn_bytes_removed),
                }
            })
            .collect()
    }
}

/// A snapshot of the service's state (the seed's `/audit/health`, and more).
/// Service-wide figures are for operators; [`Health::organizations`] holds
/// each tenant's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Accepting events.
    pub running: bool,
    /// Events accepted but not yet committed, all organizations.
    pub queue_size: usize,
    /// Events remembered for deduplication and idempotency, all organizations.
    pub recent_events: u64,
    /// When the last batch was committed, any organization.
    pub last_flush: Option<Timestamp>,
    /// How long its write + sync took, in microseconds.
    pub last_flush_micros: Option<u64>,
    /// Logs open for writing now (bounded by `max_open_logs`).
    pub open_logs: usize,
    /// Counter values.
    pub counters: CounterValues,
    /// Per organization, keyed by its id: progress, queue, memory, last
    /// flush and whether its log refuses appends.
    pub organizations: Vec<OrganizationHealth>,
    /// The last indexing failure, if any.
    pub index_error: Option<String>,
}

impl Health {
    /// One organization's figures (default, all empty, for one this service has not seen).
    pub fn organization(&self, organization_id: &str) -> OrganizationHealth {
        self.organizations.iter().find(|o| o.organization_id == organization_id).cloned().unwrap_or_else(|| {
            OrganizationHealth { organization_id: organization_id.to_owned(), ..OrganizationHealth::default() }
        })
    }

    /// Organizations whose logs refuse appends, with why.
    pub fn refusing_appends(&self) -> impl Iterator<Item = (&str, &str)> {
        self.organizations
            .iter()
            .filter_map(|o| o.refusing_appends.as_deref().map(|why| (o.organization_id.as_str(), why)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_neighbours_and_overlaps() {
        let mut r = Vec::new();
        for n in [5, 3, 4, 9, 7] {
            add_to_ranges(&mut r, n, n);
        }
        assert_eq!(r, vec![(3, 5), (7, 7), (9, 9)]);
        add_to_ranges(&mut r, 6, 8);
        assert_eq!(r, vec![(3, 9)]);
    }

    #[test]
    fn organizations_are_keyed_exactly() {
        let s = State::default();
        s.note_refusing("a:b", "disk gone");
        s.note_committed("a", 3);
        let orgs = s.organizations(&HashMap::new());
        let refusing =
            |id: &str| orgs.iter().find(|o| o.organization_id == id).and_then(|o| o.refusing_appends.clone());
        assert_eq!(refusing("a"), None, "a prefix of another organization's id is another organization");
        assert_eq!(refusing("a:b").as_deref(), Some("disk gone"));
    }
}
