//! What a service's tasks share: storage, configuration, counters and
//! state, the registry of log workers, and the index's progress. The handle
//! (`service.rs`), the workers, the checkpointer and the indexer all read it;
//! it depends on none of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use audit_index::EventIndex;
use audit_storage::LogStore;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{AuditConfig, CheckpointConfig};
use crate::queue::{Msg, Pending};
use crate::state::{Counters, State, lock};

#[derive(Debug)]
pub(crate) struct WorkerHandle {
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) generation: u64,
    pub(crate) join: JoinHandle<()>,
}

/// The live workers, and one turn-taking lock per organization: a new
/// worker for an organization waits until the one before it (retiring) has
/// released the log's files, so the two never meet at the storage fence.
#[derive(Debug, Default)]
pub(crate) struct Workers {
    pub(crate) live: HashMap<String, WorkerHandle>,
    pub(crate) turns: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) config: AuditConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: Counters,
    pub(crate) state: State,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) workers: Mutex<Workers>,
    /// One permit per log open for writing (`max_open_logs`).
    pub(crate) open_logs: Arc<Semaphore>,
    /// Wakes an idle worker to retire when a new log needs a permit.
    pub(crate) log_pressure: Notify,
    pub(crate) next_generation: AtomicU64,
    pub(crate) running: AtomicBool,
    pub(crate) index: Option<Arc<dyn EventIndex>>,
    /// Per organization: events indexed.
    pub(crate) indexed: Mutex<HashMap<String, u64>>,
    /// Organizations with commits the index has not seen yet, and the
    /// batches their workers appended.
    pub(crate) to_index: Mutex<crate::indexer::ToIndex>,
    pub(crate) index_wake: Notify,
    pub(crate) index_error: Mutex<Option<String>>,
    pub(crate) indexer: Mutex<Option<JoinHandle<()>>>,
    /// Set once every worker has finished: the indexer does a last pass and ends.
    pub(crate) indexer_stop: AtomicBool,
    /// This service instance's id (a UUIDv7 taken at start).
    pub(crate) instance: String,
    /// Checkpoint settings (none: no checkpoints are written).
    pub(crate) checkpoints: Option<CheckpointConfig>,
    /// Personal data protection (none: personal values are stored as sent).
    pub(crate) protection: Option<Arc<crate::personal::Protection>>,
    /// The alert webhook (none: alerts are log lines only).
    pub(crate) alerts: Option<crate::alert::WebhookConfig>,
    /// What each witness last did, per organization.
    pub(crate) witness_status: Mutex<HashMap<String, Vec<crate::witness::WitnessStatus>>>,
    /// Checkpoints for the witnesses' task (none: no witnesses).
    pub(crate) witnesses: Option<mpsc::UnboundedSender<crate::witness::Submission>>,
    /// Alerts raised by workers, for the task that delivers them.
    pub(crate) raised: mpsc::UnboundedSender<crate::alert::Raised>,
}

impl Shared {
    /// Removes a worker from the registry, only if it is still the one
    /// registered and nothing is waiting in its channel (sends happen under
    /// the same lock, so none can arrive after this). True when it left.
    pub(crate) fn retire_worker(
        &self,
        organization_id: &str,
        generation: u64,
        idle_only: Option<&mpsc::UnboundedReceiver<Msg>>,
    ) -> bool {
        let mut workers = lock(&self.workers);
        if idle_only.is_some_and(|rx| !rx.is_empty()) {
            return false;
        }
        if workers.live.get(organization_id).is_some_and(|w| w.generation == generation) {
            workers.live.remove(organization_id);
        }
        true
    }

    /// Forgets an organization's turn lock once no worker holds or awaits it.
    pub(crate) fn release_turn(&self, organization_id: &str) {
        let mut workers = lock(&self.workers);
        if !workers.live.contains_key(organization_id)
            && workers.turns.get(organization_id).is_some_and(|t| Arc::strong_count(t) == 1)
        {
            workers.turns.remove(organization_id);
        }
    }

    /// Called by a worker after a commit: storage now holds `next_sequence` events.
    pub(crate) fn note_committed(&self, organization_id: &str, next_sequence: u64) {
        self.state.note_committed(organization_id, next_sequence);
        if self.index.is_some() {
            lock(&self.to_index).mark(organization_id);
            self.index_wake.notify_one();
        }
    }

    /// Called by a worker after appending `batch` where `placement` says:
    /// storage now holds `next_sequence` events, and the indexer may take
    /// the batch's lines from memory instead of reading them back.
    pub(crate) fn note_appended(
        &self,
        organization_id: &str,
        next_sequence: u64,
        batch: Arc<audit_storage::Batch>,
        placement: audit_storage::Placement,
    ) {
        self.state.note_committed(organization_id, next_sequence);
        if self.index.is_some() {
            lock(&self.to_index).appended(organization_id, batch, placement);
            self.index_wake.notify_one();
        }
    }

    /// Queues the report of a lost event for the system log and the
    /// organization's own.
    /// Raises an alert from anywhere (see [`crate::AuditService::alert`]).
    pub(crate) fn raise(&self, kind: crate::alert::AlertKind, organization_id: &str, detail: &str) {
        let _ = self.raised.send((kind, organization_id.to_owned(), detail.to_owned()));
    }

    pub(crate) fn note_dropped(&self, organization_id: &str, reason: &'static str, producer: Option<(&str, u64)>) {
        let system = self.config.system_organization.as_str();
        let logs: &[&str] = if organization_id == system { &[system] } else { &[system, organization_id] };
        self.state.note_dropped(organization_id, logs, reason, producer);
    }

    /// An accepted event (no caller waiting) that will never be stored:
    /// counted, and recorded as `audit_log.events_dropped` by the reporter.
    pub(crate) fn note_lost(&self, p: &Pending, reason: &'static str) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        self.note_dropped(p.event.organization_id(), reason, p.producer());
        tracing::error!(organization_id = p.event.organization_id(), event_id = %p.event_id, reason, "accepted event lost; recorded as audit_log.events_dropped");
    }
}
