//! One module per CLI command; each returns its exit code.

pub(crate) mod erase;
pub(crate) mod export;
mod filter_args;
pub(crate) mod ingest;
pub(crate) mod keys;
pub(crate) mod prove;
pub(crate) mod prune;
pub(crate) mod query;
pub(crate) mod reindex;
pub(crate) mod serve;
pub(crate) mod tiles;
pub(crate) mod verify;
pub(crate) mod verify_export;
pub(crate) mod witness;

use std::sync::Arc;

use anyhow::Context;
use audit_index::EventIndex;
use audit_storage::LogStore;
use audit_storage::local::LocalStore;

use crate::config::{Backends, IndexChoice, StorageChoice, StorageChoiceAt};

/// The store every command reads and writes.
pub(crate) async fn open_store(backends: &Backends) -> anyhow::Result<Arc<dyn LogStore>> {
    match &backends.storage {
        StorageChoice::Local => Ok(Arc::new(LocalStore::new(&backends.data_dir))),
        StorageChoice::S3(s3) => open_s3(s3).await.context("AUDIT_STORAGE_BACKEND=s3"),
    }
}

/// The checkpoint mirror (`AUDIT_CHECKPOINT_MIRROR`): a directory or a
/// bucket outside the log's store (ideally another account).
pub(crate) async fn open_mirror(backends: &Backends) -> anyhow::Result<Option<Arc<dyn LogStore>>> {
    match &backends.mirror {
        None => Ok(None),
        Some(StorageChoiceAt::Dir(dir)) => Ok(Some(Arc::new(LocalStore::new(dir)))),
        Some(StorageChoiceAt::S3(s3)) => Ok(Some(open_s3(s3).await.context("AUDIT_CHECKPOINT_MIRROR")?)),
    }
}

#[cfg(feature = "s3")]
async fn open_s3(s3: &crate::config::S3Settings) -> anyhow::Result<Arc<dyn LogStore>> {
    let mut config = audit_storage_s3::S3Config::new(&s3.bucket);
    config.region = s3.region.clone();
    config.endpoint = s3.endpoint.clone();
    config.prefix = s3.prefix.clone();
    config.retention_days = s3.retention_days;
    config.require_object_lock = s3.require_object_lock;
    config.sse = match &s3.sse {
        None => None,
        Some((mode, key)) => {
            Some(audit_storage_s3::Sse::parse(mode, key.clone()).map_err(|e| anyhow::anyhow!("AUDIT_S3_SSE: {e}"))?)
        }
    };
    let store = audit_storage_s3::S3Store::connect(config).await.with_context(|| format!("S3 bucket {}", s3.bucket))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
async fn open_s3(_: &crate::config::S3Settings) -> anyhow::Result<Arc<dyn LogStore>> {
    anyhow::bail!("AUDIT_STORAGE_BACKEND=s3: this build was made without the `s3` feature")
}

/// The query index (created on first use).
pub(crate) async fn open_index(backends: &Backends) -> anyhow::Result<Arc<dyn EventIndex>> {
    match &backends.index {
        IndexChoice::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                audit_server::keys::private_dir(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let index = audit_index::sqlite::SqliteIndex::open(path)
                .with_context(|| format!("cannot open the index {}", path.display()))?;
            Ok(Arc::new(index))
        }
        IndexChoice::Postgres(url, ca_file) => {
            let ca = match ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("AUDIT_INDEX_CA_FILE: cannot read {}", path.display()))?,
                ),
                None => None,
            };
            let index = audit_index::postgres::PostgresIndex::connect_with(url, ca.as_deref())
                .await
                .context("AUDIT_INDEX_URL")?;
            Ok(Arc::new(index))
        }
    }
}

/// Personal data protection (SPEC §9), when on: the key store opened with
/// its master key. Every failure names the setting concerned; there is no
/// fallback to storing personal data in plaintext.
pub(crate) async fn open_protection(backends: &Backends) -> anyhow::Result<Option<Arc<audit_service::Protection>>> {
    use crate::config::{KeyStoreChoice, MasterChoice};
    use audit_keystore::{KeyWrapper, LocalMaster, SubjectKeys};
    let Some(settings) = &backends.personal else { return Ok(None) };
    let wrapper: Arc<dyn KeyWrapper> = match &settings.master {
        MasterChoice::File { path, create: true } => {
            if let Some(dir) = path.parent() {
                audit_server::keys::private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let (key, created) = audit_keystore::master::read_or_create(path)
                .with_context(|| format!("AUDIT_MASTER_KEY_FILE (default {})", path.display()))?;
            if created {
                eprintln!(
                    "created the master key {} (it unlocks personal data: back it up apart from the log, see docs/PRODUCTION.md)",
                    path.display()
                );
            }
            Arc::new(LocalMaster(key))
        }
        MasterChoice::File { path, create: false } => Arc::new(LocalMaster(
            audit_keystore::master::read(path).with_context(|| format!("AUDIT_MASTER_KEY_FILE {}", path.display()))?,
        )),
        MasterChoice::Kms { key_id, endpoint, region } => {
            let config = audit_keystore::kms::KmsConfig {
                key_id: key_id.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                credentials: None,
            };
            Arc::new(audit_keystore::kms::KmsWrapper::connect(config).await.context("AUDIT_KMS_KEY_ID")?)
        }
    };
    let keys: Arc<dyn SubjectKeys> = match &settings.store {
        KeyStoreChoice::Sqlite(dir) => Arc::new(
            audit_keystore::sqlite::SqliteSubjectKeys::open(dir, wrapper)
                .await
                .with_context(|| format!("AUDIT_KEY_STORE_PATH {}", dir.display()))?,
        ),
        KeyStoreChoice::Postgres(url, schema) => Arc::new(
            audit_keystore::postgres::PostgresSubjectKeys::connect(url, schema, wrapper)
                .await
                .context("AUDIT_KEY_STORE_URL")?,
        ),
    };
    Ok(Some(Arc::new(audit_service::Protection::new(keys, settings.paths.clone()))))
}

/// A progress line for people: drawn on stderr only when it is a terminal
/// (quiet in scripts and logs), rates as whole numbers. `template` may use
/// `{pos}`, `{len}`, `{rate}` (per second) and indicatif's own keys.
pub(crate) fn progress(template: &str, len: Option<u64>) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(len, target);
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/s", state.per_sec() as u64);
        });
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Refuses a read-only command on a local data directory that does not
/// exist (a typo in `--data-dir` would otherwise create one and answer
/// "nothing found").
pub(crate) fn require_data_dir(backends: &Backends) -> anyhow::Result<()> {
    if matches!(backends.storage, StorageChoice::Local) && !backends.data_dir.try_exists()? {
        anyhow::bail!(
            "data directory {} does not exist (check --data-dir or AUDIT_STORAGE_PATH); nothing was read",
            backends.data_dir.display()
        );
    }
    Ok(())
}

/// Whether `organization_id` has a log: events or a checkpoint in storage,
/// or (locally) its directory, so that an empty but existing log is still a
/// log. A read-only command on an organization without one says so rather
/// than report an empty log as valid.
pub(crate) async fn log_exists(
    backends: &Backends,
    store: &dyn LogStore,
    organization_id: &str,
) -> anyhow::Result<bool> {
    if !store.chunks(organization_id).await?.is_empty() || store.latest_checkpoint(organization_id).await?.is_some() {
        return Ok(true);
    }
    Ok(match backends.storage {
        StorageChoice::Local => LocalStore::new(&backends.data_dir).log_dir(organization_id).try_exists()?,
        StorageChoice::S3(_) => false,
    })
}

/// Refuses organization ids that cannot name a log, before touching storage.
pub(crate) fn check_org(org: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        audit_core::event::is_valid_tenant_id(org),
        "--org {org:?} is not a valid organization id (^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$)"
    );
    Ok(())
}

/// A service over `org`'s log for a command that records what it does in
/// that log, or an error when a running `serve` holds the log (`instead`
/// names the route that does the same through it).
pub(crate) async fn service_writing_to(
    backends: &Backends,
    org: &str,
    protection: Option<Arc<audit_service::Protection>>,
    instead: &str,
) -> anyhow::Result<audit_service::AuditService> {
    let store = open_store(backends).await?;
    match store.open_writer(org).await {
        Ok(writer) => drop(writer),
        Err(e) if e.kind == audit_storage::StorageErrorKind::Locked => {
            anyhow::bail!("a running serve holds {org}'s log: use {instead} on it (nothing was changed)")
        }
        Err(e) => return Err(anyhow::Error::new(e).context("cannot open the log to record the change")),
    }
    let index = open_index(backends).await?;
    let mut builder = audit_service::AuditService::builder(store)
        .config(audit_service::AuditConfig::default())
        .index(index)
        .checkpoints(crate::signing::checkpoint_config(backends).await?);
    if let Some(protection) = protection {
        builder = builder.protection(protection);
    }
    Ok(builder.start().await)
}

/// `--witness`/`--witness-quorum` of `verify` and `verify-export`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WitnessArgs {
    /// A witness's cosigner key (C2SP vkey, type 0x04); repeatable. Default:
    /// the keys of `AUDIT_WITNESSES`.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// Valid witness cosignatures the trusted checkpoint must carry
    /// (default: `AUDIT_WITNESS_QUORUM`, else 0).
    #[arg(long)]
    witness_quorum: Option<usize>,
}

impl WitnessArgs {
    /// The witnesses' keys and the quorum (0: no requirement).
    pub(crate) fn policy(&self) -> anyhow::Result<(Vec<audit_core::cosign::CosignerVerifier>, usize)> {
        let keys = if self.witnesses.is_empty() {
            std::env::var("AUDIT_WITNESSES")
                .unwrap_or_default()
                .split(',')
                .filter(|e| !e.trim().is_empty())
                .map(|e| {
                    audit_service::WitnessConfig::parse(e)
                        .map(|w| w.key)
                        .map_err(|why| anyhow::anyhow!("AUDIT_WITNESSES: {why}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            self.witnesses
                .iter()
                .map(|k| {
                    audit_core::cosign::CosignerVerifier::parse(k).map_err(|e| anyhow::anyhow!("--witness {k}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        let quorum = match self.witness_quorum {
            Some(q) => q,
            None => match std::env::var("AUDIT_WITNESS_QUORUM") {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("AUDIT_WITNESS_QUORUM: {v:?} is not a whole number"))?,
                Err(_) => 0,
            },
        };
        anyhow::ensure!(
            quorum <= keys.len(),
            "a witness quorum of {quorum} needs at least that many witness keys (--witness or AUDIT_WITNESSES); {} given",
            keys.len()
        );
        Ok((keys, quorum))
    }
}
