//! What travels from `capture` to an organization's worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use audit_core::event::ValidatedEvent;
use audit_core::stored::Receipt;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::CaptureError;

/// A receipt for a durably stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableReceipt {
    /// The stored event (the original, for a duplicate).
    pub receipt: Receipt,
    /// True when this capture was a duplicate and stored nothing new.
    pub deduplicated: bool,
}

impl DurableReceipt {
    /// The receipt as the CLI and the API print it:
    /// `{"event_id","sequence","timestamp","hash"}` (+ `"deduplicated":true`).
    pub fn to_object(&self) -> audit_core::json::Object {
        use audit_core::json::Value;
        let mut o = audit_core::json::Object::new();
        o.insert("event_id", Value::String(self.receipt.event_id.clone()));
        o.insert("sequence", Value::Number(self.receipt.sequence as f64));
        o.insert("timestamp", Value::String(self.receipt.timestamp.to_string()));
        o.insert("hash", Value::String(self.receipt.hash.to_hex()));
        if self.deduplicated {
            o.insert("deduplicated", Value::Bool(true));
        }
        o
    }
}

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
