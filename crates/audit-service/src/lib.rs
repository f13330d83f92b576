//! # audit-service
//!
//! `AuditService`: the part that turns captured events into durable,
//! verifiable entries in per-organization logs.
//!
//! ```text
//! capture / capture_durable ── validate ──▶ bounded queue (a semaphore across all orgs;
//!     backpressure or queue_full) ──▶ one worker per organization: batch by count,
//!     bytes, latency (durable waiters flush at once) ──▶ Sequencer: dedup, idempotency,
//!     sequence, timestamp, previous_hash, hash ──▶ LogWriter::append (fsync)
//!     ──▶ receipts resolved
//! ```
//!
//! Reading back (`Verifier`, `export_jsonl`) goes straight to storage.

mod alert;
mod batcher;
mod checkpoint;
mod clock;
mod config;
mod erasure;
mod error;
mod helpers;
mod indexer;
mod lifecycle;
pub mod personal;
mod queue;
pub mod read;
mod readback;
mod retention;
mod scope;
mod sequencer;
mod service;
mod shared;
mod state;
pub mod timearg;
mod witness;
mod worker;

pub use alert::{AlertKind, WebhookConfig, signature};
pub use audit_core::csv::{CSV_COLUMNS, csv_cell, csv_record};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::CheckpointConfig;
pub use config::{AuditConfig, FullQueuePolicy};
pub use erasure::{ErasureError, ErasureReport, ErasureTarget, Requester};
pub use error::CaptureError;
pub use helpers::{Actor, AuditHelper, EvaluationStage};
pub use personal::Protection;
pub use queue::DurableReceipt;
pub use read::evidence::{BundleError, EvidenceError, EvidenceSummary, export_evidence, verify_evidence};
pub use read::export::{ExportFormat, export_events};
pub use read::query::{QueryError, QueryPage, query_events};
pub use retention::{PruneError, PruneOutcome};
// The read side keeps its former paths (`audit_service::proofs::…`).
pub use read::verifier::{Verifier, VerifyError};
pub use read::{ExportError, TimeRange, VerifiedThrough, export_jsonl, for_each_stored_line};
pub use read::{HeavyReadPriority, set_heavy_read_priority};
pub use read::{evidence, export, proofs, query, tiles};
pub use scope::{ScopeError, ScopeState};
pub use service::{Accepted, AuditService, Health, PendingReceipt, Reservation, ServiceBuilder};
pub use state::{CounterValues, Counters, OrganizationHealth};
pub use witness::{WitnessConfig, WitnessStatus};
