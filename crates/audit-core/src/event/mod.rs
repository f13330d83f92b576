//! The event model (SPEC §2): what a caller may send, how it is validated and
//! normalised, and the JSON members it becomes. (Over 500 lines on purpose:
//! every rule of SPEC §2 is checked in `validate`, top to bottom, in one place.)
//!
//! Flow: an [`EventDraft`] (from code, or from JSON via [`EventDraft::from_json`])
//! is checked by [`EventDraft::validate`] into a [`ValidatedEvent`], whose
//! members are final; the service then seals it into a stored event
//! ([`crate::stored`]).

pub(crate) mod from_json;
mod kinds;
mod object;

use std::net::IpAddr;

pub use from_json::InputError;
pub use kinds::{Action, ActorType, Category, Severity};
pub use object::JsonObject;

use crate::catalog;
use crate::hash::Hash;
use crate::json::{Object, Value};
use crate::timestamp::Timestamp;

/// Members that only the service sets; input that names one is rejected.
pub const SERVICE_MEMBERS: &[&str] = &["schema_version", "event_id", "sequence", "timestamp", "previous_hash", "hash"];

/// The stored `schema_version`.
pub const SCHEMA_VERSION: u64 = 1;

/// HTTP context of an event, as the middleware records it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestInfo {
    /// HTTP method.
    pub method: Option<String>,
    /// Request path (query string redacted or removed).
    pub path: Option<String>,
    /// The matched route template, e.g. `/v1/traces/{id}`.
    pub route: Option<String>,
    /// Response status.
    pub status: Option<u16>,
    /// Time to the response head, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Request id.
    pub request_id: Option<String>,
    /// Members that were cut to their size limit by whoever recorded the
    /// request (e.g. `request.path`, `actor_id`): the marker that a value is
    /// a prefix, never a reason to drop the event (docs/FORMAT.md).
    pub truncated: Option<Vec<String>>,
}

impl RequestInfo {
    /// Appends the canonical form of the stored `request` object (RFC 8785:
    /// members in name order, absent ones left out).
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        use crate::canonical::{write_number, write_string};
        let start = out.len();
        out.push(b'{');
        let name = |out: &mut Vec<u8>, field: &str| {
            if out.len() > start + 1 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let text = |out: &mut Vec<u8>, field: &str, v: &Option<String>| {
            if let Some(v) = v {
                name(out, field);
                write_string(v, out);
            }
        };
        if let Some(ms) = self.duration_ms {
            name(out, "duration_ms");
            write_number(ms, out);
        }
        text(out, "method", &self.method);
        text(out, "path", &self.path);
        text(out, "request_id", &self.request_id);
        text(out, "route", &self.route);
        if let Some(s) = self.status {
            name(out, "status");
            write_number(f64::from(s), out);
        }
        if let Some(names) = &self.truncated {
            name(out, "truncated");
            out.push(b'[');
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(n, out);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// An event as a caller describes it, before validation. Fields the caller
/// leaves `None` are omitted from the stored event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventDraft {
    /// The tenant whose log receives the event (required).
    pub organization_id: String,
    /// Optional project within the organization.
    pub project_id: Option<String>,
    /// When the caller says it happened.
    pub occurred_at: Option<Timestamp>,
    /// Category; may be left out for catalogued event types.
    pub event_category: Option<Category>,
    /// Dotted lowercase type, e.g. `trace.deleted` (required).
    pub event_type: String,
    /// What was done (required).
    pub action: Option<Action>,
    /// Severity; defaults from the catalog, else from the action.
    pub severity: Option<Severity>,
    /// Kind of resource acted on.
    pub resource_type: Option<String>,
    /// Id of the resource acted on.
    pub resource_id: Option<String>,
    /// Who acted (required).
    pub actor_type: Option<ActorType>,
    /// Their id.
    pub actor_id: Option<String>,
    /// Their email (personal data).
    pub actor_email: Option<String>,
    /// Their IP address (personal data).
    pub actor_ip: Option<String>,
    /// Their user agent.
    pub user_agent: Option<String>,
    /// Their session.
    pub session_id: Option<String>,
    /// HTTP context.
    pub request: Option<RequestInfo>,
    /// State before the change.
    pub previous_state: Option<JsonObject>,
    /// State after the change.
    pub new_state: Option<JsonObject>,
    /// Anything else worth keeping.
    pub metadata: Option<JsonObject>,
    /// Retry key: the same key with the same content stores nothing new.
    pub idempotency_key: Option<String>,
    /// The producer numbering its events (see `producer_sequence`).
    pub producer_id: Option<String>,
    /// This event's number in the producer's per-organization sequence.
    pub producer_sequence: Option<u64>,
}

/// Size limits on input (SPEC §2), all configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in any id, key or short text member.
    pub id_bytes: usize,
    /// Bytes in `actor_email`.
    pub email_bytes: usize,
    /// Bytes in `user_agent`.
    pub user_agent_bytes: usize,
    /// Canonical bytes of each of `previous_state`, `new_state`, `metadata`.
    pub object_bytes: usize,
    /// Nesting depth of each of those objects.
    pub object_depth: usize,
    /// Canonical bytes of the whole event input.
    pub event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            id_bytes: 256,
            email_bytes: 320,
            user_agent_bytes: 1024,
            object_bytes: 64 * 1024,
            object_depth: 32,
            event_bytes: 256 * 1024,
        }
    }
}

impl Limits {
    /// No size limits: used to check the *shape* of events already stored,
    /// which were validated under whatever limits were configured then.
    pub const fn unlimited() -> Self {
        Limits {
            id_bytes: usize::MAX,
            email_bytes: usize::MAX,
            user_agent_bytes: usize::MAX,
            object_bytes: usize::MAX,
            object_depth: usize::MAX,
            event_bytes: usize::MAX,
        }
    }
}

/// Why an event input was refused. Always names the member concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The member, dotted for nested ones (`request.status`).
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// The kinds of [`ValidationError`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required member is absent.
    #[error("is required")]
    Missing,
    /// A member the event format does not have.
    #[error("is not a member of an audit event")]
    Unknown,
    /// A member only the service may set.
    #[error("is set by the service and cannot be supplied")]
    ServiceOwned,
    /// A value of the wrong type or form.
    #[error("{0}")]
    Invalid(String),
    /// A value over a size limit.
    #[error("exceeds the limit of {limit} {unit}")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// What it counts (`bytes`, `levels`).
        unit: &'static str,
    },
}

impl ValidationError {
    pub(crate) fn new(field: impl Into<String>, problem: Problem) -> Self {
        ValidationError { field: field.into(), problem }
    }
    pub(crate) fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self::new(field, Problem::Invalid(why.into()))
    }
    /// True when the error is a size limit (HTTP 413 rather than 400).
    pub fn is_too_large(&self) -> bool {
        matches!(self.problem, Problem::TooLarge { .. })
    }
}

/// An event that passed validation, with defaults filled in. Its members are
/// exactly what will be stored (plus the service's members).
#[derive(Debug, Clone)]
pub struct ValidatedEvent {
    draft: EventDraft,
    category: Category,
    action: Action,
    severity: Severity,
    actor_type: ActorType,
    canonical: Vec<u8>,
    /// The fingerprint of the input as the caller sent it, computed once
    /// (by whoever asks first: the service asks on the caller's thread, so
    /// the log's worker does not). Kept through sealing: the sealed form's
    /// own fingerprint would never repeat (random nonces).
    fingerprint: std::sync::OnceLock<Hash>,
    /// Personal values sealed ([`Self::sealed`]).
    sealed: bool,
    /// Where sealing changes `canonical`.
    layout: Layout,
}

/// Where sealing changes an event's canonical input: the personal
/// members it replaces and the places the service's members go. Recorded
/// when the input is written, so that sealing copies the bytes between
/// them instead of writing every member again.
#[derive(Debug, Clone, Default)]
struct Layout {
    /// The values of the four personal members (JSON strings, quotes
    /// included), in [`crate::personal::PERSONAL_MEMBERS`] order; empty
    /// where a member is absent.
    personal: [std::ops::Range<u32>; 4],
    /// Where each service member goes (`,"name":value` is inserted there),
    /// in the order of [`ServiceMember`]: byte order, as members sort.
    service: [u32; 5],
}

/// The members the service adds to an event, in their canonical order
/// (`schema_version` and `sequence` are next to each other in every event).
#[derive(Debug, Clone, Copy)]
enum ServiceMember {
    EventId,
    Hash,
    PreviousHash,
    SchemaVersionAndSequence,
    Timestamp,
}

/// Equal when they store the same thing: whether a fingerprint was
/// computed yet (a cache) does not matter; what it is follows from the rest,
/// except for a sealed event, whose input fingerprint is compared too.
impl PartialEq for ValidatedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.draft == other.draft
            && self.category == other.category
            && self.action == other.action
            && self.severity == other.severity
            && self.actor_type == other.actor_type
            && self.canonical == other.canonical
            && self.sealed == other.sealed
            && (!self.sealed || self.fingerprint() == other.fingerprint())
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$` — organization and project ids.
pub fn is_valid_tenant_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$` — event types.
pub fn is_valid_event_type(t: &str) -> bool {
    let mut parts = 0;
    for part in t.split('.') {
        let b = part.as_bytes();
        if b.is_empty()
            || !b[0].is_ascii_lowercase()
            || !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        {
            return false;
        }
        parts += 1;
    }
    parts >= 2
}

/// Control characters (log injection) and bidirectional overrides/isolates
/// (text that displays differently from what it is) are never accepted in
/// ids, emails, types and other single-line members.
fn check_single_line(field: &str, text: &str, max_bytes: usize) -> Result<(), ValidationError> {
    if text.len() > max_bytes {
        return Err(ValidationError::new(field, Problem::TooLarge { limit: max_bytes, unit: "bytes" }));
    }
    if let Some(c) =
        text.chars().find(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(ValidationError::invalid(field, format!("contains the forbidden character U+{:04X}", c as u32)));
    }
    Ok(())
}

fn check_opt(field: &str, text: &Option<String>, max_bytes: usize) -> Result<(), ValidationError> {
    match text {
        Some(t) if t.is_empty() => Err(ValidationError::invalid(field, "must not be empty (omit it instead)")),
        Some(t) => check_single_line(field, t, max_bytes),
        None => Ok(()),
    }
}

/// Depth and finiteness of a state/metadata object, which leaves it in its
/// canonical form; its size is checked afterwards (see [`check_object_sizes`]).
fn check_object(field: &str, obj: &mut Option<JsonObject>, limits: &Limits) -> Result<(), ValidationError> {
    let too_deep =
        || ValidationError::new(field, Problem::TooLarge { limit: limits.object_depth, unit: "levels of nesting" });
    let tree = match obj {
        None => return Ok(()),
        // Read from JSON: finite by construction, depth measured.
        Some(JsonObject::Canonical(c)) if c.depth() > limits.object_depth => return Err(too_deep()),
        Some(JsonObject::Canonical(_)) => return Ok(()),
        Some(JsonObject::Tree(tree)) => tree,
    };
    check_tree(field, tree, limits)?;
    let canonical = crate::json::CanonicalObject::of_object(tree)
        .ok_or_else(|| ValidationError::invalid(field, "contains a number that is not finite"))?;
    *obj = Some(JsonObject::Canonical(canonical));
    Ok(())
}

/// Depth and finiteness of an object built in code, walked no deeper than
/// the limit (a tree can be arbitrarily deep; the walk must not be).
fn check_tree(field: &str, obj: &Object, limits: &Limits) -> Result<(), ValidationError> {
    /// The deepest container level under `v`, where `v` itself sits at `level`.
    fn walk(v: &Value, level: usize, max: usize) -> Result<usize, &'static str> {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Number(n) if !n.is_finite() => return Err("finite"),
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(o) => Box::new(o.iter().map(|(_, v)| v)),
            _ => return Ok(level - 1),
        };
        if level > max {
            return Err("depth");
        }
        children.map(|c| walk(c, level + 1, max)).try_fold(level, |d, r| Ok(d.max(r?)))
    }
    let deepest = if limits.object_depth == 0 {
        Err("depth")
    } else {
        obj.iter().map(|(_, v)| walk(v, 2, limits.object_depth)).try_fold(1, |d, r| Ok(d.max(r?)))
    };
    match deepest {
        Ok(_) => Ok(()),
        Err("finite") => Err(ValidationError::invalid(field, "contains a number that is not finite")),
        Err(_) => Err(ValidationError::new(
            field,
            Problem::TooLarge { limit: limits.object_depth, unit: "levels of nesting" },
        )),
    }
}

/// Canonical sizes of the state/metadata objects (checked ones: their
/// canonical form is at hand), in the order the members are stored.
fn check_object_sizes(draft: &EventDraft, limits: &Limits) -> Result<(), ValidationError> {
    for (field, obj) in
        [("metadata", &draft.metadata), ("new_state", &draft.new_state), ("previous_state", &draft.previous_state)]
    {
        if obj.as_ref().is_some_and(|o| o.canonical_bytes().len() > limits.object_bytes) {
            return Err(ValidationError::new(field, Problem::TooLarge { limit: limits.object_bytes, unit: "bytes" }));
        }
    }
    Ok(())
}

/// The largest integer every JSON reader holds exactly (2^53).
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

impl EventDraft {
    /// Validates and normalises the draft (SPEC §2): required members,
    /// patterns, vocabularies, limits, catalog defaults.
    pub fn validate(self, limits: &Limits) -> Result<ValidatedEvent, ValidationError> {
        // `enc:v1:` values are what the service writes when it seals
        // personal data (SPEC §9); a caller sending one would pass a
        // ciphertext off as the service's own.
        for (field, value) in [
            ("actor_email", &self.actor_email),
            ("actor_ip", &self.actor_ip),
            ("user_agent", &self.user_agent),
            ("session_id", &self.session_id),
        ] {
            if value.as_deref().is_some_and(|v| v.starts_with(crate::personal::SEALED_PREFIX)) {
                return Err(ValidationError::invalid(
                    field,
                    format!(
                        "must not start with {:?}: that form is reserved for values the service sealed",
                        crate::personal::SEALED_PREFIX
                    ),
                ));
            }
        }
        self.validate_with(limits)
    }

    /// Validation of an event read back from storage: its personal members
    /// may hold sealed values (which are not IP addresses, say).
    pub(crate) fn validate_stored(self) -> Result<ValidatedEvent, ValidationError> {
        self.validate_with(&Limits::unlimited())
    }

    fn validate_with(mut self, limits: &Limits) -> Result<ValidatedEvent, ValidationError> {
        if self.organization_id.is_empty() {
            return Err(ValidationError::new("organization_id", Problem::Missing));
        }
        if !is_valid_tenant_id(&self.organization_id) {
            return Err(ValidationError::invalid("organization_id", "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"));
        }
        if let Some(p) = &self.project_id
            && !is_valid_tenant_id(p)
        {
            return Err(ValidationError::invalid("project_id", "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"));
        }
        if self.event_type.is_empty() {
            return Err(ValidationError::new("event_type", Problem::Missing));
        }
        check_single_line("event_type", &self.event_type, limits.id_bytes)?;
        if !is_valid_event_type(&self.event_type) {
            return Err(ValidationError::invalid("event_type", "must be dotted lowercase, e.g. trace.deleted"));
        }
        let entry = catalog::lookup(&self.event_type);
        let category = match (self.event_category, entry) {
            (Some(given), Some(e)) if given != e.category => {
                return Err(ValidationError::invalid(
                    "event_category",
                    format!("{} is a {} event, not {given}", self.event_type, e.category),
                ));
            }
            (Some(given), _) => given,
            (None, Some(e)) => e.category,
            (None, None) => {
                return Err(ValidationError::invalid(
                    "event_category",
                    "is required for event types outside the catalog",
                ));
            }
        };
        let action = self.action.ok_or_else(|| ValidationError::new("action", Problem::Missing))?;
        let actor_type = self.actor_type.ok_or_else(|| ValidationError::new("actor_type", Problem::Missing))?;
        let severity = self.severity.or(entry.map(|e| e.severity)).unwrap_or(action.default_severity());

        for (field, value) in [
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("actor_id", &self.actor_id),
            ("session_id", &self.session_id),
            ("idempotency_key", &self.idempotency_key),
            ("producer_id", &self.producer_id),
        ] {
            check_opt(field, value, limits.id_bytes)?;
        }
        check_opt("actor_email", &self.actor_email, limits.email_bytes)?;
        check_opt("user_agent", &self.user_agent, limits.user_agent_bytes)?;
        check_opt("actor_ip", &self.actor_ip, limits.id_bytes)?;
        if let Some(ip) = &self.actor_ip
            && !ip.starts_with(crate::personal::SEALED_PREFIX)
        {
            // Normalise to the canonical text form so one address is one string.
            let parsed: IpAddr =
                ip.parse().map_err(|_| ValidationError::invalid("actor_ip", "is not an IPv4 or IPv6 address"))?;
            // An IPv4 address parses only from its canonical text (four
            // decimal numbers without leading zeros), so it is kept as
            // given: formatting it again costs more than the rest of
            // reading a stored event's members. IPv6 has many texts.
            if parsed.is_ipv6() {
                self.actor_ip = Some(parsed.to_string());
            }
        }
        match (&self.producer_id, self.producer_sequence) {
            (Some(_), None) => {
                return Err(ValidationError::invalid("producer_sequence", "is required with producer_id"));
            }
            (None, Some(_)) => {
                return Err(ValidationError::invalid("producer_id", "is required with producer_sequence"));
            }
            (_, Some(n)) if n > MAX_SAFE_INTEGER => {
                return Err(ValidationError::invalid("producer_sequence", "must be at most 2^53"));
            }
            _ => {}
        }
        if let Some(r) = &self.request {
            check_opt("request.method", &r.method, limits.id_bytes)?;
            check_opt("request.path", &r.path, limits.user_agent_bytes)?;
            check_opt("request.route", &r.route, limits.user_agent_bytes)?;
            check_opt("request.request_id", &r.request_id, limits.id_bytes)?;
            if let Some(names) = &r.truncated {
                if names.is_empty() {
                    return Err(ValidationError::invalid("request.truncated", "must not be empty (omit it instead)"));
                }
                for name in names {
                    check_single_line("request.truncated", name, limits.id_bytes)?;
                }
            }
            if let Some(d) = r.duration_ms
                && (!d.is_finite() || d < 0.0)
            {
                return Err(ValidationError::invalid("request.duration_ms", "must be a non-negative number"));
            }
        }
        check_object("previous_state", &mut self.previous_state, limits)?;
        check_object("new_state", &mut self.new_state, limits)?;
        check_object("metadata", &mut self.metadata, limits)?;
        check_object_sizes(&self, limits)?;

        // Store the resolved values so that the draft alone describes the event.
        self.event_category = Some(category);
        self.severity = Some(severity);
        let mut event = ValidatedEvent {
            draft: self,
            category,
            action,
            severity,
            actor_type,
            canonical: Vec::new(),
            fingerprint: std::sync::OnceLock::new(),
            sealed: false,
            layout: Layout::default(),
        };
        event.write_canonical_input();
        if event.canonical.len() > limits.event_bytes {
            return Err(ValidationError::new("event", Problem::TooLarge { limit: limits.event_bytes, unit: "bytes" }));
        }
        Ok(event)
    }
}

impl ValidatedEvent {
    /// The validated members.
    pub fn draft(&self) -> &EventDraft {
        &self.draft
    }
    /// The organization whose log receives this event.
    pub fn organization_id(&self) -> &str {
        &self.draft.organization_id
    }
    /// Category after catalog defaults.
    pub fn category(&self) -> Category {
        self.category
    }
    /// Action.
    pub fn action(&self) -> Action {
        self.action
    }
    /// Severity after defaults.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// Actor type.
    pub fn actor_type(&self) -> ActorType {
        self.actor_type
    }
    /// The caller's idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.draft.idempotency_key.as_deref()
    }
    /// RFC 8785 form of the caller's members (normalised, defaults filled).
    pub fn canonical_input(&self) -> &[u8] {
        &self.canonical
    }
    /// SHA-256 of [`Self::canonical_input`] without its `idempotency_key`
    /// member: what deduplication and idempotency compare (SPEC §5).
    /// `occurred_at` is included. The key is left out because it is retry
    /// bookkeeping, not content: two inputs that differ only in their keys
    /// describe the same event (and `ingest` derives a key per line, which
    /// must not hide a repeated line from deduplication).
    ///
    /// For an event whose personal values were sealed ([`Self::sealed`]),
    /// the fingerprint of the input before sealing.
    pub fn fingerprint(&self) -> Hash {
        *self.fingerprint.get_or_init(|| match self.idempotency_key_member() {
            Some(range) => Hash::of_parts(&[&self.canonical[..range.start], &self.canonical[range.end..]]),
            None => Hash::of(&self.canonical),
        })
    }

    /// This event with `key` as its `idempotency_key` (replacing any),
    /// checked as validation checks it — for a caller that gives events a
    /// key only after validating them (`ingest` derives keys from the whole
    /// input's hash). The fingerprint does not change: it leaves the key out.
    pub fn with_idempotency_key(mut self, key: String, limits: &Limits) -> Result<ValidatedEvent, ValidationError> {
        debug_assert!(!self.sealed, "keys are given before personal data is sealed");
        self.draft.idempotency_key = Some(key);
        check_opt("idempotency_key", &self.draft.idempotency_key, limits.id_bytes)?;
        self.write_canonical_input();
        if self.canonical.len() > limits.event_bytes {
            return Err(ValidationError::new("event", Problem::TooLarge { limit: limits.event_bytes, unit: "bytes" }));
        }
        Ok(self)
    }

    /// True once [`Self::sealed`] made this event (sealing twice would hide
    /// the first layer).
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// This event with its personal values sealed by `sealer` (its
    /// subject's key; SPEC §9, [`crate::personal::protect`]): what is
    /// stored and hashed is the ciphertext; [`Self::fingerprint`] stays the
    /// one of the input, so a retry is still recognised.
    pub fn sealed(
        mut self,
        paths: &[crate::personal::PersonalPath],
        sealer: &crate::personal::Sealer,
        nonce: impl FnMut() -> [u8; 12],
    ) -> ValidatedEvent {
        // The input's fingerprint, fixed before the canonical form changes.
        self.fingerprint();
        let sealed = crate::personal::protect_counted(&mut self.draft, paths, sealer, nonce);
        if sealed.at_paths > 0 {
            // Written again from the draft: its free-form objects are kept
            // in canonical form, so this costs less than scanning the old
            // form to splice the new values in.
            self.write_canonical_input();
        } else if sealed.members > 0 {
            // Only top-level members changed, and where they sit is known.
            self.replace_personal_members();
        }
        self.sealed = true;
        self
    }

    /// This stored event's members with its personal values revealed by
    /// `key_for` ([`crate::personal::reveal_draft`]), for display: the
    /// result is no longer what is stored (its canonical form is the
    /// revealed one; an erased value reads as `"[erased]"`), so it must
    /// never be hashed or written back.
    pub fn revealed(
        &self,
        paths: &[crate::personal::PersonalPath],
        key_for: impl FnMut(crate::personal::KeyId) -> Option<crate::personal::DataKey>,
    ) -> (ValidatedEvent, crate::personal::Revealing) {
        let mut shown = self.clone();
        let outcome = crate::personal::reveal_draft(&mut shown.draft, paths, key_for);
        if outcome != crate::personal::Revealing::default() {
            shown.write_canonical_input();
            // What deduplication compares is now the revealed input's.
            shown.fingerprint = std::sync::OnceLock::new();
            shown.sealed = false;
        }
        (shown, outcome)
    }

    /// Where `,"idempotency_key":"…"` sits in the canonical input. Members
    /// are sorted and every member that sorts before `idempotency_key`
    /// (`action`, `actor_*`, `event_*`) is a string, so the first occurrence
    /// of the member name followed by a colon is the top-level member (a
    /// quote inside a string value is always escaped).
    fn idempotency_key_member(&self) -> Option<std::ops::Range<usize>> {
        let key = self.draft.idempotency_key.as_deref()?;
        const NAME: &[u8] = b",\"idempotency_key\":";
        let start = memchr::memmem::find(&self.canonical, NAME)?;
        let value_len = crate::canonical::to_canonical(&Value::String(key.to_owned())).len();
        let end = start + NAME.len() + value_len;
        debug_assert!(self.canonical.get(end).is_some_and(|b| matches!(b, b',' | b'}')));
        Some(start..end)
    }

    /// Sets the canonical input, and its layout: the canonical form of the
    /// caller's members, written straight from the draft — members in RFC
    /// 8785 order (every name is ASCII, so byte order), the free-form
    /// objects copied in their canonical form. Equal to the canonical form
    /// of [`Self::to_object`] (tested), without building it.
    fn write_canonical_input(&mut self) {
        (self.canonical, self.layout) = self.write_members();
    }

    /// Writes the current values of the personal members over the ones in
    /// the canonical input, copying the bytes around them as they are:
    /// what [`Self::write_canonical_input`] gives when nothing else changed
    /// (tested), at the cost of a copy.
    fn replace_personal_members(&mut self) {
        let d = &self.draft;
        let values = [&d.actor_email, &d.actor_ip, &d.user_agent, &d.session_id];
        let mut order: [usize; 4] = [0, 1, 2, 3];
        order.sort_unstable_by_key(|&i| self.layout.personal[i].start);
        let grown: usize = values.iter().map(|v| v.as_ref().map_or(0, |v| v.len() + 2)).sum();
        let mut out = Vec::with_capacity(self.canonical.len() + grown);
        let mut copied = 0;
        // Each replaced value's old end and how much longer it became: the
        // service members' places after it move by as much.
        let mut moved: [Option<(u32, i64)>; 4] = [None; 4];
        for (n, i) in order.into_iter().enumerate() {
            let span = self.layout.personal[i].clone();
            let Some(value) = values[i] else { continue };
            debug_assert!(!span.is_empty(), "a present member was written");
            out.extend_from_slice(&self.canonical[copied..span.start as usize]);
            let start = out.len();
            crate::canonical::write_string(value, &mut out);
            self.layout.personal[i] = start as u32..out.len() as u32;
            moved[n] = Some((span.end, (out.len() - start) as i64 - span.len() as i64));
            copied = span.end as usize;
        }
        out.extend_from_slice(&self.canonical[copied..]);
        self.canonical = out;
        for at in &mut self.layout.service {
            let shift: i64 = moved.iter().flatten().filter(|(end, _)| *end <= *at).map(|(_, by)| by).sum();
            *at = (i64::from(*at) + shift) as u32;
        }
    }

    /// Appends the stored line of this event sealed with `seal` to `line`
    /// and returns its hash: `hash` when given (a stored event written out
    /// again), else the hash of the line without its `hash` member,
    /// computed here. The service's members are copied into the canonical
    /// input at the places its layout recorded; no member is written again.
    pub(crate) fn write_stored_line(&self, seal: &crate::stored::Seal, hash: Option<Hash>, line: &mut Vec<u8>) -> Hash {
        use crate::canonical::{write_decimal, write_string};
        let input = &self.canonical;
        let at = self.layout.service.map(|p| p as usize);
        line.reserve(input.len() + crate::stored::SEAL_MAX_BYTES);
        let start = line.len();
        line.extend_from_slice(&input[..at[ServiceMember::EventId as usize]]);
        line.extend_from_slice(b",\"event_id\":");
        write_string(&seal.event_id, line);
        line.extend_from_slice(&input[at[ServiceMember::EventId as usize]..at[ServiceMember::Hash as usize]]);
        let hash_member = line.len();
        line.extend_from_slice(crate::stored::HASH_MARKER);
        let hex = line.len();
        line.extend_from_slice(&[b'0'; 64]);
        line.push(b'"');
        let after_hash = line.len();
        line.extend_from_slice(&input[at[ServiceMember::Hash as usize]..at[ServiceMember::PreviousHash as usize]]);
        line.extend_from_slice(b",\"previous_hash\":\"");
        seal.previous_hash.write_hex(line);
        line.push(b'"');
        line.extend_from_slice(
            &input[at[ServiceMember::PreviousHash as usize]..at[ServiceMember::SchemaVersionAndSequence as usize]],
        );
        line.extend_from_slice(b",\"schema_version\":");
        write_decimal(SCHEMA_VERSION, line);
        line.extend_from_slice(b",\"sequence\":");
        write_decimal(seal.sequence, line);
        line.extend_from_slice(
            &input[at[ServiceMember::SchemaVersionAndSequence as usize]..at[ServiceMember::Timestamp as usize]],
        );
        line.extend_from_slice(b",\"timestamp\":\"");
        seal.timestamp.write_to(line);
        line.push(b'"');
        line.extend_from_slice(&input[at[ServiceMember::Timestamp as usize]..]);
        let hash = hash.unwrap_or_else(|| Hash::of_parts(&[&line[start..hash_member], &line[after_hash..]]));
        hex::encode_to_slice(hash.as_bytes(), &mut line[hex..hex + 64]).expect("64 hex digits for 32 bytes");
        hash
    }

    /// The caller's members in RFC 8785 order, and the layout of what was
    /// written.
    fn write_members(&self) -> (Vec<u8>, Layout) {
        use crate::canonical::{write_number, write_string};
        let d = &self.draft;
        let objects_len = [&d.previous_state, &d.new_state, &d.metadata]
            .iter()
            .map(|o| match o {
                Some(JsonObject::Canonical(c)) => c.as_bytes().len(),
                _ => 0,
            })
            .sum::<usize>();
        let mut out = Vec::with_capacity(512 + objects_len);
        out.push(b'{');
        let mut name = |out: &mut Vec<u8>, name: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let text = |out: &mut Vec<u8>, n: &mut dyn FnMut(&mut Vec<u8>, &str), field: &str, v: Option<&str>| {
            if let Some(v) = v {
                n(out, field);
                write_string(v, out);
            }
        };
        let object = |out: &mut Vec<u8>, n: &mut dyn FnMut(&mut Vec<u8>, &str), field: &str, v: &Option<JsonObject>| {
            if let Some(v) = v {
                n(out, field);
                v.write_canonical(out);
            }
        };
        let mut layout = Layout::default();
        // A personal member, by its index in `PERSONAL_MEMBERS`.
        let mut personal = |out: &mut Vec<u8>, n: &mut dyn FnMut(&mut Vec<u8>, &str), at: usize, v: Option<&str>| {
            if let Some(v) = v {
                n(out, crate::personal::PERSONAL_MEMBERS[at]);
                let start = out.len();
                write_string(v, out);
                layout.personal[at] = start as u32..out.len() as u32;
            }
        };
        let mut service_at = [0u32; 5];
        let mut service = |out: &Vec<u8>, member: ServiceMember| service_at[member as usize] = out.len() as u32;
        text(&mut out, &mut name, "action", Some(self.action.as_str()));
        personal(&mut out, &mut name, 0, d.actor_email.as_deref());
        text(&mut out, &mut name, "actor_id", d.actor_id.as_deref());
        personal(&mut out, &mut name, 1, d.actor_ip.as_deref());
        text(&mut out, &mut name, "actor_type", Some(self.actor_type.as_str()));
        text(&mut out, &mut name, "event_category", Some(self.category.as_str()));
        service(&out, ServiceMember::EventId);
        text(&mut out, &mut name, "event_type", Some(&d.event_type));
        service(&out, ServiceMember::Hash);
        text(&mut out, &mut name, "idempotency_key", d.idempotency_key.as_deref());
        object(&mut out, &mut name, "metadata", &d.metadata);
        object(&mut out, &mut name, "new_state", &d.new_state);
        if let Some(t) = d.occurred_at {
            name(&mut out, "occurred_at");
            out.push(b'"');
            t.write_to(&mut out);
            out.push(b'"');
        }
        text(&mut out, &mut name, "organization_id", Some(&d.organization_id));
        service(&out, ServiceMember::PreviousHash);
        object(&mut out, &mut name, "previous_state", &d.previous_state);
        text(&mut out, &mut name, "producer_id", d.producer_id.as_deref());
        if let Some(n) = d.producer_sequence {
            name(&mut out, "producer_sequence");
            write_number(n as f64, &mut out);
        }
        text(&mut out, &mut name, "project_id", d.project_id.as_deref());
        if let Some(r) = &d.request {
            name(&mut out, "request");
            r.write_canonical(&mut out);
        }
        text(&mut out, &mut name, "resource_id", d.resource_id.as_deref());
        text(&mut out, &mut name, "resource_type", d.resource_type.as_deref());
        service(&out, ServiceMember::SchemaVersionAndSequence);
        personal(&mut out, &mut name, 3, d.session_id.as_deref());
        text(&mut out, &mut name, "severity", Some(self.severity.as_str()));
        service(&out, ServiceMember::Timestamp);
        personal(&mut out, &mut name, 2, d.user_agent.as_deref());
        out.push(b'}');
        layout.service = service_at;
        (out, layout)
    }

    /// The caller's members as a JSON object (unset members omitted).
    pub fn to_object(&self) -> Object {
        let d = &self.draft;
        let mut o = Object::new();
        let put_str = |o: &mut Object, name: &str, v: &Option<String>| {
            if let Some(v) = v {
                o.insert(name, Value::String(v.clone()));
            }
        };
        o.insert("organization_id", Value::String(d.organization_id.clone()));
        put_str(&mut o, "project_id", &d.project_id);
        if let Some(t) = d.occurred_at {
            o.insert("occurred_at", Value::String(t.to_string()));
        }
        o.insert("event_category", Value::String(self.category.as_str().into()));
        o.insert("event_type", Value::String(d.event_type.clone()));
        o.insert("action", Value::String(self.action.as_str().into()));
        o.insert("severity", Value::String(self.severity.as_str().into()));
        put_str(&mut o, "resource_type", &d.resource_type);
        put_str(&mut o, "resource_id", &d.resource_id);
        o.insert("actor_type", Value::String(self.actor_type.as_str().into()));
        put_str(&mut o, "actor_id", &d.actor_id);
        put_str(&mut o, "actor_email", &d.actor_email);
        put_str(&mut o, "actor_ip", &d.actor_ip);
        put_str(&mut o, "user_agent", &d.user_agent);
        put_str(&mut o, "session_id", &d.session_id);
        if let Some(r) = &d.request {
            let mut ro = Object::new();
            put_str(&mut ro, "method", &r.method);
            put_str(&mut ro, "path", &r.path);
            put_str(&mut ro, "route", &r.route);
            if let Some(s) = r.status {
                ro.insert("status", Value::Number(s.into()));
            }
            if let Some(ms) = r.duration_ms {
                ro.insert("duration_ms", Value::Number(ms));
            }
            put_str(&mut ro, "request_id", &r.request_id);
            if let Some(names) = &r.truncated {
                ro.insert("truncated", Value::Array(names.iter().map(|n| Value::String(n.clone())).collect()));
            }
            o.insert("request", Value::Object(ro));
        }
        for (name, obj) in
            [("previous_state", &d.previous_state), ("new_state", &d.new_state), ("metadata", &d.metadata)]
        {
            if let Some(obj) = obj {
                o.insert(name, Value::Object(obj.to_object().into_owned()));
            }
        }
        put_str(&mut o, "idempotency_key", &d.idempotency_key);
        put_str(&mut o, "producer_id", &d.producer_id);
        if let Some(n) = d.producer_sequence {
            o.insert("producer_sequence", Value::Number(n as f64));
        }
        o
    }
}

#[cfg(test)]
mod tests;
