//! The `AuditService` handle: capture, flush, stop, health.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, EventDraft, ValidatedEvent};
use audit_core::json::{Object, Value};
use audit_storage::LogStore;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{AuditConfig, FullQueuePolicy};
use crate::error::CaptureError;
use crate::worker::{self, DurableReceipt, Msg, Pending};

/// Counts of everything that happened to captured events. Nothing is
/// dropped, rejected or deduplicated without being counted here.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events accepted into the queue.
    pub captured: AtomicU64,
    /// Events written durably.
    pub committed: AtomicU64,
    /// Captures answered with an earlier event's receipt.
    pub deduplicated: AtomicU64,
    /// Captures refused as invalid.
    pub rejected_invalid: AtomicU64,
    /// Captures refused because the queue was full (reject policy).
    pub rejected_queue_full: AtomicU64,
    /// Captures refused for reusing an idempotency key with other content.
    pub idempotency_conflicts: AtomicU64,
    /// Accepted events that storage failed to write (no receipt given).
    pub failed: AtomicU64,
    /// Writes (batches) committed.
    pub batches: AtomicU64,
}

/// A snapshot of the service's state (the seed's `/audit/health`, and more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Accepting events.
    pub running: bool,
    /// Events accepted but not yet committed.
    pub queue_size: usize,
    /// Events remembered for deduplication and idempotency.
    pub recent_events: u64,
    /// When the last batch was committed.
    pub last_flush: Option<Timestamp>,
    /// How long its write + sync took, in microseconds.
    pub last_flush_micros: Option<u64>,
    /// Logs whose writer refused further appends after a failed cleanup.
    pub poisoned_logs: Vec<String>,
    /// Counter values, by name.
    pub counters: Vec<(&'static str, u64)>,
}

/// A capture accepted into the queue (not yet durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The id the event will be stored under (unless it turns out to be a duplicate).
    pub event_id: String,
}

/// A durable capture in flight; [`PendingReceipt::wait`] gives its receipt.
#[derive(Debug)]
pub struct PendingReceipt {
    rx: oneshot::Receiver<Result<DurableReceipt, CaptureError>>,
}

impl PendingReceipt {
    /// Waits until the event is durable (or failed).
    pub async fn wait(self) -> Result<DurableReceipt, CaptureError> {
        self.rx.await.unwrap_or_else(|_| Err(CaptureError::Storage("the log's worker stopped before answering".into())))
    }
}

#[derive(Debug)]
struct WorkerHandle {
    tx: mpsc::UnboundedSender<Msg>,
    generation: u64,
    join: JoinHandle<()>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) config: AuditConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: Counters,
    pub(crate) recent_events: AtomicI64,
    permits: Arc<Semaphore>,
    workers: Mutex<HashMap<String, WorkerHandle>>,
    next_generation: AtomicU64,
    running: AtomicBool,
    last_flush: Mutex<Option<(Timestamp, Duration)>>,
    poisoned: Mutex<Vec<String>>,
    drops_reported: AtomicU64,
}

impl Shared {
    pub(crate) fn retire_worker(&self, organization_id: &str, generation: u64) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if workers.get(organization_id).is_some_and(|w| w.generation == generation) {
            workers.remove(organization_id);
        }
    }

    pub(crate) fn note_flush(&self, at: Timestamp, took: Duration) {
        *self.last_flush.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, took));
    }

    pub(crate) fn note_poisoned(&self, organization_id: &str, why: &str) {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if !p.iter().any(|o| o.starts_with(organization_id)) {
            p.push(format!("{organization_id}: {why}"));
        }
    }
}

/// The audit service: a cheap, cloneable handle over one set of workers.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use audit_core::event::{Action, ActorType, EventDraft};
/// use audit_service::{AuditConfig, AuditService};
/// use audit_storage::local::LocalStore;
///
/// let service = AuditService::start(Arc::new(LocalStore::new("./audit_logs")), AuditConfig::default()).await;
/// let receipt = service.capture_durable(EventDraft {
///     organization_id: "org-123".into(),
///     event_type: "trace.deleted".into(),
///     action: Some(Action::Delete),
///     actor_type: Some(ActorType::User),
///     ..Default::default()
/// }).await?;
/// println!("stored as #{} with hash {}", receipt.receipt.sequence, receipt.receipt.hash);
/// service.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuditService {
    shared: Arc<Shared>,
}

impl AuditService {
    /// Starts the service over `store` with the system clock.
    pub async fn start(store: Arc<dyn LogStore>, config: AuditConfig) -> AuditService {
        Self::start_with_clock(store, config, Arc::new(SystemClock)).await
    }

    /// Starts the service with an injected clock (tests).
    pub async fn start_with_clock(
        store: Arc<dyn LogStore>,
        config: AuditConfig,
        clock: Arc<dyn Clock>,
    ) -> AuditService {
        let permits = Arc::new(Semaphore::new(config.queue_capacity.max(1)));
        let shared = Arc::new(Shared {
            store,
            config,
            clock,
            counters: Counters::default(),
            recent_events: AtomicI64::new(0),
            permits,
            workers: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
            running: AtomicBool::new(true),
            last_flush: Mutex::new(None),
            poisoned: Mutex::new(Vec::new()),
            drops_reported: AtomicU64::new(0),
        });
        let service = AuditService { shared };
        if service.shared.config.record_lifecycle {
            let started = service.system_event("audit_log.started", Action::Execute, Object::new());
            if let Err(e) = service.capture_durable(started).await {
                tracing::error!(error = %e, "cannot record audit_log.started");
            }
        }
        let reporter = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while reporter.is_running() {
                tick.tick().await;
                reporter.report_drops();
            }
        });
        service
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.shared.config
    }

    /// The store the service writes to.
    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.shared.store
    }

    /// True until [`AuditService::stop`] is called.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    fn system_event(&self, event_type: &str, action: Action, metadata: Object) -> EventDraft {
        EventDraft {
            organization_id: self.shared.config.system_organization.clone(),
            event_type: event_type.into(),
            action: Some(action),
            actor_type: Some(ActorType::System),
            actor_id: Some("agenttrace-audit".into()),
            metadata: (!metadata.is_empty()).then_some(metadata),
            ..Default::default()
        }
    }

    /// Records rejections the queue made since the last report as one
    /// `audit_log.events_dropped` event in the system log.
    fn report_drops(&self) {
        let total = self.shared.counters.rejected_queue_full.load(Ordering::Relaxed);
        let reported = self.shared.drops_reported.swap(total, Ordering::Relaxed);
        if total > reported {
            let mut metadata = Object::new();
            metadata.insert("count", Value::Number((total - reported) as f64));
            metadata.insert("reason", Value::String("queue_full".into()));
            let draft = self.system_event("audit_log.events_dropped", Action::Other, metadata);
            match draft.validate(&self.shared.config.limits) {
                // Bypasses the queue bound: this record must not be dropped in turn.
                Ok(event) => {
                    if let Err(e) = self.enqueue(event, None, None) {
                        tracing::error!(error = %e, "cannot record audit_log.events_dropped");
                    }
                }
                Err(e) => tracing::error!(error = %e, "audit_log.events_dropped is invalid"),
            }
        }
    }

    fn validate(&self, draft: EventDraft) -> Result<ValidatedEvent, CaptureError> {
        if !self.is_running() {
            return Err(CaptureError::Stopped);
        }
        draft.validate(&self.shared.config.limits).map_err(|e| {
            self.shared.counters.rejected_invalid.fetch_add(1, Ordering::Relaxed);
            CaptureError::Invalid(e)
        })
    }

    async fn permit(&self, event: &ValidatedEvent) -> Result<tokio::sync::OwnedSemaphorePermit, CaptureError> {
        let permits = Arc::clone(&self.shared.permits);
        match self.shared.config.full_queue_policy {
            FullQueuePolicy::Backpressure => permits.acquire_owned().await.map_err(|_| CaptureError::Stopped),
            FullQueuePolicy::Reject => permits.try_acquire_owned().map_err(|_| {
                self.shared.counters.rejected_queue_full.fetch_add(1, Ordering::Relaxed);
                CaptureError::QueueFull { event: Box::new(event.draft().clone()) }
            }),
        }
    }

    fn enqueue(
        &self,
        event: ValidatedEvent,
        reply: Option<worker::Reply>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<String, CaptureError> {
        let event_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let org = event.organization_id().to_owned();
        let pending = Pending { event, event_id: event_id.clone(), reply, _permit: permit };
        let mut workers = self.shared.workers.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_running() && workers.is_empty() {
            return Err(CaptureError::Stopped);
        }
        let handle = workers.entry(org.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
            let join = tokio::spawn(worker::run(org.clone(), generation, rx, Arc::clone(&self.shared)));
            WorkerHandle { tx, generation, join }
        });
        handle.tx.send(Msg::Event(pending)).map_err(|_| CaptureError::Stopped)?;
        self.shared.counters.captured.fetch_add(1, Ordering::Relaxed);
        Ok(event_id)
    }

    /// Validates the event and queues it. Returns once it is accepted — not
    /// yet durable: a crash can lose it, a graceful [`AuditService::stop`] cannot.
    pub async fn capture(&self, draft: EventDraft) -> Result<Accepted, CaptureError> {
        let event = self.validate(draft)?;
        let permit = self.permit(&event).await?;
        let event_id = self.enqueue(event, None, Some(permit))?;
        Ok(Accepted { event_id })
    }

    /// Validates and queues the event, returning a handle that resolves once
    /// it is durable. Submitting many before waiting on any lets them share
    /// writes; receipts of one organization come in submission order.
    pub async fn submit_durable(&self, draft: EventDraft) -> Result<PendingReceipt, CaptureError> {
        let event = self.validate(draft)?;
        let permit = self.permit(&event).await?;
        let (tx, rx) = oneshot::channel();
        self.enqueue(event, Some(tx), Some(permit))?;
        Ok(PendingReceipt { rx })
    }

    /// Captures the event and returns its receipt only once it is on stable
    /// storage. Does not wait for `batch_interval`: it rides the next write.
    pub async fn capture_durable(&self, draft: EventDraft) -> Result<DurableReceipt, CaptureError> {
        self.submit_durable(draft).await?.wait().await
    }

    /// Writes everything queued so far and waits until it is written.
    pub async fn flush(&self) {
        let waiters: Vec<oneshot::Receiver<()>> = {
            let workers = self.shared.workers.lock().unwrap_or_else(|p| p.into_inner());
            workers
                .values()
                .filter_map(|w| {
                    let (tx, rx) = oneshot::channel();
                    w.tx.send(Msg::Flush(tx)).ok().map(|()| rx)
                })
                .collect()
        };
        for w in waiters {
            let _ = w.await;
        }
    }

    /// Stops accepting events, records `audit_log.stopped` (when lifecycle
    /// recording is on), writes everything queued, and releases every log.
    pub async fn stop(&self) {
        if self.shared.config.record_lifecycle && self.is_running() {
            let stopped = self.system_event("audit_log.stopped", Action::Execute, Object::new());
            if let Err(e) = self.capture_durable(stopped).await {
                tracing::error!(error = %e, "cannot record audit_log.stopped");
            }
        }
        self.report_drops();
        self.shared.running.store(false, Ordering::Release);
        let handles: Vec<WorkerHandle> = {
            let mut workers = self.shared.workers.lock().unwrap_or_else(|p| p.into_inner());
            workers.drain().map(|(_, h)| h).collect()
        };
        for h in handles {
            drop(h.tx);
            if let Err(e) = h.join.await {
                tracing::error!(error = %e, "a log worker ended abnormally");
            }
        }
    }

    /// A snapshot of the service's state and counters.
    pub fn health(&self) -> Health {
        let c = &self.shared.counters;
        let capacity = self.shared.config.queue_capacity.max(1);
        let last = *self.shared.last_flush.lock().unwrap_or_else(|p| p.into_inner());
        Health {
            running: self.is_running(),
            queue_size: capacity.saturating_sub(self.shared.permits.available_permits()),
            recent_events: self.shared.recent_events.load(Ordering::Relaxed).max(0) as u64,
            last_flush: last.map(|(t, _)| t),
            last_flush_micros: last.map(|(_, d)| d.as_micros() as u64),
            poisoned_logs: self.shared.poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            counters: vec![
                ("captured", c.captured.load(Ordering::Relaxed)),
                ("committed", c.committed.load(Ordering::Relaxed)),
                ("deduplicated", c.deduplicated.load(Ordering::Relaxed)),
                ("rejected_invalid", c.rejected_invalid.load(Ordering::Relaxed)),
                ("rejected_queue_full", c.rejected_queue_full.load(Ordering::Relaxed)),
                ("idempotency_conflicts", c.idempotency_conflicts.load(Ordering::Relaxed)),
                ("failed", c.failed.load(Ordering::Relaxed)),
                ("batches", c.batches.load(Ordering::Relaxed)),
            ],
        }
    }
}
