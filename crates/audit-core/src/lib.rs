//! # audit-core
//!
//! The sans-IO heart of AgentTrace Audit: no files, no sockets, no clocks.
//!
//! Data flow:
//!
//! ```text
//! JSON bytes ──EventDraft::from_json (one pass, strict I-JSON)──▶ EventDraft
//!     ──validate (writes the canonical input)──▶ ValidatedEvent
//!     ──stored::seal(sequence, timestamp, previous_hash)──▶ canonical line + hash
//! stored lines ──verify::ChainVerifier──▶ VerificationReport
//! ```
//!
//! Reading input builds no tree for the free-form objects (`metadata`,
//! `previous_state`, `new_state`): [`json::MemberReader`] checks each and
//! keeps it in canonical form ([`json::CanonicalObject`]), with exactly the
//! errors and offsets of the tree parser [`json::parse`] (tested against
//! it), and validation writes the event's canonical input straight from
//! the draft.
//!
//! The stored form of an event is its RFC 8785 canonical JSON, one event per
//! line; its `hash` is SHA-256 of that JSON without the `hash` member. See
//! `docs/FORMAT.md` in the repository for the on-disk format.
//!
//! ```
//! use audit_core::event::{Action, ActorType, EventDraft, Limits};
//! use audit_core::stored::{seal, Seal, hash_line};
//! use audit_core::{Hash, Timestamp};
//!
//! let event = EventDraft {
//!     organization_id: "org-123".into(),
//!     event_type: "trace.deleted".into(),
//!     action: Some(Action::Delete),
//!     actor_type: Some(ActorType::User),
//!     ..Default::default()
//! }
//! .validate(&Limits::default())?;
//! let sealed = seal(&event, &Seal {
//!     event_id: "01937a2b-3c4d-7e5f-8a6b-7c8d9e0f1a2b".into(),
//!     sequence: 0,
//!     timestamp: Timestamp::from_micros(1_764_312_394_123_456),
//!     previous_hash: Hash::GENESIS,
//! });
//! assert_eq!(hash_line(&sealed.line), Some((sealed.hash, sealed.hash)));
//! # Ok::<(), audit_core::event::ValidationError>(())
//! ```

pub mod canonical;
pub mod catalog;
pub mod cosign;
pub mod csv;
pub mod event;
pub mod filter;
pub mod hash;
pub mod json;
pub mod merkle;
pub mod note;
pub mod personal;
pub mod prune;
pub mod sample;
pub mod scan;
pub mod stored;
pub mod tiles;
pub mod timestamp;
pub mod verify;

pub use hash::Hash;
pub use timestamp::Timestamp;
