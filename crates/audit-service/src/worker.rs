//! One task per organization: it holds the log's writer (the storage fence),
//! batches what arrives, seals it through the [`Sequencer`] and resolves
//! receipts once storage confirmed the write.
//!
//! Bounded files: a worker holds one of `max_open_logs` permits while its
//! log is open, and retires — last checkpoint written, files released —
//! after `worker_idle_timeout` without work, or at once when idle while
//! another log waits for a permit. A new worker for the same organization
//! waits for its turn, so it never meets the retiring one at the fence.
//!
//! Group commit: while one write is being synced, new events pile up in the
//! channel; the next write takes all of them. A durable waiter or an
//! explicit flush makes the batch go at once; otherwise a batch waits for
//! `batch_size` events or `batch_interval`, as in the seed design.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use audit_core::event::ValidatedEvent;
use audit_storage::{LogWriter, StorageError, StorageErrorKind};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::batcher::{BatchPolicy, Batcher, stored_bytes};
use crate::checkpoint::Checkpointer;
use crate::error::CaptureError;
use crate::queue::{DurableReceipt, Msg, Pending};
use crate::readback::{follow_other_writers, remember_recent};
use crate::sequencer::{Decision, Sequencer};
use crate::shared::Shared;

fn reply(p: Pending, outcome: Result<DurableReceipt, CaptureError>) {
    if let Some(tx) = p.reply {
        // The caller may have given up waiting; the outcome stands regardless.
        let _ = tx.send(outcome);
    }
}

/// Fails an event storage could not take: the durable caller gets the
/// error; an accepted event (nobody waiting) is counted as lost and
/// recorded (`audit_log.events_dropped`), never silently gone.
fn fail(shared: &Shared, p: Pending, kind: StorageErrorKind, why: &str) {
    shared.counters.failed.fetch_add(1, Ordering::Relaxed);
    if p.reply.is_none() {
        shared.note_lost(&p, "storage_failed");
    }
    reply(p, Err(CaptureError::storage(kind, why)));
}

/// A worker that cannot write: it leaves the registry (so the next capture
/// tries again with a new worker) and fails everything already sent to it.
async fn refuse_all(
    shared: &Shared,
    organization_id: &str,
    generation: u64,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    kind: StorageErrorKind,
    why: String,
) {
    shared.retire_worker(organization_id, generation, None);
    rx.close();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Event(p) => fail(shared, p, kind, &why),
            Msg::Flush(done) => drop(done.send(())),
        }
    }
}

/// Runs one organization's worker until its channel closes and is drained,
/// or it retires.
pub(crate) async fn run(
    organization_id: String,
    generation: u64,
    turn: Arc<tokio::sync::Mutex<()>>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shared: Arc<Shared>,
) {
    // The previous worker of this log (retiring) has released its files once this is ours.
    let my_turn = turn.lock_owned().await;
    let open_permit = open_log_permit(&shared).await;
    serve_log(&organization_id, generation, &mut rx, &shared).await;
    drop(open_permit);
    drop(my_turn);
    shared.release_turn(&organization_id);
}

/// One of the `max_open_logs` permits; while none is free, idle workers are
/// asked (one at a time, longest waiting first) to retire.
async fn open_log_permit(shared: &Shared) -> OwnedSemaphorePermit {
    loop {
        if let Ok(p) = Arc::clone(&shared.open_logs).try_acquire_owned() {
            return p;
        }
        shared.log_pressure.notify_one();
        tokio::select! {
            p = Arc::clone(&shared.open_logs).acquire_owned() => {
                if let Ok(p) = p { return p; }
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Opens the log's writer, retrying a busy lock or an I/O failure (file
/// descriptors running out, a CLI command holding the log for a moment)
/// for up to two seconds before giving up.
async fn open_writer(shared: &Shared, organization_id: &str) -> Result<Box<dyn LogWriter>, StorageError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut delay = Duration::from_millis(25);
    loop {
        match shared.store.open_writer(organization_id).await {
            Ok(w) => return Ok(w),
            Err(e)
                if matches!(e.kind, StorageErrorKind::Locked | StorageErrorKind::Io)
                    && Instant::now() + delay < deadline =>
            {
                tracing::debug!(organization_id, error = %e, "cannot open the log yet; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Why an idle worker stopped waiting.
#[allow(clippy::large_enum_variant)] // lives on the stack for one match; boxing would allocate per event
enum Idle {
    Message(Option<Msg>),
    CheckpointDue,
    Retire,
}

async fn serve_log(
    organization_id: &str,
    generation: u64,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    shared: &Arc<Shared>,
) {
    let shared: &Shared = shared;
    let organization_id = organization_id.to_owned();
    let anchors = match Checkpointer::anchors(shared, &organization_id).await {
        Ok(a) => a,
        Err(why) => {
            tracing::error!(organization_id, why, "cannot read the log's checkpoints");
            return refuse_all(shared, &organization_id, generation, rx, StorageErrorKind::Io, why).await;
        }
    };
    let mut writer = match open_writer(shared, &organization_id).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(organization_id, error = %e, "cannot open the log for writing");
            return refuse_all(shared, &organization_id, generation, rx, e.kind, e.to_string()).await;
        }
    };
    let recovery = writer.recovery().clone();
    if recovery.torn_bytes_removed > 0 {
        shared.state.note_torn(&organization_id, recovery.torn_bytes_removed);
        tracing::warn!(
            organization_id,
            bytes = recovery.torn_bytes_removed,
            "removed a torn, unacknowledged tail on start"
        );
    }
    let config = &shared.config;
    let dedup_window = config.enable_deduplication.then_some(config.deduplication_window);
    let mut sequencer = Sequencer::new(recovery.tail, dedup_window, config.dedup_capacity, config.idempotency_window);
    if let Err(e) = remember_recent(shared, &organization_id, &mut sequencer).await {
        tracing::error!(organization_id, error = %e, "cannot read recent events back; deduplication starts empty");
    }
    let mut checkpointer =
        match Checkpointer::open(shared, &organization_id, anchors, recovery.tail.next_sequence).await {
            Ok(c) => c,
            Err(why) => {
                tracing::error!(organization_id, why, "refusing to append");
                shared.state.note_refusing(&organization_id, &why);
                shared.raise(crate::alert::AlertKind::LogPoisoned, &organization_id, &why);
                return refuse_all(shared, &organization_id, generation, rx, StorageErrorKind::Poisoned, why).await;
            }
        };
    shared.state.note_committed(&organization_id, recovery.tail.next_sequence);
    shared.state.note_remembered(&organization_id, sequencer.remembered() as i64);
    let mut idle_since = tokio::time::Instant::now();
    // Set when another log waits for an open-log permit: flush now, then retire.
    let mut pressed = false;

    let mut batch = Gathered::new(BatchPolicy {
        flush_at_events: config.batch_size,
        interval: config.batch_interval,
        max_events: config.max_batch_events,
        max_bytes: config.max_batch_bytes,
    });
    let mut closing = false;
    let mut erasures_seen = shared.protection.as_ref().map_or(0, |p| p.erasures());
    while !closing || !batch.buffer.is_empty() {
        if batch.buffer.is_empty() && batch.flush_waiters.is_empty() {
            // Idle: wait for work, the next checkpoint, or the time to retire.
            let due = checkpointer.as_ref().and_then(Checkpointer::due_at);
            let retire_at = if pressed { idle_since } else { idle_since + config.worker_idle_timeout };
            let next = tokio::select! {
                msg = rx.recv() => Idle::Message(msg),
                () = sleep_until_some(due) => Idle::CheckpointDue,
                () = tokio::time::sleep_until(retire_at) => Idle::Retire,
                () = shared.log_pressure.notified() => Idle::Retire,
            };
            match next {
                Idle::Message(Some(msg)) => batch.take(msg),
                Idle::Message(None) => break,
                Idle::CheckpointDue => {
                    if let Some(c) = checkpointer.as_mut() {
                        c.write_if_due(shared, &organization_id, false).await;
                    }
                    continue;
                }
                Idle::Retire => {
                    // A retiring log leaves a checkpoint of everything written, as a stop does.
                    if let Some(c) = checkpointer.as_mut() {
                        c.write_if_due(shared, &organization_id, true).await;
                    }
                    if shared.retire_worker(&organization_id, generation, Some(rx)) {
                        tracing::debug!(organization_id, "idle log worker retired");
                        shared.state.note_remembered(&organization_id, -(sequencer.remembered() as i64));
                        return;
                    }
                    pressed = false;
                    continue; // work arrived meanwhile
                }
            }
        }
        loop {
            while let Ok(msg) = rx.try_recv() {
                batch.take(msg);
            }
            if closing || batch.batcher.ready(tokio::time::Instant::now()) {
                break;
            }
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => batch.take(msg),
                    None => closing = true,
                },
                () = sleep_until_some(batch.batcher.deadline()) => {}
                // A batch waiting for its interval holds a file permit another log needs.
                () = shared.log_pressure.notified() => {
                    pressed = true;
                    break;
                }
            }
        }
        batch.batcher.reset();
        if let Some(protection) = &shared.protection {
            let now = shared.clock.now();
            for (p, why) in protection.seal_batch(&organization_id, now, &mut batch.buffer).await {
                tracing::error!(organization_id, why, "an event is refused: its personal data cannot be sealed");
                fail(shared, p, StorageErrorKind::Unexpected, &why);
            }
        }
        if let Some(erasures) = shared.protection.as_ref().map(|p| p.erasures())
            && erasures != erasures_seen
        {
            erasures_seen = erasures;
            let forgotten = sequencer.forget_fingerprints();
            shared.state.note_remembered(&organization_id, -(forgotten as i64));
        }
        let buffer = &mut batch.buffer;
        let mut conflicts_in_a_row = 0;
        while !buffer.is_empty() {
            let n = batch.batcher.next_write_len(buffer.iter().map(|p| stored_bytes(&p.event)));
            let write: Vec<Pending> = buffer.drain(..n).collect();
            let before = sequencer.remembered();
            let outcome = commit(shared, &organization_id, writer.as_mut(), &mut sequencer, write).await;
            match outcome {
                Committed::Appended(appended) => {
                    conflicts_in_a_row = 0;
                    if let Some(c) = checkpointer.as_mut() {
                        appended.iter().for_each(|h| c.push(h));
                    }
                }
                Committed::Lost(retry) => {
                    // Another instance wrote at our tail first (a shared store
                    // fenced by conditional writes): take its events as ours
                    // would have been taken, then seal this batch after them.
                    shared.counters.write_conflicts.fetch_add(1, Ordering::Relaxed);
                    conflicts_in_a_row += 1;
                    let caught_up = if conflicts_in_a_row > MAX_CONFLICTS_IN_A_ROW {
                        Err(format!("lost the log's tail to other writers {MAX_CONFLICTS_IN_A_ROW} times in a row"))
                    } else {
                        follow_other_writers(
                            shared,
                            &organization_id,
                            writer.as_mut(),
                            &mut sequencer,
                            checkpointer.as_mut(),
                        )
                        .await
                    };
                    match caught_up {
                        Ok(()) => drop(buffer.splice(0..0, retry)),
                        Err(why) => {
                            tracing::error!(organization_id, why, "cannot follow the log's other writers");
                            for p in retry.into_iter().chain(buffer.drain(..)) {
                                fail(shared, p, StorageErrorKind::Unexpected, &why);
                            }
                            // The sequencer stands at an old tail: this worker retires and
                            // the next capture starts a new one from what storage holds.
                            shared.state.note_remembered(&organization_id, -(before as i64));
                            return refuse_all(
                                shared,
                                &organization_id,
                                generation,
                                rx,
                                StorageErrorKind::Unexpected,
                                why,
                            )
                            .await;
                        }
                    }
                }
            }
            shared.state.note_remembered(&organization_id, sequencer.remembered() as i64 - before as i64);
        }
        if let Some(c) = checkpointer.as_mut() {
            c.write_if_due(shared, &organization_id, false).await;
        }
        idle_since = tokio::time::Instant::now();
        for done in batch.flush_waiters.drain(..) {
            let _ = done.send(());
        }
        if rx.is_closed() && rx.is_empty() {
            closing = true;
        }
    }
    // A graceful stop always leaves a checkpoint of everything written.
    if let Some(c) = checkpointer.as_mut() {
        c.write_if_due(shared, &organization_id, true).await;
    }
    shared.state.note_remembered(&organization_id, -(sequencer.remembered() as i64));
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a worker has gathered for its next write.
struct Gathered {
    buffer: Vec<Pending>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    batcher: Batcher,
}

impl Gathered {
    fn new(policy: BatchPolicy) -> Self {
        Gathered { buffer: Vec::new(), flush_waiters: Vec::new(), batcher: Batcher::new(policy) }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Event(p) => {
                self.batcher.push(stored_bytes(&p.event), p.reply.is_some(), tokio::time::Instant::now());
                self.buffer.push(p);
            }
            Msg::Flush(done) => {
                self.batcher.mark_urgent();
                self.flush_waiters.push(done);
            }
        }
    }
}

/// How many times in a row a batch may lose the tail to other writers
/// before it fails (each loss means another instance made progress, so
/// this only trips under extreme contention).
const MAX_CONFLICTS_IN_A_ROW: u32 = 64;

/// What became of a batch handed to [`commit`].
enum Committed {
    /// Written (or answered without a write); the hashes appended, in order.
    Appended(Vec<audit_core::Hash>),
    /// Another writer took the tail first: nothing was written, nobody was
    /// answered yet; these must be sequenced again after its events.
    Lost(Vec<Pending>),
}

async fn commit(
    shared: &Shared,
    organization_id: &str,
    writer: &mut dyn LogWriter,
    sequencer: &mut Sequencer,
    batch: Vec<Pending>,
) -> Committed {
    let now = shared.clock.now();
    sequencer.expire(now);
    let refs: Vec<(&ValidatedEvent, &str)> = batch.iter().map(|p| (&p.event, p.event_id.as_str())).collect();
    let mut plan = sequencer.plan(&refs, now);
    drop(refs);
    let decisions = std::mem::take(&mut plan.decisions);
    let counters = &shared.counters;

    // Answer what needs no write first: duplicates of durable events, conflicts.
    let mut waiting = Vec::with_capacity(batch.len());
    for (p, decision) in batch.into_iter().zip(decisions) {
        match decision {
            Decision::DuplicateOfDurable(receipt) => {
                counters.deduplicated.fetch_add(1, Ordering::Relaxed);
                reply(p, Ok(DurableReceipt { receipt, deduplicated: true }));
            }
            Decision::Conflict(key) => {
                counters.idempotency_conflicts.fetch_add(1, Ordering::Relaxed);
                reply(p, Err(CaptureError::IdempotencyConflict { key }));
            }
            other => waiting.push((p, other)),
        }
    }
    let Some(batch) = plan.batch.take() else {
        sequencer.commit(plan);
        return Committed::Appended(Vec::new());
    };
    let started = Instant::now();
    let count = batch.count;
    let batch = Arc::new(batch);
    match writer.append(Arc::clone(&batch)).await {
        Ok(placement) => {
            sequencer.commit(plan);
            shared.note_appended(organization_id, sequencer.next_sequence(), batch, placement);
            counters.committed.fetch_add(count, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            shared.state.note_flush(organization_id, now, started.elapsed());
            let mut appended = Vec::with_capacity(count as usize);
            for (p, decision) in waiting {
                let outcome = match decision {
                    Decision::Append(receipt) => {
                        appended.push(receipt.hash);
                        DurableReceipt { receipt, deduplicated: false }
                    }
                    Decision::DuplicateInBatch(receipt) => {
                        counters.deduplicated.fetch_add(1, Ordering::Relaxed);
                        DurableReceipt { receipt, deduplicated: true }
                    }
                    _ => unreachable!("answered above"),
                };
                reply(p, Ok(outcome));
            }
            Committed::Appended(appended)
        }
        Err(e) if e.kind == audit_storage::StorageErrorKind::Conflict => {
            tracing::info!(organization_id, events = count, "another instance appended first; re-sequencing the batch");
            Committed::Lost(waiting.into_iter().map(|(p, _)| p).collect())
        }
        Err(e) => {
            let poisoned = e.kind == audit_storage::StorageErrorKind::Poisoned;
            tracing::error!(organization_id, events = count, error = %e, "append failed; no event of the batch is acknowledged");
            if poisoned {
                shared.state.note_refusing(organization_id, &e.to_string());
                shared.raise(crate::alert::AlertKind::LogPoisoned, organization_id, &e.to_string());
            }
            let why = e.to_string();
            for (p, _) in waiting {
                fail(shared, p, e.kind, &why);
            }
            Committed::Appended(Vec::new())
        }
    }
}
