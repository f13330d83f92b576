//! From a stored line to the row the index keeps.

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, Category, Severity};
use audit_core::scan::{decode_string, scan_object};
use audit_core::stored::{StoredLineError, check_line};
use audit_core::{Hash, hash::HashParseError};

use crate::Location;

/// The filter columns of one event, its hash and where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// `sequence`.
    pub sequence: u64,
    /// `timestamp`.
    pub timestamp: Timestamp,
    /// `project_id`.
    pub project_id: Option<String>,
    /// `event_category`.
    pub event_category: Category,
    /// `event_type`.
    pub event_type: String,
    /// `action`.
    pub action: Action,
    /// `severity`.
    pub severity: Severity,
    /// `actor_type`.
    pub actor_type: ActorType,
    /// `actor_id`.
    pub actor_id: Option<String>,
    /// `actor_email`.
    pub actor_email: Option<String>,
    /// `resource_type`.
    pub resource_type: Option<String>,
    /// `resource_id`.
    pub resource_id: Option<String>,
    /// `hash`.
    pub hash: Hash,
    /// Where the line is.
    pub location: Location,
}

fn text(raw: &[u8]) -> String {
    match raw {
        [b'"', inner @ .., b'"'] => decode_string(inner).into_owned(),
        _ => String::new(),
    }
}

/// Checks a stored line (as the verifier does) and extracts its row.
pub fn index_row(line: &[u8], location: Location) -> Result<IndexRow, StoredLineError> {
    let facts = check_line(line)?;
    if facts.computed_hash != facts.hash {
        return Err(StoredLineError::Member { field: "hash", why: "does not match the content".into() });
    }
    let mut row = IndexRow {
        sequence: facts.sequence,
        timestamp: facts.timestamp,
        project_id: None,
        event_category: Category::Data,
        event_type: String::new(),
        action: Action::Other,
        severity: Severity::Info,
        actor_type: ActorType::System,
        actor_id: None,
        actor_email: None,
        resource_type: None,
        resource_id: None,
        hash: facts.hash,
        location,
    };
    // check_line accepted the line, so every member below is well-formed.
    for m in scan_object(line).map_err(|_| StoredLineError::NotCanonical)? {
        let v = m.value;
        match m.name {
            b"project_id" => row.project_id = Some(text(v)),
            b"event_category" => row.event_category = Category::parse(&text(v)).unwrap_or(Category::Data),
            b"event_type" => row.event_type = text(v),
            b"action" => row.action = Action::parse(&text(v)).unwrap_or(Action::Other),
            b"severity" => row.severity = Severity::parse(&text(v)).unwrap_or(Severity::Info),
            b"actor_type" => row.actor_type = ActorType::parse(&text(v)).unwrap_or(ActorType::System),
            b"actor_id" => row.actor_id = Some(text(v)),
            b"actor_email" => row.actor_email = Some(text(v)),
            b"resource_type" => row.resource_type = Some(text(v)),
            b"resource_id" => row.resource_id = Some(text(v)),
            _ => {}
        }
    }
    Ok(row)
}

/// Parses a hash stored in the index.
pub(crate) fn hash_from_blob(blob: &[u8]) -> Result<Hash, HashParseError> {
    <[u8; 32]>::try_from(blob).map(Hash::from_bytes).map_err(|_| HashParseError)
}
