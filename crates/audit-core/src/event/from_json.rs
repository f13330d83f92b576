//! Reading an [`EventDraft`] from caller JSON: every member checked for type,
//! unknown and service-owned members refused, enums in any letter case.

use super::{
    Action, ActorType, Category, EventDraft, MAX_SAFE_INTEGER, Problem, RequestInfo, SERVICE_MEMBERS, Severity,
    ValidationError,
};
use crate::json::{self, NumberPolicy, Object, Value};
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

fn string(field: &str, v: Value) -> Result<String, ValidationError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(ValidationError::invalid(field, format!("must be a string, not {}", other.type_name()))),
    }
}

fn object(field: &str, v: Value) -> Result<Object, ValidationError> {
    match v {
        Value::Object(o) => Ok(o),
        other => Err(ValidationError::invalid(field, format!("must be an object, not {}", other.type_name()))),
    }
}

fn unsigned(field: &str, v: &Value, max: u64) -> Result<u64, ValidationError> {
    match v {
        Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= max as f64 => Ok(*n as u64),
        Value::Number(_) => Err(ValidationError::invalid(field, format!("must be an integer from 0 to {max}"))),
        other => Err(ValidationError::invalid(field, format!("must be an integer, not {}", other.type_name()))),
    }
}

fn vocabulary<T>(
    field: &str,
    v: Value,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<T, ValidationError> {
    let text = string(field, v)?;
    parse(&text).ok_or_else(|| ValidationError::invalid(field, format!("{text:?} is not one of: {}", expected())))
}

fn request(v: Value) -> Result<RequestInfo, ValidationError> {
    let mut r = RequestInfo::default();
    for (name, value) in object("request", v)? {
        let field = format!("request.{name}");
        match name.as_str() {
            "method" => r.method = Some(string(&field, value)?),
            "path" => r.path = Some(string(&field, value)?),
            "route" => r.route = Some(string(&field, value)?),
            "request_id" => r.request_id = Some(string(&field, value)?),
            "truncated" => match value {
                Value::Array(items) => {
                    r.truncated = Some(items.into_iter().map(|v| string(&field, v)).collect::<Result<_, _>>()?);
                }
                other => {
                    return Err(ValidationError::invalid(
                        field,
                        format!("must be an array of member names, not {}", other.type_name()),
                    ));
                }
            },
            "status" => r.status = Some(unsigned(&field, &value, 999)? as u16),
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

impl EventDraft {
    /// Parses one event input from JSON bytes (strict I-JSON, SPEC §2).
    pub fn from_json(bytes: &[u8]) -> Result<EventDraft, InputError> {
        let value = json::parse(bytes, NumberPolicy::Exact)?;
        Ok(EventDraft::from_value(value)?)
    }

    /// Reads a draft from an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<EventDraft, ValidationError> {
        let obj = object("event", value)?;
        let mut d = EventDraft::default();
        let mut has_org = false;
        for (name, value) in obj {
            let f = name.as_str();
            if SERVICE_MEMBERS.contains(&f) {
                return Err(ValidationError::new(name, Problem::ServiceOwned));
            }
            if value == Value::Null {
                return Err(ValidationError::invalid(name, "must not be null (omit it instead)"));
            }
            match f {
                "organization_id" => {
                    d.organization_id = string(f, value)?;
                    has_org = true;
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
                "previous_state" => d.previous_state = Some(object(f, value)?),
                "new_state" => d.new_state = Some(object(f, value)?),
                "metadata" => d.metadata = Some(object(f, value)?),
                _ => return Err(ValidationError::new(name, Problem::Unknown)),
            }
        }
        if !has_org {
            return Err(ValidationError::new("organization_id", Problem::Missing));
        }
        if d.event_type.is_empty() {
            return Err(ValidationError::new("event_type", Problem::Missing));
        }
        Ok(d)
    }
}
