//! Queries (SPEC §8): the index finds, storage answers.
//!
//! The index returns locations; every event is then read from storage and
//! checked against the index (same sequence, same hash, a well-formed stored
//! line). A query never returns an event that storage does not hold.

use std::collections::BTreeMap;

use audit_core::filter::{AuditEventFilter, Cursor, FilterError};
use audit_core::stored::StoredEvent;
use audit_index::{EventIndex, Hit, IndexError};
use audit_storage::{Chunk, LogStore, StorageError};

use crate::personal::Protection;

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// The events, in the filter's order.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts, when this page was full.
    pub next_cursor: Option<String>,
    /// Events of the organization's log the index had seen when it answered:
    /// anything with a higher sequence may be missing from the answer.
    pub indexed_through: u64,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The filter was refused (a 400): the error names the parameter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The service runs without an index.
    #[error("this service has no query index")]
    NoIndex,
    /// The index failed.
    #[error(transparent)]
    Index(IndexError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The key store failed while personal values were being revealed.
    #[error(transparent)]
    KeyStore(audit_keystore::KeyStoreError),
    /// The index and storage disagree: nothing is returned (run verify, then reindex).
    #[error(
        "the index and storage disagree at sequence {sequence} of {organization_id}: {detail}; run verify, then reindex"
    )]
    Disagreement {
        /// The log.
        organization_id: String,
        /// Where.
        sequence: u64,
        /// What differs.
        detail: String,
    },
}

impl From<IndexError> for QueryError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Filter(f) => QueryError::Filter(f),
            other => QueryError::Index(other),
        }
    }
}

/// Runs a query with `index` and fetches the events from `store`. With
/// `protection`, an `actor_email` condition is looked up by its blind token
/// (the index keeps no address) and the events come back revealed.
pub async fn query_events(
    store: &dyn LogStore,
    index: &dyn EventIndex,
    filter: &AuditEventFilter,
    protection: Option<&Protection>,
) -> Result<QueryPage, QueryError> {
    filter.check()?;
    let indexed_through = index.progress(&filter.organization_id).await?.map_or(0, |p| p.next_sequence);
    let hits = match protection {
        Some(p) if filter.actor_email.is_some() => {
            let mut blind = filter.clone();
            blind.actor_email = filter.actor_email.as_deref().map(|e| p.email_token(&filter.organization_id, e));
            index.query(&blind).await?
        }
        _ => index.query(filter).await?,
    };
    let mut events = fetch(store, &filter.organization_id, &hits).await?;
    if let Some(p) = protection {
        events = p.reveal(events).await.map_err(QueryError::KeyStore)?;
    }
    let next_cursor = (events.len() == filter.page_size() as usize)
        .then(|| events.last().map(|e| Cursor { after_sequence: e.sequence, order: filter.order }.encode()))
        .flatten();
    Ok(QueryPage { events, next_cursor, indexed_through })
}

/// Finds one event by id through the index and reads it from storage.
pub async fn find_event(
    store: &dyn LogStore,
    index: &dyn EventIndex,
    organization_id: &str,
    event_id: &str,
    protection: Option<&Protection>,
) -> Result<Option<StoredEvent>, QueryError> {
    let Some(hit) = index.find_event(organization_id, event_id).await? else { return Ok(None) };
    let events = fetch(store, organization_id, &[hit]).await?;
    Ok(match protection {
        Some(p) => p.reveal(events).await.map_err(QueryError::KeyStore)?,
        None => events,
    }
    .pop())
}

/// Reads the events of `hits` from storage (one read per chunk) and checks
/// each against what the index said.
async fn fetch(store: &dyn LogStore, organization_id: &str, hits: &[Hit]) -> Result<Vec<StoredEvent>, QueryError> {
    let mut by_chunk: BTreeMap<&Chunk, Vec<usize>> = BTreeMap::new();
    for (i, h) in hits.iter().enumerate() {
        by_chunk.entry(&h.location.chunk).or_default().push(i);
    }
    let mut out: Vec<Option<StoredEvent>> = vec![None; hits.len()];
    for (chunk, positions) in by_chunk {
        let ranges: Vec<(u64, u64)> =
            positions.iter().map(|&i| (hits[i].location.offset, hits[i].location.len)).collect();
        let lines = store.read_ranges(organization_id, chunk, &ranges).await?;
        for (&i, line) in positions.iter().zip(lines) {
            let hit = &hits[i];
            let disagree = |detail: String| QueryError::Disagreement {
                organization_id: organization_id.to_owned(),
                sequence: hit.sequence,
                detail,
            };
            let event = StoredEvent::parse_line(&line)
                .map_err(|e| disagree(format!("storage holds no valid event there ({e})")))?;
            let computed = audit_core::stored::hash_line(&line).map(|(computed, _)| computed);
            if event.body.organization_id() != organization_id {
                return Err(disagree(format!("storage holds an event of {}", event.body.organization_id())));
            }
            if event.sequence != hit.sequence || event.hash != hit.hash || computed != Some(event.hash) {
                return Err(disagree(format!("storage holds sequence {} with hash {}", event.sequence, event.hash)));
            }
            out[i] = Some(event);
        }
    }
    Ok(out.into_iter().flatten().collect())
}
