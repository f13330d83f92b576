//! The `AuditService` handle: capture, flush, stop, health.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::event::{Action, EventDraft, ValidatedEvent};
use audit_core::filter::AuditEventFilter;
use audit_core::json::Object;
use audit_index::EventIndex;
use audit_storage::LogStore;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::clock::{Clock, SystemClock};
use crate::config::{AuditConfig, FullQueuePolicy};
use crate::error::CaptureError;
use crate::queue::{DurableReceipt, Msg, Pending, QueueSlot, Reply};
use crate::read::ExportError;
use crate::read::export::ExportFormat;
use crate::read::query::{QueryError, QueryPage};
use crate::shared::{Shared, WorkerHandle, Workers};
pub use crate::state::Health;
pub(crate) use crate::state::lock;
use crate::state::{Counters, State};
use crate::worker;

/// A capture accepted into the queue (not yet durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The id the event will be stored under (unless it turns out to be a duplicate).
    pub event_id: String,
}

/// A durable capture in flight; [`PendingReceipt::wait`] gives its receipt.
#[derive(Debug)]
pub struct PendingReceipt {
    pub(crate) rx: oneshot::Receiver<Result<DurableReceipt, CaptureError>>,
}

impl PendingReceipt {
    /// Waits until the event is durable (or failed).
    pub async fn wait(self) -> Result<DurableReceipt, CaptureError> {
        self.await
    }
}

/// A pending receipt is itself a future (no allocation to wait on it).
impl std::future::Future for PendingReceipt {
    type Output = Result<DurableReceipt, CaptureError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                Err(CaptureError::storage(
                    audit_storage::StorageErrorKind::Unexpected,
                    "the log's worker stopped before answering",
                ))
            })
        })
    }
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
    checkpoints: Option<crate::config::CheckpointConfig>,
    protection: Option<Arc<crate::personal::Protection>>,
    alerts: Option<crate::alert::WebhookConfig>,
    witnesses: Vec<crate::witness::WitnessConfig>,
}

impl ServiceBuilder {
    /// Submit every checkpoint to these witnesses and keep their
    /// cosignatures (C2SP tlog-witness; needs checkpoints).
    pub fn witnesses(mut self, witnesses: Vec<crate::witness::WitnessConfig>) -> Self {
        self.witnesses = witnesses;
        self
    }

    /// Send alerts to a webhook too (they are always logged).
    pub fn alerts(mut self, webhook: crate::alert::WebhookConfig) -> Self {
        self.alerts = Some(webhook);
        self
    }

    /// Seal personal data under subject keys (SPEC §9).
    pub fn protection(mut self, protection: Arc<crate::personal::Protection>) -> Self {
        self.protection = Some(protection);
        self
    }

    /// Sign and store checkpoints of every log (SPEC §6).
    pub fn checkpoints(mut self, config: crate::config::CheckpointConfig) -> Self {
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
    pub(crate) shared: Arc<Shared>,
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
            protection: None,
            alerts: None,
            witnesses: Vec::new(),
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
        let ServiceBuilder { store, config, clock, index, checkpoints, protection, alerts, witnesses } = parts;
        let (raised, raised_rx) = mpsc::unbounded_channel();
        let (to_witnesses, witness_rx) = mpsc::unbounded_channel();
        let submit = !witnesses.is_empty() && checkpoints.is_some();
        let permits = Arc::new(Semaphore::new(config.queue_capacity.max(1)));
        let open_logs = Arc::new(Semaphore::new(config.max_open_logs.max(1)));
        let shared = Arc::new(Shared {
            store,
            config,
            clock,
            counters: Counters::default(),
            state: State::default(),
            permits,
            workers: Mutex::new(Workers::default()),
            open_logs,
            log_pressure: Notify::new(),
            next_generation: AtomicU64::new(0),
            running: AtomicBool::new(true),
            index,
            indexed: Mutex::new(HashMap::new()),
            to_index: Mutex::default(),
            index_wake: Notify::new(),
            index_error: Mutex::new(None),
            indexer: Mutex::new(None),
            indexer_stop: AtomicBool::new(false),
            instance: uuid::Uuid::now_v7().hyphenated().to_string(),
            checkpoints,
            protection,
            alerts,
            witness_status: Mutex::new(HashMap::new()),
            witnesses: submit.then_some(to_witnesses),
            raised,
        });
        if submit {
            tokio::spawn(crate::witness::run(Arc::clone(&shared), witnesses, witness_rx));
        }
        if shared.index.is_some() {
            *lock(&shared.indexer) = Some(tokio::spawn(crate::indexer::run(Arc::clone(&shared))));
        }
        let service = AuditService { shared };
        tokio::spawn(crate::alert::run(service.clone(), raised_rx));
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
                reporter.report_drops().await;
            }
        });
        service
    }

    /// What each configured witness last did with `organization_id`'s
    /// checkpoints (empty: no witnesses, or none submitted yet).
    pub fn witness_status(&self, organization_id: &str) -> Vec<crate::witness::WitnessStatus> {
        lock(&self.shared.witness_status).get(organization_id).cloned().unwrap_or_default()
    }

    /// Organizations for which a witness holds a larger or another tree (a fork).
    pub fn witness_forks(&self) -> usize {
        lock(&self.shared.witness_status).values().filter(|w| w.iter().any(|s| s.fork.is_some())).count()
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

    fn validate(&self, draft: EventDraft) -> Result<ValidatedEvent, CaptureError> {
        if !self.is_running() {
            return Err(CaptureError::Stopped);
        }
        let event = draft.validate(&self.shared.config.limits).map_err(|e| {
            self.shared.counters.rejected_invalid.fetch_add(1, Ordering::Relaxed);
            CaptureError::Invalid(e)
        })?;
        // On the caller's thread, in parallel, rather than in the log's
        // worker (one task per organization): the fingerprint that
        // deduplication compares.
        event.fingerprint();
        Ok(event)
    }

    async fn permit(&self, event: &ValidatedEvent) -> Result<tokio::sync::OwnedSemaphorePermit, CaptureError> {
        let permits = Arc::clone(&self.shared.permits);
        match self.shared.config.full_queue_policy {
            FullQueuePolicy::Backpressure => permits.acquire_owned().await.map_err(|_| CaptureError::Stopped),
            FullQueuePolicy::Reject => permits.try_acquire_owned().map_err(|_| {
                self.shared.counters.rejected_queue_full.fetch_add(1, Ordering::Relaxed);
                let d = event.draft();
                let producer = d.producer_id.as_deref().zip(d.producer_sequence);
                self.shared.note_dropped(event.organization_id(), "queue_full", producer);
                CaptureError::QueueFull { event: Box::new(d.clone()) }
            }),
        }
    }

    pub(crate) fn enqueue(
        &self,
        event: ValidatedEvent,
        reply: Option<Reply>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<String, CaptureError> {
        // Sealed here, on the caller's thread, when the subject's key is
        // cached (the worker seals the rest, see `Protection::seal_batch`);
        // after the queue slot is taken, so that a refused caller gets its
        // event back as it sent it.
        let event = match &self.shared.protection {
            Some(p) => p.seal_if_cached(event, self.shared.clock.now()),
            None => event,
        };
        let event_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let org = event.organization_id().to_owned();
        let slot = QueueSlot::new(permit, self.shared.state.queued_counter(&org));
        let pending = Pending { event, event_id: event_id.clone(), reply, _slot: slot };
        let mut workers = lock(&self.shared.workers);
        if !self.is_running() && workers.live.is_empty() {
            return Err(CaptureError::Stopped);
        }
        let Workers { live, turns } = &mut *workers;
        let handle = live.entry(org.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
            let turn = Arc::clone(turns.entry(org.clone()).or_default());
            let join = tokio::spawn(worker::run(org.clone(), generation, turn, rx, Arc::clone(&self.shared)));
            WorkerHandle { tx, generation, join }
        });
        handle.tx.send(Msg::Event(pending)).map_err(|_| CaptureError::Stopped)?;
        self.shared.counters.captured.fetch_add(1, Ordering::Relaxed);
        Ok(event_id)
    }

    /// Counts events refused before they reached the service (e.g. by the
    /// HTTP API's parsing), so that every refusal shows in `rejected_invalid`.
    pub fn note_rejected_invalid(&self, events: u64) {
        self.shared.counters.rejected_invalid.fetch_add(events, Ordering::Relaxed);
    }

    /// True when `organization_id` has a log (this service wrote to it, or
    /// storage holds events for it). Reads of an organization without one
    /// create nothing.
    pub async fn has_log(&self, organization_id: &str) -> Result<bool, audit_storage::StorageError> {
        if self.shared.state.committed_through(organization_id).is_some_and(|n| n > 0) {
            return Ok(true);
        }
        Ok(!self.shared.store.chunks(organization_id).await?.is_empty())
    }

    /// Whether a capture would be taken now without waiting: running and
    /// the queue has room (the closed failure policy asks this).
    pub fn can_accept(&self) -> bool {
        self.is_running() && self.shared.permits.available_permits() > 0
    }

    /// Takes a queue slot now, or fails at once (`QueueFull`) when there is
    /// none: a promise that one event can be captured later without
    /// waiting or being refused for room. `AuditLayer`'s closed policy
    /// reserves before the handler runs, so that no request is served
    /// whose event could not be queued.
    pub fn try_reserve(&self) -> Result<Reservation, CaptureError> {
        if !self.is_running() {
            return Err(CaptureError::Stopped);
        }
        // Not counted as a rejection: no event exists yet (the caller decides
        // what to do without a slot, and counts that itself).
        let permit = Arc::clone(&self.shared.permits)
            .try_acquire_owned()
            .map_err(|_| CaptureError::QueueFull { event: Box::default() })?;
        Ok(Reservation { service: self.clone(), permit })
    }

    /// Validates the event and queues it. Returns once it is accepted — not
    /// yet durable: a crash can lose it, a graceful [`AuditService::stop`] cannot.
    pub async fn capture(&self, draft: EventDraft) -> Result<Accepted, CaptureError> {
        self.capture_validated(self.validate(draft)?).await
    }

    /// [`Self::capture`] of an event the caller validated already — under
    /// this service's limits (`config().limits`), which it is the caller's
    /// duty to apply: for callers that check a whole batch before storing
    /// any of it, so that no event is validated twice.
    pub async fn capture_validated(&self, event: ValidatedEvent) -> Result<Accepted, CaptureError> {
        if !self.is_running() {
            return Err(CaptureError::Stopped);
        }
        event.fingerprint();
        let permit = self.permit(&event).await?;
        let event_id = self.enqueue(event, None, Some(permit))?;
        Ok(Accepted { event_id })
    }

    /// Validates and queues the event, returning a handle that resolves once
    /// it is durable. Submitting many before waiting on any lets them share
    /// writes; receipts of one organization come in submission order.
    pub async fn submit_durable(&self, draft: EventDraft) -> Result<PendingReceipt, CaptureError> {
        self.submit_validated_durable(self.validate(draft)?).await
    }

    /// [`Self::submit_durable`] of an event the caller validated already,
    /// under this service's limits (see [`Self::capture_validated`]).
    pub async fn submit_validated_durable(&self, event: ValidatedEvent) -> Result<PendingReceipt, CaptureError> {
        if !self.is_running() {
            return Err(CaptureError::Stopped);
        }
        event.fingerprint();
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
            let workers = lock(&self.shared.workers);
            workers
                .live
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
        self.report_drops().await;
        self.shared.running.store(false, Ordering::Release);
        let handles: Vec<WorkerHandle> = {
            let mut workers = lock(&self.shared.workers);
            workers.live.drain().map(|(_, h)| h).collect()
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
        let protection = self.shared.protection.as_deref();
        crate::read::query::query_events(self.shared.store.as_ref(), index.as_ref(), filter, protection).await
    }

    /// The event with this id in `organization_id`'s log, through the index.
    pub async fn find_event(
        &self,
        organization_id: &str,
        event_id: &str,
    ) -> Result<Option<audit_core::stored::StoredEvent>, QueryError> {
        let index = self.shared.index.as_ref().ok_or(QueryError::NoIndex)?;
        let protection = self.shared.protection.as_deref();
        crate::read::query::find_event(
            self.shared.store.as_ref(),
            index.as_ref(),
            organization_id,
            event_id,
            protection,
        )
        .await
    }

    /// The event with this id as stored (personal values still sealed): the
    /// form its `hash` covers, for checking it independently.
    pub async fn find_stored_event(
        &self,
        organization_id: &str,
        event_id: &str,
    ) -> Result<Option<audit_core::stored::StoredEvent>, QueryError> {
        let index = self.shared.index.as_ref().ok_or(QueryError::NoIndex)?;
        crate::read::query::find_event(self.shared.store.as_ref(), index.as_ref(), organization_id, event_id, None)
            .await
    }

    /// Where checkpoints are published outside the store, if anywhere:
    /// verifications hold logs to it (a rollback of the store shows).
    pub fn checkpoint_mirror(&self) -> Option<&Arc<dyn LogStore>> {
        self.shared.checkpoints.as_ref()?.mirror.as_ref()
    }

    /// Personal data protection, when on.
    pub fn protection(&self) -> Option<&Arc<crate::personal::Protection>> {
        self.shared.protection.as_ref()
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
        crate::read::export::export_events(
            self.shared.store.as_ref(),
            filter,
            format,
            out,
            self.shared.protection.as_deref(),
            &mut |_| {},
        )
        .await
    }

    /// Events indexed per organization, as far as this service knows.
    pub fn indexed_through(&self, organization_id: &str) -> Option<u64> {
        lock(&self.shared.indexed).get(organization_id).copied()
    }

    /// Events committed to storage per organization, by this service.
    pub fn committed_through(&self, organization_id: &str) -> Option<u64> {
        self.shared.state.committed_through(organization_id)
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
                let committed = self.shared.state.committed();
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
        let capacity = self.shared.config.queue_capacity.max(1);
        let last = self.shared.state.last_flush();
        let (_, remembered) = self.shared.state.totals();
        let max_open = self.shared.config.max_open_logs.max(1);
        Health {
            running: self.is_running(),
            queue_size: capacity.saturating_sub(self.shared.permits.available_permits()),
            recent_events: remembered,
            last_flush: last.map(|(t, _)| t),
            last_flush_micros: last.map(|(_, d)| d.as_micros() as u64),
            open_logs: max_open.saturating_sub(self.shared.open_logs.available_permits()),
            organizations: self.shared.state.organizations(&lock(&self.shared.indexed)),
            index_error: lock(&self.shared.index_error).clone(),
            counters: self.shared.counters.values(),
        }
    }
}

/// A queue slot taken ahead of time ([`AuditService::try_reserve`]).
#[derive(Debug)]
pub struct Reservation {
    service: AuditService,
    permit: tokio::sync::OwnedSemaphorePermit,
}

impl Reservation {
    /// Validates and queues the event in the reserved slot (not yet durable).
    pub fn capture(self, draft: EventDraft) -> Result<Accepted, CaptureError> {
        let event = self.service.validate(draft)?;
        let event_id = self.service.enqueue(event, None, Some(self.permit))?;
        Ok(Accepted { event_id })
    }

    /// Validates and queues the event in the reserved slot; the receipt
    /// resolves once it is durable.
    pub fn submit_durable(self, draft: EventDraft) -> Result<PendingReceipt, CaptureError> {
        let event = self.service.validate(draft)?;
        let (tx, rx) = oneshot::channel();
        self.service.enqueue(event, Some(tx), Some(self.permit))?;
        Ok(PendingReceipt { rx })
    }
}
