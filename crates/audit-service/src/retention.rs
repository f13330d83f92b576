//! Retention (SPEC §15): removing the oldest sealed segments of a log once
//! every event in them is older than the retention period — the one
//! documented exception to append-only — with proof of what was removed.
//!
//! A prune happens only when nothing forbids it and the log is sound:
//! no legal hold on the organization, the whole log verifies (against the
//! newest checkpoints and the mirror), and the segments to remove are
//! wholly past retention. It stores a signed prune record and the hashes
//! of the removed events before removing anything, so that `verify` checks
//! the rest against the record (`pruned_through`), proofs over trees that
//! span the cut still have their hashes, and the removal is evident. Each
//! prune is recorded as `audit_log.pruned` in the organization's own log.

use std::time::Duration;

use audit_core::Hash;
use audit_core::event::{Action, ActorType, EventDraft};
use audit_core::json::{Object, Value};
use audit_core::merkle::{Frontier, leaf_hash};
use audit_core::prune::PruneRecord;
use audit_core::stored::StoredEvent;
use audit_storage::StorageError;

use crate::error::CaptureError;
use crate::service::AuditService;

/// What one prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// The log now starts at this sequence.
    pub first_kept: u64,
    /// Events removed by this prune.
    pub removed_events: u64,
    /// Segments removed by this prune.
    pub removed_segments: usize,
    /// The signed prune record (a C2SP note).
    pub record: String,
}

/// Why a log was not pruned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// A legal hold (SPEC §9) covers the organization or a subject of it.
    #[error("{organization_id} has {count} legal hold(s) (e.g. {first}): retention is suspended until they are lifted")]
    LegalHold {
        /// The log.
        organization_id: String,
        /// Holds in force.
        count: usize,
        /// One of them.
        first: String,
    },
    /// The service signs no checkpoints, so it cannot sign a prune record.
    #[error("this service signs no checkpoints: a prune needs the checkpoint key to sign its record")]
    NoSigningKey,
    /// The log does not verify: nothing is removed from a log in doubt.
    #[error("{0}: nothing is removed from a log that does not verify (run verify)")]
    InvalidLog(String),
    /// The key store (holds) or storage failed.
    #[error("{0}")]
    Unavailable(String),
    /// The events are removed but `audit_log.pruned` could not be recorded.
    #[error("the segments are removed but audit_log.pruned could not be recorded: {0}")]
    Record(#[from] CaptureError),
}

impl From<StorageError> for PruneError {
    fn from(e: StorageError) -> Self {
        PruneError::Unavailable(e.to_string())
    }
}

impl AuditService {
    /// Removes the sealed segments at the start of `organization_id`'s log
    /// whose every event is older than `retention` (never the newest
    /// segment); `Ok(None)` when none is. See the module documentation for
    /// what must hold first and what is kept.
    pub async fn prune_expired(
        &self,
        organization_id: &str,
        retention: Duration,
    ) -> Result<Option<PruneOutcome>, PruneError> {
        if let Some(protection) = self.protection() {
            let holds =
                protection.keys().holds(organization_id).await.map_err(|e| PruneError::Unavailable(e.to_string()))?;
            if let Some(first) = holds.first() {
                return Err(PruneError::LegalHold {
                    organization_id: organization_id.to_owned(),
                    count: holds.len(),
                    first: first.id.clone(),
                });
            }
        }
        let cfg = self.shared.checkpoints.as_ref().ok_or(PruneError::NoSigningKey)?;
        let origin_line = format!("{}/{organization_id}", cfg.origin);
        let signer = cfg.signer.renamed(&origin_line).map_err(|e| PruneError::Unavailable(e.to_string()))?;
        let key = signer.verifier();
        // Segments due first (cheap: the oldest kept one is read), then,
        // only if any is, the whole log is verified.
        let store = self.store().as_ref();
        let cutoff = self
            .shared
            .clock
            .now()
            .as_micros()
            .saturating_sub(i64::try_from(retention.as_micros()).unwrap_or(i64::MAX));
        let cut = store.prune_cut(organization_id).await?;
        let chunks = store.chunks(organization_id).await?;
        let mut removed_hashes = Vec::new();
        let mut last: Option<StoredEvent> = None;
        let mut first_kept = cut;
        let mut removed_segments = 0;
        // Whole segments from the cut, oldest first, while every event in
        // them is past retention; never the newest segment (it is written to).
        for pair in chunks.windows(2) {
            let (chunk, next) = (&pair[0], &pair[1]);
            if next.first_sequence <= cut {
                continue; // covered by an earlier prune
            }
            // Cheap first: a segment whose first event is within retention
            // is not due, and nor is anything after it (the usual answer,
            // for years, with the default seven; 64 KiB read, not 64 MiB).
            let mut head = Vec::new();
            store.read_chunk_window(organization_id, chunk, 0, 64 * 1024, &mut head).await?;
            let first_line = audit_core::stored::split_lines(&head).next().unwrap_or_default();
            if let Ok(first) = StoredEvent::parse_line(first_line)
                && first.timestamp.as_micros() >= cutoff
            {
                break;
            }
            let bytes = store.read_chunk(organization_id, chunk).await?;
            let name = chunk.name.clone();
            // Parsing a segment is CPU work: off the async threads.
            let (hashes, newest) = tokio::task::spawn_blocking(move || {
                let mut hashes = Vec::new();
                let mut newest = None;
                for line in audit_core::stored::split_lines(&bytes).filter(|l| !l.is_empty()) {
                    let event =
                        StoredEvent::parse_line(line).map_err(|e| PruneError::InvalidLog(format!("{name}: {e}")))?;
                    hashes.extend_from_slice(event.hash.as_bytes());
                    newest = Some(event);
                }
                Ok::<_, PruneError>((hashes, newest))
            })
            .await
            .map_err(|e| PruneError::Unavailable(e.to_string()))??;
            let Some(newest) = newest else { break };
            if newest.timestamp.as_micros() >= cutoff {
                break;
            }
            removed_hashes.extend(hashes);
            last = Some(newest);
            first_kept = next.first_sequence;
            removed_segments += 1;
        }
        let Some(last) = last else { return Ok(None) };
        // Something is due: the whole log must verify first.
        let mut verifier = crate::Verifier::new(store).key(&key);
        if let Some(mirror) = self.checkpoint_mirror() {
            verifier = verifier.mirror(mirror.as_ref());
        }
        let report = verifier.verify(organization_id).await.map_err(|e| PruneError::Unavailable(e.to_string()))?;
        if !report.valid {
            let first = report.errors.first().map_or_else(String::new, |e| format!(", first {}", e.kind.as_str()));
            return Err(PruneError::InvalidLog(format!(
                "the log of {organization_id} has {} verification error(s){first}",
                report.errors.len()
            )));
        }

        let removed_events = first_kept - cut;
        if removed_hashes.len() as u64 != removed_events * 32 || last.sequence + 1 != first_kept {
            return Err(PruneError::InvalidLog(format!(
                "the segments before sequence {first_kept} do not hold events {cut}..{first_kept}"
            )));
        }

        // The earlier prunes' hashes, read only now that something is due.
        let earlier = if cut > 0 { store.pruned(organization_id).await? } else { None };
        let mut all = earlier.map(|p| p.hashes).unwrap_or_default();
        all.extend_from_slice(&removed_hashes);
        let tree = tokio::task::spawn_blocking(move || {
            let mut tree = Frontier::new();
            for h in all.chunks_exact(32) {
                tree.push(leaf_hash(h));
            }
            (tree, Hash::of(&all))
        })
        .await
        .map_err(|e| PruneError::Unavailable(e.to_string()))?;
        let record = PruneRecord {
            origin: origin_line,
            first_kept,
            root: tree.0.root(),
            last_hash: last.hash,
            last_timestamp: last.timestamp,
            hashes: tree.1,
            pruned_at: self.shared.clock.now(),
        };
        let note =
            audit_core::note::sign(&record.to_text(), &signer).map_err(|e| PruneError::Unavailable(e.to_string()))?;
        store.prune(organization_id, first_kept, &removed_hashes, note.as_bytes()).await?;
        if let Some(index) = self.index()
            && let Err(e) = index.forget_before(organization_id, first_kept).await
        {
            // Queries would list rows whose events are gone; a reindex fixes it.
            tracing::error!(organization_id, error = %e, "pruned, but the index still lists the removed events");
        }

        let mut metadata = Object::new();
        metadata.insert("first_kept", Value::Number(first_kept as f64));
        metadata.insert("removed_events", Value::Number(removed_events as f64));
        metadata.insert("removed_segments", Value::Number(removed_segments as f64));
        metadata.insert("retention_days", Value::Number((retention.as_secs() / 86_400) as f64));
        metadata.insert("last_removed_timestamp", Value::String(last.timestamp.to_string()));
        let draft = EventDraft {
            organization_id: organization_id.to_owned(),
            event_type: "audit_log.pruned".into(),
            action: Some(Action::Delete),
            actor_type: Some(ActorType::System),
            actor_id: Some("agenttrace-audit retention".into()),
            resource_type: Some("audit_log".into()),
            resource_id: Some(organization_id.to_owned()),
            metadata: Some(metadata.into()),
            ..Default::default()
        };
        self.capture_durable(draft).await?;
        Ok(Some(PruneOutcome { first_kept, removed_events, removed_segments, record: note }))
    }
}
