//! The `AuditService` handle: capture, flush, stop, health.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Timestamp;
use audit_core::event::{Action, ActorType, EventDraft, ValidatedEvent};
use audit_core::filter::AuditEventFilter;
use audit_core::json::{Object, Value};
use audit_index::EventIndex;
use audit_storage::LogStore;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{AuditConfig, FullQueuePolicy};
use crate::error::CaptureError;
use crate::export::ExportFormat;
use crate::query::{QueryError, QueryPage};
use crate::read::ExportError;
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
    /// Batches another instance beat to the log's tail (shared stores);
    /// each was re-sequenced after the winner's events and written again.
    pub write_conflicts: AtomicU64,
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
    /// Per organization: events committed to storage by this service, and
    /// events indexed (queries may miss events past the latter).
    pub organizations: Vec<OrganizationHealth>,
    /// The last indexing failure, if any.
    pub index_error: Option<String>,
}

/// One organization's progress, in [`Health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationHealth {
    /// The organization.
    pub organization_id: String,
    /// Events in its log that this service committed through (the next sequence).
    pub committed_through: Option<u64>,
    /// Events indexed (the next sequence to index).
    pub indexed_through: Option<u64>,
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
    pub(crate) index: Option<Arc<dyn EventIndex>>,
    /// Per organization: events committed to storage (the next sequence).
    pub(crate) committed: Mutex<HashMap<String, u64>>,
    /// Per organization: events indexed.
    pub(crate) indexed: Mutex<HashMap<String, u64>>,
    /// Organizations with commits the index has not seen yet.
    pub(crate) index_dirty: Mutex<HashSet<String>>,
    pub(crate) index_wake: Notify,
    pub(crate) index_error: Mutex<Option<String>>,
    indexer: Mutex<Option<JoinHandle<()>>>,
    /// Set once every worker has finished: the indexer does a last pass and ends.
    pub(crate) indexer_stop: AtomicBool,
    /// This service instance's id (a UUIDv7 taken at start).
    instance: String,
    /// Checkpoint settings (none: no checkpoints are written).
    pub(crate) checkpoints: Option<crate::checkpoint::CheckpointConfig>,
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

    /// Called by a worker after a commit: storage now holds `next_sequence` events.
    pub(crate) fn note_committed(&self, organization_id: &str, next_sequence: u64) {
        lock(&self.committed).insert(organization_id.to_owned(), next_sequence);
        if self.index.is_some() {
            lock(&self.index_dirty).insert(organization_id.to_owned());
            self.index_wake.notify_one();
        }
    }

    pub(crate) fn note_poisoned(&self, organization_id: &str, why: &str) {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if !p.iter().any(|o| o.starts_with(organization_id)) {
            p.push(format!("{organization_id}: {why}"));
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it
/// (every critical section here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds an [`AuditService`]: storage is required; configuration, clock
/// and query index are optional (without an index, queries are refused and
/// exports scan storage).
#[derive(Debug)]
pub struct ServiceBuilder {
    store: Arc<dyn LogStore>,
    config: AuditConfig,
    clock: Arc<dyn Clock>,
    index: Option<Arc<dyn EventIndex>>,
    checkpoints: Option<crate::checkpoint::CheckpointConfig>,
}

impl ServiceBuilder {
    /// Sign and store checkpoints of every log (SPEC §6).
    pub fn checkpoints(mut self, config: crate::checkpoint::CheckpointConfig) -> Self {
        self.checkpoints = Some(config);
        self
    }

    /// The configuration (default: [`AuditConfig::default`]).
    pub fn config(mut self, config: AuditConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The query index, kept up to date in the background.
    pub fn index(mut self, index: Arc<dyn EventIndex>) -> Self {
        self.index = Some(index);
        self
    }

    /// Starts the service.
    pub async fn start(self) -> AuditService {
        AuditService::start_from(self).await
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
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn LogStore>) -> ServiceBuilder {
        ServiceBuilder {
            store,
            config: AuditConfig::default(),
            clock: Arc::new(SystemClock),
            index: None,
            checkpoints: None,
        }
    }

    /// Starts the service over `store` with the system clock and no index.
    pub async fn start(store: Arc<dyn LogStore>, config: AuditConfig) -> AuditService {
        Self::builder(store).config(config).start().await
    }

    /// Starts the service with an injected clock (tests).
    pub async fn start_with_clock(
        store: Arc<dyn LogStore>,
        config: AuditConfig,
        clock: Arc<dyn Clock>,
    ) -> AuditService {
        Self::builder(store).config(config).clock(clock).start().await
    }

    async fn start_from(parts: ServiceBuilder) -> AuditService {
        let ServiceBuilder { store, config, clock, index, checkpoints } = parts;
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
            index,
            committed: Mutex::new(HashMap::new()),
            indexed: Mutex::new(HashMap::new()),
            index_dirty: Mutex::new(HashSet::new()),
            index_wake: Notify::new(),
            index_error: Mutex::new(None),
            indexer: Mutex::new(None),
            indexer_stop: AtomicBool::new(false),
            instance: uuid::Uuid::now_v7().hyphenated().to_string(),
            checkpoints,
        });
        if shared.index.is_some() {
            *lock(&shared.indexer) = Some(tokio::spawn(crate::indexer::run(Arc::clone(&shared))));
        }
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

    /// One of the service's own events. Each names this service instance
    /// (and its process), so that two starts a minute apart are two events,
    /// not one deduplicated one.
    fn system_event(&self, event_type: &str, action: Action, mut metadata: Object) -> EventDraft {
        metadata.insert("instance", Value::String(self.shared.instance.clone()));
        metadata.insert("pid", Value::Number(f64::from(std::process::id())));
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
        // Every commit is in storage now: the indexer indexes what is left and ends.
        self.shared.indexer_stop.store(true, Ordering::Release);
        self.shared.index_wake.notify_one();
        let indexer = lock(&self.shared.indexer).take();
        if let Some(indexer) = indexer
            && let Err(e) = indexer.await
        {
            tracing::error!(error = %e, "the indexer ended abnormally");
        }
    }

    /// One page of events matching `filter`, from the index and checked
    /// against storage (SPEC §8).
    pub async fn query_events(&self, filter: &AuditEventFilter) -> Result<QueryPage, QueryError> {
        let index = self.shared.index.as_ref().ok_or(QueryError::NoIndex)?;
        crate::query::query_events(self.shared.store.as_ref(), index.as_ref(), filter).await
    }

    /// The event with this id in `organization_id`'s log, through the index.
    pub async fn find_event(
        &self,
        organization_id: &str,
        event_id: &str,
    ) -> Result<Option<audit_core::stored::StoredEvent>, QueryError> {
        let index = self.shared.index.as_ref().ok_or(QueryError::NoIndex)?;
        crate::query::find_event(self.shared.store.as_ref(), index.as_ref(), organization_id, event_id).await
    }

    /// The query index, if the service keeps one.
    pub fn index(&self) -> Option<&Arc<dyn EventIndex>> {
        self.shared.index.as_ref()
    }

    /// Streams every event matching `filter` (no page limit) to `out` in
    /// `format`; returns how many were written.
    pub async fn export_events(
        &self,
        filter: &AuditEventFilter,
        format: ExportFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ExportError> {
        filter
            .check()
            .map_err(|e| ExportError::Output(std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())))?;
        crate::export::export_events(self.shared.store.as_ref(), filter, format, out, &mut |_| {}).await
    }

    /// Events indexed per organization, as far as this service knows.
    pub fn indexed_through(&self, organization_id: &str) -> Option<u64> {
        lock(&self.shared.indexed).get(organization_id).copied()
    }

    /// Events committed to storage per organization, by this service.
    pub fn committed_through(&self, organization_id: &str) -> Option<u64> {
        lock(&self.shared.committed).get(organization_id).copied()
    }

    /// Waits until the index has caught up with every commit so far (tests,
    /// benchmarks). Returns early when indexing reports a failure (see
    /// `Health::index_error`) rather than wait forever.
    pub async fn wait_for_index(&self) {
        let Some(_) = self.shared.index else { return };
        loop {
            if lock(&self.shared.index_error).is_some() {
                return;
            }
            let behind = {
                let committed = lock(&self.shared.committed);
                let indexed = lock(&self.shared.indexed);
                committed.iter().any(|(org, n)| indexed.get(org).is_none_or(|i| i < n))
            };
            if !behind {
                return;
            }
            self.shared.index_wake.notify_one();
            tokio::time::sleep(Duration::from_millis(5)).await;
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
            organizations: {
                let committed = lock(&self.shared.committed);
                let indexed = lock(&self.shared.indexed);
                let mut orgs: Vec<&String> = committed.keys().chain(indexed.keys()).collect();
                orgs.sort();
                orgs.dedup();
                orgs.into_iter()
                    .map(|o| OrganizationHealth {
                        organization_id: o.clone(),
                        committed_through: committed.get(o).copied(),
                        indexed_through: indexed.get(o).copied(),
                    })
                    .collect()
            },
            index_error: lock(&self.shared.index_error).clone(),
            counters: vec![
                ("captured", c.captured.load(Ordering::Relaxed)),
                ("committed", c.committed.load(Ordering::Relaxed)),
                ("deduplicated", c.deduplicated.load(Ordering::Relaxed)),
                ("rejected_invalid", c.rejected_invalid.load(Ordering::Relaxed)),
                ("rejected_queue_full", c.rejected_queue_full.load(Ordering::Relaxed)),
                ("idempotency_conflicts", c.idempotency_conflicts.load(Ordering::Relaxed)),
                ("write_conflicts", c.write_conflicts.load(Ordering::Relaxed)),
                ("failed", c.failed.load(Ordering::Relaxed)),
                ("batches", c.batches.load(Ordering::Relaxed)),
            ],
        }
    }
}
