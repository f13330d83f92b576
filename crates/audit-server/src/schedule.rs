//! Verification on a schedule inside `serve` (issue 14): at each time of
//! `AUDIT_VERIFY_SCHEDULE` (cron syntax, parsed by `croner`), every
//! organization's log is verified; each result is recorded as
//! `audit_log.verified` in the system organization's log (with
//! `"scheduled":true`), exported as metrics, and an invalid log raises a
//! `verification_failed` alert.
//!
//! Today every scheduled run verifies each whole log (sharing the work
//! with concurrent `GET /v1/integrity` calls); the incremental run from the
//! last verified checkpoint is still to come.

use std::time::{Duration, Instant};

use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use audit_service::{AlertKind, TimeRange};

use crate::AppState;

/// An invalid report in one line: how many errors and the first, for
/// alerts.
pub(crate) fn failure_summary(report: &audit_core::verify::VerificationReport) -> String {
    let first = report.errors.first().map_or_else(String::new, |e| match e.sequence {
        Some(n) => format!(": first {} at sequence {n}", e.kind.as_str()),
        None => format!(": first {}", e.kind.as_str()),
    });
    format!("{} error(s) in {} events{first}", report.errors.len(), report.total_events)
}

/// What the status route shows: the schedule, and per organization the
/// last scheduled run.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    pub(crate) schedule: Option<String>,
    pub(crate) last: std::collections::HashMap<String, crate::body::ScheduledRun>,
}

/// A parsed verification schedule.
#[derive(Debug, Clone)]
pub struct VerifySchedule {
    cron: croner::Cron,
    text: String,
}

impl VerifySchedule {
    /// Parses a cron pattern: five fields (`0 2 * * *`), or six with
    /// seconds first; the error says what is wrong.
    pub fn parse(pattern: &str) -> Result<VerifySchedule, String> {
        let cron = croner::Cron::new(pattern).with_seconds_optional().parse().map_err(|e| e.to_string())?;
        Ok(VerifySchedule { cron, text: pattern.to_owned() })
    }

    /// How long from now to the next run (`None`: the pattern never fires again).
    fn until_next(&self) -> Option<Duration> {
        let now = chrono::Utc::now();
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        (next - now).to_std().ok()
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl AppState {
    /// Runs the scheduled verifications until the service stops.
    pub fn spawn_scheduled_verification(&self, schedule: VerifySchedule) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner()).schedule = Some(schedule.as_str().to_owned());
        tokio::spawn(async move {
            while state.service().is_running() {
                let Some(wait) = schedule.until_next() else {
                    tracing::warn!(schedule = schedule.as_str(), "the verification schedule never fires again");
                    return;
                };
                // Wake at least every second to notice a stop.
                let due = Instant::now() + wait;
                while Instant::now() < due {
                    if !state.service().is_running() {
                        return;
                    }
                    tokio::time::sleep((due - Instant::now()).min(Duration::from_secs(1))).await;
                }
                state.verify_every_log().await;
            }
        })
    }

    /// The schedule and `org`'s last scheduled run.
    pub(crate) fn scheduled_run(&self, org: &str) -> (Option<String>, Option<crate::body::ScheduledRun>) {
        let runs = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner());
        (runs.schedule.clone(), runs.last.get(org).cloned())
    }

    /// One scheduled run over every organization's log.
    async fn verify_every_log(&self) {
        let service = self.service();
        let organizations = match service.store().organizations().await {
            Ok(orgs) => orgs,
            Err(e) => {
                tracing::error!(error = %e, "scheduled verification: cannot list the logs");
                metrics::counter!("audit_scheduled_verify_failures_total").increment(1);
                return;
            }
        };
        for org in organizations {
            let started = Instant::now();
            let outcome = self.verify_shared(&org, TimeRange::default()).await;
            let seconds = started.elapsed().as_secs_f64();
            metrics::histogram!("audit_scheduled_verify_duration_seconds").record(seconds);
            let (valid, total_events, error) = match outcome {
                Ok(report) => {
                    if report.valid {
                        let now =
                            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                        metrics::gauge!("audit_scheduled_verify_last_success_timestamp_seconds").set(now.as_secs_f64());
                    } else {
                        metrics::counter!("audit_scheduled_verify_failures_total").increment(1);
                        let detail = format!("scheduled verification: {}", failure_summary(&report));
                        service.alert(AlertKind::VerificationFailed, &org, &detail);
                    }
                    (report.valid, report.total_events, None)
                }
                Err(e) => {
                    metrics::counter!("audit_scheduled_verify_failures_total").increment(1);
                    let detail = format!("scheduled verification could not run: {}", e.message);
                    service.alert(AlertKind::VerificationFailed, &org, &detail);
                    (false, 0, Some(e.message))
                }
            };
            let run = crate::body::ScheduledRun {
                finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                valid,
                total_events,
                duration_ms: (seconds * 1000.0).round() as u64,
                error,
            };
            // The record says what the status route shows.
            let mut metadata = Object::new();
            metadata.insert("organization_id", Value::String(org.clone()));
            metadata.insert("scheduled", Value::Bool(true));
            metadata.insert("duration_ms", Value::Number(run.duration_ms as f64));
            metadata.insert("valid", Value::Bool(run.valid));
            match &run.error {
                None => metadata.insert("total_events", Value::Number(run.total_events as f64)),
                Some(why) => metadata.insert("error", Value::String(why.clone())),
            }
            self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner()).last.insert(org.clone(), run);
            let record = EventDraft {
                organization_id: service.config().system_organization.clone(),
                event_type: "audit_log.verified".into(),
                action: Some(Action::Read),
                actor_type: Some(ActorType::System),
                actor_id: Some("agenttrace-audit scheduler".into()),
                metadata: Some(metadata),
                ..Default::default()
            };
            if let Err(e) = service.capture(record).await {
                tracing::error!(organization_id = org, error = %e, "cannot record a scheduled verification");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_parsed_with_or_without_seconds_and_bad_ones_say_why() {
        assert!(VerifySchedule::parse("0 2 * * *").is_ok(), "the seed's daily 02:00");
        assert!(VerifySchedule::parse("*/5 * * * * *").is_ok(), "every five seconds");
        let wait = VerifySchedule::parse("* * * * * *").unwrap().until_next().unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(VerifySchedule::parse("61 * * * *").is_err());
        assert!(VerifySchedule::parse("daily").is_err());
    }
}
