//! One module per CLI command; each returns its exit code.

pub(crate) mod export;
mod filter_args;
pub(crate) mod ingest;
pub(crate) mod keys;
pub(crate) mod prove;
pub(crate) mod query;
pub(crate) mod reindex;
pub(crate) mod serve;
pub(crate) mod verify;
pub(crate) mod verify_export;

use std::path::Path;
use std::sync::Arc;

use audit_storage::LogStore;
use audit_storage::local::LocalStore;

/// The store every command reads and writes.
pub(crate) fn open_store(data_dir: &Path) -> Arc<dyn LogStore> {
    Arc::new(LocalStore::new(data_dir))
}

/// The query index in the data directory (created on first use).
pub(crate) fn open_index(data_dir: &Path) -> anyhow::Result<Arc<dyn audit_index::EventIndex>> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(INDEX_FILE);
    Ok(Arc::new(audit_index::sqlite::SqliteIndex::open(&path)?))
}

/// The SQLite index's file name inside the data directory.
pub(crate) const INDEX_FILE: &str = "index.sqlite3";

/// Refuses organization ids that cannot name a log, before touching storage.
pub(crate) fn check_org(org: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        audit_core::event::is_valid_tenant_id(org),
        "--org {org:?} is not a valid organization id (^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$)"
    );
    Ok(())
}
