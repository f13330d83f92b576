//! The read side: everything that reads logs back from storage — never
//! the writer, never a lock — so it runs beside a live writer.
//!
//! ```text
//! stored    ─ TimeRange, the streaming chain check over segments/objects, jsonl export
//! verifier  ─ Verifier: the one way to verify (key required unless told otherwise)
//! query     ─ index lookups, each event read back from storage and checked
//! export    ─ json / jsonl / csv exports, streaming
//! proofs    ─ inclusion and consistency proofs from stored hashes
//! evidence  ─ evidence bundles: a checkpoint and a proof per event, and their offline check
//! heavy     ─ CPU-heavy checks on their own threads, below the async threads in priority
//! ```
//!
//! Each module has its own error type; none returns a bare `String`.

pub mod evidence;
pub mod export;
pub(crate) mod heavy;
pub mod proofs;
pub mod query;
pub(crate) mod stored;
pub mod tiles;
pub mod verifier;

pub use heavy::{HeavyReadPriority, set_heavy_read_priority};
pub use stored::{
    ExportError, LineVisitor, TimeRange, VerifiedThrough, export_jsonl, for_each_stored_line, for_each_stored_line_with,
};
