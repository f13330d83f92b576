//! Keeps the query index up to date, off the ingest path: workers only flag
//! organizations with new commits; this task reads the new events back from
//! storage and indexes them. A failing index never fails ingest.

use std::sync::Arc;
use std::time::Duration;

use audit_index::{IndexError, catch_up};

use crate::shared::Shared;
use crate::state::lock;

/// How often the indexer looks at storage even without a wake-up (catches
/// events written by other processes).
const POLL: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(index) = shared.index.clone() else { return };
    let blind = shared.protection.as_deref().map(|p| p as &dyn audit_index::BlindColumns);
    // On start: whatever storage holds that the index lacks.
    match shared.store.organizations().await {
        Ok(orgs) => lock(&shared.index_dirty).extend(orgs),
        Err(e) => tracing::error!(error = %e, "cannot list organizations to index"),
    }
    loop {
        let stopping = shared.indexer_stop.load(std::sync::atomic::Ordering::Acquire);
        let dirty: Vec<String> = lock(&shared.index_dirty).drain().collect();
        for org in dirty {
            let mut outcome = catch_up(shared.store.as_ref(), index.as_ref(), &org, blind).await;
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
                    lock(&shared.index_dirty).extend(orgs);
                }
            }
        }
    }
}
