//! Bringing the index up to date with storage.

use std::sync::Arc;

use audit_storage::{Batch, LogStore, Placement};

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
        let place = Progress { next_sequence, chunk: chunk.clone(), offset };
        let rows =
            rows_off_the_async_threads(organization_id, move |org| rows_of_lines(org, place, &bytes[..=last_newline]))
                .await?;
        next_sequence = apply_rows(index, organization_id, blind, rows, next_sequence, report).await?;
    }
    Ok(next_sequence)
}

/// Indexes batches the caller has just appended, from their own bytes and
/// where the store said they landed, without reading storage: as long as
/// each continues the index exactly where it stands (same chunk and offset,
/// or the first line of the next chunk). Batches the index holds already
/// are passed over; the rest go in as few transactions as
/// [`ROWS_PER_APPLY`] allows. Returns the number of events indexed in all,
/// or `None` at the first batch that does not continue the index (a gap:
/// events another process wrote, batches the caller did not keep, or an
/// index that was cleared), having indexed those before it — the caller
/// then runs [`catch_up`], which reads storage.
pub async fn index_appended(
    index: &dyn EventIndex,
    organization_id: &str,
    blind: Option<&dyn BlindColumns>,
    appended: impl IntoIterator<Item = (Arc<Batch>, Placement)> + Send,
) -> Result<Option<u64>, IndexError> {
    let Some(mut at) = index.progress(organization_id).await? else { return Ok(None) };
    let first_new = at.next_sequence;
    let mut continuing = Vec::new();
    let mut gap = false;
    for (batch, placement) in appended {
        if batch.first_sequence + batch.count <= at.next_sequence {
            continue;
        }
        let same_place = placement.chunk == at.chunk && placement.offset == at.offset;
        let next_chunk = placement.offset == 0 && placement.chunk.first_sequence == at.next_sequence;
        if batch.first_sequence != at.next_sequence || !(same_place || next_chunk) {
            gap = true;
            break;
        }
        let place = Progress { next_sequence: at.next_sequence, chunk: placement.chunk, offset: placement.offset };
        at = Progress {
            next_sequence: batch.first_sequence + batch.count,
            chunk: place.chunk.clone(),
            offset: place.offset + batch.bytes.len() as u64,
        };
        continuing.push((batch, place));
    }
    let rows = rows_off_the_async_threads(organization_id, move |org| {
        let mut rows = Vec::new();
        for (batch, place) in continuing {
            rows.extend(rows_of_lines(org, place, &batch.bytes)?);
        }
        Ok(rows)
    })
    .await?;
    let next_sequence = apply_rows(index, organization_id, blind, rows, first_new, &mut |_| {}).await?;
    Ok((!gap).then_some(next_sequence))
}

/// Runs `parse` (CPU work) on a blocking thread.
async fn rows_off_the_async_threads(
    organization_id: &str,
    parse: impl FnOnce(&str) -> Result<Vec<IndexRow>, IndexError> + Send + 'static,
) -> Result<Vec<IndexRow>, IndexError> {
    let org = organization_id.to_owned();
    tokio::task::spawn_blocking(move || parse(&org))
        .await
        .map_err(|e| IndexError::Database(format!("indexing task failed: {e}")))?
}

/// The rows of whole stored lines (each ending in `\n`) that start at
/// `place`: its chunk and offset, and the sequence of the first line.
fn rows_of_lines(organization_id: &str, place: Progress, lines: &[u8]) -> Result<Vec<IndexRow>, IndexError> {
    let unindexable = |sequence: u64, detail: String| IndexError::Unindexable {
        organization_id: organization_id.to_owned(),
        sequence,
        detail,
    };
    let lines = lines.strip_suffix(b"\n").ok_or_else(|| unindexable(place.next_sequence, "a torn line".into()))?;
    let mut rows = Vec::new();
    let mut at = 0usize;
    for line in audit_core::stored::split_lines(lines) {
        let location =
            Location { chunk: place.chunk.clone(), offset: place.offset + at as u64, len: line.len() as u64 };
        at += line.len() + 1;
        let expected = place.next_sequence + rows.len() as u64;
        let row = index_row(line, location).map_err(|e| unindexable(expected, e.to_string()))?;
        if row.sequence != expected {
            return Err(unindexable(expected, format!("found sequence {} where {expected} belongs", row.sequence)));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Replaces stored `actor_email`s by their blind tokens (when personal
/// data is protected) and applies `rows` (consecutive, from
/// `next_sequence` on), a transaction per [`ROWS_PER_APPLY`], each moving
/// the progress mark past its last row; returns the next sequence to index.
async fn apply_rows(
    index: &dyn EventIndex,
    organization_id: &str,
    blind: Option<&dyn BlindColumns>,
    mut rows: Vec<IndexRow>,
    mut next_sequence: u64,
    report: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, IndexError> {
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
        let progress = Progress {
            next_sequence,
            chunk: last.location.chunk.clone(),
            offset: last.location.offset + last.location.len + 1,
        };
        index.apply(organization_id, part, progress).await?;
        report(next_sequence);
    }
    Ok(next_sequence)
}
