//! The deployment's checkpoint signing key: `AUDIT_SIGNING_KEY_FILE`, else
//! `<data dir>/signing.key`, generated on first use (mode 0600). One key per
//! deployment; each organization's checkpoints are signed under the name
//! `<origin>/<organization_id>`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use audit_core::note::{SignerKey, VerifierKey};
use audit_service::CheckpointConfig;
use audit_storage::whole_file::{Created, create_whole};

use crate::config::Backends;

/// Default origin prefix (`AUDIT_LOG_ORIGIN`).
pub(crate) const DEFAULT_ORIGIN: &str = "agenttrace-audit.local";

/// Checks an origin prefix (`AUDIT_LOG_ORIGIN`); `source` names where it came from.
pub(crate) fn check_origin(origin: &str, source: &str) -> anyhow::Result<()> {
    if origin.is_empty() || origin.contains(['+', ' ', '\n']) || origin.contains("://") {
        bail!("{source}: {origin:?} must be a schema-less URL without spaces or '+' (e.g. audit.example.com)");
    }
    Ok(())
}

fn key_path(backends: &Backends) -> PathBuf {
    backends.signing_key_file.clone().unwrap_or_else(|| backends.data_dir.join("signing.key"))
}

/// The signing key, created when `create` and absent.
pub(crate) fn signer(backends: &Backends, create: bool) -> anyhow::Result<Option<SignerKey>> {
    let path = key_path(backends);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(SignerKey::parse(&text).with_context(|| format!("AUDIT_SIGNING_KEY_FILE {}", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a signing key: {e}"))?;
            let key = SignerKey::from_seed(&backends.origin, seed)?;
            if let Some(dir) = path.parent() {
                audit_server::keys::private_dir(dir)?;
            }
            match write_private_key(&path, &key.to_private_string())? {
                Created::Written => {
                    eprintln!("created a checkpoint signing key in {} (keep it secret; back it up)", path.display());
                    Ok(Some(key))
                }
                // Another process starting beside this one made it first: theirs stands.
                Created::AlreadyThere => signer(backends, false),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read the signing key {}", path.display())),
    }
}

/// Creates `path` (mode 0600) holding a private key line, whole and
/// durably, unless a file is there: then that one stands and is left as
/// it is (`audit_storage::whole_file`).
pub(crate) fn write_private_key(path: &std::path::Path, private: &str) -> anyhow::Result<Created> {
    create_whole(path, format!("{private}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot create the key {}", path.display()))
}

/// Checkpoint settings for a service (signing key in the data directory).
pub(crate) async fn checkpoint_config(backends: &Backends) -> anyhow::Result<CheckpointConfig> {
    let signer = signer(backends, true)?.ok_or_else(|| anyhow::anyhow!("no signing key was created"))?;
    let mirror = crate::cmd::open_mirror(backends).await?;
    Ok(CheckpointConfig { origin: backends.origin.clone(), signer, interval: backends.checkpoint_interval, mirror })
}

/// The verifier key of one organization's checkpoints, from the local signing key.
pub(crate) fn verifier_for(backends: &Backends, organization_id: &str) -> anyhow::Result<Option<VerifierKey>> {
    let Some(key) = signer(backends, false)? else { return Ok(None) };
    Ok(Some(key.renamed(&format!("{}/{organization_id}", backends.origin))?.verifier()))
}
