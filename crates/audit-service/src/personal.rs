//! Personal data protection (SPEC §9): the service side of
//! `audit_core::personal`. Workers seal each event's personal values under
//! its subject's key just before sequencing it; readers reveal them (or
//! show `"[erased]"`); the indexer keeps a blind token of `actor_email`
//! instead of the address; an erasure destroys a subject's key.
//!
//! Keys are cached per process for at most [`KEY_CACHE_TTL`]: an erasure in
//! this process clears the caches at once, one in another instance sharing
//! the key store is seen within that time (docs/FORMAT.md says what that
//! means for events captured during an erasure).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use audit_core::Timestamp;
use audit_core::personal::{DataKey, KeyId, PersonalPath, SEALED_PREFIX, Subject, has_personal_data, normalise_email};
use audit_core::stored::StoredEvent;
use audit_keystore::{KeyStoreError, SubjectKeys};
use rand_chacha::ChaCha20Rng;

use crate::queue::Pending;
use crate::state::lock;

/// How long a key (or a key's absence) is trusted without asking the key
/// store again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Past this many cached keys the reader cache starts over (a bound on
/// memory, not a tuning knob).
const MAX_CACHED_KEYS: usize = 100_000;

/// The blind-index field name of `actor_email` tokens.
const EMAIL_FIELD: &str = "actor_email";

/// Protection of personal data: the key store and the configured paths.
#[derive(Debug)]
pub struct Protection {
    keys: Arc<dyn SubjectKeys>,
    paths: Vec<PersonalPath>,
    /// Erasures done by this process: caches made before the last one are stale.
    erasures: AtomicU64,
    opened: std::sync::Mutex<OpenedKeys>,
}

/// Keys looked up by id, per organization: the key (`None`: destroyed) and
/// when it was asked for.
type OpenedKeys = HashMap<(String, KeyId), (Option<DataKey>, Instant)>;

impl Protection {
    /// Protection with subject keys in `keys`, sealing the four personal
    /// members and the values at `paths`.
    pub fn new(keys: Arc<dyn SubjectKeys>, paths: Vec<PersonalPath>) -> Protection {
        Protection { keys, paths, erasures: AtomicU64::new(0), opened: std::sync::Mutex::new(HashMap::new()) }
    }

    /// The configured personal paths inside `metadata` and the states.
    pub fn paths(&self) -> &[PersonalPath] {
        &self.paths
    }

    /// The key store.
    pub fn keys(&self) -> &Arc<dyn SubjectKeys> {
        &self.keys
    }

    /// The blind-index token of an email in `organization_id`: what the
    /// query index keeps of `actor_email`, and what a lookup compares.
    pub fn email_token(&self, organization_id: &str, email: &str) -> String {
        self.keys.keyring().blind().token(organization_id, EMAIL_FIELD, &normalise_email(email))
    }

    /// The token an erasure records for `subject` (never its name).
    pub fn subject_token(&self, organization_id: &str, subject: &Subject) -> String {
        self.keys.keyring().subject_token(organization_id, subject)
    }

    /// The data key with id `key_id` (`None`: destroyed), from the cache
    /// when it is fresh.
    pub async fn key_by_id(&self, organization_id: &str, key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError> {
        let slot = (organization_id.to_owned(), key_id);
        if let Some((key, at)) = lock(&self.opened).get(&slot)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = self.keys.key_by_id(organization_id, key_id).await?;
        let mut opened = lock(&self.opened);
        if opened.len() >= MAX_CACHED_KEYS {
            opened.clear();
        }
        opened.insert(slot, (key.clone(), Instant::now()));
        Ok(key)
    }

    /// Makes sure every key named by a sealed value in `bytes` (stored
    /// lines) is in the cache, so that [`Self::reveal_cached`] can open them
    /// without waiting.
    pub async fn prefetch(&self, organization_id: &str, bytes: &[u8]) -> Result<(), KeyStoreError> {
        let mut seen = std::collections::HashSet::new();
        for id in key_ids_in(bytes) {
            if seen.insert(id) {
                self.key_by_id(organization_id, id).await?;
            }
        }
        Ok(())
    }

    /// `event` for display: personal values opened with cached keys
    /// ([`Self::prefetch`] first), `"[erased]"` where the key is gone.
    pub fn reveal_cached(&self, event: &StoredEvent) -> StoredEvent {
        self.reveal_cached_with_outcome(event).0
    }

    /// [`Self::reveal_cached`], saying how many values opened, read
    /// erased, or did not open.
    pub fn reveal_cached_with_outcome(&self, event: &StoredEvent) -> (StoredEvent, audit_core::personal::Revealing) {
        let org = event.body.organization_id().to_owned();
        let opened = lock(&self.opened);
        event.revealed(&self.paths, |id| opened.get(&(org.clone(), id)).and_then(|(key, _)| key.clone()))
    }

    /// How many erasures this process has done (a worker that saw fewer
    /// forgets its content fingerprints, see `Sequencer::forget_fingerprints`).
    pub(crate) fn erasures(&self) -> u64 {
        self.erasures.load(Ordering::Acquire)
    }

    /// Each of `events` for display (see [`Self::reveal_cached`]).
    pub async fn reveal(&self, events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, KeyStoreError> {
        for e in &events {
            self.prefetch(e.body.organization_id(), &e.to_line()).await?;
        }
        Ok(events.iter().map(|e| self.reveal_cached(e)).collect())
    }

    /// What the index keeps of a stored `actor_email`: the blind token of
    /// the address (opened first when sealed), or `None` when it cannot be
    /// opened (erased) — a lookup must not find an erased subject.
    pub async fn index_email(&self, organization_id: &str, stored: &str) -> Result<Option<String>, KeyStoreError> {
        if !stored.starts_with(SEALED_PREFIX) {
            return Ok(Some(self.email_token(organization_id, stored)));
        }
        let Some(sealed) = audit_core::personal::SealedValue::parse(stored) else { return Ok(None) };
        let Some(key) = self.key_by_id(organization_id, sealed.key_id).await? else { return Ok(None) };
        let place = audit_core::personal::Place { organization_id, path: EMAIL_FIELD };
        Ok(match sealed.open(&key, place) {
            Ok(audit_core::json::Value::String(email)) => Some(self.email_token(organization_id, &email)),
            _ => None,
        })
    }

    /// Destroys `subject`'s key; its id, or `None` when it had none. Every
    /// cache of this process forgets what it knew.
    pub async fn destroy(&self, organization_id: &str, subject: &Subject) -> Result<Option<KeyId>, KeyStoreError> {
        let destroyed = self.keys.destroy(organization_id, subject).await;
        // Whatever the outcome, nothing cached before may be trusted.
        self.erasures.fetch_add(1, Ordering::AcqRel);
        lock(&self.opened).clear();
        destroyed
    }

    /// Seals the personal values of every event in `batch` that has any,
    /// each under its subject's key (made and stored when new, before the
    /// event can be acknowledged). Events that cannot be sealed (the key
    /// store failed) are taken out and returned with the reason: they must
    /// be refused, never stored in plaintext.
    pub(crate) async fn seal_batch(
        &self,
        cache: &mut SealCache,
        organization_id: &str,
        now: Timestamp,
        batch: &mut Vec<Pending>,
    ) -> Vec<(Pending, String)> {
        let erasures = self.erasures.load(Ordering::Acquire);
        if cache.erasures != erasures {
            cache.keys.clear();
            cache.erasures = erasures;
        }
        // Whose data each event carries; the keys not cached are fetched
        // (and the new ones made) in one call: one commit for the batch.
        let subjects: Vec<Option<Subject>> = batch
            .iter()
            .map(|p| {
                let d = p.event.draft();
                (!p.event.is_sealed() && has_personal_data(d, &self.paths))
                    .then(|| Subject::of(d.actor_type, d.actor_id.as_deref(), d.actor_email.as_deref(), now))
            })
            .collect();
        let mut resolved: HashMap<Subject, (KeyId, DataKey)> = HashMap::new();
        let mut missing: Vec<Subject> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for s in subjects.iter().flatten() {
            if !seen.insert(s) {
                continue;
            }
            match cache.get(s) {
                Some(k) => drop(resolved.insert(s.clone(), k)),
                None => missing.push(s.clone()),
            }
        }
        let fetched = match missing.is_empty() {
            true => Ok(()),
            false => self.keys.keys_for(organization_id, &missing).await.map(|keys| {
                for (subject, (id, key)) in missing.into_iter().zip(keys) {
                    cache.keys.insert(subject.clone(), (id, key.clone(), Instant::now()));
                    resolved.insert(subject, (id, key));
                }
            }),
        };
        let mut rng = match (fetched, cache.rng.as_mut()) {
            (Ok(()), Some(rng)) => Ok(rng),
            (Ok(()), None) => audit_keystore::random::<32>()
                .map(|seed| cache.rng.insert(<ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::from_seed(seed)))
                .map_err(|e| format!("cannot seal personal data: {e}")),
            (Err(e), _) => Err(format!("cannot seal personal data: {e}")),
        };
        let mut failed = Vec::new();
        let mut kept = Vec::with_capacity(batch.len());
        for (mut p, subject) in batch.drain(..).zip(subjects) {
            let Some(subject) = subject else {
                kept.push(p);
                continue;
            };
            let sealed = match &mut rng {
                Err(why) => Err(why.clone()),
                Ok(rng) => match resolved.get(&subject) {
                    None => Err("cannot seal personal data: the key store returned no key".to_owned()),
                    Some((key_id, key)) => {
                        p.event = p.event.sealed(&self.paths, key, *key_id, || {
                            let mut nonce = [0; 12];
                            rand_chacha::rand_core::RngCore::fill_bytes(&mut **rng, &mut nonce);
                            nonce
                        });
                        Ok(())
                    }
                },
            };
            match sealed {
                Ok(()) => kept.push(p),
                Err(why) => failed.push((p, why)),
            }
        }
        *batch = kept;
        failed
    }
}

#[async_trait::async_trait]
impl audit_index::BlindColumns for Protection {
    async fn actor_email(
        &self,
        organization_id: &str,
        stored: &str,
    ) -> Result<Option<String>, audit_index::IndexError> {
        self.index_email(organization_id, stored)
            .await
            .map_err(|e| audit_index::IndexError::Database(format!("cannot open a sealed email to index it: {e}")))
    }
}

/// A worker's cache of its organization's subject keys, and its source of
/// nonces: ChaCha20 seeded from the system's random source (a system call
/// per nonce would cost more than the sealing itself).
#[derive(Debug, Default)]
pub(crate) struct SealCache {
    keys: HashMap<Subject, (KeyId, DataKey, Instant)>,
    erasures: u64,
    rng: Option<ChaCha20Rng>,
}

impl SealCache {
    fn get(&self, subject: &Subject) -> Option<(KeyId, DataKey)> {
        self.keys.get(subject).filter(|(_, _, at)| at.elapsed() < KEY_CACHE_TTL).map(|(id, key, _)| (*id, key.clone()))
    }
}

/// The key ids named by sealed values in `bytes` (stored lines), in order,
/// repeats included.
pub(crate) fn key_ids_in(bytes: &[u8]) -> impl Iterator<Item = KeyId> + '_ {
    memchr::memmem::find_iter(bytes, SEALED_PREFIX.as_bytes()).filter_map(move |at| {
        let start = at + SEALED_PREFIX.len();
        let id = bytes.get(start..start + 32)?;
        KeyId::parse(std::str::from_utf8(id).ok()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_found_in_stored_bytes() {
        let a = "5a".repeat(16);
        let b = "0f".repeat(16);
        let text = format!(r#"{{"actor_email":"enc:v1:{a}:AAAA","user_agent":"enc:v1:{b}:BBBB","x":"enc:v1:nothex"}}"#);
        let ids: Vec<String> = key_ids_in(text.as_bytes()).map(|id| id.to_string()).collect();
        assert_eq!(ids, [a, b]);
    }
}
