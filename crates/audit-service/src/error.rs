//! Why a capture failed. Callers match on the variant.

use audit_core::event::{EventDraft, ValidationError};
use audit_storage::StorageErrorKind;

/// A capture that did not succeed. No variant means the event was stored.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The event is invalid; the error names the member.
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    /// The queue is full and the policy is to reject; the event is handed back.
    #[error("queue_full: the audit queue is full; retry later")]
    QueueFull {
        /// The event that was not accepted.
        event: Box<EventDraft>,
    },
    /// The same idempotency key was used with different content.
    #[error("idempotency_conflict: key {key:?} was already used for a different event")]
    IdempotencyConflict {
        /// The key.
        key: String,
    },
    /// Storage failed: the event was not stored (no receipt).
    #[error("storage failure, event not stored: {message}")]
    Storage {
        /// What kind of failure (a busy lock, an I/O error, a log refusing
        /// appends, …), to branch on.
        kind: StorageErrorKind,
        /// What failed and where.
        message: String,
    },
    /// The service is stopped or stopping.
    #[error("the audit service is not running")]
    Stopped,
}

impl CaptureError {
    /// A short machine-readable code (used by the CLI and the API).
    pub fn code(&self) -> &'static str {
        match self {
            CaptureError::Invalid(_) => "invalid_event",
            CaptureError::QueueFull { .. } => "queue_full",
            CaptureError::IdempotencyConflict { .. } => "idempotency_conflict",
            CaptureError::Storage { .. } => "storage_unavailable",
            CaptureError::Stopped => "service_stopped",
        }
    }
}

impl CaptureError {
    pub(crate) fn storage(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        CaptureError::Storage { kind, message: message.into() }
    }
}
