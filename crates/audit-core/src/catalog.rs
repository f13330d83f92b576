//! The built-in event-type catalog (SPEC §3): every type the seed design
//! names, plus the audit log's own events, with category and default severity.
//!
//! Types outside the catalog are accepted when they match the event-type
//! pattern; the caller must then name their category.

use crate::event::{Category, Severity};

/// One catalog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The dotted event type, e.g. `trace.deleted`.
    pub event_type: &'static str,
    /// Its category.
    pub category: Category,
    /// Its default severity.
    pub severity: Severity,
}

const fn entry(event_type: &'static str, category: Category, severity: Severity) -> CatalogEntry {
    CatalogEntry { event_type, category, severity }
}

use Category::*;
use Severity::*;

/// Every catalogued event type.
pub const CATALOG: &[CatalogEntry] = &[
    // Authentication
    entry("user.login", Auth, Info),
    entry("user.logout", Auth, Info),
    entry("user.login_failed", Auth, Critical),
    entry("api_key.created", Auth, Info),
    entry("api_key.revoked", Auth, Warning),
    entry("viewer_token.created", Auth, Info),
    entry("sso.initiated", Auth, Info),
    entry("sso.completed", Auth, Info),
    // Data
    entry("trace.created", Data, Info),
    entry("trace.viewed", Data, Info),
    entry("trace.exported", Data, Warning),
    entry("trace.deleted", Data, Warning),
    entry("trace.shared", Data, Warning),
    entry("evaluation.created", Data, Info),
    entry("evaluation.viewed", Data, Info),
    // Configuration
    entry("project.created", Config, Info),
    entry("project.updated", Config, Info),
    entry("project.deleted", Config, Warning),
    entry("retention_policy.updated", Config, Info),
    entry("evaluator.created", Config, Info),
    entry("evaluator.updated", Config, Info),
    entry("test_suite.created", Config, Info),
    // Administration
    entry("user.invited", Admin, Info),
    entry("user.role_changed", Admin, Warning),
    entry("user.removed", Admin, Warning),
    entry("organization.settings_updated", Admin, Info),
    entry("billing.plan_changed", Admin, Info),
    // Evaluation runs
    entry("evaluation.started", Eval, Info),
    entry("evaluation.completed", Eval, Info),
    entry("evaluation.failed", Eval, Info),
    entry("baseline.updated", Eval, Info),
    // Access (what AuditLayer emits; 401/403 responses are raised to critical)
    entry("api.request", Access, Info),
    // The audit log's own life and use (PCI DSS 10.2)
    entry("audit_log.started", Admin, Info),
    entry("audit_log.stopped", Admin, Info),
    entry("audit_log.events_dropped", Admin, Critical),
    entry("audit_log.queried", Access, Info),
    entry("audit_log.exported", Access, Warning),
    entry("audit_log.verified", Access, Info),
    entry("audit_log.pruned", Admin, Warning),
    entry("audit_log.alert_delivered", Admin, Info),
    entry("audit_log.alert_failed", Admin, Critical),
    entry("subject.erased", Admin, Warning),
    entry("legal_hold.placed", Admin, Warning),
    entry("legal_hold.lifted", Admin, Warning),
    entry("retention.changed", Admin, Warning),
];

/// Looks up a catalogued event type.
pub fn lookup(event_type: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.event_type == event_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_severities() {
        assert_eq!(lookup("user.login_failed").unwrap().severity, Critical);
        for t in [
            "trace.deleted",
            "trace.exported",
            "trace.shared",
            "user.role_changed",
            "user.removed",
            "api_key.revoked",
            "project.deleted",
        ] {
            assert_eq!(lookup(t).unwrap().severity, Warning, "{t}");
        }
        assert_eq!(lookup("user.login").unwrap().severity, Info);
        assert!(lookup("made.up").is_none());
    }

    #[test]
    fn every_catalog_type_matches_the_pattern_once() {
        for (i, e) in CATALOG.iter().enumerate() {
            assert!(crate::event::is_valid_event_type(e.event_type), "{}", e.event_type);
            assert!(CATALOG[i + 1..].iter().all(|o| o.event_type != e.event_type), "{} twice", e.event_type);
        }
    }
}
