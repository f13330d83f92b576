//! `keys create|list|revoke|...`: API tokens of the data directory.

use std::io::Write;
use std::path::Path;

use audit_server::{KeyChange, KeyStore, Scope};
use audit_service::{AuditConfig, AuditService};

use crate::exit;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a token for one organization; prints the token alone, once.
    Create {
        /// The organization the token may read and write.
        #[arg(long)]
        org: String,
        /// Comma-separated: ingest, read, export, verify, admin.
        #[arg(long, value_delimiter = ',', value_parser = |s: &str| Scope::parse(s).ok_or("expected ingest, read, export, verify or admin"))]
        scopes: Vec<Scope>,
    },
    /// List tokens (never their secrets), one JSON object per line.
    List {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
    /// Print an organization's checkpoint verifier key (C2SP name+id+key form).
    Public {
        /// The organization.
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id; takes effect on a running server within a second.
    Revoke {
        /// The key id (from `keys list`).
        id: String,
    },
}

/// Records a key change in the audit log (the system organization's and
/// the key's): who may read and write a tenant's log is itself audited. A
/// running `serve` records the same change with the same idempotency keys,
/// so when it holds the log this step leaves it to the server.
async fn record(backends: &crate::config::Backends, config: AuditConfig, change: KeyChange) -> anyhow::Result<()> {
    let store = super::open_store(backends).await?;
    // A running serve holds the system log: it records the change itself.
    match store.open_writer(&config.system_organization).await {
        Ok(writer) => drop(writer),
        Err(e) if e.kind == audit_storage::StorageErrorKind::Locked => {
            let holder = e.message.split_once("; ").map_or(e.message.as_str(), |(who, _)| who);
            eprintln!("{holder}: a serve running there records this change in the audit log itself");
            return Ok(());
        }
        Err(e) => return Err(anyhow::anyhow!("the key change is made but cannot be recorded in the audit log: {e}")),
    }
    let drafts = change.events(&config.system_organization);
    let service = AuditService::builder(store)
        .config(config)
        .checkpoints(crate::signing::checkpoint_config(backends).await?)
        .start()
        .await;
    let mut outcome = Ok(());
    for draft in drafts {
        if let Err(e) = service.capture_durable(draft).await {
            outcome = Err(e);
            break;
        }
    }
    service.stop().await;
    outcome.map_err(|e| {
        anyhow::anyhow!(
            "the key change is made but could not be recorded in the audit log ({e}); a running serve on this data directory records it within a second"
        )
    })
}

pub(crate) async fn run(
    backends: &crate::config::Backends,
    config: AuditConfig,
    command: Command,
) -> anyhow::Result<u8> {
    let data_dir: &Path = &backends.data_dir;
    let keys = KeyStore::open(data_dir);
    let mut out = std::io::stdout().lock();
    match command {
        Command::Create { org, scopes } => {
            let new = keys.create(&org, &scopes)?;
            writeln!(out, "{}", new.token)?;
            out.flush()?;
            eprintln!(
                "created key {} for {org} with scopes {}; the token is shown only now",
                new.record.id,
                scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
            );
            if let Err(e) = record(backends, config, KeyChange { record: new.record, revoked: false }).await {
                eprintln!("warning: {e:#}");
            }
        }
        Command::List { org } => {
            for k in keys.list(org.as_deref())? {
                let line = serde_json::json!({
                    "id": k.id, "organization_id": k.organization_id,
                    "scopes": k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "created_at": k.created_at, "revoked_at": k.revoked_at,
                });
                writeln!(out, "{line}")?;
            }
        }
        Command::Public { org } => {
            super::check_org(&org)?;
            let key = crate::signing::verifier_for(backends, &org)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no signing key yet in this data directory (it is created by the first serve or ingest)"
                )
            })?;
            writeln!(out, "{key}")?;
        }
        Command::Revoke { id } => {
            let k = keys.revoke(&id)?;
            eprintln!("revoked key {} of {}", k.id, k.organization_id);
            if let Err(e) = record(backends, config, KeyChange { record: k, revoked: true }).await {
                eprintln!("warning: {e:#}");
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
