//! The filter flags shared by `query` and `export` (SPEC §8).

use audit_core::event::{Action, ActorType, Category, Severity};
use audit_core::filter::AuditEventFilter;
use audit_service::{Clock as _, SystemClock};

use audit_service::timearg;

fn vocab<T>(parse: fn(&str) -> Option<T>, expected: fn() -> String) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |s: &str| parse(s).ok_or_else(|| format!("expected one of: {}", expected()))
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FilterArgs {
    /// Organization whose log to read.
    #[arg(long)]
    pub(crate) org: String,
    /// Only this project (also --project-id, as the API names it).
    #[arg(long, visible_alias = "project-id")]
    project: Option<String>,
    /// Only this category (auth, data, config, admin, eval, access; also --event-category).
    #[arg(long, visible_alias = "event-category", value_parser = vocab(Category::parse, Category::expected))]
    category: Option<Category>,
    /// Only this event type (e.g. trace.deleted).
    #[arg(long)]
    event_type: Option<String>,
    /// Only this action.
    #[arg(long, value_parser = vocab(Action::parse, Action::expected))]
    action: Option<Action>,
    /// Only this severity.
    #[arg(long, value_parser = vocab(Severity::parse, Severity::expected))]
    severity: Option<Severity>,
    /// Only this actor type.
    #[arg(long, value_parser = vocab(ActorType::parse, ActorType::expected))]
    actor_type: Option<ActorType>,
    /// Only this actor id.
    #[arg(long)]
    actor_id: Option<String>,
    /// Only this actor email (right of access: everything about one person).
    #[arg(long)]
    actor_email: Option<String>,
    /// Only this resource type.
    #[arg(long)]
    resource_type: Option<String>,
    /// Only this resource id.
    #[arg(long)]
    resource_id: Option<String>,
    /// From this time on (RFC 3339, a date such as 2026-11-01, or a duration such as 7d; also --start-time).
    #[arg(long, visible_alias = "start-time")]
    since: Option<String>,
    /// Before this time (also --end-time).
    #[arg(long, visible_alias = "end-time")]
    until: Option<String>,
}

impl FilterArgs {
    /// The filter these flags describe (paging left at its defaults).
    pub(crate) fn to_filter(&self) -> anyhow::Result<AuditEventFilter> {
        super::check_org(&self.org)?;
        let now = SystemClock.now();
        let time = |flag: &str, v: &Option<String>| {
            v.as_deref().map(|t| timearg::parse(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))).transpose()
        };
        Ok(AuditEventFilter {
            organization_id: self.org.clone(),
            project_id: self.project.clone(),
            event_category: self.category,
            event_type: self.event_type.clone(),
            action: self.action,
            severity: self.severity,
            actor_type: self.actor_type,
            actor_id: self.actor_id.clone(),
            actor_email: self.actor_email.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            start_time: time("since", &self.since)?,
            end_time: time("until", &self.until)?,
            ..AuditEventFilter::default()
        })
    }
}
