//! What a log's worker reads back from storage: the recent events that
//! rebuild deduplication and idempotency after a start, and the events
//! another instance appended at its tail (shared stores).

use audit_core::event::ValidatedEvent;
use audit_core::stored::{Receipt, StoredEvent};
use audit_storage::LogWriter;

use crate::checkpoint::Checkpointer;
use crate::personal::Protection;
use crate::sequencer::Sequencer;
use crate::shared::Shared;

/// After another writer appended at our tail, adopts its events: the
/// sequencer moves past them remembering them (so deduplication and
/// idempotency span instances), the Merkle tree takes their hashes, and the
/// writer resumes after them. Optimistic: if yet more was appended
/// meanwhile, the next append's fence says so and this runs again.
pub(crate) async fn follow_other_writers(
    shared: &Shared,
    organization_id: &str,
    writer: &mut dyn LogWriter,
    sequencer: &mut Sequencer,
    mut checkpointer: Option<&mut Checkpointer>,
) -> Result<(), String> {
    // Chunks are named by their first sequence: follow them one by one.
    loop {
        let from = sequencer.next_sequence();
        let read = shared.store.read_chunk_at(organization_id, from).await.map_err(|e| e.to_string())?;
        let Some(bytes) = read else { break };
        let chunk = format!("the chunk at {from}");
        let protection = shared.protection.as_deref();
        if let Some(p) = protection {
            prefetch_keys(p, organization_id, &bytes).await;
        }
        for line in audit_core::stored::split_lines(&bytes).filter(|l| !l.is_empty()) {
            let event = StoredEvent::parse_line(line)
                .map_err(|e| format!("{chunk}: an event written by another instance is invalid ({e}); run verify"))?;
            let receipt = event.receipt();
            if receipt.sequence == sequencer.next_sequence() && event.previous_hash != sequencer.tail().last_hash {
                return Err(format!(
                    "{}: sequence {} does not link to the event before it (run verify)",
                    chunk, receipt.sequence
                ));
            }
            let (input, content_known) = input_of(&event, protection);
            if !sequencer.adopt_stored(&input, receipt.clone(), content_known) {
                return Err(format!(
                    "{chunk}: sequence {} does not follow {} (fork or gap; run verify)",
                    receipt.sequence,
                    sequencer.next_sequence()
                ));
            }
            if let Some(c) = checkpointer.as_deref_mut() {
                c.push(&receipt.hash);
            }
        }
    }
    writer.resume_at(sequencer.tail()).map_err(|e| e.to_string())?;
    shared.note_committed(organization_id, sequencer.next_sequence());
    Ok(())
}

/// Reads the newest events back from storage so that deduplication and
/// idempotency survive restarts (SPEC §5: enforced from what storage holds).
pub(crate) async fn remember_recent(
    shared: &Shared,
    organization_id: &str,
    sequencer: &mut Sequencer,
) -> Result<(), audit_storage::StorageError> {
    let span = sequencer.memory_span();
    let cutoff = shared.clock.now().add_micros(-(span.as_micros() as i64));
    let chunks = shared.store.chunks(organization_id).await?;
    // One list per chunk, newest chunk first.
    let mut recent: Vec<Vec<(ValidatedEvent, bool, Receipt)>> = Vec::new();
    // Newest first, more reads in flight the further back the window
    // reaches (1, 2, 4, … 16): on an object store each chunk is one small
    // object and round trips, not bytes, are the cost; a short window
    // still reads one chunk.
    let mut newest_first = chunks.iter().rev().peekable();
    let mut in_flight = 1;
    'groups: while newest_first.peek().is_some() {
        let group: Vec<_> = newest_first.by_ref().take(in_flight).collect();
        in_flight = (in_flight * 2).min(READ_BACK_IN_FLIGHT);
        let reads = group.iter().map(|chunk| shared.store.read_chunk(organization_id, chunk));
        for bytes in futures_util::future::try_join_all(reads).await? {
            let protection = shared.protection.as_deref();
            if let Some(p) = protection {
                prefetch_keys(p, organization_id, &bytes).await;
            }
            if remember_chunk(&bytes, cutoff, protection, &mut recent) {
                break 'groups;
            }
        }
    }
    for (event, content_known, receipt) in recent.into_iter().rev().flatten() {
        sequencer.remember_stored(&event, receipt, content_known);
    }
    Ok(())
}

/// Chunks read back at once, at most, when rebuilding deduplication memory.
const READ_BACK_IN_FLIGHT: usize = 16;

/// Adds a chunk's events at or after `cutoff` to `recent` (one list per
/// chunk, newest chunk first); true when the chunk reaches back past the
/// cutoff, so older chunks need not be read.
fn remember_chunk(
    bytes: &[u8],
    cutoff: audit_core::Timestamp,
    protection: Option<&Protection>,
    recent: &mut Vec<Vec<(ValidatedEvent, bool, Receipt)>>,
) -> bool {
    let mut oldest = None;
    let mut in_chunk = Vec::new();
    for line in audit_core::stored::split_lines(bytes).filter(|l| !l.is_empty()) {
        let Ok(event) = StoredEvent::parse_line(line) else {
            continue;
        };
        oldest = oldest.or(Some(event.timestamp));
        if event.timestamp >= cutoff {
            let receipt = event.receipt();
            let (input, content_known) = input_of(&event, protection);
            in_chunk.push((input, content_known, receipt));
        }
    }
    recent.push(in_chunk);
    oldest.is_some_and(|t| t < cutoff)
}

/// The event as its producer sent it, for deduplication: sealed personal
/// values opened (their fingerprint is the input's, SPEC §5), and whether
/// that input is known. Keys must be prefetched. An event with erased (or
/// unreadable) values has an unknown input: it is remembered by its
/// idempotency key only, and no new content is taken for it.
fn input_of(event: &StoredEvent, protection: Option<&Protection>) -> (ValidatedEvent, bool) {
    match protection {
        Some(p) => {
            let (shown, outcome) = p.reveal_cached_with_outcome(event);
            (shown.body, outcome.erased == 0 && outcome.unreadable == 0)
        }
        None => (event.body.clone(), true),
    }
}

/// Caches the keys `bytes` needs; a key store failure only costs
/// deduplication of those events (logged), never a start.
async fn prefetch_keys(protection: &Protection, organization_id: &str, bytes: &[u8]) {
    if let Err(e) = protection.prefetch(organization_id, bytes).await {
        tracing::warn!(organization_id, error = %e, "cannot open sealed events read back; deduplication may miss them");
    }
}
