//! What travels from `capture` to an organization's worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use audit_core::event::ValidatedEvent;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::CaptureError;
use crate::worker::DurableReceipt;

/// Where a durable capture's outcome goes.
pub(crate) type Reply = oneshot::Sender<Result<DurableReceipt, CaptureError>>;

/// An event's place in the queue: the service-wide slot (none for the
/// service's own records, which must not be refused in turn) and its
/// organization's queued count. Both are given back when it is dropped,
/// whatever became of the event.
#[derive(Debug)]
pub(crate) struct QueueSlot {
    _permit: Option<OwnedSemaphorePermit>,
    queued: Arc<AtomicU64>,
}

impl QueueSlot {
    pub(crate) fn new(permit: Option<OwnedSemaphorePermit>, queued: Arc<AtomicU64>) -> QueueSlot {
        queued.fetch_add(1, Ordering::Relaxed);
        QueueSlot { _permit: permit, queued }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An event on its way to the log.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) event: ValidatedEvent,
    pub(crate) event_id: String,
    /// The durable caller waiting, if any; `None` for an accepted (`capture`) event.
    pub(crate) reply: Option<Reply>,
    pub(crate) _slot: QueueSlot,
}

impl Pending {
    /// The event's producer numbering, if it has one.
    pub(crate) fn producer(&self) -> Option<(&str, u64)> {
        let d = self.event.draft();
        d.producer_id.as_deref().zip(d.producer_sequence)
    }
}

/// A message to a worker.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // events are the common case; boxing them costs an allocation each
pub(crate) enum Msg {
    Event(Pending),
    Flush(oneshot::Sender<()>),
}
