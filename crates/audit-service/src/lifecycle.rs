//! The service's own records: lifecycle events, and the reports of events
//! it lost (`audit_log.events_dropped`), written past the queue bound.

use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use tokio::sync::oneshot;

use crate::error::CaptureError;
use crate::queue::DurableReceipt;
use crate::service::{AuditService, PendingReceipt};

impl AuditService {
    /// One of the service's own events. Each names this service instance
    /// (and its process), so that two starts a minute apart are two events,
    /// not one deduplicated one.
    pub(crate) fn system_event(&self, event_type: &str, action: Action, mut metadata: Object) -> EventDraft {
        metadata.insert("instance", Value::String(self.shared.instance.clone()));
        metadata.insert("pid", Value::Number(f64::from(std::process::id())));
        EventDraft {
            organization_id: self.shared.config.system_organization.clone(),
            event_type: event_type.into(),
            action: Some(action),
            actor_type: Some(ActorType::System),
            actor_id: Some("agenttrace-audit".into()),
            metadata: (!metadata.is_empty()).then(|| metadata.into()),
            ..Default::default()
        }
    }

    /// Records the events lost since the last report, per organization, as
    /// `audit_log.events_dropped` events — in the system organization's log
    /// and in the organization's own (where verification shows the
    /// producer ranges as known losses, SPEC §6). Each log's copy that
    /// cannot be written is kept and tried again at the next tick.
    pub(crate) async fn report_drops(&self) {
        for ((org, log), dropped) in self.shared.state.take_dropped() {
            let mut metadata = Object::new();
            metadata.insert("organization_id", Value::String(org.clone()));
            metadata.insert("count", Value::Number(dropped.count as f64));
            let reasons = dropped.reasons.iter().map(|r| Value::String((*r).into())).collect();
            metadata.insert("reasons", Value::Array(reasons));
            let producers: Vec<Value> = dropped
                .producers
                .iter()
                .flat_map(|(id, ranges)| {
                    ranges.iter().map(move |(from, to)| {
                        let mut p = Object::new();
                        p.insert("producer_id", Value::String(id.clone()));
                        p.insert("from", Value::Number(*from as f64));
                        p.insert("to", Value::Number(*to as f64));
                        Value::Object(p)
                    })
                })
                .collect();
            if !producers.is_empty() {
                metadata.insert("producers", Value::Array(producers));
            }
            let mut draft = self.system_event(audit_core::stored::EVENTS_DROPPED, Action::Other, metadata);
            draft.organization_id = log.clone();
            match self.record_service_event(draft).await {
                // One alert per loss report: with the system log's copy.
                Ok(_) if log == self.shared.config.system_organization => {
                    let detail = format!(
                        "{} accepted events lost ({})",
                        dropped.count,
                        dropped.reasons.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                    self.alert(crate::alert::AlertKind::EventsDropped, &org, &detail);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(organization_id = %org, log = %log, error = %e, "cannot record audit_log.events_dropped; will retry");
                    self.shared.state.restore_dropped((org, log), dropped);
                }
            }
        }
    }

    /// Writes one of the service's own records durably, bypassing the queue
    /// bound (such a record must not be refused in turn).
    async fn record_service_event(&self, draft: EventDraft) -> Result<DurableReceipt, CaptureError> {
        let event = draft.validate(&self.shared.config.limits)?;
        let (tx, rx) = oneshot::channel();
        self.enqueue(event, Some(tx), None)?;
        PendingReceipt { rx }.wait().await
    }
}
