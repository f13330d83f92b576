//! Keeps the query index up to date, off the ingest path: workers hand over
//! the batches they appended and where they landed; this task indexes them
//! from memory while they continue the index exactly, and reads storage
//! back otherwise (at start, after a gap, for events other processes
//! wrote). A failing index never fails ingest.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use audit_index::{IndexError, catch_up, index_appended};
use audit_storage::{Batch, Placement};

use crate::shared::Shared;
use crate::state::lock;

/// How often the indexer looks at storage even without a wake-up (catches
/// events written by other processes).
const POLL: Duration = Duration::from_secs(1);

/// What the indexer has to look at: organizations with new events, each
/// with the batches its worker appended since the last round, in order.
#[derive(Debug, Default)]
pub(crate) struct ToIndex {
    organizations: HashMap<String, VecDeque<(Arc<Batch>, Placement)>>,
    kept_bytes: usize,
}

impl ToIndex {
    /// Bytes of appended batches kept for the indexer, all organizations
    /// together. Past it a batch is not kept (an index that falls behind
    /// costs no more memory) and the indexer reads it back from storage.
    const MAX_KEPT_BYTES: usize = 32 << 20;

    /// `organization_id` has events to index that the indexer must read
    /// from storage.
    pub(crate) fn mark(&mut self, organization_id: &str) {
        // Looked up before inserting, not `entry`: that would allocate the
        // organization's name for every batch.
        if !self.organizations.contains_key(organization_id) {
            self.organizations.insert(organization_id.to_owned(), VecDeque::new());
        }
    }

    /// `organization_id`'s worker appended `batch` at `placement`.
    pub(crate) fn appended(&mut self, organization_id: &str, batch: Arc<Batch>, placement: Placement) {
        self.mark(organization_id);
        if self.kept_bytes + batch.bytes.len() <= Self::MAX_KEPT_BYTES {
            self.kept_bytes += batch.bytes.len();
            self.organizations.get_mut(organization_id).expect("marked above").push_back((batch, placement));
        }
    }

    fn extend(&mut self, organizations: impl IntoIterator<Item = String>) {
        for org in organizations {
            self.organizations.entry(org).or_default();
        }
    }

    fn take(&mut self) -> HashMap<String, VecDeque<(Arc<Batch>, Placement)>> {
        self.kept_bytes = 0;
        std::mem::take(&mut self.organizations)
    }
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(index) = shared.index.clone() else { return };
    let blind = shared.protection.as_deref().map(|p| p as &dyn audit_index::BlindColumns);
    // On start: whatever storage holds that the index lacks.
    match shared.store.organizations().await {
        Ok(orgs) => lock(&shared.to_index).extend(orgs),
        Err(e) => tracing::error!(error = %e, "cannot list organizations to index"),
    }
    loop {
        let stopping = shared.indexer_stop.load(std::sync::atomic::Ordering::Acquire);
        let dirty = lock(&shared.to_index).take();
        for (org, appended) in dirty {
            let from_memory = if appended.is_empty() {
                Ok(None)
            } else {
                index_appended(index.as_ref(), &org, blind, appended).await
            };
            let mut outcome = match from_memory {
                Ok(Some(next)) => Ok(next),
                // A gap (or nothing kept): read storage for what is missing.
                Ok(None) => catch_up(shared.store.as_ref(), index.as_ref(), &org, blind).await,
                Err(e) => Err(e),
            };
            if let Err(IndexError::AheadOfStorage { detail, .. }) = &outcome {
                tracing::warn!(organization_id = %org, detail, "index ahead of storage; rebuilding it for this organization");
                outcome = match index.clear(Some(&org)).await {
                    Ok(()) => catch_up(shared.store.as_ref(), index.as_ref(), &org, blind).await,
                    Err(e) => Err(e),
                };
            }
            match outcome {
                Ok(next) => {
                    lock(&shared.indexed).insert(org, next);
                }
                Err(e) => {
                    tracing::error!(organization_id = %org, error = %e, "indexing failed; queries may miss recent events");
                    *lock(&shared.index_error) = Some(format!("{org}: {e}"));
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            () = shared.index_wake.notified() => {}
            () = tokio::time::sleep(POLL) => {
                // Pick up organizations other processes write to.
                if let Ok(orgs) = shared.store.organizations().await {
                    lock(&shared.to_index).extend(orgs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use audit_storage::Chunk;

    use super::*;

    fn batch(first_sequence: u64, bytes: usize) -> (Arc<Batch>, Placement) {
        let placement = Placement { chunk: Chunk { first_sequence: 0, name: "c".into() }, offset: 0 };
        (Arc::new(Batch { first_sequence, count: 1, bytes: vec![b'\n'; bytes] }), placement)
    }

    #[test]
    fn kept_batches_are_bounded_and_their_organization_is_never_forgotten() {
        let mut to_index = ToIndex::default();
        let big = ToIndex::MAX_KEPT_BYTES / 2 + 1;
        let (b0, p0) = batch(0, big);
        to_index.appended("a", b0, p0);
        let (b1, p1) = batch(1, big);
        to_index.appended("b", b1, p1);
        to_index.mark("c");
        let taken = to_index.take();
        assert_eq!(taken["a"].len(), 1, "the first batch fits");
        assert!(taken["b"].is_empty(), "past the bound a batch is not kept, but its organization is marked");
        assert!(taken["c"].is_empty());
        assert!(to_index.take().is_empty(), "taken once");
        let (b2, p2) = batch(2, big);
        to_index.appended("b", b2, p2);
        assert_eq!(to_index.take()["b"].len(), 1, "taking frees the room");
    }
}
