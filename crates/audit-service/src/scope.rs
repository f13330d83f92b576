//! Scoped capture (the seed's `audit_context`): run an operation and record
//! one event for it, with the state before and after, whether it succeeded
//! or failed.

use std::fmt;

use audit_core::event::EventDraft;
use audit_core::json::{Object, Value};

use crate::{Accepted, AuditService, CaptureError};

/// What the audited operation records while it runs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScopeState {
    /// State before the operation (`previous_state`).
    pub before: Option<Object>,
    /// State after the operation (`new_state`).
    pub after: Option<Object>,
    /// Extra members for the event's `metadata`.
    pub metadata: Object,
}

/// Why an audited operation did not return its value.
#[derive(Debug)]
pub enum ScopeError<E> {
    /// The operation failed (its failure *was* recorded, unless recording
    /// failed too, which is logged).
    Operation(E),
    /// The operation succeeded but its event could not be captured, or the
    /// event was invalid (then the operation was not run at all).
    Audit(CaptureError),
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Operation(e) => write!(f, "{e}"),
            ScopeError::Audit(e) => write!(f, "audit: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ScopeError<E> {}

impl AuditService {
    /// Runs `operation` and captures `draft` once it completes, with the
    /// `before`/`after` state it recorded and `metadata.outcome` set to
    /// `"success"`, or to `"failure"` with `metadata.error` when it fails —
    /// so a failed change is on the record too. The draft is validated
    /// first: an invalid event fails before the operation runs.
    ///
    /// ```no_run
    /// # async fn demo(service: audit_service::AuditService) -> Result<(), Box<dyn std::error::Error>> {
    /// use audit_core::event::{Action, ActorType, EventDraft};
    /// use audit_core::json::{Object, Value};
    ///
    /// let draft = EventDraft {
    ///     organization_id: "org-123".into(),
    ///     event_type: "project.updated".into(),
    ///     action: Some(Action::Update),
    ///     actor_type: Some(ActorType::User),
    ///     actor_id: Some("user-789".into()),
    ///     resource_type: Some("project".into()),
    ///     resource_id: Some("proj-456".into()),
    ///     ..Default::default()
    /// };
    /// let renamed = service
    ///     .audited(draft, async |scope| {
    ///         let mut before = Object::new();
    ///         before.insert("name", Value::String("Old Name".into()));
    ///         scope.before = Some(before);
    ///         // ... perform the update ...
    ///         let mut after = Object::new();
    ///         after.insert("name", Value::String("New Name".into()));
    ///         scope.after = Some(after);
    ///         Ok::<_, std::io::Error>("New Name")
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn audited<T, E: fmt::Display>(
        &self,
        draft: EventDraft,
        operation: impl AsyncFnOnce(&mut ScopeState) -> Result<T, E>,
    ) -> Result<T, ScopeError<E>> {
        draft.clone().validate(&self.config().limits).map_err(|e| ScopeError::Audit(CaptureError::Invalid(e)))?;
        let mut state = ScopeState::default();
        let result = operation(&mut state).await;
        let mut event = draft;
        let mut metadata = event.metadata.take().map(|m| m.to_object().into_owned()).unwrap_or_default();
        for (k, v) in state.metadata {
            metadata.insert(k, v);
        }
        match &result {
            Ok(_) => metadata.insert("outcome", Value::String("success".into())),
            Err(e) => {
                metadata.insert("outcome", Value::String("failure".into()));
                metadata.insert("error", Value::String(e.to_string()));
            }
        }
        event.metadata = Some(metadata.into());
        event.previous_state = state.before.map(Into::into).or(event.previous_state);
        event.new_state = state.after.map(Into::into).or(event.new_state);
        let captured: Result<Accepted, CaptureError> = self.capture(event).await;
        match (result, captured) {
            (Ok(value), Ok(_)) => Ok(value),
            (Ok(_), Err(e)) => Err(ScopeError::Audit(e)),
            (Err(op), Ok(_)) => Err(ScopeError::Operation(op)),
            (Err(op), Err(e)) => {
                tracing::error!(error = %e, "the failure of an audited operation could not be recorded");
                Err(ScopeError::Operation(op))
            }
        }
    }
}
