//! Retention policy (SPEC §15): how long each organization's events are
//! kept — `AUDIT_RETENTION_DAYS` for all, or a per-organization period set
//! through `PUT /v1/retention` — never below the floor
//! (`AUDIT_RETENTION_FLOOR_DAYS`, and on S3 the Object Lock period).
//! Per-organization periods live in a small JSON file in the data
//! directory, replaced atomically on each change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The retention periods in force.
#[derive(Debug)]
pub struct RetentionPolicy {
    default_days: u32,
    floor_days: u32,
    file: PathBuf,
    overrides: Mutex<BTreeMap<String, u32>>,
}

impl RetentionPolicy {
    /// The policy with `default_days` for every organization, per-organization
    /// periods from `file` (none when it does not exist), and no
    /// per-organization period allowed below `floor_days` (the default is
    /// the operator's own choice, and may be shorter: a test deployment).
    pub fn load(file: PathBuf, default_days: u32, floor_days: u32) -> Result<RetentionPolicy, String> {
        let overrides: BTreeMap<String, u32> = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        if let Some((org, days)) = overrides.iter().find(|(_, d)| **d < floor_days) {
            return Err(format!(
                "{}: {org} keeps events {days} days, below the retention floor ({floor_days} days)",
                file.display()
            ));
        }
        Ok(RetentionPolicy { default_days, floor_days, file, overrides: Mutex::new(overrides) })
    }

    /// Days `organization_id`'s events are kept, and whether that is its
    /// own period (else the default).
    pub fn days_for(&self, organization_id: &str) -> (u32, bool) {
        match self.overrides.lock().unwrap_or_else(|p| p.into_inner()).get(organization_id) {
            Some(&days) => (days, true),
            None => (self.default_days, false),
        }
    }

    /// The shortest period allowed.
    pub fn floor_days(&self) -> u32 {
        self.floor_days
    }

    /// Sets `organization_id`'s own period (persisted before it applies);
    /// returns the period it replaces.
    pub fn set(&self, organization_id: &str, days: u32) -> Result<u32, String> {
        if days < self.floor_days {
            return Err(format!("must be at least {} (the retention floor)", self.floor_days));
        }
        if days > 36_500 {
            return Err("must be at most 36500 (a hundred years)".into());
        }
        let mut overrides = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = overrides.clone();
        let previous = next.insert(organization_id.to_owned(), days).unwrap_or(self.default_days);
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| e.to_string())?;
        crate::keys::replace_private_file(&self.file, &bytes).map_err(|(what, e)| format!("{what}: {e}"))?;
        *overrides = next;
        Ok(previous)
    }
}

impl crate::AppState {
    /// Prunes every log at each time of `schedule` (`AUDIT_PRUNE_SCHEDULE`)
    /// under the retention policy, until the service stops.
    pub fn spawn_pruning(&self, schedule: crate::VerifySchedule) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            while state.service().is_running() {
                let Some(wait) = schedule.until_next() else {
                    tracing::warn!(schedule = schedule.as_str(), "the prune schedule never fires again");
                    return;
                };
                if !state.wait_while_running(wait).await {
                    return;
                }
                state.prune_every_log().await;
            }
        })
    }

    /// One pass of retention over every organization's log.
    pub(crate) async fn prune_every_log(&self) {
        let Some(policy) = self.inner.retention.clone() else { return };
        let service = self.service();
        let organizations = match service.store().organizations().await {
            Ok(orgs) => orgs,
            Err(e) => {
                tracing::error!(error = %e, "retention: cannot list the logs");
                return;
            }
        };
        for org in organizations {
            let (days, _) = policy.days_for(&org);
            let retention = std::time::Duration::from_secs(u64::from(days) * 86_400);
            let outcome = {
                let _turn = self.heavy_turn().await;
                service.prune_expired(&org, retention).await
            };
            match outcome {
                Ok(None) => {}
                Ok(Some(pruned)) => {
                    // Its last verified place may be gone: the next run reads it whole.
                    self.forget_verified(&org).await;
                    metrics::counter!("audit_pruned_events_total").increment(pruned.removed_events);
                    tracing::info!(
                        organization_id = org,
                        first_kept = pruned.first_kept,
                        removed_events = pruned.removed_events,
                        "retention removed old segments"
                    );
                }
                Err(e @ audit_service::PruneError::LegalHold { .. }) => {
                    tracing::info!(organization_id = org, reason = %e, "retention suspended");
                }
                Err(e @ audit_service::PruneError::InvalidLog(_)) => {
                    service.alert(audit_service::AlertKind::VerificationFailed, &org, &format!("retention: {e}"));
                }
                Err(e) => tracing::error!(organization_id = org, error = %e, "retention could not run"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_kept_per_organization_and_never_below_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("retention.json");
        // The operator's default may be below the floor; organizations may not.
        let short = RetentionPolicy::load(dir.path().join("other.json"), 1, 365).unwrap();
        assert_eq!(short.days_for("org-1"), (1, false));
        assert!(short.set("org-1", 30).is_err());
        let policy = RetentionPolicy::load(file.clone(), 2555, 365).unwrap();
        assert_eq!(policy.days_for("org-1"), (2555, false));
        assert!(policy.set("org-1", 30).unwrap_err().contains("at least 365"));
        assert_eq!(policy.set("org-1", 400).unwrap(), 2555);
        assert_eq!(policy.days_for("org-1"), (400, true));
        assert_eq!(policy.days_for("org-2"), (2555, false));
        // Persisted: a new policy over the same file has it.
        assert_eq!(RetentionPolicy::load(file.clone(), 2555, 365).unwrap().days_for("org-1"), (400, true));
        // A floor raised above a stored period refuses to start.
        assert!(RetentionPolicy::load(file, 2555, 500).unwrap_err().contains("org-1 keeps events 400 days"));
    }
}
