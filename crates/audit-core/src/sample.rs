//! Valid sample logs, for tests and benchmarks of everything that reads logs.

use crate::event::{Action, ActorType, EventDraft, Limits};
use crate::hash::Hash;
use crate::json::{Object, Value};
use crate::stored::{Seal, seal};
use crate::timestamp::Timestamp;

/// A realistic event input for `organization_id`, varied by `n`.
pub fn sample_draft(organization_id: &str, n: u64) -> EventDraft {
    let mut metadata = Object::new();
    metadata.insert("reason", Value::String(format!("scheduled cleanup #{n}")));
    metadata.insert("spans", Value::Number((n % 97) as f64));
    EventDraft {
        organization_id: organization_id.into(),
        project_id: Some(format!("proj-{}", n % 7)),
        event_type: "trace.deleted".into(),
        action: Some(Action::Delete),
        actor_type: Some(ActorType::User),
        actor_id: Some(format!("user-{}", n % 13)),
        actor_email: Some(format!("user{}@example.com", n % 13)),
        actor_ip: Some("192.0.2.10".into()),
        resource_type: Some("trace".into()),
        resource_id: Some(format!("trace-{n}")),
        metadata: Some(metadata.into()),
        ..Default::default()
    }
}

/// `count` sealed lines (no newlines) of a valid log for `organization_id`,
/// one event per millisecond from `start`, event ids derived from `n`.
pub fn sample_log(organization_id: &str, count: u64, start: Timestamp) -> Vec<Vec<u8>> {
    sample_log_from(organization_id, 0..count, Hash::GENESIS, start)
}

/// The lines at `sequences` of the log [`sample_log`] writes, the first
/// linked to `previous_hash` (so that a long log can be made piece by piece).
pub fn sample_log_from(
    organization_id: &str,
    sequences: std::ops::Range<u64>,
    mut previous_hash: Hash,
    start: Timestamp,
) -> Vec<Vec<u8>> {
    sequences
        .map(|n| {
            let event = sample_draft(organization_id, n).validate(&Limits::default()).expect("sample drafts are valid");
            let sealed = seal(
                &event,
                &Seal {
                    event_id: format!("01937a2b-3c4d-7e5f-8a6b-{n:012x}"),
                    sequence: n,
                    timestamp: start.add_micros(n as i64 * 1000),
                    previous_hash,
                },
            );
            previous_hash = sealed.hash;
            sealed.line
        })
        .collect()
}
