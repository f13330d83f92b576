//! From a stored line to the row the index keeps.

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, Category, Severity};
use audit_core::scan::{decode_string, scan_object};
use audit_core::stored::StoredLineError;
use audit_core::{Hash, hash::HashParseError};

use crate::Location;

/// The filter columns of one event, its hash and where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// `sequence`.
    pub sequence: u64,
    /// `event_id`.
    pub event_id: String,
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

/// Extracts the row of a stored line. This is the indexer's hot path, so it
/// only checks what the index relies on (canonical JSON, sequence, time,
/// hash); every query re-reads the line from storage and checks it fully
/// before answering (see `audit_service::query_events`), and `verify` is
/// the judge of the log itself.
pub fn index_row(line: &[u8], location: Location) -> Result<IndexRow, StoredLineError> {
    let members = scan_object(line).map_err(|_| StoredLineError::NotCanonical)?;
    let missing = |field: &'static str| StoredLineError::Member { field, why: "is missing or malformed".into() };
    let mut row = IndexRow {
        sequence: u64::MAX,
        event_id: String::new(),
        timestamp: Timestamp::from_micros(i64::MIN),
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
        hash: Hash::GENESIS,
        location,
    };
    let (mut have_hash, mut have_category, mut have_action, mut have_severity, mut have_actor) =
        (false, false, false, false, false);
    for m in members {
        let v = m.value;
        match m.name {
            b"sequence" => {
                row.sequence =
                    std::str::from_utf8(v).ok().and_then(|t| t.parse().ok()).ok_or_else(|| missing("sequence"))?;
            }
            b"event_id" => row.event_id = text(v),
            b"timestamp" => row.timestamp = Timestamp::parse_stored(&text(v)).map_err(|_| missing("timestamp"))?,
            b"hash" => {
                row.hash = Hash::from_hex(&text(v)).map_err(|_| missing("hash"))?;
                have_hash = true;
            }
            b"project_id" => row.project_id = Some(text(v)),
            b"event_category" => {
                row.event_category = Category::parse(&text(v)).ok_or_else(|| missing("event_category"))?;
                have_category = true;
            }
            b"event_type" => row.event_type = text(v),
            b"action" => {
                row.action = Action::parse(&text(v)).ok_or_else(|| missing("action"))?;
                have_action = true;
            }
            b"severity" => {
                row.severity = Severity::parse(&text(v)).ok_or_else(|| missing("severity"))?;
                have_severity = true;
            }
            b"actor_type" => {
                row.actor_type = ActorType::parse(&text(v)).ok_or_else(|| missing("actor_type"))?;
                have_actor = true;
            }
            b"actor_id" => row.actor_id = Some(text(v)),
            b"actor_email" => row.actor_email = Some(text(v)),
            b"resource_type" => row.resource_type = Some(text(v)),
            b"resource_id" => row.resource_id = Some(text(v)),
            _ => {}
        }
    }
    let complete = have_hash
        && have_category
        && have_action
        && have_severity
        && have_actor
        && !row.event_type.is_empty()
        && !row.event_id.is_empty();
    if row.sequence == u64::MAX || row.timestamp.as_micros() == i64::MIN || !complete {
        return Err(missing("sequence, timestamp, hash or a vocabulary member"));
    }
    Ok(row)
}

/// Parses a hash stored in the index.
pub(crate) fn hash_from_blob(blob: &[u8]) -> Result<Hash, HashParseError> {
    <[u8; 32]>::try_from(blob).map(Hash::from_bytes).map_err(|_| HashParseError)
}
