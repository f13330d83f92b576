//! Every JSON body the API answers with, as a type: serialized with serde,
//! described in `/openapi.json` by `utoipa` (so the description cannot drift
//! from what is sent). Stored events are embedded as their stored lines,
//! byte for byte (`RawValue`): what a client reads hashes to their `hash`.

use std::collections::BTreeMap;

use audit_core::verify::VerificationReport;
use audit_service::DurableReceipt;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// A stored event (SPEC §2), exactly as stored: its RFC 8785 line.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // a schema only: events are sent as their stored lines
#[schema(example = json!({"action":"delete","actor_id":"user-001","actor_type":"user","event_category":"data","event_id":"019d0000-0000-7000-8000-000000000000","event_type":"trace.deleted","hash":"…","organization_id":"org-123","previous_hash":"…","schema_version":1,"sequence":0,"severity":"warning","timestamp":"2026-11-28T06:46:34.123456Z"}))]
pub(crate) struct StoredEventBody {
    /// Set by the service.
    schema_version: u64,
    event_id: String,
    organization_id: String,
    sequence: u64,
    timestamp: String,
    event_category: String,
    event_type: String,
    action: String,
    severity: String,
    actor_type: String,
    #[schema(nullable = false)]
    project_id: Option<String>,
    #[schema(nullable = false)]
    occurred_at: Option<String>,
    #[schema(nullable = false)]
    resource_type: Option<String>,
    #[schema(nullable = false)]
    resource_id: Option<String>,
    #[schema(nullable = false)]
    actor_id: Option<String>,
    #[schema(nullable = false)]
    actor_email: Option<String>,
    #[schema(nullable = false)]
    actor_ip: Option<String>,
    #[schema(nullable = false)]
    user_agent: Option<String>,
    #[schema(nullable = false)]
    session_id: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    request: Option<serde_json::Value>,
    #[schema(nullable = false, value_type = Option<Object>)]
    previous_state: Option<serde_json::Value>,
    #[schema(nullable = false, value_type = Option<Object>)]
    new_state: Option<serde_json::Value>,
    #[schema(nullable = false, value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    #[schema(nullable = false)]
    idempotency_key: Option<String>,
    #[schema(nullable = false)]
    producer_id: Option<String>,
    #[schema(nullable = false)]
    producer_sequence: Option<u64>,
    previous_hash: String,
    hash: String,
}

/// A stored line as a JSON value in a response, unchanged.
pub(crate) fn raw_event(line: Vec<u8>) -> Box<RawValue> {
    let text = String::from_utf8(line).unwrap_or_default();
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

/// A durable receipt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReceiptBody {
    event_id: String,
    sequence: u64,
    /// RFC 3339 UTC, 6 fractional digits.
    timestamp: String,
    /// Hex SHA-256 (SPEC §2).
    hash: String,
    /// True when the capture was a duplicate and stored nothing new (the original's receipt).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(nullable = false)]
    deduplicated: bool,
}

impl From<&DurableReceipt> for ReceiptBody {
    fn from(r: &DurableReceipt) -> Self {
        ReceiptBody {
            event_id: r.receipt.event_id.clone(),
            sequence: r.receipt.sequence,
            timestamp: r.receipt.timestamp.to_string(),
            hash: r.receipt.hash.to_hex(),
            deduplicated: r.deduplicated,
        }
    }
}

/// `201` of `POST /v1/events`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Receipts {
    pub(crate) receipts: Vec<ReceiptBody>,
}

/// One accepted event of `POST /v1/events?wait=none`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AcceptedEvent {
    pub(crate) event_id: String,
}

/// `202` of `POST /v1/events?wait=none`: accepted, not yet durable.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    pub(crate) accepted: Vec<AcceptedEvent>,
}

/// A page of a query.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventsPage {
    #[schema(value_type = Vec<StoredEventBody>)]
    pub(crate) events: Vec<Box<RawValue>>,
    /// The cursor of the next page (null on the last one).
    pub(crate) next_cursor: Option<String>,
    /// Events indexed: the answer may miss events from this sequence on.
    pub(crate) indexed_through: u64,
}

/// An error found by verification.
#[derive(Serialize, ToSchema)]
pub(crate) struct FindingBody {
    event_id: Option<String>,
    sequence: Option<u64>,
    /// `hash_mismatch`, `chain_break`, `sequence_gap`, `timestamp_regression`,
    /// `malformed`, `missing_segment`, `checkpoint_mismatch`, `bad_signature`,
    /// `inconsistent_checkpoint`, `truncated`, `unexpected_object_version`.
    error: String,
    detail: String,
}

/// A warning of verification (`torn_tail`, `checkpoint_unchecked`).
#[derive(Serialize, ToSchema)]
pub(crate) struct WarningBody {
    warning: String,
    detail: String,
}

/// A range of a producer's numbering missing from the log.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProducerGapBody {
    producer_id: String,
    missing_from: u64,
    missing_to: u64,
    /// Reported lost by an `audit_log.events_dropped` event.
    known_loss: bool,
}

/// A log's last scheduled verification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ScheduledRun {
    /// When it ended (RFC 3339, UTC).
    pub(crate) finished_at: String,
    /// `incremental` (only the events after the last valid run) or `full`.
    pub(crate) mode: &'static str,
    pub(crate) valid: bool,
    /// Events verified.
    pub(crate) total_events: u64,
    /// The first sequence read (0 for a full run).
    pub(crate) verified_from: u64,
    /// The size of the newest signed checkpoint the log is now verified
    /// through (null: none, or the run failed).
    pub(crate) checkpoint_size: Option<u64>,
    pub(crate) duration_ms: u64,
    /// Why it could not run, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) error: Option<String>,
}

/// `GET /v1/integrity/status`.
#[derive(Serialize, ToSchema)]
pub(crate) struct IntegrityStatus {
    pub(crate) organization_id: String,
    /// `AUDIT_VERIFY_SCHEDULE`, incremental runs (null: off).
    pub(crate) schedule: Option<String>,
    /// `AUDIT_VERIFY_FULL_SCHEDULE`, runs that read every log whole (null: off).
    pub(crate) full_schedule: Option<String>,
    /// The last scheduled run over this log (null: none yet).
    pub(crate) last_run: Option<ScheduledRun>,
    /// What each witness (`AUDIT_WITNESSES`) last did with this log's checkpoints.
    pub(crate) witnesses: Vec<WitnessBody>,
}

/// One witness in `GET /v1/integrity/status`.
#[derive(Serialize, ToSchema)]
pub(crate) struct WitnessBody {
    pub(crate) name: String,
    /// The largest checkpoint size it cosigned (null: none yet).
    pub(crate) cosigned_size: Option<u64>,
    /// Why its last submission failed (null: it did not).
    pub(crate) last_error: Option<String>,
    /// Set when it holds a larger or another tree of this log: a rollback or a fork (an alert was raised).
    pub(crate) fork: Option<String>,
}

impl From<audit_service::WitnessStatus> for WitnessBody {
    fn from(w: audit_service::WitnessStatus) -> Self {
        WitnessBody { name: w.name, cosigned_size: w.cosigned_size, last_error: w.last_error, fork: w.fork }
    }
}

/// The verification report (SPEC §6).
#[derive(Serialize, ToSchema)]
pub(crate) struct ReportBody {
    valid: bool,
    organization_id: String,
    total_events: u64,
    first_sequence: Option<u64>,
    last_sequence: Option<u64>,
    errors: Vec<FindingBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    errors_not_listed: Option<u64>,
    warnings: Vec<WarningBody>,
    complete: bool,
    producer_gaps: Vec<ProducerGapBody>,
    /// The last sequence retention removed, when a prune record covers the
    /// start of the log (the rest is verified against it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pruned_through: Option<u64>,
}

impl From<&VerificationReport> for ReportBody {
    fn from(r: &VerificationReport) -> Self {
        ReportBody {
            valid: r.valid,
            organization_id: r.organization_id.clone(),
            total_events: r.total_events,
            first_sequence: r.first_sequence,
            last_sequence: r.last_sequence,
            errors: r
                .errors
                .iter()
                .map(|f| FindingBody {
                    event_id: f.event_id.clone(),
                    sequence: f.sequence,
                    error: f.kind.as_str().into(),
                    detail: f.detail.clone(),
                })
                .collect(),
            errors_not_listed: (r.errors_not_listed > 0).then_some(r.errors_not_listed),
            warnings: r
                .warnings
                .iter()
                .map(|w| WarningBody { warning: w.kind.into(), detail: w.detail.clone() })
                .collect(),
            complete: r.producer_gaps.is_empty(),
            producer_gaps: r
                .producer_gaps
                .iter()
                .map(|g| ProducerGapBody {
                    producer_id: g.producer_id.clone(),
                    missing_from: g.missing_from,
                    missing_to: g.missing_to,
                    known_loss: g.known_loss,
                })
                .collect(),
            pruned_through: r.pruned_through,
        }
    }
}

/// An inclusion proof (RFC 9162; leaf input = the event hash), hashes in hex.
#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionProofBody {
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    proof: Vec<String>,
    root: String,
}

impl From<audit_service::proofs::InclusionProof> for InclusionProofBody {
    fn from(p: audit_service::proofs::InclusionProof) -> Self {
        InclusionProofBody {
            leaf_index: p.leaf_index,
            tree_size: p.tree_size,
            leaf_hash: p.leaf_hash.to_hex(),
            proof: p.proof.iter().map(|h| h.to_hex()).collect(),
            root: p.root.to_hex(),
        }
    }
}

/// A consistency proof between two tree sizes (RFC 9162), hashes in hex.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyProofBody {
    from: u64,
    to: u64,
    proof: Vec<String>,
    from_root: String,
    to_root: String,
}

impl From<audit_service::proofs::ConsistencyProof> for ConsistencyProofBody {
    fn from(p: audit_service::proofs::ConsistencyProof) -> Self {
        ConsistencyProofBody {
            from: p.from,
            to: p.to,
            proof: p.proof.iter().map(|h| h.to_hex()).collect(),
            from_root: p.from_root.to_hex(),
            to_root: p.to_root.to_hex(),
        }
    }
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Liveness {
    /// `ok`.
    pub(crate) status: &'static str,
}

/// `GET /health/ready`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    pub(crate) status: &'static str,
    /// Why not, one sentence each.
    pub(crate) reasons: Vec<String>,
}

/// Service-wide figures (admin tokens only).
#[derive(Serialize, ToSchema)]
pub(crate) struct ServiceFigures {
    pub(crate) queue_size: u64,
    pub(crate) recent_events: u64,
    pub(crate) last_flush: Option<String>,
    pub(crate) open_logs: u64,
    /// Organizations whose logs refuse appends.
    pub(crate) refusing_appends: Vec<String>,
}

/// `GET /v1/audit/health`: the token's organization's figures.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditHealth {
    pub(crate) running: bool,
    pub(crate) queue_size: u64,
    pub(crate) recent_events: u64,
    pub(crate) last_flush: Option<String>,
    /// `ok` or `refusing_appends`.
    pub(crate) storage: &'static str,
    /// `ok` or `degraded`.
    pub(crate) index: &'static str,
    pub(crate) committed_through: Option<u64>,
    pub(crate) indexed_through: Option<u64>,
    /// Service-wide counters (admin tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) counters: Option<BTreeMap<&'static str, u64>>,
    /// Service-wide figures (admin tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) service: Option<ServiceFigures>,
}
