//! When a batch goes to storage, and how much of it goes in one write: a
//! pure policy over counts, bytes and time (no I/O; time is passed in).
//!
//! A batch is written as soon as any of these holds: a durable caller or a
//! flush waits on it (`urgent`), `flush_at_events` events wait (the seed's
//! `batch_size`), `max_bytes` of stored lines wait, or `interval` has passed
//! since its first event (the seed's `batch_interval`). One write then takes
//! at most `max_events` events and `max_bytes` bytes; the rest follow in the
//! next write at once.

use std::time::Duration;

use tokio::time::Instant;

/// The numbers a [`Batcher`] decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchPolicy {
    /// Write once this many events wait (`batch_size`).
    pub(crate) flush_at_events: usize,
    /// Write at the latest this long after a batch's first event.
    pub(crate) interval: Duration,
    /// At most this many events in one write.
    pub(crate) max_events: usize,
    /// At most this many bytes of stored lines in one write (and write once
    /// this many wait).
    pub(crate) max_bytes: usize,
}

/// The bytes an event takes in storage, at most: its canonical input, the
/// service members at their longest, and the newline.
pub(crate) fn stored_bytes(event: &audit_core::event::ValidatedEvent) -> usize {
    event.canonical_input().len() + audit_core::stored::SEAL_MAX_BYTES + 1
}

/// The batch being gathered.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    policy: BatchPolicy,
    events: usize,
    bytes: usize,
    urgent: bool,
    deadline: Option<Instant>,
}

impl Batcher {
    pub(crate) fn new(policy: BatchPolicy) -> Self {
        Batcher { policy, events: 0, bytes: 0, urgent: false, deadline: None }
    }

    /// An event of `bytes` (see [`stored_bytes`]) joined the batch at `now`;
    /// `urgent` when somebody waits for it to be durable.
    pub(crate) fn push(&mut self, bytes: usize, urgent: bool, now: Instant) {
        if self.events == 0 && self.deadline.is_none() {
            self.deadline = Some(now + self.policy.interval);
        }
        self.events += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        self.urgent |= urgent;
    }

    /// Somebody waits for everything so far to be written (a flush).
    pub(crate) fn mark_urgent(&mut self) {
        self.urgent = true;
    }

    /// Whether the batch should be written now.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.urgent
            || self.events >= self.policy.flush_at_events.max(1)
            || self.bytes >= self.policy.max_bytes
            || self.deadline.is_some_and(|d| now >= d)
    }

    /// When the batch is due at the latest (none while it is empty).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The batch was taken: start the next one.
    pub(crate) fn reset(&mut self) {
        *self = Batcher::new(self.policy);
    }

    /// How many of the waiting events (their sizes, in order) go into the
    /// next write: at most `max_events` and `max_bytes`, but always at least
    /// one (an event larger than `max_bytes` is written alone).
    pub(crate) fn next_write_len(&self, sizes: impl IntoIterator<Item = usize>) -> usize {
        let mut bytes = 0usize;
        let mut n = 0;
        for size in sizes.into_iter().take(self.policy.max_events.max(1)) {
            bytes = bytes.saturating_add(size);
            if bytes > self.policy.max_bytes && n > 0 {
                break;
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy() -> BatchPolicy {
        BatchPolicy { flush_at_events: 3, interval: Duration::from_secs(5), max_events: 4, max_bytes: 1000 }
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_waits_for_the_interval_at_most() {
        let mut b = Batcher::new(policy());
        assert!(!b.ready(Instant::now()) && b.deadline().is_none(), "an empty batch is never due");
        b.push(10, false, Instant::now());
        assert!(!b.ready(Instant::now()));
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(!b.ready(Instant::now()));
        // A later event does not move the deadline.
        b.push(10, false, Instant::now());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.ready(Instant::now()));
        b.reset();
        assert!(b.deadline().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn count_bytes_and_urgency_each_make_it_due_at_once() {
        let now = Instant::now();
        let mut by_count = Batcher::new(policy());
        (0..3).for_each(|_| by_count.push(1, false, now));
        assert!(by_count.ready(now));
        let mut by_bytes = Batcher::new(policy());
        by_bytes.push(1000, false, now);
        assert!(by_bytes.ready(now));
        let mut durable = Batcher::new(policy());
        durable.push(1, true, now);
        assert!(durable.ready(now));
        let mut flushed = Batcher::new(policy());
        flushed.mark_urgent();
        assert!(flushed.ready(now));
    }

    #[test]
    fn one_write_respects_events_and_bytes_and_takes_at_least_one() {
        let b = Batcher::new(policy());
        assert_eq!(b.next_write_len([100; 10]), 4, "max_events");
        assert_eq!(b.next_write_len([400, 400, 400]), 2, "max_bytes");
        assert_eq!(b.next_write_len([5000, 1]), 1, "an oversized event goes alone");
        assert_eq!(b.next_write_len([]), 0);
    }

    proptest! {
        /// Writes cut a queue of any sizes into pieces that each respect the
        /// bounds (one oversized event alone), in order, losing nothing.
        #[test]
        fn writes_cover_the_queue_within_bounds(
            sizes in proptest::collection::vec(1usize..1500, 0..60),
            max_events in 1usize..8,
            max_bytes in 1usize..3000,
        ) {
            let b = Batcher::new(BatchPolicy { max_events, max_bytes, ..policy() });
            let mut rest: &[usize] = &sizes;
            let mut taken = 0;
            while !rest.is_empty() {
                let n = b.next_write_len(rest.iter().copied());
                prop_assert!(n >= 1 && n <= max_events);
                let bytes: usize = rest[..n].iter().sum();
                prop_assert!(bytes <= max_bytes || n == 1);
                taken += n;
                rest = &rest[n..];
            }
            prop_assert_eq!(taken, sizes.len());
        }

        /// `ready` holds exactly when one of the four rules does.
        #[test]
        fn ready_is_exactly_the_rules(
            pushes in proptest::collection::vec((1usize..600, any::<bool>()), 0..8),
            waited_ms in 0u64..8000,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let start = Instant::now();
                let mut b = Batcher::new(policy());
                for (bytes, urgent) in &pushes {
                    b.push(*bytes, *urgent, start);
                }
                let now = start + Duration::from_millis(waited_ms);
                let total: usize = pushes.iter().map(|(n, _)| n).sum();
                let expected = pushes.iter().any(|(_, u)| *u)
                    || pushes.len() >= 3
                    || total >= 1000
                    || (!pushes.is_empty() && waited_ms >= 5000);
                prop_assert_eq!(b.ready(now), expected);
                Ok(())
            })?;
        }
    }
}
