//! Bringing the index up to date with storage.

use audit_storage::LogStore;

use crate::{EventIndex, IndexError, IndexRow, Location, Progress, index_row};

/// Rows written per transaction.
const ROWS_PER_APPLY: usize = 10_000;

/// Indexes whatever `organization_id`'s log holds that the index lacks and
/// returns the number of events indexed in all (the next sequence to index).
/// Safe to run from several processes at once: rows are keyed by sequence.
pub async fn catch_up(
    store: &dyn LogStore,
    index: &dyn EventIndex,
    organization_id: &str,
    blind: Option<&dyn BlindColumns>,
) -> Result<u64, IndexError> {
    catch_up_with_progress(store, index, organization_id, blind, &mut |_| {}).await
}

/// What the index keeps of personal columns when personal data is
/// protected (SPEC §9): a keyed blind token, never the value.
#[async_trait::async_trait]
pub trait BlindColumns: Send + Sync {
    /// The token to keep for an event's `actor_email` as stored (a sealed
    /// value, or an address stored before protection was on), or `None`
    /// when there is nothing to keep (its subject was erased).
    async fn actor_email(&self, organization_id: &str, stored: &str) -> Result<Option<String>, IndexError>;
}

/// [`catch_up`], telling `progress` the events indexed so far after each
/// transaction (for a progress bar).
pub async fn catch_up_with_progress(
    store: &dyn LogStore,
    index: &dyn EventIndex,
    organization_id: &str,
    blind: Option<&dyn BlindColumns>,
    report: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, IndexError> {
    let chunks = store.chunks(organization_id).await?;
    let progress = index.progress(organization_id).await?;
    let resumed = progress.as_ref().and_then(|p| chunks.iter().position(|c| *c == p.chunk).map(|at| (p, at)));
    let (mut next_sequence, first, mut offset) = match (resumed, progress.as_ref()) {
        // The usual case, every catch-up: the indexed chunk is still there.
        (Some((p, at)), _) => (p.next_sequence, at, p.offset),
        // Nothing indexed yet, or indexed up to events retention has since
        // removed: from the cut, in the first chunk retention kept.
        (None, p) => {
            let cut = store.prune_cut(organization_id).await?;
            if let Some(p) = p.filter(|p| p.next_sequence > cut) {
                return Err(IndexError::AheadOfStorage {
                    organization_id: organization_id.to_owned(),
                    detail: format!("indexed chunk {} is no longer in storage", p.chunk.name),
                });
            }
            let first = chunks
                .iter()
                .enumerate()
                .position(|(i, _)| chunks.get(i + 1).is_none_or(|n| n.first_sequence > cut))
                .unwrap_or(0);
            (cut, first, 0)
        }
    };
    for (i, chunk) in chunks.iter().enumerate().skip(first) {
        if i > first {
            offset = 0;
            if chunk.first_sequence != next_sequence {
                return Err(IndexError::Unindexable {
                    organization_id: organization_id.to_owned(),
                    sequence: next_sequence,
                    detail: format!("the next chunk {} starts at {}", chunk.name, chunk.first_sequence),
                });
            }
        }
        let bytes = store.read_chunk_from(organization_id, chunk, offset).await?;
        let Some(last_newline) = bytes.iter().rposition(|b| *b == b'\n') else { continue };
        let org = organization_id.to_owned();
        let chunk_owned = chunk.clone();
        let start_sequence = next_sequence;
        // Parsing is CPU work: off the async threads.
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<IndexRow>, IndexError> {
            let mut rows = Vec::new();
            let mut at = 0usize;
            for line in bytes[..last_newline].split(|b| *b == b'\n') {
                let location =
                    Location { chunk: chunk_owned.clone(), offset: offset + at as u64, len: line.len() as u64 };
                at += line.len() + 1;
                let expected = start_sequence + rows.len() as u64;
                let row = index_row(line, location).map_err(|e| IndexError::Unindexable {
                    organization_id: org.clone(),
                    sequence: expected,
                    detail: e.to_string(),
                })?;
                if row.sequence != expected {
                    return Err(IndexError::Unindexable {
                        organization_id: org.clone(),
                        sequence: expected,
                        detail: format!("found sequence {} where {expected} belongs", row.sequence),
                    });
                }
                rows.push(row);
            }
            Ok(rows)
        })
        .await
        .map_err(|e| IndexError::Database(format!("indexing task failed: {e}")))??;
        let mut rows = rows;
        if let Some(blind) = blind {
            for row in &mut rows {
                if let Some(stored) = row.actor_email.take() {
                    row.actor_email = blind.actor_email(organization_id, &stored).await?;
                }
            }
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let part: Vec<IndexRow> = rows.by_ref().take(ROWS_PER_APPLY).collect();
            let last = part.last().expect("non-empty part");
            next_sequence = last.sequence + 1;
            let progress =
                Progress { next_sequence, chunk: chunk.clone(), offset: last.location.offset + last.location.len + 1 };
            index.apply(organization_id, part, progress).await?;
            report(next_sequence);
        }
    }
    Ok(next_sequence)
}
