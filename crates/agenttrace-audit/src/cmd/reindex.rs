//! `reindex`: rebuilds the query index from storage.

use audit_index::catch_up_with_progress;

use crate::exit;

pub(crate) async fn run(backends: &crate::config::Backends) -> anyhow::Result<u8> {
    super::require_data_dir(backends)?;
    let store = super::open_store(backends).await?;
    let index = super::open_index(backends).await?;
    let protection = super::open_protection(backends).await?;
    index.clear(None).await?;
    let mut total = 0;
    let orgs = store.organizations().await?;
    for org in &orgs {
        let bar = super::progress(&format!("{{spinner}} indexing {org}: {{pos}} events ({{rate}})"), None);
        let blind = protection.as_deref().map(|p| p as &dyn audit_index::BlindColumns);
        let n =
            catch_up_with_progress(store.as_ref(), index.as_ref(), org, blind, &mut |n| bar.set_position(n)).await?;
        bar.finish_and_clear();
        eprintln!("indexed {n} events of {org}");
        total += n;
    }
    eprintln!("reindex: {total} events of {} organizations", orgs.len());
    Ok(exit::OK)
}
