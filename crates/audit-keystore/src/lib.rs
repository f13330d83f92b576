//! Subject keys for crypto-shredding (SPEC §9).
//!
//! Each data subject of an organization has one data key; its personal
//! values in the log are sealed under it (`audit_core::personal`). The keys
//! live here, outside the WORM store and its backups, wrapped by a master
//! key, and erasing a subject deletes its row — after which its values
//! read as `"[erased]"` everywhere while the log, its hashes and its
//! checkpoints are unchanged.
//!
//! The store never holds a subject's name: rows are keyed by the subject's
//! blind token (HMAC under the store's own blind key), so a copy of the key
//! store alone says nothing about who is in the log.
//!
//! ```text
//! lib       ─ SubjectKeys (the trait), Keyring (master + blind key), errors
//! master    ─ the master key file (AUDIT_MASTER_KEY_FILE): created at first start, 0600
//! kms       ─ AWS KMS as the master key (AUDIT_KMS_KEY_ID)
//! sqlite    ─ the embedded store: one SQLite file in its own directory
//! postgres  ─ the production store: a table in a schema of its own
//! suite     ─ the conformance checks both pass (feature-free, used by tests)
//! ```
//!

use std::sync::Arc;

use async_trait::async_trait;
use audit_core::personal::{BlindIndexKey, DataKey, KeyId, MasterKey, Subject};

pub mod kms;
pub mod master;
pub mod postgres;
pub mod sqlite;
pub mod suite;

/// What went wrong in the key store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The database failed (the message says how).
    #[error("key store: {0}")]
    Database(String),
    /// A stored key does not unwrap with this master key: the master key
    /// is not the one that wrapped it (or the row is damaged).
    #[error(
        "key store: a stored key does not unwrap with this master key ({0}); is AUDIT_MASTER_KEY_FILE the right file?"
    )]
    WrongMasterKey(String),
    /// The master key cannot be read or made.
    #[error("{0}")]
    MasterKey(String),
    /// The system's random source failed.
    #[error("key store: no randomness: {0}")]
    Random(String),
}

/// What wraps data keys for storage: a local master key, or a key in a
/// key management service that never leaves it.
#[async_trait]
pub trait KeyWrapper: Send + Sync + std::fmt::Debug {
    /// `key` wrapped, bound to `key_id`.
    async fn wrap(&self, key: &DataKey, key_id: KeyId) -> Result<Vec<u8>, KeyStoreError>;

    /// The key in `wrapped`, or `None` when this wrapper did not wrap it
    /// for `key_id` (another master key; a damaged or swapped row).
    async fn unwrap(&self, wrapped: &[u8], key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError>;

    /// What it is, for errors (`AUDIT_MASTER_KEY_FILE`, `AUDIT_KMS_KEY_ID …`).
    fn describe(&self) -> String;
}

/// A local master key (the key file's), wrapping with AES-256-GCM.
#[derive(Debug, Clone)]
pub struct LocalMaster(pub MasterKey);

#[async_trait]
impl KeyWrapper for LocalMaster {
    async fn wrap(&self, key: &DataKey, key_id: KeyId) -> Result<Vec<u8>, KeyStoreError> {
        Ok(self.0.wrap(key, key_id, random()?))
    }

    async fn unwrap(&self, wrapped: &[u8], key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError> {
        Ok(self.0.unwrap(wrapped, key_id))
    }

    fn describe(&self) -> String {
        "the master key (AUDIT_MASTER_KEY_FILE)".to_owned()
    }
}

/// The wrapper of data keys and the store's blind key.
#[derive(Debug, Clone)]
pub struct Keyring {
    wrapper: Arc<dyn KeyWrapper>,
    blind: BlindIndexKey,
}

impl Keyring {
    /// The blind key: subject tokens here, and the query index's lookups.
    pub fn blind(&self) -> &BlindIndexKey {
        &self.blind
    }

    /// The token a subject's row is keyed by.
    pub fn subject_token(&self, organization_id: &str, subject: &Subject) -> String {
        self.blind.token(organization_id, "subject", &subject.key_name())
    }

    /// Opens the store's keyring: unwraps its blind key (`key_id`,
    /// `wrapped`) with `wrapper`, refusing a wrapper that did not wrap it.
    pub(crate) async fn open(
        wrapper: Arc<dyn KeyWrapper>,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Keyring, KeyStoreError> {
        let (_, blind) = unwrap_row(wrapper.as_ref(), key_id, wrapped).await?;
        Ok(Keyring { wrapper, blind: BlindIndexKey::from_data_key(&blind) })
    }

    /// A new legal hold on `organization_id`, or on one subject of it (by token).
    pub(crate) fn new_hold(
        &self,
        organization_id: &str,
        subject: Option<&Subject>,
        reason: &str,
    ) -> Result<LegalHold, KeyStoreError> {
        LegalHold::new(subject.map(|s| self.subject_token(organization_id, s)), reason)
    }

    /// A new random key, its id, and its wrapped form.
    pub(crate) async fn new_key(&self) -> Result<(KeyId, Vec<u8>), KeyStoreError> {
        new_wrapped_key(self.wrapper.as_ref()).await
    }

    /// Unwraps a stored row.
    pub(crate) async fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<(KeyId, DataKey), KeyStoreError> {
        unwrap_row(self.wrapper.as_ref(), key_id, wrapped).await
    }
}

/// A new random key, its id, and its wrapped form.
pub(crate) async fn new_wrapped_key(wrapper: &dyn KeyWrapper) -> Result<(KeyId, Vec<u8>), KeyStoreError> {
    let id = KeyId::from_bytes(random()?);
    let wrapped = wrapper.wrap(&DataKey::from_bytes(random()?), id).await?;
    Ok((id, wrapped))
}

/// A key id read from a row.
pub(crate) fn parse_key_id(text: &str) -> Result<KeyId, KeyStoreError> {
    KeyId::parse(text).ok_or_else(|| KeyStoreError::Database(format!("malformed key id {text:?}")))
}

async fn unwrap_row(wrapper: &dyn KeyWrapper, key_id: &str, wrapped: &[u8]) -> Result<(KeyId, DataKey), KeyStoreError> {
    let id = parse_key_id(key_id)?;
    let key = wrapper
        .unwrap(wrapped, id)
        .await?
        .ok_or_else(|| KeyStoreError::WrongMasterKey(format!("key {id} under {}", wrapper.describe())))?;
    Ok((id, key))
}

/// `N` bytes from the system's random source.
pub fn random<const N: usize>() -> Result<[u8; N], KeyStoreError> {
    let mut bytes = [0; N];
    getrandom::getrandom(&mut bytes).map_err(|e| KeyStoreError::Random(e.to_string()))?;
    Ok(bytes)
}

/// The name of the one non-subject row: the blind key, wrapped.
const BLIND_KEY_ROW: &str = "blind-index-key";

/// Where subjects' data keys are kept.
#[async_trait]
pub trait SubjectKeys: Send + Sync + std::fmt::Debug {
    /// The subject's key id and data key in `organization_id`, made (and
    /// stored, wrapped) when it has none yet. Two callers racing for a new
    /// subject get the same key.
    async fn key_for(&self, organization_id: &str, subject: &Subject) -> Result<(KeyId, DataKey), KeyStoreError>;

    /// [`Self::key_for`] of each of `subjects`, in order. Stores override
    /// it to make every new key in one transaction (one synchronous commit
    /// for a whole batch of events with new subjects).
    async fn keys_for(
        &self,
        organization_id: &str,
        subjects: &[Subject],
    ) -> Result<Vec<(KeyId, DataKey)>, KeyStoreError> {
        let mut keys = Vec::with_capacity(subjects.len());
        for s in subjects {
            keys.push(self.key_for(organization_id, s).await?);
        }
        Ok(keys)
    }

    /// The data key with id `key_id`, or `None` when it was destroyed (or
    /// never existed here).
    async fn key_by_id(&self, organization_id: &str, key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError>;

    /// Destroys the subject's key and returns its id, or `None` when it had
    /// none (never had, or already erased). The row is deleted, not
    /// marked: what was sealed under it cannot be opened again from this
    /// store.
    async fn destroy(&self, organization_id: &str, subject: &Subject) -> Result<Option<KeyId>, KeyStoreError>;

    /// The keyring this store was opened with.
    fn keyring(&self) -> &Keyring;

    /// Places a legal hold on `organization_id` (all of it, or one
    /// subject): erasures it covers are refused until it is lifted.
    async fn place_hold(
        &self,
        organization_id: &str,
        subject: Option<&Subject>,
        reason: &str,
    ) -> Result<LegalHold, KeyStoreError>;

    /// The organization's holds, oldest first.
    async fn holds(&self, organization_id: &str) -> Result<Vec<LegalHold>, KeyStoreError>;

    /// Lifts hold `id`; the hold, or `None` when there is no such hold.
    async fn lift_hold(&self, organization_id: &str, id: &str) -> Result<Option<LegalHold>, KeyStoreError>;

    /// The first hold that covers `subject` (organization-wide, or its
    /// own), described for an error message.
    async fn hold_on(&self, organization_id: &str, subject: &Subject) -> Result<Option<String>, KeyStoreError> {
        let token = self.keyring().subject_token(organization_id, subject);
        let holds = self.holds(organization_id).await?;
        Ok(holds.into_iter().find(|h| h.subject_token.as_ref().is_none_or(|t| *t == token)).map(|h| {
            match h.subject_token {
                None => format!("organization {organization_id} (hold {})", h.id),
                Some(_) => format!("this subject of {organization_id} (hold {})", h.id),
            }
        }))
    }
}

/// A legal hold: erasure is refused while it stands (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalHold {
    /// Its id (random, 32 hex digits).
    pub id: String,
    /// The subject's blind token, or `None` for the whole organization.
    pub subject_token: Option<String>,
    /// Why (free text from whoever placed it; no personal data, please).
    pub reason: String,
    /// When, RFC 3339 UTC.
    pub placed_at: String,
}

impl LegalHold {
    /// A new hold with a random id, placed now.
    pub(crate) fn new(subject_token: Option<String>, reason: &str) -> Result<LegalHold, KeyStoreError> {
        Ok(LegalHold {
            id: hex::encode(random::<16>()?),
            subject_token,
            reason: reason.to_owned(),
            placed_at: {
                let since_epoch =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                audit_core::Timestamp::from_micros(since_epoch.as_micros() as i64).to_string()
            },
        })
    }
}
