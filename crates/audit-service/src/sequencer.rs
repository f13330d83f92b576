//! The sequencer of one organization's log, without I/O: it turns a batch of
//! validated events into stored lines (sequence, timestamp, links, hashes),
//! deciding on the way which events are duplicates (SPEC §5).
//!
//! It works in two steps so that a failed write changes nothing: [`Sequencer::plan`]
//! computes the batch and what each caller will get; only after storage
//! confirmed the write does [`Sequencer::commit`] advance the tail and
//! remember the new events for deduplication.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use audit_core::event::{Severity, ValidatedEvent};
use audit_core::stored::{Receipt, Seal, seal_into};
use audit_core::{Hash, Timestamp};
use audit_storage::{Batch, Tail};

/// What happens to one event of a planned batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Stored at this receipt once the batch is durable.
    Append(Receipt),
    /// A duplicate of an event already durable: answer now.
    DuplicateOfDurable(Receipt),
    /// A duplicate of an event in this same batch: answer once it is durable.
    DuplicateInBatch(Receipt),
    /// The idempotency key was used for different content.
    Conflict(String),
}

/// A batch ready to write, and what to tell each caller.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) batch: Option<Batch>,
    pub(crate) decisions: Vec<Decision>,
    tail: Tail,
    remembered: Vec<Remembered>,
}

#[derive(Debug, Clone)]
struct Remembered {
    at: Timestamp,
    fingerprint: Hash,
    key: Option<String>,
    dedupable: bool,
    /// False for a stored event whose personal values were erased: its
    /// input can no longer be compared with anything.
    content_known: bool,
    receipt: Receipt,
}

/// A receipt as remembered: 72 bytes, no heap (the windows can hold many).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    event_id: u128,
    sequence: u64,
    timestamp: Timestamp,
    hash: Hash,
}

impl Kept {
    fn of(r: &Receipt) -> Kept {
        let event_id = uuid::Uuid::parse_str(&r.event_id).map_or(0, |u| u.as_u128());
        Kept { event_id, sequence: r.sequence, timestamp: r.timestamp, hash: r.hash }
    }

    fn receipt(&self) -> Receipt {
        let event_id = uuid::Uuid::from_u128(self.event_id).hyphenated().to_string();
        Receipt { event_id, sequence: self.sequence, timestamp: self.timestamp, hash: self.hash }
    }
}

/// One organization's sequencer state.
#[derive(Debug)]
pub(crate) struct Sequencer {
    tail: Tail,
    dedup_window: Option<Duration>,
    dedup_capacity: usize,
    idempotency_window: Duration,
    by_fingerprint: HashMap<Hash, Kept>,
    /// Fingerprints oldest first, for expiry and the capacity bound.
    dedup_order: VecDeque<(Timestamp, Hash, u64)>,
    /// Idempotency keys: the input's fingerprint (`None`: unknown, the
    /// event's personal values were erased) and the receipt.
    by_key: HashMap<Box<str>, (Option<Hash>, Kept)>,
    /// Keys oldest first, for expiry.
    key_order: VecDeque<(Timestamp, Box<str>, u64)>,
}

/// Whether deduplication may answer for this event: never for `critical`
/// events (repeated failed logins are evidence, SPEC §5), nor for the
/// service's own records (`audit_log.*`: three identical reads are three
/// reads). Decided from the event alone, so the rule is the same for
/// events read back from storage after a restart.
fn dedupable(event: &ValidatedEvent) -> bool {
    event.severity() != Severity::Critical && !event.draft().event_type.starts_with("audit_log.")
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Sequencer {
    pub(crate) fn new(
        tail: Tail,
        dedup_window: Option<Duration>,
        dedup_capacity: usize,
        idempotency_window: Duration,
    ) -> Self {
        Sequencer {
            tail,
            dedup_window,
            dedup_capacity,
            idempotency_window,
            by_fingerprint: HashMap::new(),
            dedup_order: VecDeque::new(),
            by_key: HashMap::new(),
            key_order: VecDeque::new(),
        }
    }

    /// The sequence the next event gets (= events committed).
    pub(crate) fn next_sequence(&self) -> u64 {
        self.tail.next_sequence
    }

    /// Where the log ends, as far as this sequencer knows.
    pub(crate) fn tail(&self) -> Tail {
        self.tail
    }

    /// How far back storage must be read to rebuild the windows.
    pub(crate) fn memory_span(&self) -> Duration {
        self.idempotency_window.max(self.dedup_window.unwrap_or_default())
    }

    /// Entries remembered for deduplication and idempotency.
    pub(crate) fn remembered(&self) -> usize {
        self.dedup_order.len() + self.key_order.len()
    }

    /// Remembers an event read back from storage at start-up.
    pub(crate) fn remember_stored(&mut self, event: &ValidatedEvent, receipt: Receipt, content_known: bool) {
        let r = Remembered {
            at: receipt.timestamp,
            fingerprint: event.fingerprint(),
            key: event.idempotency_key().map(str::to_owned),
            dedupable: content_known && dedupable(event),
            content_known,
            receipt,
        };
        self.insert(r);
    }

    /// Takes an event another writer appended at this sequencer's tail (a
    /// shared store): it becomes the new tail and is remembered as if this
    /// instance had stored it. Returns false, changing nothing, when it does
    /// not sit right at the tail.
    pub(crate) fn adopt_stored(&mut self, event: &ValidatedEvent, receipt: Receipt, content_known: bool) -> bool {
        if receipt.sequence != self.tail.next_sequence {
            return false;
        }
        self.tail = Tail {
            next_sequence: receipt.sequence + 1,
            last_hash: receipt.hash,
            last_timestamp: Some(receipt.timestamp),
        };
        self.remember_stored(event, receipt, content_known);
        true
    }

    /// Forgets every fingerprint kept for content deduplication (not the
    /// idempotency keys): after an erasure, content captured before it is
    /// not recognised again — in this process as after a restart, where the
    /// erased events' content cannot be read back. Returns how many went.
    pub(crate) fn forget_fingerprints(&mut self) -> usize {
        let forgotten = self.dedup_order.len();
        self.dedup_order.clear();
        self.by_fingerprint.clear();
        forgotten
    }

    fn insert(&mut self, r: Remembered) {
        let kept = Kept::of(&r.receipt);
        if r.dedupable && self.dedup_window.is_some() && self.dedup_capacity > 0 {
            self.by_fingerprint.insert(r.fingerprint, kept);
            self.dedup_order.push_back((r.at, r.fingerprint, kept.sequence));
            // Deduplication is a convenience with a memory bound: past the
            // capacity the oldest fingerprints are forgotten early.
            while self.dedup_order.len() > self.dedup_capacity {
                self.forget_oldest_fingerprint();
            }
        }
        if let Some(key) = r.key {
            let key: Box<str> = key.into();
            self.by_key.insert(key.clone(), (r.content_known.then_some(r.fingerprint), kept));
            self.key_order.push_back((r.at, key, kept.sequence));
        }
    }

    fn forget_oldest_fingerprint(&mut self) {
        if let Some((_, fp, seq)) = self.dedup_order.pop_front()
            && self.by_fingerprint.get(&fp).is_some_and(|k| k.sequence == seq)
        {
            self.by_fingerprint.remove(&fp);
        }
    }

    /// Forgets what fell out of the windows.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        if let Some(window) = self.dedup_window {
            let cutoff = now.add_micros(-micros(window));
            while self.dedup_order.front().is_some_and(|(at, _, _)| *at < cutoff) {
                self.forget_oldest_fingerprint();
            }
        }
        let cutoff = now.add_micros(-micros(self.idempotency_window));
        while self.key_order.front().is_some_and(|(at, _, _)| *at < cutoff) {
            let (_, key, seq) = self.key_order.pop_front().expect("front exists");
            if self.by_key.get(&key).is_some_and(|(_, k)| k.sequence == seq) {
                self.by_key.remove(&key);
            }
        }
    }

    fn dedup_hit(&self, fingerprint: &Hash, now: Timestamp) -> Option<Receipt> {
        let window = self.dedup_window?;
        self.by_fingerprint
            .get(fingerprint)
            .filter(|k| k.timestamp >= now.add_micros(-micros(window)))
            .map(Kept::receipt)
    }

    /// Plans a batch: `events` are (event, event id) in arrival order.
    pub(crate) fn plan(&self, events: &[(&ValidatedEvent, &str)], now: Timestamp) -> Plan {
        // Time never runs backwards in a log: a clock step back reuses the last value.
        let timestamp = match self.tail.last_timestamp {
            Some(last) if last > now => last,
            _ => now,
        };
        let mut tail = self.tail;
        // Every line is written once, straight into the batch.
        let mut bytes = Vec::with_capacity(events.iter().map(|(e, _)| crate::batcher::stored_bytes(e)).sum());
        let mut decisions = Vec::with_capacity(events.len());
        let mut remembered: Vec<Remembered> = Vec::new();
        let mut staged_fp: HashMap<Hash, usize> = HashMap::new();
        let mut staged_key: HashMap<&str, usize> = HashMap::new();
        let first_sequence = tail.next_sequence;

        for (event, event_id) in events {
            let fingerprint = event.fingerprint();
            let dedupable = dedupable(event);
            if let Some(key) = event.idempotency_key() {
                if let Some(&i) = staged_key.get(key) {
                    let r = &remembered[i];
                    decisions.push(if r.fingerprint == fingerprint {
                        Decision::DuplicateInBatch(r.receipt.clone())
                    } else {
                        Decision::Conflict(key.into())
                    });
                    continue;
                }
                if let Some((fp, kept)) = self.by_key.get(key) {
                    // An erased event's key answers any retry with its receipt.
                    decisions.push(if fp.is_none_or(|fp| fp == fingerprint) {
                        Decision::DuplicateOfDurable(kept.receipt())
                    } else {
                        Decision::Conflict(key.into())
                    });
                    continue;
                }
            }
            if dedupable && self.dedup_window.is_some() {
                if let Some(&i) = staged_fp.get(&fingerprint) {
                    decisions.push(Decision::DuplicateInBatch(remembered[i].receipt.clone()));
                    continue;
                }
                if let Some(receipt) = self.dedup_hit(&fingerprint, now) {
                    decisions.push(Decision::DuplicateOfDurable(receipt));
                    continue;
                }
            }
            let hash = seal_into(
                event,
                &Seal {
                    event_id: (*event_id).to_owned(),
                    sequence: tail.next_sequence,
                    timestamp,
                    previous_hash: tail.last_hash,
                },
                &mut bytes,
            );
            bytes.push(b'\n');
            let receipt = Receipt { event_id: (*event_id).to_owned(), sequence: tail.next_sequence, timestamp, hash };
            tail = Tail { next_sequence: tail.next_sequence + 1, last_hash: hash, last_timestamp: Some(timestamp) };
            if dedupable {
                staged_fp.insert(fingerprint, remembered.len());
            }
            if let Some(key) = event.idempotency_key() {
                staged_key.insert(key, remembered.len());
            }
            remembered.push(Remembered {
                at: timestamp,
                fingerprint,
                key: event.idempotency_key().map(str::to_owned),
                dedupable,
                content_known: true,
                receipt: receipt.clone(),
            });
            decisions.push(Decision::Append(receipt));
        }
        let count = tail.next_sequence - first_sequence;
        let batch = (count > 0).then_some(Batch { first_sequence, count, bytes });
        Plan { batch, decisions, tail, remembered }
    }

    /// Applies a plan whose batch storage has made durable.
    pub(crate) fn commit(&mut self, plan: Plan) {
        self.tail = plan.tail;
        for r in plan.remembered {
            self.insert(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use audit_core::event::{Action, ActorType, EventDraft, Limits};

    use super::*;

    fn event(n: u32, key: Option<&str>, action: Action) -> ValidatedEvent {
        EventDraft {
            organization_id: "org".into(),
            event_type: if action == Action::Login { "user.login_failed".into() } else { "trace.viewed".into() },
            action: Some(action),
            actor_type: Some(ActorType::User),
            resource_id: Some(format!("r{n}")),
            idempotency_key: key.map(Into::into),
            ..Default::default()
        }
        .validate(&Limits::default())
        .unwrap()
    }

    const ID: &str = "01937a2b-3c4d-7e5f-8a6b-000000000001";

    fn seq() -> Sequencer {
        Sequencer::new(Tail::GENESIS, Some(Duration::from_secs(60)), 1000, Duration::from_secs(86_400))
    }

    #[test]
    fn assigns_gapless_sequences_and_links() {
        let s = seq();
        let (a, b) = (event(1, None, Action::Read), event(2, None, Action::Read));
        let plan = s.plan(&[(&a, ID), (&b, ID)], Timestamp::from_micros(10));
        let batch = plan.batch.as_ref().unwrap();
        assert_eq!((batch.first_sequence, batch.count), (0, 2));
        let mut v = audit_core::verify::ChainVerifier::new("org", audit_core::verify::ChainStart::Genesis);
        audit_core::stored::split_lines(&batch.bytes).filter(|l| !l.is_empty()).for_each(|l| {
            v.push_line(l);
        });
        // Event ids repeat in this unit test; the chain itself must verify.
        assert!(v.finish().valid);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let s = seq();
        let a = event(1, Some("k"), Action::Read);
        let plan = s.plan(&[(&a, ID)], Timestamp::from_micros(10));
        drop(plan); // storage failed: never committed
        assert_eq!(s.tail(), Tail::GENESIS);
        assert_eq!(s.remembered(), 0);
    }

    #[test]
    fn duplicates_and_idempotency() {
        let mut s = seq();
        let a = event(1, None, Action::Read);
        let k1 = event(2, Some("key-1"), Action::Read);
        let plan = s.plan(&[(&a, ID), (&a, ID), (&k1, ID)], Timestamp::from_micros(1_000_000));
        assert!(matches!(plan.decisions[1], Decision::DuplicateInBatch(ref r) if r.sequence == 0));
        s.commit(plan);
        let k1_other = event(3, Some("key-1"), Action::Read);
        let plan = s.plan(&[(&a, ID), (&k1, ID), (&k1_other, ID)], Timestamp::from_micros(2_000_000));
        assert!(matches!(plan.decisions[0], Decision::DuplicateOfDurable(ref r) if r.sequence == 0));
        assert!(matches!(plan.decisions[1], Decision::DuplicateOfDurable(ref r) if r.sequence == 1));
        assert_eq!(plan.decisions[2], Decision::Conflict("key-1".into()));
        assert!(plan.batch.is_none());
    }

    #[test]
    fn critical_events_are_never_deduplicated() {
        let s = seq();
        let f = event(1, None, Action::Login);
        assert_eq!(f.severity(), Severity::Critical);
        let plan = s.plan(&[(&f, ID), (&f, ID)], Timestamp::from_micros(1));
        assert_eq!(plan.batch.unwrap().count, 2);
    }

    #[test]
    fn windows_expire() {
        let mut s = seq();
        let a = event(1, None, Action::Read);
        let k = event(2, Some("key"), Action::Read);
        let t0 = Timestamp::from_micros(0);
        let plan = s.plan(&[(&a, ID), (&k, ID)], t0);
        s.commit(plan);
        let after_dedup = t0.add_micros(61_000_000);
        s.expire(after_dedup);
        let plan = s.plan(&[(&a, ID), (&k, ID)], after_dedup);
        assert!(matches!(plan.decisions[0], Decision::Append(_)), "fingerprint window is over");
        assert!(matches!(plan.decisions[1], Decision::DuplicateOfDurable(_)), "the key is remembered for 24 h");
        let after_day = t0.add_micros(86_401_000_000);
        s.expire(after_day);
        assert_eq!(s.remembered(), 0);
    }

    #[test]
    fn the_fingerprint_cache_is_bounded_and_keys_are_not() {
        let mut s = Sequencer::new(Tail::GENESIS, Some(Duration::from_secs(60)), 10, Duration::from_secs(86_400));
        let events: Vec<ValidatedEvent> = (0..50).map(|n| event(n, None, Action::Read)).collect();
        let keyed: Vec<ValidatedEvent> = (100..150).map(|n| event(n, Some(&format!("k{n}")), Action::Read)).collect();
        let refs: Vec<(&ValidatedEvent, &str)> = keyed.iter().chain(&events).map(|e| (e, ID)).collect();
        let plan = s.plan(&refs, Timestamp::from_micros(0));
        s.commit(plan);
        assert_eq!(s.by_fingerprint.len(), 10, "only the newest fingerprints are kept");
        assert_eq!(s.by_key.len(), 50, "every idempotency key is kept for its window");
        let again = s.plan(&[(&events[49], ID), (&events[0], ID)], Timestamp::from_micros(1));
        assert!(matches!(again.decisions[0], Decision::DuplicateOfDurable(_)));
        assert!(matches!(again.decisions[1], Decision::Append(_)), "forgotten early under the bound");
    }

    #[test]
    fn clock_stepping_back_reuses_the_last_timestamp() {
        let mut s = seq();
        let a = event(1, None, Action::Read);
        let plan = s.plan(&[(&a, ID)], Timestamp::from_micros(5_000));
        s.commit(plan);
        let b = event(2, None, Action::Read);
        let plan = s.plan(&[(&b, ID)], Timestamp::from_micros(1_000));
        assert!(matches!(&plan.decisions[0], Decision::Append(r) if r.timestamp == Timestamp::from_micros(5_000)));
    }
}
