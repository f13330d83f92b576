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
use audit_core::event::ValidatedEvent;
use audit_core::personal::{
    DataKey, KeyId, PersonalPath, SEALED_PREFIX, Sealer, Subject, has_personal_data, normalise_email,
};
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
    /// Erasures done by this process (workers compare it with what they saw).
    erasures: AtomicU64,
    /// Readers' keys by id.
    opened: std::sync::Mutex<OpenedKeys>,
    /// Sealers' keys by subject, per organization: callers seal with them
    /// on their own threads; workers fill them for the subjects callers
    /// could not (a new subject's key is made in the worker's batch).
    sealing: std::sync::Mutex<SealingKeys>,
}

/// Subject keys for sealing (as sealers: the key schedule done once), per
/// organization, with when they were fetched.
type SealingKeys = HashMap<String, HashMap<Subject, (Arc<Sealer>, Instant)>>;

/// Keys looked up by id, per organization: the key (`None`: destroyed) and
/// when it was asked for.
type OpenedKeys = HashMap<(String, KeyId), (Option<DataKey>, Instant)>;

impl Protection {
    /// Protection with subject keys in `keys`, sealing the four personal
    /// members and the values at `paths`.
    pub fn new(keys: Arc<dyn SubjectKeys>, paths: Vec<PersonalPath>) -> Protection {
        Protection {
            keys,
            paths,
            erasures: AtomicU64::new(0),
            opened: std::sync::Mutex::new(HashMap::new()),
            sealing: std::sync::Mutex::new(HashMap::new()),
        }
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
            self.prefetch(e.body.organization_id(), e.body.canonical_input()).await?;
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
        lock(&self.sealing).clear();
        destroyed
    }

    /// The sealer of `subject`'s fresh cached key in `organization_id`, if any.
    fn cached_sealer(&self, organization_id: &str, subject: &Subject) -> Option<Arc<Sealer>> {
        lock(&self.sealing)
            .get(organization_id)?
            .get(subject)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(sealer, _)| Arc::clone(sealer))
    }

    /// The subject whose key seals `event`, or `None` when it needs none
    /// (no personal data, or sealed already).
    fn subject_of(&self, event: &ValidatedEvent, now: Timestamp) -> Option<Subject> {
        let d = event.draft();
        (!event.is_sealed() && has_personal_data(d, &self.paths))
            .then(|| Subject::of(d.actor_type, d.actor_id.as_deref(), d.actor_email.as_deref(), now))
    }

    /// Seals `event` on the caller's thread when its subject's key is
    /// cached (the common case: sealing then costs the log's worker
    /// nothing); otherwise returns it as it is, for the worker to seal.
    pub(crate) fn seal_if_cached(&self, event: ValidatedEvent, now: Timestamp) -> ValidatedEvent {
        let Some(subject) = self.subject_of(&event, now) else { return event };
        let Some(sealer) = self.cached_sealer(event.organization_id(), &subject) else { return event };
        seal_with_nonces(event, &self.paths, &sealer).0
    }

    /// Seals the personal values of every event in `batch` that has any
    /// and is not sealed yet, each under its subject's key; the keys not
    /// cached are fetched, and the new ones made and committed, in one
    /// key-store call before any of these events can be acknowledged.
    /// Events that cannot be sealed (the key store failed) are taken out
    /// and returned with the reason: they must be refused, never stored in
    /// plaintext.
    pub(crate) async fn seal_batch(
        &self,
        organization_id: &str,
        now: Timestamp,
        batch: &mut Vec<Pending>,
    ) -> Vec<(Pending, String)> {
        let subjects: Vec<Option<Subject>> = batch.iter().map(|p| self.subject_of(&p.event, now)).collect();
        let mut resolved: HashMap<Subject, Arc<Sealer>> = HashMap::new();
        let mut missing: Vec<Subject> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for s in subjects.iter().flatten() {
            if !seen.insert(s) {
                continue;
            }
            match self.cached_sealer(organization_id, s) {
                Some(k) => drop(resolved.insert(s.clone(), k)),
                None => missing.push(s.clone()),
            }
        }
        let mut failure = None;
        if !missing.is_empty() {
            match self.keys.keys_for(organization_id, &missing).await {
                Ok(keys) => {
                    let mut sealing = lock(&self.sealing);
                    let cached = sealing.entry(organization_id.to_owned()).or_default();
                    if cached.len() >= MAX_CACHED_KEYS {
                        cached.clear();
                    }
                    for (subject, (id, key)) in missing.into_iter().zip(keys) {
                        let sealer = Arc::new(Sealer::new(&key, id));
                        cached.insert(subject.clone(), (Arc::clone(&sealer), Instant::now()));
                        resolved.insert(subject, sealer);
                    }
                }
                Err(e) => failure = Some(format!("cannot seal personal data: {e}")),
            }
        }
        let mut failed = Vec::new();
        let mut kept = Vec::with_capacity(batch.len());
        for (mut p, subject) in batch.drain(..).zip(subjects) {
            let Some(subject) = subject else {
                kept.push(p);
                continue;
            };
            let key = match (&failure, resolved.get(&subject)) {
                (Some(why), _) => Err(why.clone()),
                (None, None) => Err("cannot seal personal data: the key store returned no key".to_owned()),
                (None, Some(sealer)) => Ok(sealer),
            };
            match key {
                Ok(sealer) => {
                    let (event, sealed) = seal_with_nonces(p.event, &self.paths, sealer);
                    p.event = event;
                    match sealed {
                        true => kept.push(p),
                        false => failed.push((p, "cannot seal personal data: no randomness for nonces".to_owned())),
                    }
                }
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

/// A thread's source of AES-GCM nonces: ChaCha20 seeded once from the
/// system's random source (a system call per nonce would cost more than the
/// sealing itself).
struct Nonces(ChaCha20Rng);

impl Nonces {
    fn next(&mut self) -> [u8; 12] {
        let mut nonce = [0; 12];
        rand_chacha::rand_core::RngCore::fill_bytes(&mut self.0, &mut nonce);
        nonce
    }
}

thread_local! {
    static NONCES: std::cell::RefCell<Option<Nonces>> = const { std::cell::RefCell::new(None) };
}

/// `event` sealed with nonces from this thread's source (seeded first if
/// needed) and `true`; or `event` back unchanged and `false` when the
/// system's random source fails.
fn seal_with_nonces(event: ValidatedEvent, paths: &[PersonalPath], sealer: &Sealer) -> (ValidatedEvent, bool) {
    NONCES.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none()
            && let Ok(seed) = audit_keystore::random::<32>()
        {
            *slot = Some(Nonces(<ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::from_seed(seed)));
        }
        match slot.as_mut() {
            Some(nonces) => (event.sealed(paths, sealer, || nonces.next()), true),
            None => (event, false),
        }
    })
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
