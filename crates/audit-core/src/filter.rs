//! Query filters (SPEC §8): what a caller may ask, validated before use, and
//! how a stored event is matched against them.
//!
//! Time filters apply to `timestamp` (the service's time): `start_time`
//! inclusive, `end_time` exclusive. Paging is by `offset` (at most 10,000,
//! exact only while the log does not change) or by an opaque cursor, which
//! is exact while the log grows: it names the last sequence returned.

use std::fmt;

use crate::event::{Action, ActorType, Category, Severity};
use crate::stored::StoredEvent;
use crate::timestamp::Timestamp;

/// The largest page a query returns.
pub const MAX_LIMIT: u32 = 1000;
/// The deepest `offset` accepted; deeper pages use the cursor.
pub const MAX_OFFSET: u32 = 10_000;
/// The page size when none is given.
pub const DEFAULT_LIMIT: u32 = 100;

/// Result order, by sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    /// Parses `asc`/`desc` in any case.
    pub fn parse(text: &str) -> Option<Order> {
        match text.to_ascii_lowercase().as_str() {
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            _ => None,
        }
    }
}

/// A position in a result list: the page after the event with this sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last sequence of the previous page.
    pub after_sequence: u64,
    /// The order it was taken in (a cursor is only valid for that order).
    pub order: Order,
}

impl Cursor {
    /// The opaque token handed to callers.
    pub fn encode(&self) -> String {
        let o = match self.order {
            Order::Asc => 'a',
            Order::Desc => 'd',
        };
        format!("c1{o}{}", self.after_sequence)
    }

    /// Reads a token made by [`Cursor::encode`].
    pub fn decode(token: &str) -> Option<Cursor> {
        let rest = token.strip_prefix("c1")?;
        let (order, digits) = match rest.as_bytes().first()? {
            b'a' => (Order::Asc, &rest[1..]),
            b'd' => (Order::Desc, &rest[1..]),
            _ => return None,
        };
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return None;
        }
        Some(Cursor { after_sequence: digits.parse().ok()?, order })
    }
}

/// A query over one organization's events. Build it, then [`AuditEventFilter::check`] it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEventFilter {
    /// The organization (required).
    pub organization_id: String,
    /// Exact project.
    pub project_id: Option<String>,
    /// Category.
    pub event_category: Option<Category>,
    /// Exact event type.
    pub event_type: Option<String>,
    /// Action.
    pub action: Option<Action>,
    /// Severity.
    pub severity: Option<Severity>,
    /// Actor type.
    pub actor_type: Option<ActorType>,
    /// Exact actor id.
    pub actor_id: Option<String>,
    /// Exact actor email.
    pub actor_email: Option<String>,
    /// Exact resource type.
    pub resource_type: Option<String>,
    /// Exact resource id.
    pub resource_id: Option<String>,
    /// `timestamp >= start_time`.
    pub start_time: Option<Timestamp>,
    /// `timestamp < end_time`.
    pub end_time: Option<Timestamp>,
    /// Page size (default 100, at most 1000; ignored by exports).
    pub limit: Option<u32>,
    /// Events to skip (at most 10,000).
    pub offset: Option<u32>,
    /// Order by sequence.
    pub order: Order,
    /// Continue after this cursor (exclusive with `offset`).
    pub cursor: Option<Cursor>,
}

/// A filter refused before it ran; names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FilterError {
    /// The parameter.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl AuditEventFilter {
    /// A filter for everything in `organization_id`'s log.
    pub fn for_organization(organization_id: impl Into<String>) -> Self {
        AuditEventFilter { organization_id: organization_id.into(), ..Default::default() }
    }

    /// Checks the limits of SPEC §8: refused, never silently clamped.
    pub fn check(&self) -> Result<(), FilterError> {
        let err = |field, problem: String| Err(FilterError { field, problem });
        if !crate::event::is_valid_tenant_id(&self.organization_id) {
            return err("organization_id", "is required and must be a valid organization id".into());
        }
        if let Some(limit) = self.limit
            && (limit == 0 || limit > MAX_LIMIT)
        {
            return err("limit", format!("must be from 1 to {MAX_LIMIT} (exports have no limit); got {limit}"));
        }
        if let Some(offset) = self.offset
            && offset > MAX_OFFSET
        {
            return err("offset", format!("must be at most {MAX_OFFSET}; page deeper with the cursor"));
        }
        if let Some(cursor) = self.cursor {
            if self.offset.is_some_and(|o| o > 0) {
                return err("cursor", "cannot be combined with offset".into());
            }
            if cursor.order != self.order {
                return err("cursor", "was issued for the other order".into());
            }
        }
        if let (Some(s), Some(e)) = (self.start_time, self.end_time)
            && e < s
        {
            return err("end_time", format!("{e} is before start_time {s}"));
        }
        Ok(())
    }

    /// The page size in force.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// True when only the time range (or nothing) narrows the log.
    pub fn is_time_range_only(&self) -> bool {
        let AuditEventFilter {
            project_id,
            event_category,
            event_type,
            action,
            severity,
            actor_type,
            actor_id,
            actor_email,
            resource_type,
            resource_id,
            ..
        } = self;
        project_id.is_none()
            && event_category.is_none()
            && event_type.is_none()
            && action.is_none()
            && severity.is_none()
            && actor_type.is_none()
            && actor_id.is_none()
            && actor_email.is_none()
            && resource_type.is_none()
            && resource_id.is_none()
    }

    /// Whether a stored event satisfies every condition (paging aside).
    pub fn matches(&self, e: &StoredEvent) -> bool {
        let d = e.body.draft();
        let eq = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
        d.organization_id == self.organization_id
            && eq(&self.project_id, &d.project_id)
            && self.event_category.is_none_or(|c| c == e.body.category())
            && self.event_type.as_ref().is_none_or(|t| *t == d.event_type)
            && self.action.is_none_or(|a| a == e.body.action())
            && self.severity.is_none_or(|s| s == e.body.severity())
            && self.actor_type.is_none_or(|a| a == e.body.actor_type())
            && eq(&self.actor_id, &d.actor_id)
            && eq(&self.actor_email, &d.actor_email)
            && eq(&self.resource_type, &d.resource_type)
            && eq(&self.resource_id, &d.resource_id)
            && self.start_time.is_none_or(|s| e.timestamp >= s)
            && self.end_time.is_none_or(|t| e.timestamp < t)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_refused_not_clamped() {
        let base = AuditEventFilter::for_organization("org-1");
        assert!(base.check().is_ok());
        let e = AuditEventFilter { limit: Some(1001), ..base.clone() }.check().unwrap_err();
        assert_eq!(e.field, "limit");
        assert!(e.problem.contains("1000"));
        assert_eq!(AuditEventFilter { offset: Some(10_001), ..base.clone() }.check().unwrap_err().field, "offset");
        assert!(AuditEventFilter { offset: Some(10_000), limit: Some(1000), ..base.clone() }.check().is_ok());
        assert_eq!(AuditEventFilter::for_organization("").check().unwrap_err().field, "organization_id");
        let cursor = Some(Cursor { after_sequence: 5, order: Order::Desc });
        assert_eq!(AuditEventFilter { cursor, ..base.clone() }.check().unwrap_err().field, "cursor");
        let (s, e) = (Timestamp::from_micros(10), Timestamp::from_micros(5));
        assert_eq!(
            AuditEventFilter { start_time: Some(s), end_time: Some(e), ..base }.check().unwrap_err().field,
            "end_time"
        );
    }

    #[test]
    fn cursor_tokens_round_trip_and_reject_garbage() {
        for c in
            [Cursor { after_sequence: 0, order: Order::Asc }, Cursor { after_sequence: 123_456, order: Order::Desc }]
        {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in ["", "c1", "c1a", "c1x5", "c2a5", "c1a05", "c1a-5", "c1a5x"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
