//! Verification on a schedule inside `serve` (issue 14): at each time of
//! `AUDIT_VERIFY_SCHEDULE` (cron syntax, parsed by `croner`), every
//! organization's log is verified; each result is recorded as
//! `audit_log.verified` in the system organization's log (with
//! `"scheduled":true`), exported as metrics, and an invalid log raises a
//! `verification_failed` alert.
//!
//! Those runs are **incremental**: each log is checked from where its last
//! valid verification stopped (the newest checkpoint it covered) — the new
//! events must follow it, link to it and extend its Merkle tree to the
//! newest signed checkpoints — so a run costs what was appended since, not
//! the log. A rewrite of events already verified is found by the **full**
//! runs of `AUDIT_VERIFY_FULL_SCHEDULE` (weekly by default), which read
//! every log whole. Where a log was verified is kept in memory and, signed
//! with the log's checkpoint key, in `<data dir>/verified/` so that a
//! restarted `serve` resumes from it; after a run that found a problem (or
//! with a file that does not open with the key) the next run is full.

use std::time::{Duration, Instant};

use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use audit_core::verify::VerificationReport;
use audit_service::{AlertKind, TimeRange, VerifiedThrough};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

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
/// last scheduled run; and where each log was last verified whole.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    pub(crate) schedule: Option<String>,
    pub(crate) full_schedule: Option<String>,
    pub(crate) last: std::collections::HashMap<String, crate::body::ScheduledRun>,
    verified: std::collections::HashMap<String, VerifiedThrough>,
}

/// When `serve` verifies every log: incremental runs, and full ones.
#[derive(Debug, Clone, Default)]
pub struct VerificationPlan {
    /// `AUDIT_VERIFY_SCHEDULE`: incremental runs (none: off).
    pub incremental: Option<VerifySchedule>,
    /// `AUDIT_VERIFY_FULL_SCHEDULE`: runs that read every log whole (none: off).
    pub full: Option<VerifySchedule>,
}

/// How much of each log a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunMode {
    /// What was appended since the last valid run (the whole log when
    /// there was none since the start).
    Incremental,
    /// Every event.
    Full,
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
    pub(crate) fn until_next(&self) -> Option<Duration> {
        let now = chrono::Utc::now();
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        (next - now).to_std().ok()
    }

    /// The default of `AUDIT_VERIFY_FULL_SCHEDULE`: Sundays at 03:00 UTC
    /// (after the nightly incremental run of 02:00).
    pub fn weekly() -> VerifySchedule {
        VerifySchedule::parse("0 3 * * 0").expect("a valid pattern")
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl AppState {
    /// Runs the scheduled verifications until the service stops.
    pub fn spawn_scheduled_verification(&self, plan: VerificationPlan) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        {
            let mut runs = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner());
            runs.schedule = plan.incremental.as_ref().map(|s| s.as_str().to_owned());
            runs.full_schedule = plan.full.as_ref().map(|s| s.as_str().to_owned());
        }
        tokio::spawn(async move {
            while state.service().is_running() {
                // The sooner of the two; a full run when both are due together.
                let incremental = plan.incremental.as_ref().and_then(VerifySchedule::until_next);
                let full = plan.full.as_ref().and_then(VerifySchedule::until_next);
                let (wait, mode) = match (incremental, full) {
                    (None, None) => {
                        tracing::warn!("the verification schedules never fire again");
                        return;
                    }
                    (Some(i), Some(f)) if i + Duration::from_secs(1) < f => (i, RunMode::Incremental),
                    (Some(i), None) => (i, RunMode::Incremental),
                    (_, Some(f)) => (f, RunMode::Full),
                };
                if !state.wait_while_running(wait).await {
                    return;
                }
                state.verify_every_log(mode).await;
            }
        })
    }

    /// Sleeps `wait`, waking every second to notice a stop; false when the
    /// service stopped meanwhile.
    pub(crate) async fn wait_while_running(&self, wait: Duration) -> bool {
        let due = Instant::now() + wait;
        while Instant::now() < due {
            if !self.service().is_running() {
                return false;
            }
            tokio::time::sleep((due - Instant::now()).min(Duration::from_secs(1))).await;
        }
        self.service().is_running()
    }

    /// The schedules and `org`'s last scheduled run.
    pub(crate) fn scheduled_run(
        &self,
        org: &str,
    ) -> (Option<String>, Option<String>, Option<crate::body::ScheduledRun>) {
        let runs = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner());
        (runs.schedule.clone(), runs.full_schedule.clone(), runs.last.get(org).cloned())
    }

    /// Keeps where a log was verified, for the next incremental run (the
    /// further of two concurrent runs wins) — in memory, and signed in the
    /// data directory so that a restarted `serve` resumes from it too.
    pub(crate) async fn remember_verified(&self, through: VerifiedThrough) {
        let org = through.organization_id().to_owned();
        {
            let mut runs = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner());
            if runs.verified.get(&org).is_some_and(|known| known.size() > through.size()) {
                return;
            }
            runs.verified.insert(org.clone(), through.clone());
        }
        let (Some(path), Some(signer)) = (self.verified_file(&org), self.signer_for(&org)) else { return };
        let text = format!("{}\n", String::from_utf8_lossy(&audit_core::canonical::to_canonical(&through.to_value())));
        let note = match audit_core::note::sign(&text, &signer) {
            Ok(note) => note,
            Err(e) => {
                return tracing::warn!(organization_id = org, error = %e, "cannot sign where the log was verified");
            }
        };
        let written = tokio::task::spawn_blocking(move || {
            crate::keys::replace_private_file(&path, note.as_bytes()).map_err(|(what, e)| format!("{what}: {e}"))
        })
        .await;
        if let Ok(Err(e)) | Err(e) = written.map_err(|e| e.to_string()) {
            // Only costs a full run after the next restart.
            tracing::warn!(organization_id = org, error = %e, "cannot keep where the log was verified");
        }
    }

    /// Where this log was verified, from memory or (after a restart) from
    /// its signed file; a file that does not open with the log's key is
    /// ignored (the run is full).
    async fn verified_through(&self, org: &str) -> Option<VerifiedThrough> {
        if let Some(known) = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner()).verified.get(org) {
            return Some(known.clone());
        }
        let path = self.verified_file(org)?;
        let key = self.verifier_for(org)?;
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(path)).await.ok()?.ok()?;
        let loaded = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|note| audit_core::note::open(note, &key).map_err(|e| e.to_string()))
            .and_then(|text| {
                audit_core::json::parse(text.trim_end().as_bytes(), audit_core::json::NumberPolicy::Exact)
                    .map_err(|e| e.to_string())
            })
            .and_then(|value| VerifiedThrough::from_value(&value))
            .and_then(|t| if t.organization_id() == org { Ok(t) } else { Err("another log's".into()) });
        match loaded {
            Ok(through) => {
                let mut runs = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner());
                runs.verified.insert(org.to_owned(), through.clone());
                Some(through)
            }
            Err(e) => {
                tracing::warn!(organization_id = org, error = %e, "ignoring the kept place of the last verification");
                None
            }
        }
    }

    /// One log, as a scheduled run of `mode` reads it: the report and the
    /// first sequence it checked from.
    async fn verify_scheduled(&self, org: &str, mode: RunMode) -> Result<(VerificationReport, u64), ApiError> {
        let after = match mode {
            RunMode::Full => None,
            RunMode::Incremental => self.verified_through(org).await,
        };
        let Some(after) = after else {
            // From the first event, shared with any on-demand run of the same log.
            let report = self.verify_shared(org, TimeRange::default()).await;
            if !report.as_ref().is_ok_and(|r| r.valid) {
                self.forget_verified(org).await;
            }
            return report.map(|r| (r, 0));
        };
        match self.verify_once(org, TimeRange::default(), Some(&after)).await {
            Ok((report, through)) => {
                match through {
                    Some(t) => self.remember_verified(t).await,
                    // Invalid: the next run reads the whole log again.
                    None => self.forget_verified(org).await,
                }
                Ok((report, after.size()))
            }
            Err(e) => {
                self.forget_verified(org).await;
                Err(ApiError::internal(ErrorCode::StorageUnavailable, "verification could not read storage", e))
            }
        }
    }

    pub(crate) async fn forget_verified(&self, org: &str) {
        self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner()).verified.remove(org);
        if let Some(path) = self.verified_file(org) {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        }
    }

    /// The file keeping where `org`'s log was verified (none without a
    /// checkpoint key to sign it with).
    fn verified_file(&self, org: &str) -> Option<std::path::PathBuf> {
        self.inner.checkpoint_key.as_ref()?;
        Some(self.inner.verified_dir.join(format!("{}.note", audit_storage::org_dir::encode(org))))
    }

    /// One scheduled run over every organization's log.
    async fn verify_every_log(&self, mode: RunMode) {
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
            let outcome = self.verify_scheduled(&org, mode).await;
            let seconds = started.elapsed().as_secs_f64();
            metrics::histogram!("audit_scheduled_verify_duration_seconds").record(seconds);
            let (valid, total_events, verified_from, error) = match outcome {
                Ok((mut report, verified_from)) => {
                    // Full runs (weekly by default) also compare the stored
                    // tiles with the events: a wrong tile fails every proof
                    // through it.
                    if matches!(mode, RunMode::Full) {
                        audit_service::tiles::hold_tiles(service.store().as_ref(), &org, &mut report).await;
                    }
                    if report.valid {
                        let now =
                            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                        metrics::gauge!("audit_scheduled_verify_last_success_timestamp_seconds").set(now.as_secs_f64());
                    } else {
                        metrics::counter!("audit_scheduled_verify_failures_total").increment(1);
                        let detail = format!("scheduled verification: {}", failure_summary(&report));
                        service.alert(AlertKind::VerificationFailed, &org, &detail);
                    }
                    (report.valid, report.total_events, verified_from, None)
                }
                Err(e) => {
                    metrics::counter!("audit_scheduled_verify_failures_total").increment(1);
                    let detail = format!("scheduled verification could not run: {}", e.message);
                    service.alert(AlertKind::VerificationFailed, &org, &detail);
                    (false, 0, 0, Some(e.message))
                }
            };
            let checkpoint_size = {
                let runs = self.inner.scheduled.lock().unwrap_or_else(|p| p.into_inner());
                runs.verified.get(&org).filter(|_| valid).map(VerifiedThrough::size)
            };
            let run = crate::body::ScheduledRun {
                finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                mode: match (mode, verified_from) {
                    (RunMode::Incremental, 1..) => "incremental",
                    _ => "full",
                },
                valid,
                total_events,
                verified_from,
                checkpoint_size,
                duration_ms: (seconds * 1000.0).round() as u64,
                error,
            };
            // The record says what the status route shows.
            let mut metadata = Object::new();
            metadata.insert("organization_id", Value::String(org.clone()));
            metadata.insert("scheduled", Value::Bool(true));
            metadata.insert("mode", Value::String(run.mode.into()));
            metadata.insert("verified_from", Value::Number(run.verified_from as f64));
            if let Some(size) = run.checkpoint_size {
                metadata.insert("checkpoint_size", Value::Number(size as f64));
            }
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
                metadata: Some(metadata.into()),
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
