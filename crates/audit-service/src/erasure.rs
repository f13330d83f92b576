//! Erasing a data subject (SPEC §9): destroy the subject's key(s), unlink
//! the index's blind tokens, and record `subject.erased` in the
//! organization's log. The log itself is not touched: its sealed values
//! simply no longer open, so `verify`, proofs and checkpoints are unchanged.

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use audit_core::personal::{SEALED_PREFIX, Subject, normalise_email};

use crate::error::CaptureError;
use crate::queue::DurableReceipt;
use crate::service::AuditService;

/// Whose personal data to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureTarget {
    /// The subject with this email (normalised: trimmed, lowercased).
    Email(String),
    /// The user with this `actor_id` (events without an email).
    ActorId(String),
    /// Personal data with no subject, of every month that ended by this time.
    UnattributedBefore(Timestamp),
}

/// Who asked for an erasure (recorded in `subject.erased`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// `api_key`, `user`, `system`, …
    pub actor_type: ActorType,
    /// Their id (an API key's id, an operator's name).
    pub actor_id: String,
}

/// What an erasure did.
#[derive(Debug, Clone)]
pub struct ErasureReport {
    /// Keys destroyed now (0: the subject was unknown or already erased).
    pub keys_destroyed: usize,
    /// Stored events holding values sealed under those keys.
    pub affected_events: u64,
    /// The subjects' blind tokens (what the record names; never the subject).
    pub subject_tokens: Vec<String>,
    /// The `subject.erased` record.
    pub receipt: DurableReceipt,
}

impl ErasureReport {
    /// True when nothing was left to destroy (erased before, or unknown).
    pub fn already_erased(&self) -> bool {
        self.keys_destroyed == 0
    }
}

/// Why an erasure was not done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    /// Personal data protection is off: there are no keys to destroy.
    #[error(
        "personal data protection is off (AUDIT_PERSONAL_DATA_PROTECTION): nothing is sealed, so nothing can be erased by destroying keys"
    )]
    NotProtected,
    /// The organization or subject is under a legal hold.
    #[error("{0} is under a legal hold: erasure is refused until the hold is lifted")]
    LegalHold(String),
    /// An argument is unusable (names it).
    #[error("{field}: {problem}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The key store failed; nothing may have been destroyed, or some keys
    /// were: erasing again completes it.
    #[error(transparent)]
    KeyStore(#[from] audit_keystore::KeyStoreError),
    /// Reading the log to count the affected events failed.
    #[error(transparent)]
    Read(#[from] crate::read::ExportError),
    /// The keys are destroyed but the record could not be written.
    #[error("the keys are destroyed but subject.erased could not be recorded: {0}")]
    Record(#[from] CaptureError),
}

impl AuditService {
    /// Erases a data subject of `organization_id` (SPEC §9). Idempotent:
    /// erasing again, or an unknown subject, destroys nothing and says so,
    /// and is recorded too.
    pub async fn erase_subject(
        &self,
        organization_id: &str,
        target: &ErasureTarget,
        requester: &Requester,
    ) -> Result<ErasureReport, ErasureError> {
        let protection = self.protection().ok_or(ErasureError::NotProtected)?;
        if !audit_core::event::is_valid_tenant_id(organization_id) {
            return Err(ErasureError::Invalid {
                field: "organization_id",
                problem: "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$".into(),
            });
        }
        let subjects = self.subjects_of(organization_id, target).await?;
        for subject in &subjects {
            if let Some(hold) = protection.keys().hold_on(organization_id, subject).await? {
                return Err(ErasureError::LegalHold(hold));
            }
        }
        let mut destroyed = Vec::new();
        for subject in &subjects {
            if let Some(id) = protection.destroy(organization_id, subject).await? {
                destroyed.push(id);
            }
        }
        let subject_tokens: Vec<String> =
            subjects.iter().map(|s| protection.subject_token(organization_id, s)).collect();
        if let ErasureTarget::Email(email) = target
            && let Some(index) = self.index()
        {
            // Lookups by the address must no longer find its events.
            let token = protection.email_token(organization_id, email);
            if let Err(e) = index.forget_actor_email(organization_id, &token).await {
                tracing::error!(organization_id, error = %e, "cannot unlink an erased email from the index; run reindex");
            }
        }
        let needles: Vec<String> = destroyed.iter().map(|id| format!("{SEALED_PREFIX}{id}:")).collect();
        let affected_events =
            crate::read::stored::count_lines_containing(self.store().as_ref(), organization_id, &needles).await?;

        let mut metadata = Object::new();
        let kind = match target {
            ErasureTarget::Email(_) => "email",
            ErasureTarget::ActorId(_) => "actor_id",
            ErasureTarget::UnattributedBefore(before) => {
                metadata.insert("unattributed_before", Value::String(before.to_string()));
                "unattributed"
            }
        };
        metadata.insert("subject_kind", Value::String(kind.into()));
        metadata
            .insert("subject_tokens", Value::Array(subject_tokens.iter().map(|t| Value::String(t.clone())).collect()));
        metadata.insert("keys_destroyed", Value::Number(destroyed.len() as f64));
        metadata.insert("already_erased", Value::Bool(destroyed.is_empty()));
        metadata.insert("affected_events", Value::Number(affected_events as f64));
        let record = EventDraft {
            organization_id: organization_id.to_owned(),
            event_type: "subject.erased".into(),
            action: Some(Action::Delete),
            actor_type: Some(requester.actor_type),
            actor_id: Some(requester.actor_id.clone()),
            metadata: Some(metadata.into()),
            ..Default::default()
        };
        let receipt = self.capture_durable(record).await?;
        Ok(ErasureReport { keys_destroyed: destroyed.len(), affected_events, subject_tokens, receipt })
    }

    /// Places a legal hold on `organization_id` (or one subject of it) and
    /// records `legal_hold.placed` (the subject's token, never its name).
    pub async fn place_hold(
        &self,
        organization_id: &str,
        subject: Option<&ErasureTarget>,
        reason: &str,
        requester: &Requester,
    ) -> Result<audit_keystore::LegalHold, ErasureError> {
        let protection = self.protection().ok_or(ErasureError::NotProtected)?;
        let subject = match subject {
            None => None,
            Some(ErasureTarget::UnattributedBefore(_)) => {
                return Err(ErasureError::Invalid {
                    field: "subject",
                    problem: "a hold names an email or an actor id, or nothing (the whole organization)".into(),
                });
            }
            Some(target) => self.subjects_of(organization_id, target).await?.pop(),
        };
        let hold = protection.keys().place_hold(organization_id, subject.as_ref(), reason).await?;
        self.record_hold("legal_hold.placed", Action::Create, organization_id, &hold, requester).await?;
        Ok(hold)
    }

    /// Lifts hold `id` and records `legal_hold.lifted`; `None` when there
    /// is no such hold (nothing recorded).
    pub async fn lift_hold(
        &self,
        organization_id: &str,
        id: &str,
        requester: &Requester,
    ) -> Result<Option<audit_keystore::LegalHold>, ErasureError> {
        let protection = self.protection().ok_or(ErasureError::NotProtected)?;
        let Some(hold) = protection.keys().lift_hold(organization_id, id).await? else { return Ok(None) };
        self.record_hold("legal_hold.lifted", Action::Delete, organization_id, &hold, requester).await?;
        Ok(Some(hold))
    }

    /// The organization's legal holds.
    pub async fn holds(&self, organization_id: &str) -> Result<Vec<audit_keystore::LegalHold>, ErasureError> {
        let protection = self.protection().ok_or(ErasureError::NotProtected)?;
        Ok(protection.keys().holds(organization_id).await?)
    }

    async fn record_hold(
        &self,
        event_type: &str,
        action: Action,
        organization_id: &str,
        hold: &audit_keystore::LegalHold,
        requester: &Requester,
    ) -> Result<DurableReceipt, CaptureError> {
        let mut metadata = Object::new();
        metadata.insert("hold_id", Value::String(hold.id.clone()));
        metadata.insert("reason", Value::String(hold.reason.clone()));
        metadata.insert("subject_token", hold.subject_token.as_ref().map_or(Value::Null, |t| Value::String(t.clone())));
        self.capture_durable(EventDraft {
            organization_id: organization_id.to_owned(),
            event_type: event_type.into(),
            action: Some(action),
            actor_type: Some(requester.actor_type),
            actor_id: Some(requester.actor_id.clone()),
            resource_type: Some("legal_hold".into()),
            resource_id: Some(hold.id.clone()),
            metadata: Some(metadata.into()),
            ..Default::default()
        })
        .await
    }

    /// The subjects an erasure target names.
    async fn subjects_of(&self, organization_id: &str, target: &ErasureTarget) -> Result<Vec<Subject>, ErasureError> {
        let invalid = |field, problem: &str| ErasureError::Invalid { field, problem: problem.to_owned() };
        match target {
            ErasureTarget::Email(email) => {
                let email = normalise_email(email);
                if email.is_empty() {
                    return Err(invalid("email", "must not be empty"));
                }
                Ok(vec![Subject::Email(email)])
            }
            ErasureTarget::ActorId(id) => {
                let id = id.trim();
                if id.is_empty() {
                    return Err(invalid("actor_id", "must not be empty"));
                }
                Ok(vec![Subject::User(id.to_owned())])
            }
            ErasureTarget::UnattributedBefore(before) => {
                // Every month from the log's first event to the last month
                // that ended by `before`.
                let Some(first) = self.first_event_time(organization_id).await? else { return Ok(Vec::new()) };
                let months = months_between(first, *before);
                Ok(months.into_iter().map(|month| Subject::Unattributed { month }).collect())
            }
        }
    }

    async fn first_event_time(&self, organization_id: &str) -> Result<Option<Timestamp>, ErasureError> {
        let store = self.store();
        let chunks = store.chunks(organization_id).await.map_err(crate::read::ExportError::from)?;
        let Some(first) = chunks.first() else { return Ok(None) };
        // The first line only: a bounded read, however large the segment.
        let mut bytes = Vec::new();
        store
            .read_chunk_window(organization_id, first, 0, crate::read::stored::LONGEST_LINE, &mut bytes)
            .await
            .map_err(crate::read::ExportError::from)?;
        let line = audit_core::stored::split_lines(&bytes).next().unwrap_or_default();
        Ok(audit_core::stored::StoredEvent::parse_line(line).ok().map(|e| e.timestamp))
    }
}

/// `YYYY-MM` of every month from `first`'s to the last one that ended at or
/// before `before` (none when `before` falls in `first`'s month).
fn months_between(first: Timestamp, before: Timestamp) -> Vec<String> {
    let ym = |t: Timestamp| -> (i32, u32) {
        let text = t.to_string();
        (text[..4].parse().unwrap_or(0), text[5..7].parse().unwrap_or(1))
    };
    let (mut y, mut m) = ym(first);
    let (end_y, end_m) = ym(before);
    let mut months = Vec::new();
    // A month ends at the start of the next: it is included when the next
    // month starts at or before `before`, i.e. it is before `before`'s month
    // (or `before` is exactly the first instant of its month).
    while (y, m) < (end_y, end_m) {
        months.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    months
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unattributed_months_are_those_ended_by_the_date() {
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        assert_eq!(
            months_between(t("2025-11-20T00:00:00Z"), t("2026-02-01T00:00:00Z")),
            ["2025-11", "2025-12", "2026-01"]
        );
        assert_eq!(months_between(t("2026-01-05T00:00:00Z"), t("2026-01-31T00:00:00Z")), Vec::<String>::new());
    }
}
