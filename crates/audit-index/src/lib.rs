//! # audit-index
//!
//! The query index: derived data. Storage is the truth; the index only says
//! *where* in storage the events matching a filter are. It is written after
//! storage commits, catches up with whatever storage holds that it lacks
//! ([`catch_up`]), reports how far it has got, and can be dropped and
//! rebuilt at any time (`agenttrace-audit reindex`).
//!
//! ```text
//! storage chunk bytes ──row::index_row──▶ IndexRow (filter columns + location + hash)
//!     ──EventIndex::apply (one transaction with the progress mark)──▶ index
//! AuditEventFilter ──EventIndex::query──▶ [Hit: sequence, hash, location] ──▶ the caller reads storage
//! ```

mod catch_up;
#[cfg(feature = "postgres")]
pub mod postgres;
mod row;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod test_suite;

use std::fmt::Debug;

use async_trait::async_trait;
use audit_core::Hash;
use audit_core::filter::AuditEventFilter;
use audit_storage::Chunk;

pub use catch_up::{BlindColumns, catch_up, catch_up_with_progress, index_appended};
pub use row::{IndexRow, index_row};

/// Where a stored line is: chunk, byte offset, length (without the newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The chunk holding it.
    pub chunk: Chunk,
    /// Byte offset of the line in the chunk.
    pub offset: u64,
    /// Length of the line, without its newline.
    pub len: u64,
}

/// One query result: enough to fetch the event from storage and check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The event's sequence.
    pub sequence: u64,
    /// The event's hash as indexed (checked against storage on fetch).
    pub hash: Hash,
    /// Where it is stored.
    pub location: Location,
}

/// How far the index has read an organization's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The sequence of the next event to index (= events indexed).
    pub next_sequence: u64,
    /// The chunk reading continues in.
    pub chunk: Chunk,
    /// The byte offset reading continues at.
    pub offset: u64,
}

/// An index failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The database failed.
    #[error("index database: {0}")]
    Database(String),
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] audit_storage::StorageError),
    /// Storage holds something the index cannot take (run verify).
    #[error("cannot index {organization_id} at sequence {sequence}: {detail}")]
    Unindexable {
        /// The log.
        organization_id: String,
        /// Where.
        sequence: u64,
        /// Why.
        detail: String,
    },
    /// The index knows more than storage holds (storage rolled back or
    /// truncated): it must be rebuilt, and nothing it says can be trusted.
    #[error("the index of {organization_id} is ahead of storage ({detail}); run reindex")]
    AheadOfStorage {
        /// The log.
        organization_id: String,
        /// Evidence.
        detail: String,
    },
    /// The filter was refused.
    #[error("invalid filter: {0}")]
    Filter(#[from] audit_core::filter::FilterError),
}

/// A query index over organization logs.
#[async_trait]
pub trait EventIndex: Send + Sync + Debug {
    /// How far `organization_id` is indexed (`None`: not at all).
    async fn progress(&self, organization_id: &str) -> Result<Option<Progress>, IndexError>;

    /// Adds rows and moves the progress mark, atomically. Rows already
    /// present (another indexer got there first) are skipped.
    async fn apply(&self, organization_id: &str, rows: Vec<IndexRow>, progress: Progress) -> Result<(), IndexError>;

    /// The events matching a (checked) filter, one page, in its order.
    async fn query(&self, filter: &AuditEventFilter) -> Result<Vec<Hit>, IndexError>;

    /// The event with this id, if indexed.
    async fn find_event(&self, organization_id: &str, event_id: &str) -> Result<Option<Hit>, IndexError>;

    /// Forgets one organization (or, with `None`, everything): the next
    /// catch-up rebuilds from storage.
    async fn clear(&self, organization_id: Option<&str>) -> Result<(), IndexError>;

    /// Forgets `actor_email` value `value` in `organization_id`'s rows (an
    /// erased subject's blind token: lookups must no longer find it) and
    /// returns how many rows held it.
    async fn forget_actor_email(&self, organization_id: &str, value: &str) -> Result<u64, IndexError>;

    /// Forgets `organization_id`'s rows before sequence `first_kept` (the
    /// events retention removed) and returns how many there were.
    async fn forget_before(&self, organization_id: &str, first_kept: u64) -> Result<u64, IndexError>;
}
