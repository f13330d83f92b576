//! Service configuration, with the seed design's defaults.

use std::time::Duration;

use audit_core::event::Limits;
use audit_core::note::SignerKey;

/// What `capture` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullQueuePolicy {
    /// Wait for room (the default): producers slow down, nothing is lost.
    #[default]
    Backpressure,
    /// Fail at once with [`crate::CaptureError::QueueFull`], handing the
    /// event back; every such rejection is counted and recorded as an
    /// `audit_log.events_dropped` event.
    Reject,
}

/// Configuration of an [`crate::AuditService`].
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Flush once this many events are waiting (seed default 100).
    pub batch_size: usize,
    /// Flush at the latest this long after the first waiting event (seed
    /// default 5 s). Durable captures never wait for it.
    pub batch_interval: Duration,
    /// Skip identical events within the window (seed default on).
    pub enable_deduplication: bool,
    /// The deduplication window (seed default 60 s).
    pub deduplication_window: Duration,
    /// Fingerprints remembered per organization for deduplication; past this
    /// the oldest are forgotten before their window ends, so memory stays
    /// bounded whatever the event rate (default 100,000).
    pub dedup_capacity: usize,
    /// How long an `idempotency_key` is remembered (at least 24 h). Keys are
    /// never forgotten early: memory grows with keyed events per window.
    pub idempotency_window: Duration,
    /// Events accepted but not yet committed, across all organizations.
    pub queue_capacity: usize,
    /// What happens when the queue is full.
    pub full_queue_policy: FullQueuePolicy,
    /// At most this many events go into one write.
    pub max_batch_events: usize,
    /// At most this many bytes go into one write.
    pub max_batch_bytes: usize,
    /// Input limits.
    pub limits: Limits,
    /// Where the service's own events go (`audit_log.started`, …).
    pub system_organization: String,
    /// A log's worker that received nothing for this long retires: it
    /// writes a last checkpoint and releases the log's files (lock and open
    /// segment). The next event starts a new one (default 2 minutes).
    pub worker_idle_timeout: Duration,
    /// Logs open for writing at once, at most (each holds ~3 file
    /// descriptors: its lock, its open segment, a directory during syncs).
    /// A new log waits for the least recently idle one to retire. The
    /// binary derives it from `RLIMIT_NOFILE` (see docs/PRODUCTION.md).
    pub max_open_logs: usize,
    /// Record `audit_log.started`/`stopped` (on for the server, off for
    /// one-shot CLI commands, which must not hold the system log's fence).
    pub record_lifecycle: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            batch_size: 100,
            batch_interval: Duration::from_secs(5),
            enable_deduplication: true,
            deduplication_window: Duration::from_secs(60),
            dedup_capacity: 100_000,
            idempotency_window: Duration::from_secs(24 * 3600),
            queue_capacity: 10_000,
            full_queue_policy: FullQueuePolicy::Backpressure,
            max_batch_events: 10_000,
            max_batch_bytes: 8 * 1024 * 1024,
            limits: Limits::default(),
            system_organization: "agenttrace-system".into(),
            worker_idle_timeout: Duration::from_secs(120),
            max_open_logs: 128,
            record_lifecycle: false,
        }
    }
}

/// Checkpoint settings of a service.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The origin prefix (`AUDIT_LOG_ORIGIN`, a schema-less URL); each log's
    /// origin line and key name is `<origin>/<organization_id>`.
    pub origin: String,
    /// The deployment's signing key (renamed per organization).
    pub signer: SignerKey,
    /// At most one checkpoint per interval (`AUDIT_CHECKPOINT_INTERVAL`).
    pub interval: Duration,
    /// Where checkpoints are published outside the log's own store
    /// (`AUDIT_CHECKPOINT_MIRROR`): the anchor against rollback of the store.
    pub mirror: Option<std::sync::Arc<dyn audit_storage::LogStore>>,
}
