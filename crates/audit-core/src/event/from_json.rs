//! Reading an [`EventDraft`] from caller JSON: every member checked for type,
//! unknown and service-owned members refused, enums in any letter case.
//!
//! One pass over the bytes ([`json::MemberReader`]): the members the model
//! types (ids, vocabularies, times) are decoded, `previous_state`,
//! `new_state` and `metadata` are checked and kept in canonical form — no
//! tree is built for them — and the errors are exactly the tree path's:
//! a JSON error anywhere in the text wins over a member error, and among
//! member errors the first in the text wins.

use std::borrow::Cow;

use super::{
    Action, ActorType, Category, EventDraft, JsonObject, MAX_SAFE_INTEGER, Problem, RequestInfo, SERVICE_MEMBERS,
    Severity, ValidationError,
};
use crate::json::{self, MemberReader, NumberPolicy, Object, TopLevel, Value};
use crate::timestamp::Timestamp;

/// Why a JSON text is not a valid event input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The text is not I-JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] json::JsonError),
    /// The JSON is not a valid event.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// A member's value as the reader hands it over.
pub(crate) enum Input<'a> {
    /// A string (borrowed from the input when unescaped).
    String(Cow<'a, str>),
    /// One of the free-form objects.
    Object(JsonObject),
    /// Anything else, as a tree.
    Other(Value),
}

impl Input<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Input::String(_) => "string",
            Input::Object(_) => "object",
            Input::Other(v) => v.type_name(),
        }
    }
}

/// The members kept as free-form objects.
pub(crate) const OBJECT_MEMBERS: [&str; 3] = ["previous_state", "new_state", "metadata"];

fn string(field: &str, v: Input<'_>) -> Result<String, ValidationError> {
    match v {
        Input::String(s) => Ok(s.into_owned()),
        other => Err(ValidationError::invalid(field, format!("must be a string, not {}", other.type_name()))),
    }
}

fn object(field: &str, v: Value) -> Result<Object, ValidationError> {
    match v {
        Value::Object(o) => Ok(o),
        other => Err(ValidationError::invalid(field, format!("must be an object, not {}", other.type_name()))),
    }
}

fn free_form(field: &str, v: Input<'_>) -> Result<JsonObject, ValidationError> {
    match v {
        Input::Object(o) => Ok(o),
        other => Err(ValidationError::invalid(field, format!("must be an object, not {}", other.type_name()))),
    }
}

fn unsigned(field: &str, v: &Input<'_>, max: u64) -> Result<u64, ValidationError> {
    match v {
        Input::Other(Value::Number(n)) if n.fract() == 0.0 && *n >= 0.0 && *n <= max as f64 => Ok(*n as u64),
        Input::Other(Value::Number(_)) => {
            Err(ValidationError::invalid(field, format!("must be an integer from 0 to {max}")))
        }
        other => Err(ValidationError::invalid(field, format!("must be an integer, not {}", other.type_name()))),
    }
}

fn vocabulary<T>(
    field: &str,
    v: Input<'_>,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<T, ValidationError> {
    let text = string(field, v)?;
    parse(&text).ok_or_else(|| ValidationError::invalid(field, format!("{text:?} is not one of: {}", expected())))
}

fn request(v: Input<'_>) -> Result<RequestInfo, ValidationError> {
    let v = match v {
        Input::Other(v) => v,
        other => {
            return Err(ValidationError::invalid("request", format!("must be an object, not {}", other.type_name())));
        }
    };
    let mut r = RequestInfo::default();
    for (name, value) in object("request", v)? {
        let field = format!("request.{name}");
        let text = |v: Value| match v {
            Value::String(s) => Ok(s),
            other => Err(ValidationError::invalid(&field, format!("must be a string, not {}", other.type_name()))),
        };
        match name.as_str() {
            "method" => r.method = Some(text(value)?),
            "path" => r.path = Some(text(value)?),
            "route" => r.route = Some(text(value)?),
            "request_id" => r.request_id = Some(text(value)?),
            "truncated" => match value {
                Value::Array(items) => {
                    r.truncated = Some(items.into_iter().map(text).collect::<Result<_, _>>()?);
                }
                other => {
                    return Err(ValidationError::invalid(
                        field,
                        format!("must be an array of member names, not {}", other.type_name()),
                    ));
                }
            },
            "status" => r.status = Some(unsigned(&field, &Input::Other(value), 999)? as u16),
            "duration_ms" => match value {
                Value::Number(n) => r.duration_ms = Some(n),
                other => {
                    return Err(ValidationError::invalid(
                        field,
                        format!("must be a number, not {}", other.type_name()),
                    ));
                }
            },
            _ => return Err(ValidationError::new(field, Problem::Unknown)),
        }
    }
    Ok(r)
}

/// A draft being read member by member.
#[derive(Default)]
pub(crate) struct DraftBuilder {
    draft: EventDraft,
    has_org: bool,
}

impl DraftBuilder {
    /// Takes one member of the input.
    pub(crate) fn put(&mut self, name: &str, value: Input<'_>) -> Result<(), ValidationError> {
        let d = &mut self.draft;
        let f = name;
        if SERVICE_MEMBERS.contains(&f) {
            return Err(ValidationError::new(name, Problem::ServiceOwned));
        }
        if matches!(value, Input::Other(Value::Null)) {
            return Err(ValidationError::invalid(name, "must not be null (omit it instead)"));
        }
        match f {
            "organization_id" => {
                d.organization_id = string(f, value)?;
                self.has_org = true;
            }
            "project_id" => d.project_id = Some(string(f, value)?),
            "occurred_at" => {
                let text = string(f, value)?;
                d.occurred_at =
                    Some(Timestamp::parse_rfc3339(&text).map_err(|e| ValidationError::invalid(f, e.to_string()))?);
            }
            "event_category" => d.event_category = Some(vocabulary(f, value, Category::parse, Category::expected)?),
            "event_type" => d.event_type = string(f, value)?,
            "action" => d.action = Some(vocabulary(f, value, Action::parse, Action::expected)?),
            "severity" => d.severity = Some(vocabulary(f, value, Severity::parse, Severity::expected)?),
            "actor_type" => d.actor_type = Some(vocabulary(f, value, ActorType::parse, ActorType::expected)?),
            "resource_type" => d.resource_type = Some(string(f, value)?),
            "resource_id" => d.resource_id = Some(string(f, value)?),
            "actor_id" => d.actor_id = Some(string(f, value)?),
            "actor_email" => d.actor_email = Some(string(f, value)?),
            "actor_ip" => d.actor_ip = Some(string(f, value)?),
            "user_agent" => d.user_agent = Some(string(f, value)?),
            "session_id" => d.session_id = Some(string(f, value)?),
            "idempotency_key" => d.idempotency_key = Some(string(f, value)?),
            "producer_id" => d.producer_id = Some(string(f, value)?),
            "producer_sequence" => d.producer_sequence = Some(unsigned(f, &value, MAX_SAFE_INTEGER)?),
            "request" => d.request = Some(request(value)?),
            "previous_state" => d.previous_state = Some(free_form(f, value)?),
            "new_state" => d.new_state = Some(free_form(f, value)?),
            "metadata" => d.metadata = Some(free_form(f, value)?),
            _ => return Err(ValidationError::new(name, Problem::Unknown)),
        }
        Ok(())
    }

    /// The draft once every member is in; `default_org` stands in for an
    /// absent `organization_id`.
    pub(crate) fn finish(self, default_org: Option<&str>) -> Result<EventDraft, ValidationError> {
        let mut d = self.draft;
        if !self.has_org {
            match default_org {
                Some(org) => d.organization_id = org.to_owned(),
                None => return Err(ValidationError::new("organization_id", Problem::Missing)),
            }
        }
        if d.event_type.is_empty() {
            return Err(ValidationError::new("event_type", Problem::Missing));
        }
        Ok(d)
    }
}

impl EventDraft {
    /// Parses one event input from JSON bytes (strict I-JSON, SPEC §2).
    pub fn from_json(bytes: &[u8]) -> Result<EventDraft, InputError> {
        Self::from_json_in(bytes, None)
    }

    /// [`Self::from_json`] for input that may leave `organization_id` to
    /// its context (the token's organization, `ingest --org`): an absent
    /// one is `default_org`. A present one is kept as sent (the caller
    /// checks it against the context).
    pub fn from_json_in(bytes: &[u8], default_org: Option<&str>) -> Result<EventDraft, InputError> {
        let mut reader = match MemberReader::open(bytes, NumberPolicy::Exact)? {
            TopLevel::Object(reader) => reader,
            TopLevel::Other(other) => {
                return Err(
                    ValidationError::invalid("event", format!("must be an object, not {}", other.type_name())).into()
                );
            }
        };
        let mut builder = DraftBuilder::default();
        let mut first_invalid = None;
        while let Some(name) = reader.next_name()? {
            if first_invalid.is_some() {
                // The rest is only checked: a JSON error later in the text
                // still wins over this member error.
                reader.skip()?;
                continue;
            }
            let value = if OBJECT_MEMBERS.contains(&name.as_ref()) {
                match reader.object_or_value()? {
                    Ok(canonical) => Input::Object(canonical.into()),
                    Err(other) => Input::Other(other),
                }
            } else {
                match reader.string_or_value()? {
                    Ok(text) => Input::String(text),
                    Err(other) => Input::Other(other),
                }
            };
            if let Err(e) = builder.put(&name, value) {
                first_invalid = Some(e);
            }
        }
        if let Some(e) = first_invalid {
            return Err(e.into());
        }
        Ok(builder.finish(default_org)?)
    }

    /// Reads a draft from an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<EventDraft, ValidationError> {
        let Value::Object(obj) = value else {
            return Err(ValidationError::invalid("event", format!("must be an object, not {}", value.type_name())));
        };
        let mut builder = DraftBuilder::default();
        for (name, value) in obj {
            let value = match value {
                Value::String(s) => Input::String(Cow::Owned(s)),
                Value::Object(o) if OBJECT_MEMBERS.contains(&name.as_str()) => Input::Object(o.into()),
                other => Input::Other(other),
            };
            builder.put(&name, value)?;
        }
        builder.finish(None)
    }
}
