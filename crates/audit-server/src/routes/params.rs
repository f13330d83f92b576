//! Query parameters: each at most once, only the ones a route knows, parsed
//! into typed values with errors that name the parameter.

use std::collections::HashMap;

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, Category, Severity};
use audit_core::filter::{AuditEventFilter, Cursor, Order};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// Query parameters, each at most once, only the ones a route knows.
pub(crate) fn params(raw: Option<String>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("malformed query string: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::field(ErrorCode::InvalidParameter, k, "is not a parameter of this route"));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::field(ErrorCode::InvalidParameter, k, "is given more than once"));
        }
    }
    Ok(out)
}

pub(crate) const FILTER_PARAMS: &[&str] = &[
    "organization_id",
    "project_id",
    "event_category",
    "event_type",
    "action",
    "severity",
    "actor_type",
    "actor_id",
    "actor_email",
    "resource_type",
    "resource_id",
    "start_time",
    "end_time",
    "limit",
    "offset",
    "order",
    "cursor",
];

/// Scope check, parameters (`organization_id` plus `others`) and the
/// organization of a request, in that order.
pub(crate) fn scoped(
    principal: &Principal,
    scope: Scope,
    raw: Option<String>,
    others: &[&str],
) -> Result<(HashMap<String, String>, String), ApiError> {
    principal.require(scope)?;
    let mut allowed = vec!["organization_id"];
    allowed.extend_from_slice(others);
    let p = params(raw, &allowed)?;
    let org = principal.organization(p.get("organization_id").map(String::as_str))?;
    Ok((p, org))
}

/// The organization of a route whose only parameter is `organization_id`.
pub(crate) fn organization_only(raw: Option<String>, principal: &Principal) -> Result<String, ApiError> {
    let p = params(raw, &["organization_id"])?;
    principal.organization(p.get("organization_id").map(String::as_str))
}

pub(crate) fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(ErrorCode::InvalidParameter, field, message)
}

fn vocab<T>(
    p: &HashMap<String, String>,
    field: &str,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<Option<T>, ApiError> {
    p.get(field).map(|v| parse(v).ok_or_else(|| bad(field, format!("must be one of: {}", expected())))).transpose()
}

/// A time parameter: RFC 3339, a date, or a duration back from now (`7d`),
/// as the CLI takes them. A space where a `+` was (an offset sent without
/// URL encoding) gets a hint.
pub(crate) fn time(p: &HashMap<String, String>, field: &str) -> Result<Option<Timestamp>, ApiError> {
    use audit_service::Clock as _;
    p.get(field)
        .map(|v| {
            audit_service::timearg::parse(v, audit_service::SystemClock.now()).map_err(|e| {
                if v.contains(' ') {
                    bad(field, format!("{e}; a '+' in a URL must be sent as %2B"))
                } else {
                    bad(field, e)
                }
            })
        })
        .transpose()
}

fn number(p: &HashMap<String, String>, field: &str) -> Result<Option<u32>, ApiError> {
    p.get(field).map(|v| v.parse::<u32>().map_err(|_| bad(field, "must be a non-negative integer"))).transpose()
}

/// The §8 filter from query parameters, narrowed by a viewer token's pin.
pub(crate) fn filter_from(p: &HashMap<String, String>, principal: &Principal) -> Result<AuditEventFilter, ApiError> {
    let organization_id = principal.organization(p.get("organization_id").map(String::as_str))?;
    let mut filter = AuditEventFilter { organization_id, ..conditions_from(p)? };
    if let Some(grant) = &principal.viewer {
        pin(&mut filter, grant)?;
    }
    filter.check().map_err(|e| bad(e.field, e.problem))?;
    Ok(filter)
}

/// The conditions, paging and order of a §8 filter from query parameters
/// (its organization left empty).
pub(crate) fn conditions_from(p: &HashMap<String, String>) -> Result<AuditEventFilter, ApiError> {
    let order = match p.get("order") {
        Some(o) => Order::parse(o).ok_or_else(|| bad("order", "must be asc or desc"))?,
        None => Order::Asc,
    };
    let cursor = p
        .get("cursor")
        .map(|c| Cursor::decode(c).ok_or_else(|| bad("cursor", "is not a cursor from a previous page")))
        .transpose()?;
    let text = |f: &str| p.get(f).cloned();
    Ok(AuditEventFilter {
        organization_id: String::new(),
        project_id: text("project_id"),
        event_category: vocab(p, "event_category", Category::parse, Category::expected)?,
        event_type: text("event_type"),
        action: vocab(p, "action", Action::parse, Action::expected)?,
        severity: vocab(p, "severity", Severity::parse, Severity::expected)?,
        actor_type: vocab(p, "actor_type", ActorType::parse, ActorType::expected)?,
        actor_id: text("actor_id"),
        actor_email: text("actor_email"),
        resource_type: text("resource_type"),
        resource_id: text("resource_id"),
        start_time: time(p, "start_time")?,
        end_time: time(p, "end_time")?,
        limit: number(p, "limit")?,
        offset: number(p, "offset")?,
        order,
        cursor,
    })
}

/// Narrows `filter` to what a viewer token may see: each pinned condition
/// is added, and one the request sets otherwise is refused (403), so a
/// pinned token cannot widen its view.
fn pin(filter: &mut AuditEventFilter, grant: &crate::viewer::ViewerGrant) -> Result<(), ApiError> {
    fn narrow<T: PartialEq + Clone>(field: &str, asked: &mut Option<T>, pinned: &Option<T>) -> Result<(), ApiError> {
        match (pinned, asked.as_ref()) {
            (None, _) => Ok(()),
            (Some(p), Some(a)) if a != p => Err(ApiError::field(
                ErrorCode::Forbidden,
                field,
                "this viewer token is pinned to another value of this filter",
            )),
            (Some(p), _) => {
                *asked = Some(p.clone());
                Ok(())
            }
        }
    }
    let pinned = grant.pin_filter()?;
    narrow("project_id", &mut filter.project_id, &pinned.project_id)?;
    narrow("event_category", &mut filter.event_category, &pinned.event_category)?;
    narrow("event_type", &mut filter.event_type, &pinned.event_type)?;
    narrow("action", &mut filter.action, &pinned.action)?;
    narrow("severity", &mut filter.severity, &pinned.severity)?;
    narrow("actor_type", &mut filter.actor_type, &pinned.actor_type)?;
    narrow("actor_id", &mut filter.actor_id, &pinned.actor_id)?;
    narrow("resource_type", &mut filter.resource_type, &pinned.resource_type)?;
    narrow("resource_id", &mut filter.resource_id, &pinned.resource_id)
}

pub(crate) fn size_param(p: &HashMap<String, String>, field: &str) -> Result<u64, ApiError> {
    let v = p.get(field).ok_or_else(|| bad(field, "is required"))?;
    v.parse::<u64>().map_err(|_| bad(field, "must be a non-negative integer"))
}
