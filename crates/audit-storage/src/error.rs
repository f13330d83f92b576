//! The storage error type: a matchable kind, the log concerned, the cause.

use std::fmt;

/// What went wrong in storage. Callers branch on the kind, never the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Another writer holds the log's fence.
    Locked,
    /// An I/O operation failed (disk full, permission, device error).
    Io,
    /// Storage holds something it should not (not repaired: an operator must look).
    Unexpected,
    /// A previous failure could not be cleaned up; this writer refuses to append.
    Poisoned,
    /// Another writer appended at this position first (a shared store whose
    /// fence is a conditional write): nothing of the batch was stored; the
    /// writer is stale and must be reopened to learn the new tail.
    Conflict,
}

/// A storage failure.
#[derive(Debug)]
pub struct StorageError {
    /// The kind, for callers to match on.
    pub kind: StorageErrorKind,
    /// A lowercase sentence saying what failed and where.
    pub message: String,
    /// The underlying I/O error, if any.
    pub source: Option<std::io::Error>,
}

impl StorageError {
    /// A new error without an I/O cause.
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        StorageError { kind, message: message.into(), source: None }
    }

    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StorageError { kind: StorageErrorKind::Io, message: what.into(), source: Some(source) }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
