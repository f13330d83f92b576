//! API tokens: created and revoked by the CLI, checked by the server.
//!
//! A token is `agta_<id>_<secret>`: a public key id (12 hex digits) and 32
//! random bytes in hex. Only SHA-256 of the secret is stored (the secret has
//! 256 bits of entropy, so a fast hash is enough), in `<data dir>/keys.json`,
//! replaced atomically on every change. A running server re-reads the file
//! when it changes (checked at most every 500 ms), so keys created or
//! revoked take effect within a second without a restart.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/events`.
    Ingest,
    /// Queries, single events, checkpoints, proofs, health.
    Read,
    /// `GET /v1/export`.
    Export,
    /// `GET /v1/integrity`.
    Verify,
    /// Everything, including administrative routes.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [Scope::Ingest, Scope::Read, Scope::Export, Scope::Verify, Scope::Admin];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Export => "export",
            Scope::Verify => "verify",
            Scope::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text.trim().to_ascii_lowercase())
    }
}

/// A stored key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Public id, part of the token.
    pub id: String,
    /// The one organization it may read and write.
    pub organization_id: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// Hex SHA-256 of the secret part of the token.
    pub secret_sha256: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyRecord>,
}

/// A new token, shown once.
pub struct NewToken {
    /// The stored record.
    pub record: KeyRecord,
    /// The token to hand to the client.
    pub token: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never reach logs through Debug.
        f.debug_struct("NewToken").field("record", &self.record).field("token", &"[redacted]").finish()
    }
}

/// A key-file failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error("{path} is not a valid key file: {why}")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// Bad arguments (unknown scope, bad organization, unknown key).
    #[error("{0}")]
    Invalid(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KeyError {
    let what = what.into();
    move |source| KeyError::Io { what, source }
}

fn now_rfc3339() -> String {
    let micros = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    audit_core::Timestamp::from_micros(micros).to_string()
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| KeyError::Invalid(format!("no randomness available: {e}")))?;
    Ok(hex::encode(buf))
}

/// Creates `dir` (and parents) readable by this user only, as the data
/// directory must be.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `path` with `bytes` atomically, readable by this user only:
/// a temporary file written and synced, renamed over it, the directory
/// synced. The error says which step failed.
pub(crate) fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<(), (String, std::io::Error)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir).map_err(|e| (format!("cannot create {}", dir.display()), e))?;
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| (format!("cannot write {}", tmp.display()), e))?;
    f.write_all(bytes).and_then(|()| f.sync_data()).map_err(|e| (format!("cannot write {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| (format!("cannot replace {}", path.display()), e))?;
    File::open(dir).and_then(|d| d.sync_data()).map_err(|e| (format!("cannot fsync {}", dir.display()), e))
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The key file of a data directory, with a cached, self-refreshing view.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Debug)]
struct Cache {
    keys: Vec<KeyRecord>,
    stamp: Option<(SystemTime, u64)>,
    checked: Option<Instant>,
    /// What [`KeyStore::poll_changes`] last saw: key id → revoked.
    seen: Option<std::collections::HashMap<String, bool>>,
}

/// A key created or revoked, as [`KeyStore::poll_changes`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key after the change.
    pub record: KeyRecord,
    /// True for a revocation, false for a creation.
    pub revoked: bool,
}

impl KeyChange {
    /// The audit events of this change: one in `system_organization`'s log
    /// and one in the key's organization's (the same when they are one).
    /// Their content and idempotency key depend only on the change, so the
    /// CLI and a running server recording the same change store it once.
    pub fn events(&self, system_organization: &str) -> Vec<audit_core::event::EventDraft> {
        use audit_core::event::{Action, ActorType, EventDraft};
        use audit_core::json::{Object, Value};
        let r = &self.record;
        let (event_type, action, at, what) = if self.revoked {
            ("api_key.revoked", Action::Delete, r.revoked_at.as_deref(), "revoked")
        } else {
            ("api_key.created", Action::Create, Some(r.created_at.as_str()), "created")
        };
        let mut metadata = Object::new();
        metadata.insert("key_id", Value::String(r.id.clone()));
        metadata.insert("key_organization_id", Value::String(r.organization_id.clone()));
        metadata.insert("scopes", Value::Array(r.scopes.iter().map(|s| Value::String(s.as_str().into())).collect()));
        let mut orgs = vec![system_organization.to_owned()];
        if r.organization_id != system_organization {
            orgs.push(r.organization_id.clone());
        }
        orgs.into_iter()
            .map(|organization_id| EventDraft {
                organization_id,
                event_type: event_type.into(),
                action: Some(action),
                actor_type: Some(ActorType::System),
                actor_id: Some("agenttrace-audit:keys".into()),
                resource_type: Some("api_key".into()),
                resource_id: Some(r.id.clone()),
                occurred_at: at.and_then(|t| audit_core::Timestamp::parse_rfc3339(t).ok()),
                metadata: Some(metadata.clone().into()),
                idempotency_key: Some(format!("api_key:{}:{what}", r.id)),
                ..Default::default()
            })
            .collect()
    }
}

/// How often a server looks at the key file for changes.
const RELOAD_EVERY: Duration = Duration::from_millis(500);

impl KeyStore {
    /// The key store of `data_dir` (`keys.json` inside it).
    pub fn open(data_dir: &Path) -> KeyStore {
        KeyStore {
            path: data_dir.join("keys.json"),
            cache: Arc::new(Mutex::new(Cache { keys: Vec::new(), stamp: None, checked: None, seen: None })),
        }
    }

    fn read_file(&self) -> Result<KeyFile, KeyError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| KeyError::Corrupt { path: self.path.display().to_string(), why: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
            Err(e) => Err(io(format!("cannot read {}", self.path.display()))(e)),
        }
    }

    /// Replaces the file atomically (see [`replace_private_file`]).
    fn write_file(&self, file: &KeyFile) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Invalid(e.to_string()))?;
        replace_private_file(&self.path, &bytes).map_err(|(what, e)| io(what)(e))
    }

    /// Runs `f` on the file under an exclusive lock (several CLI invocations at once).
    fn modify<T>(&self, f: impl FnOnce(&mut KeyFile) -> Result<T, KeyError>) -> Result<T, KeyError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        private_dir(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let lock_path = self.path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(format!("cannot open {}", lock_path.display())))?;
        lock.lock().map_err(io(format!("cannot lock {}", lock_path.display())))?;
        let mut file = self.read_file()?;
        let out = f(&mut file)?;
        self.write_file(&file)?;
        Ok(out)
    }

    /// Creates a key for one organization and returns its token (shown once).
    pub fn create(&self, organization_id: &str, scopes: &[Scope]) -> Result<NewToken, KeyError> {
        if !audit_core::event::is_valid_tenant_id(organization_id) {
            return Err(KeyError::Invalid(format!("{organization_id:?} is not a valid organization id")));
        }
        if scopes.is_empty() {
            return Err(KeyError::Invalid("a key needs at least one scope".into()));
        }
        let id = random_hex(6)?;
        let secret = random_hex(32)?;
        let record = KeyRecord {
            id: id.clone(),
            organization_id: organization_id.into(),
            scopes: scopes.iter().copied().collect(),
            secret_sha256: sha256_hex(&secret),
            created_at: now_rfc3339(),
            revoked_at: None,
        };
        let stored = record.clone();
        self.modify(move |file| {
            file.keys.push(stored);
            Ok(())
        })?;
        Ok(NewToken { record, token: format!("agta_{id}_{secret}") })
    }

    /// The keys of one organization (or all), never their secrets.
    pub fn list(&self, organization_id: Option<&str>) -> Result<Vec<KeyRecord>, KeyError> {
        Ok(self
            .read_file()?
            .keys
            .into_iter()
            .filter(|k| organization_id.is_none_or(|o| k.organization_id == o))
            .collect())
    }

    /// Revokes a key by id.
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, KeyError> {
        self.modify(|file| {
            let key = file
                .keys
                .iter_mut()
                .find(|k| k.id == id)
                .ok_or_else(|| KeyError::Invalid(format!("no key with id {id:?}")))?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now_rfc3339());
            }
            Ok(key.clone())
        })
    }

    fn refresh(&self, cache: &mut Cache, force: bool) {
        let due = force || cache.checked.is_none_or(|t| t.elapsed() >= RELOAD_EVERY);
        if !due {
            return;
        }
        cache.checked = Some(Instant::now());
        let stamp = fs::metadata(&self.path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp == cache.stamp && cache.stamp.is_some() {
            return;
        }
        match self.read_file() {
            Ok(file) => {
                cache.keys = file.keys;
                cache.stamp = stamp;
            }
            // Keep the last good view: a half-written file cannot exist
            // (rename is atomic), so this is a real problem worth a log line.
            Err(e) => tracing::error!(error = %e, "cannot reload the key file; keeping the previous keys"),
        }
    }

    /// Checks a bearer token; returns the live key it belongs to. A key id
    /// the cached view does not know makes it look at the file again (by
    /// its modification time and length, cheaply), so a key created a
    /// moment ago works at once.
    pub fn authenticate(&self, token: &str) -> Option<KeyRecord> {
        let rest = token.strip_prefix("agta_")?;
        let (id, secret) = rest.split_once('_')?;
        let presented = sha256_hex(secret);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut cache, false);
        if !cache.keys.iter().any(|k| k.id == id) {
            self.refresh(&mut cache, true);
        }
        let key = cache.keys.iter().find(|k| k.id == id)?;
        let matches: bool = key.secret_sha256.as_bytes().ct_eq(presented.as_bytes()).into();
        (matches && key.revoked_at.is_none()).then(|| key.clone())
    }

    /// Whether [`KeyStore::poll_changes`] has looked at the file yet.
    pub fn has_looked(&self) -> bool {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).seen.is_some()
    }

    /// Keys created or revoked since the previous call (the first call
    /// only takes note of what exists). A running server records these as
    /// audited events.
    pub fn poll_changes(&self) -> Vec<KeyChange> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut cache, true);
        let now: std::collections::HashMap<String, bool> =
            cache.keys.iter().map(|k| (k.id.clone(), k.revoked_at.is_some())).collect();
        let changes = match &cache.seen {
            None => Vec::new(),
            Some(seen) => cache
                .keys
                .iter()
                .flat_map(|k| {
                    let created = !seen.contains_key(&k.id);
                    let newly_revoked = k.revoked_at.is_some() && seen.get(&k.id) != Some(&true);
                    [(created, false), (newly_revoked, true)]
                        .into_iter()
                        .filter(|(happened, _)| *happened)
                        .map(|(_, revoked)| KeyChange { record: k.clone(), revoked })
                })
                .collect(),
        };
        cache.seen = Some(now);
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path());
        let new = store.create("org-1", &[Scope::Ingest, Scope::Read]).unwrap();
        assert!(new.token.starts_with("agta_"));
        assert!(!format!("{new:?}").contains(&new.token[10..]), "Debug never shows the token");
        let file = fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(!file.contains(&new.token[18..]), "only a hash of the secret is stored");
        let key = store.authenticate(&new.token).unwrap();
        assert_eq!(key.organization_id, "org-1");
        assert!(store.authenticate(&new.token.replace('a', "b")).is_none());
        assert!(store.authenticate("agta_nothing_here").is_none());
        store.revoke(&new.record.id).unwrap();
        // A fresh view sees the revocation at once; a cached one within RELOAD_EVERY.
        assert!(KeyStore::open(dir.path()).authenticate(&new.token).is_none());
        std::thread::sleep(RELOAD_EVERY + Duration::from_millis(50));
        assert!(store.authenticate(&new.token).is_none());
        assert_eq!(store.list(Some("org-1")).unwrap().len(), 1);
        assert!(store.create("bad/org", &[Scope::Read]).is_err());
    }
}
