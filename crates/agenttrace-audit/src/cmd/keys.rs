//! `keys create|list|revoke|...`: API tokens of the data directory.

use std::io::Write;
use std::path::Path;

use audit_server::{KeyStore, Scope};

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

pub(crate) fn run(data_dir: &Path, command: Command) -> anyhow::Result<u8> {
    let keys = KeyStore::open(data_dir);
    let mut out = std::io::stdout().lock();
    match command {
        Command::Create { org, scopes } => {
            let new = keys.create(&org, &scopes)?;
            writeln!(out, "{}", new.token)?;
            eprintln!(
                "created key {} for {org} with scopes {}; the token is shown only now",
                new.record.id,
                scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
            );
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
            let key = crate::signing::verifier_for(data_dir, &org)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no signing key yet in this data directory (it is created by the first serve or ingest)"
                )
            })?;
            writeln!(out, "{key}")?;
        }
        Command::Revoke { id } => {
            let k = keys.revoke(&id)?;
            eprintln!("revoked key {} of {}", k.id, k.organization_id);
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
