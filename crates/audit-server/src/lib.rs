//! # audit-server
//!
//! The HTTP API (SPEC §11) over an [`AuditService`]: `fn app(state) -> Router`.
//!
//! ```text
//! request ─▶ Principal (bearer token → key: one organization, some scopes)
//!         ─▶ handler: scope check, organization check (another one is a 404),
//!            strict parsing (errors name the field) ─▶ AuditService ─▶ JSON
//! ```
//!
//! Errors are `{"error": {"code", "message", "field"}}` through one
//! code → status table ([`error::ErrorCode::status`]).

mod auth;
mod body;
mod console;
pub mod error;
pub mod keys;
mod listener;
mod openapi;
mod retention;
mod routes;
mod schedule;
mod stream;
mod tickets;
pub mod viewer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use audit_core::verify::VerificationReport;
use audit_service::{AuditService, TimeRange};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::OnceCell;

pub use auth::Principal;
pub use error::{ApiError, ErrorCode};
pub use keys::{KeyChange, KeyStore, Scope};
pub use listener::{ConnectionLimits, serve};
pub use openapi::openapi_json;
pub use retention::RetentionPolicy;
pub use routes::{MAX_BATCH_EVENTS, MAX_BODY_BYTES};
pub use schedule::{VerificationPlan, VerifySchedule};

/// API requests running at once, by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Exports streaming at once, by default.
pub const DEFAULT_MAX_EXPORTS: usize = 32;

/// A report, and where a valid whole-log run can be resumed from.
type Verified = (VerificationReport, Option<audit_service::VerifiedThrough>);
type SharedReport = Arc<OnceCell<Result<Verified, String>>>;
/// A verification in progress: organization and time range (microseconds).
type VerificationKey = (String, Option<i64>, Option<i64>);

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    service: AuditService,
    keys: KeyStore,
    no_auth: bool,
    metrics: Option<PrometheusHandle>,
    verifications: Mutex<HashMap<VerificationKey, SharedReport>>,
    /// The deployment's checkpoint key and origin prefix, to check
    /// checkpoints during verification.
    checkpoint_key: Option<(audit_core::note::SignerKey, String)>,
    /// Time to receive a request body (`AUDIT_BODY_TIMEOUT`).
    body_timeout: std::time::Duration,
    /// How long an export waits for a client that stopped reading (`AUDIT_EXPORT_STALL_TIMEOUT`).
    export_patience: std::time::Duration,
    /// Verifications and proofs running at once (they read whole logs and
    /// hash on every core): as many as there are cores, the rest wait, so
    /// `/health` and ingest keep a share of the machine.
    heavy: Arc<tokio::sync::Semaphore>,
    /// Requests per second per token (`AUDIT_RATE_LIMIT`), if limited.
    rate: Option<Arc<governor::DefaultKeyedRateLimiter<String>>>,
    /// API requests running at once (`AUDIT_MAX_IN_FLIGHT`).
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Exports streaming at once (`AUDIT_MAX_EXPORTS`): each holds a
    /// blocking thread and its buffers until its client has read it all.
    exports: Arc<tokio::sync::Semaphore>,
    /// How many slots `exports` has in all.
    max_exports: usize,
    /// The verification schedule and each log's last scheduled run.
    scheduled: Mutex<schedule::Runs>,
    /// How long each organization's events are kept (none: no retention
    /// routes and no pruning).
    retention: Option<Arc<RetentionPolicy>>,
    /// Where each log was last verified, signed (`<data dir>/verified`).
    verified_dir: std::path::PathBuf,
    /// Tiles and checkpoints under `/v1/logs/` without a token (`AUDIT_PUBLIC_TILES`).
    public_tiles: bool,
    /// The secret that signs viewer tokens (`<data dir>/viewer.key`).
    viewer_keys: Arc<viewer::ViewerKeys>,
    /// Single-use export download links of the console.
    tickets: Arc<tickets::Tickets>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("no_auth", &self.inner.no_auth).finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a running service, with the key file of `data_dir`.
    /// `no_auth` lets every request in with every scope: development only
    /// (the binary refuses it on anything but loopback).
    pub fn new(service: AuditService, data_dir: &Path, no_auth: bool, metrics: Option<PrometheusHandle>) -> AppState {
        AppState {
            inner: Arc::new(StateInner {
                service,
                keys: KeyStore::open(data_dir),
                no_auth,
                metrics,
                verifications: Mutex::new(HashMap::new()),
                checkpoint_key: None,
                body_timeout: std::time::Duration::from_secs(30),
                export_patience: std::time::Duration::from_secs(60),
                heavy: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
                )),
                rate: None,
                in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
                exports: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_EXPORTS)),
                max_exports: DEFAULT_MAX_EXPORTS,
                scheduled: Mutex::new(schedule::Runs::default()),
                retention: None,
                verified_dir: data_dir.join("verified"),
                public_tiles: false,
                viewer_keys: Arc::new(viewer::ViewerKeys::new(data_dir)),
                tickets: Arc::new(tickets::Tickets::default()),
            }),
        }
    }

    /// Applies `policy`: `GET`/`PUT /v1/retention` and the prunes of
    /// [`AppState::spawn_pruning`].
    pub fn with_retention(self, policy: Arc<RetentionPolicy>) -> AppState {
        self.configured(|inner| inner.retention = Some(policy))
    }

    /// Uses `keys` (a view shared with the caller, e.g. one whose changes
    /// were already looked at with [`KeyStore::poll_changes`] before the
    /// service started, so that none made meanwhile goes unrecorded).
    pub fn with_keys(self, keys: KeyStore) -> AppState {
        self.configured(|inner| inner.keys = keys)
    }

    /// Serves the tlog-tiles API (`/v1/logs/{org}/checkpoint`, `…/tile/…`)
    /// without a token, so witnesses and monitors can read it.
    pub fn with_public_tiles(self, public: bool) -> AppState {
        self.configured(|inner| inner.public_tiles = public)
    }

    /// How long a request body may take to arrive (a trickled body is cut off with 408).
    pub fn with_body_timeout(self, timeout: std::time::Duration) -> AppState {
        self.configured(|inner| inner.body_timeout = timeout)
    }

    pub(crate) fn body_timeout(&self) -> std::time::Duration {
        self.inner.body_timeout
    }

    /// How long an export waits for a client that stopped reading before it
    /// gives up, freeing its thread and buffers.
    pub fn with_export_stall_timeout(self, timeout: std::time::Duration) -> AppState {
        self.configured(|inner| inner.export_patience = timeout)
    }

    pub(crate) fn export_patience(&self) -> std::time::Duration {
        self.inner.export_patience
    }

    /// At most `per_second` requests per second per token (bursts of twice
    /// that); more are answered 429 with `Retry-After`. `0` turns it off.
    pub fn with_rate_limit(self, per_second: u32) -> AppState {
        let rate = std::num::NonZeroU32::new(per_second).map(|n| {
            let burst = std::num::NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(n);
            Arc::new(governor::RateLimiter::dashmap(governor::Quota::per_second(n).allow_burst(burst)))
        });
        self.configured(|inner| inner.rate = rate)
    }

    /// At most `n` API requests running at once; more are answered 503.
    pub fn with_max_in_flight(self, n: usize) -> AppState {
        self.configured(|inner| inner.in_flight = Arc::new(tokio::sync::Semaphore::new(n.max(1))))
    }

    /// At most `n` exports streaming at once; more are answered 503.
    pub fn with_max_exports(self, n: usize) -> AppState {
        self.configured(|inner| {
            inner.exports = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
            inner.max_exports = n.max(1);
        })
    }

    /// Waits until no export is streaming and every ended export has been
    /// recorded, at most `within`; `false` if some were still running then.
    /// A stopping server calls this after its connections have closed and
    /// before it stops the service, so that an export cut short by the stop
    /// is still recorded as `audit_log.exported`.
    pub async fn exports_finished(&self, within: std::time::Duration) -> bool {
        let all = u32::try_from(self.inner.max_exports).unwrap_or(u32::MAX);
        tokio::time::timeout(within, self.inner.exports.acquire_many(all)).await.is_ok_and(|permits| permits.is_ok())
    }

    /// A slot for one streaming export, held until its body has ended: an
    /// export whose client reads slowly (or not at all, until
    /// `AUDIT_EXPORT_STALL_TIMEOUT`) holds a blocking thread, so their
    /// number is bounded, and one more is refused at once rather than
    /// queued behind clients that may never read.
    pub(crate) fn export_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.inner.exports).try_acquire_owned().map_err(|_| {
            metrics::counter!("audit_http_overloaded_total").increment(1);
            ApiError::new(ErrorCode::Overloaded, "too many exports are running (AUDIT_MAX_EXPORTS); retry later")
        })
    }

    /// Charges one request to `key_id`'s rate.
    pub(crate) fn charge(&self, key_id: &str) -> Result<(), ApiError> {
        match &self.inner.rate {
            Some(limiter) if limiter.check_key(&key_id.to_owned()).is_err() => {
                metrics::counter!("audit_http_rate_limited_total").increment(1);
                Err(ApiError::new(ErrorCode::RateLimited, "too many requests for this token; retry in a second"))
            }
            _ => Ok(()),
        }
    }

    /// A turn for CPU-heavy work (a verification, a proof).
    pub(crate) async fn heavy_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.inner.heavy).acquire_owned().await.expect("the semaphore is never closed")
    }

    /// Verification also checks each organization's checkpoint signature,
    /// under `<origin>/<organization_id>` with this key.
    pub fn with_checkpoint_key(self, signer: audit_core::note::SignerKey, origin: String) -> AppState {
        self.configured(|inner| inner.checkpoint_key = Some((signer, origin)))
    }

    /// Changes the configuration. A state already cloned is copied
    /// (verifications in flight stay with the old one): configuring never
    /// depends on the order of calls.
    fn configured(self, change: impl FnOnce(&mut StateInner)) -> AppState {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| StateInner {
            service: shared.service.clone(),
            keys: shared.keys.clone(),
            no_auth: shared.no_auth,
            metrics: shared.metrics.clone(),
            verifications: Mutex::new(HashMap::new()),
            checkpoint_key: shared.checkpoint_key.clone(),
            body_timeout: shared.body_timeout,
            export_patience: shared.export_patience,
            heavy: Arc::clone(&shared.heavy),
            rate: shared.rate.clone(),
            in_flight: Arc::clone(&shared.in_flight),
            exports: Arc::clone(&shared.exports),
            max_exports: shared.max_exports,
            scheduled: Mutex::new(schedule::Runs::default()),
            retention: shared.retention.clone(),
            verified_dir: shared.verified_dir.clone(),
            public_tiles: shared.public_tiles,
            viewer_keys: Arc::clone(&shared.viewer_keys),
            tickets: Arc::clone(&shared.tickets),
        });
        change(&mut inner);
        AppState { inner: Arc::new(inner) }
    }

    pub(crate) fn verifier_for(&self, org: &str) -> Option<audit_core::note::VerifierKey> {
        self.signer_for(org).map(|s| s.verifier())
    }

    /// The deployment's key under `org`'s name (`<origin>/<org>`).
    pub(crate) fn signer_for(&self, org: &str) -> Option<audit_core::note::SignerKey> {
        let (signer, origin) = self.inner.checkpoint_key.as_ref()?;
        signer.renamed(&format!("{origin}/{org}")).ok()
    }

    /// The audit service.
    pub fn service(&self) -> &AuditService {
        &self.inner.service
    }

    pub(crate) fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    pub(crate) fn viewer_keys(&self) -> &viewer::ViewerKeys {
        &self.inner.viewer_keys
    }

    pub(crate) fn tickets(&self) -> &tickets::Tickets {
        &self.inner.tickets
    }

    pub(crate) fn no_auth(&self) -> bool {
        self.inner.no_auth
    }

    pub(crate) async fn find_event(
        &self,
        org: &str,
        event_id: &str,
    ) -> Result<Option<audit_core::stored::StoredEvent>, audit_service::QueryError> {
        self.inner.service.find_event(org, event_id).await
    }

    /// Records a read of `org`'s log (`audit_log.queried`, `…exported`,
    /// `…verified`): one event per call, never deduplicated, without
    /// waiting for durability (reads never fail because writes do). An
    /// organization without a log gets none created by a read: the record
    /// goes to the system organization's log, naming it.
    pub(crate) async fn record_read(
        &self,
        principal: &Principal,
        org: &str,
        event_type: &str,
        action: audit_core::event::Action,
        mut details: audit_core::json::Object,
    ) {
        use audit_core::event::{ActorType, EventDraft};
        use audit_core::json::Value;
        let service = self.service();
        let log = match service.has_log(org).await {
            Ok(true) => org.to_owned(),
            _ => {
                details.insert("organization_id", Value::String(org.to_owned()));
                service.config().system_organization.clone()
            }
        };
        let draft = EventDraft {
            organization_id: log,
            event_type: event_type.into(),
            action: Some(action),
            actor_type: Some(if principal.key_id.is_some() || principal.viewer.is_some() {
                ActorType::ApiKey
            } else {
                ActorType::Anonymous
            }),
            actor_id: Some(principal.actor_id()),
            metadata: (!details.is_empty()).then(|| details.into()),
            ..Default::default()
        };
        if let Err(e) = service.capture(draft).await {
            tracing::warn!(organization_id = org, error = %e, "cannot record a read of the audit log");
            metrics::counter!("audit_read_records_failed_total").increment(1);
        }
    }

    /// Records every key created or revoked (with the CLI, while this
    /// server runs) as `api_key.created`/`api_key.revoked` in the system
    /// organization's log and the key's organization's. Runs until the
    /// service stops; the CLI records the same changes with the same
    /// idempotency keys when it can, so each is stored once.
    /// The first look at the key file (what exists then is not a change)
    /// happens here unless the caller took it earlier through
    /// [`AppState::with_keys`].
    pub fn spawn_key_auditor(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            if !state.keys().has_looked() {
                state.keys().poll_changes();
            }
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            while state.service().is_running() {
                tick.tick().await;
                for change in state.keys().poll_changes() {
                    for draft in change.events(&state.service().config().system_organization) {
                        if let Err(e) = state.service().capture_durable(draft).await {
                            tracing::error!(key_id = %change.record.id, error = %e, "cannot record a key change");
                        }
                    }
                }
            }
        })
    }

    pub(crate) async fn indexed_through(&self, org: &str) -> Option<u64> {
        let index = self.inner.service.index()?;
        index.progress(org).await.ok().flatten().map(|p| p.next_sequence)
    }

    /// Runs at most one verification per organization and range at a time;
    /// concurrent callers share its result. A valid whole-log run becomes
    /// the place the next incremental scheduled run resumes from.
    pub(crate) async fn verify_shared(&self, org: &str, range: TimeRange) -> Result<VerificationReport, ApiError> {
        let key = (org.to_owned(), range.since.map(|t| t.as_micros()), range.until.map(|t| t.as_micros()));
        let cell = {
            let mut running = self.inner.verifications.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(running.entry(key.clone()).or_default())
        };
        let result = cell.get_or_init(|| async { self.verify_once(org, range, None).await }).await.clone();
        {
            let mut running = self.inner.verifications.lock().unwrap_or_else(|p| p.into_inner());
            if running.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                running.remove(&key);
            }
        }
        let (report, through) = result
            .map_err(|e| ApiError::internal(ErrorCode::StorageUnavailable, "verification could not read storage", e))?;
        if let Some(through) = through {
            self.remember_verified(through).await;
        }
        Ok(report)
    }

    /// One verification of `org`'s log (after `after`, when given), held
    /// to the checkpoint mirror and the deployment's key, in its heavy turn.
    pub(crate) async fn verify_once(
        &self,
        org: &str,
        range: TimeRange,
        after: Option<&audit_service::VerifiedThrough>,
    ) -> Result<Verified, String> {
        let store = Arc::clone(self.inner.service.store());
        let mirror = self.inner.service.checkpoint_mirror().cloned();
        let checkpoint_key = self.verifier_for(org);
        let _turn = self.heavy_turn().await;
        let mut verifier = audit_service::Verifier::new(store.as_ref()).range(range);
        if let Some(mirror) = &mirror {
            // A store restored from an old copy is behind its mirror.
            verifier = verifier.mirror(mirror.as_ref());
        }
        if let Some(through) = after {
            verifier = verifier.after(through);
        }
        let verifier = match &checkpoint_key {
            Some(k) => verifier.key(k),
            // A server started without checkpoints has no key to check them with.
            None => verifier.danger_unsigned_checkpoints(),
        };
        verifier.verify_and_keep(org).await.map_err(|e| e.to_string())
    }
}

/// `GET /metrics`: Prometheus text.
async fn get_metrics(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let h = state.service().health();
    metrics::gauge!("audit_queue_size").set(h.queue_size as f64);
    metrics::gauge!("audit_recent_events").set(h.recent_events as f64);
    if let Some(micros) = h.last_flush_micros {
        metrics::gauge!("audit_last_flush_seconds").set(micros as f64 / 1e6);
    }
    metrics::gauge!("audit_poisoned_logs").set(h.refusing_appends().count() as f64);
    metrics::gauge!("audit_open_logs").set(h.open_logs as f64);
    metrics::gauge!("audit_witness_forks").set(state.service().witness_forks() as f64);
    for (name, value) in h.counters.named() {
        metrics::gauge!("audit_events", "counter" => name).set(value as f64);
    }
    match &state.inner.metrics {
        Some(handle) => {
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (axum::http::StatusCode::NOT_FOUND, "metrics are served on their own listener").into_response(),
    }
}

/// The router of the API. `serve_metrics` adds `/metrics` here (otherwise
/// [`metrics_app`] serves it on its own listener).
pub fn app(state: AppState, serve_metrics: bool) -> Router {
    // The API proper, with a bound on requests in flight; health, metrics
    // and the description stay outside it, so they answer under any load.
    let api = Router::new()
        .route("/v1/events", post(routes::events::post_events).get(routes::events::get_events))
        .route("/v1/events/{event_id}", get(routes::events::get_event))
        .route("/v1/export", get(routes::export::get_export))
        .route("/v1/integrity", get(routes::integrity::get_integrity))
        .route("/v1/integrity/status", get(routes::integrity::get_integrity_status))
        .route("/v1/audit/health", get(routes::health::get_audit_health))
        .route("/v1/checkpoint", get(routes::integrity::get_checkpoint))
        .route("/v1/events/{event_id}/proof", get(routes::integrity::get_inclusion_proof))
        .route("/v1/consistency", get(routes::integrity::get_consistency_proof))
        .route("/v1/subjects/erase", post(routes::subjects::post_erase))
        .route("/v1/legal-holds", post(routes::subjects::post_hold).get(routes::subjects::get_holds))
        .route("/v1/legal-holds/{hold_id}", axum::routing::delete(routes::subjects::delete_hold))
        .route("/v1/retention", get(routes::retention::get_retention).put(routes::retention::put_retention))
        .route("/v1/whoami", get(routes::console::get_whoami))
        .route("/v1/viewer-tokens", post(routes::console::post_viewer_token))
        .route("/v1/export-links", post(routes::console::post_export_link))
        .route("/v1/export-links/{link_id}", get(routes::console::get_export_link));
    let api = if state.inner.public_tiles {
        api.route("/v1/logs/{organization_id}/checkpoint", get(routes::tiles::get_public_checkpoint))
            .route("/v1/logs/{organization_id}/tile/{*path}", get(routes::tiles::get_public_tile))
    } else {
        api.route("/v1/logs/{organization_id}/checkpoint", get(routes::tiles::get_log_checkpoint))
            .route("/v1/logs/{organization_id}/tile/{*path}", get(routes::tiles::get_log_tile))
    };
    let api = api.route_layer(axum::middleware::from_fn_with_state(state.clone(), limit_in_flight));
    let mut router = Router::new()
        .merge(api)
        .route("/health", get(routes::health::get_health))
        .route("/health/ready", get(routes::health::get_ready))
        .route("/openapi.json", get(openapi::serve_openapi))
        .merge(console::routes())
        // Unknown routes and methods answer the same JSON errors as the rest.
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::new(ErrorCode::NotFound, format!("no route {}", uri.path()))
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
        })
        // Bodies are read by the handler with its own limit and JSON error.
        .layer(DefaultBodyLimit::disable());
    if serve_metrics {
        router = router.route("/metrics", get(get_metrics));
    }
    router.with_state(state)
}

/// Runs the request if fewer than `AUDIT_MAX_IN_FLIGHT` are running, else
/// answers 503 `overloaded` at once (a client that retries later is better
/// served than a queue that grows without bound).
async fn limit_in_flight(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match Arc::clone(&state.inner.in_flight).try_acquire_owned() {
        Ok(turn) => {
            let response = next.run(request).await;
            drop(turn);
            response
        }
        Err(_) => {
            metrics::counter!("audit_http_overloaded_total").increment(1);
            ApiError::new(ErrorCode::Overloaded, "too many requests in flight; retry in a second").into_response()
        }
    }
}

/// `/metrics` alone, for `AUDIT_METRICS_LISTEN`.
pub fn metrics_app(state: AppState) -> Router {
    Router::new().route("/metrics", get(get_metrics)).with_state(state)
}
