//! Personal data in events (SPEC §9): which members are personal, whose
//! they are (the event's subject), and the stored form that lets an erasure
//! destroy them without touching the log — crypto-shredding.
//!
//! A personal value is stored as `enc:v1:<key id>:<payload>`: the payload is
//! base64url (no padding) of a 12-byte nonce followed by the AES-256-GCM
//! ciphertext and tag of the value's canonical JSON text (so a number or an
//! object at a configured path comes back as what it was). The key is the
//! subject's data key; the key id is random, so the stored log names no
//! subject, and once the key store forgets a key nothing links its events
//! to anyone. The associated data binds a ciphertext to its organization
//! and member path: moved elsewhere, it no longer opens.
//!
//! Pure: keys, key ids and nonces come from the caller (its random source).

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};

use crate::Timestamp;
use crate::event::{ActorType, EventDraft};
use crate::json::{NumberPolicy, Object, Value};

/// The top-level members that are always personal.
pub const PERSONAL_MEMBERS: [&str; 4] = ["actor_email", "actor_ip", "user_agent", "session_id"];

/// What a personal value whose key was destroyed reads as.
pub const ERASED: &str = "[erased]";

/// What a sealed value that does not open with its key reads as: it was
/// altered or moved (the event's hash check fails too; `verify` says where).
pub const UNREADABLE: &str = "[unreadable]";

/// The prefix of a stored personal value.
pub const SEALED_PREFIX: &str = "enc:v1:";

const NONCE_BYTES: usize = 12;

/// Whose personal data an event carries: the key its personal values are
/// sealed under, and what an erasure names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The event's `actor_email`, trimmed and lowercased.
    Email(String),
    /// The event's `actor_id`, for an actor of type `user` with no email.
    User(String),
    /// No subject: personal data of an anonymous caller (an IP, a user
    /// agent), kept under one key per organization and calendar month
    /// (`YYYY-MM`, UTC), erasable by time.
    Unattributed {
        /// The month of the event's capture.
        month: String,
    },
}

impl Subject {
    /// The subject of an event captured at `at`: its normalised email when
    /// it has one, else its `actor_id` when the actor is a user, else the
    /// month's unattributed key.
    pub fn of(
        actor_type: Option<ActorType>,
        actor_id: Option<&str>,
        actor_email: Option<&str>,
        at: Timestamp,
    ) -> Subject {
        if let Some(email) = actor_email.map(normalise_email).filter(|e| !e.is_empty()) {
            return Subject::Email(email);
        }
        if actor_type == Some(ActorType::User)
            && let Some(id) = actor_id.map(str::trim).filter(|id| !id.is_empty())
        {
            return Subject::User(id.to_owned());
        }
        Subject::Unattributed { month: at.to_string().get(..7).unwrap_or("0000-00").to_owned() }
    }

    /// The subject's name in the key store and the blind index:
    /// `email:<email>`, `user:<id>` or `unattributed:<YYYY-MM>`.
    pub fn key_name(&self) -> String {
        match self {
            Subject::Email(e) => format!("email:{e}"),
            Subject::User(id) => format!("user:{id}"),
            Subject::Unattributed { month } => format!("unattributed:{month}"),
        }
    }
}

/// An email address as subjects and lookups compare it: trimmed, lowercased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A subject's data key (AES-256-GCM). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A key from 32 random bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }
}

impl DataKey {
    /// The key's bytes, for a key management service that wraps them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

/// The random identifier of a data key, as it appears in sealed values
/// (32 lowercase hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// An id from 16 random bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> KeyId {
        KeyId(bytes)
    }

    /// Parses the 32-hex-digit form.
    pub fn parse(text: &str) -> Option<KeyId> {
        if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(KeyId(bytes))
    }

    /// The 32-hex-digit form, written into `text` (on the caller's stack:
    /// every sealed value's prefix holds it).
    fn write_hex<'t>(&self, text: &'t mut [u8; 32]) -> &'t str {
        hex::encode_to_slice(self.0, text).expect("32 hex digits for 16 bytes");
        std::str::from_utf8(text).expect("hex digits are ASCII")
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.write_hex(&mut [0u8; 32]))
    }
}

/// Where a personal value sits: its organization and member path (e.g.
/// `actor_email`, `new_state.email`). Bound into each ciphertext.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The event's organization.
    pub organization_id: &'a str,
    /// The member path.
    pub path: &'a str,
}

impl Place<'_> {
    /// The AES-GCM associated data: a fixed label, the organization and
    /// the path, separated by NUL bytes.
    fn write_associated_data(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(ASSOCIATED_DATA_LABEL);
        out.extend_from_slice(self.organization_id.as_bytes());
        out.push(0);
        out.extend_from_slice(self.path.as_bytes());
    }

    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::new();
        self.write_associated_data(&mut aad);
        aad
    }
}

/// The start of every ciphertext's associated data.
const ASSOCIATED_DATA_LABEL: &[u8] = b"agenttrace-audit personal v1\0";

/// Seals `value` (its canonical JSON text) under `key` for `place`.
pub fn seal(value: &Value, key: &DataKey, key_id: KeyId, place: Place<'_>, nonce: [u8; NONCE_BYTES]) -> String {
    Sealer::new(key, key_id).seal(value, place, nonce)
}

/// One subject's key, ready to seal many values: the AES key schedule and
/// the `enc:v1:<key id>:` prefix are made once, so a service can keep a
/// sealer per cached key instead of redoing them for every event.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// `enc:v1:<key id>:`, the start of every value it seals.
    prefix: String,
}

impl Sealer {
    /// A sealer for `key`, whose id is `key_id`.
    pub fn new(key: &DataKey, key_id: KeyId) -> Sealer {
        let mut hex = [0u8; 32];
        let mut prefix = String::with_capacity(SEALED_PREFIX.len() + hex.len() + 1);
        prefix.push_str(SEALED_PREFIX);
        prefix.push_str(key_id.write_hex(&mut hex));
        prefix.push(':');
        Sealer { cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key.0)), prefix }
    }

    /// `value` sealed for `place` under `nonce`.
    fn seal(&self, value: &Value, place: Place<'_>, nonce: [u8; NONCE_BYTES]) -> String {
        self.seal_text(|out| crate::canonical::write_canonical(value, out), place, nonce, &mut Vec::new())
    }

    /// The sealed form of the canonical JSON text that `plaintext` writes.
    /// `buf` (cleared first; kept by the caller for the next value) holds
    /// the associated data, then the nonce, the plaintext (encrypted in
    /// place) and the tag: only the stored string is allocated.
    fn seal_text(
        &self,
        plaintext: impl FnOnce(&mut Vec<u8>),
        place: Place<'_>,
        nonce: [u8; NONCE_BYTES],
        buf: &mut Vec<u8>,
    ) -> String {
        buf.clear();
        place.write_associated_data(buf);
        let aad_len = buf.len();
        buf.extend_from_slice(&nonce);
        plaintext(buf);
        let (aad, payload) = buf.split_at_mut(aad_len);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut payload[NONCE_BYTES..])
            .expect("AES-GCM encrypts any message under 64 GiB");
        buf.extend_from_slice(&tag);
        let payload = &buf[aad_len..];
        let mut out = String::with_capacity(self.prefix.len() + payload.len().div_ceil(3) * 4);
        out.push_str(&self.prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        out
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key schedule is the key: only the id is shown.
        f.debug_struct("Sealer").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// A stored personal value, split (not yet opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The key it was sealed under.
    pub key_id: KeyId,
    payload: Vec<u8>,
}

impl SealedValue {
    /// Splits `text` when it has the sealed form; `None` for any other
    /// string (a value stored before protection was on, say).
    pub fn parse(text: &str) -> Option<SealedValue> {
        let rest = text.strip_prefix(SEALED_PREFIX)?;
        let (id, payload) = rest.split_once(':')?;
        let key_id = KeyId::parse(id)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        (payload.len() >= NONCE_BYTES + 16).then_some(SealedValue { key_id, payload })
    }

    /// Opens the value with `key`, for `place`.
    pub fn open(&self, key: &DataKey, place: Place<'_>) -> Result<Value, OpenError> {
        let (nonce, sealed) = self.payload.split_at(NONCE_BYTES);
        let cipher = Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&key.0));
        let aad = place.associated_data();
        let plaintext = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| OpenError::Forged)?;
        crate::json::parse(&plaintext, NumberPolicy::Exact).map_err(|_| OpenError::NotJson)
    }
}

/// Why a sealed value does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The key, the place or the ciphertext is not the one it was sealed
    /// with: the value was altered or moved.
    #[error("the sealed value does not open with its key at this place (altered or moved)")]
    Forged,
    /// It opened, but what it holds is not JSON (not written by `seal`).
    #[error("the sealed value opened but does not hold JSON")]
    NotJson,
}

/// A stored value as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Revealed {
    /// Not sealed: shown as stored.
    Plain,
    /// Opened.
    Value(Value),
    /// Its key was destroyed (or never existed here): reads as [`ERASED`].
    Erased,
    /// Its key exists but the value does not open.
    Unreadable(OpenError),
}

/// What a stored string at `place` reads as, with `key_for` finding a key
/// by id (`None`: destroyed).
pub fn reveal(stored: &str, place: Place<'_>, key_for: impl FnOnce(KeyId) -> Option<DataKey>) -> Revealed {
    let Some(sealed) = SealedValue::parse(stored) else { return Revealed::Plain };
    match key_for(sealed.key_id) {
        None => Revealed::Erased,
        Some(key) => match sealed.open(&key, place) {
            Ok(v) => Revealed::Value(v),
            Err(e) => Revealed::Unreadable(e),
        },
    }
}

/// The key that wraps data keys in the key store. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A key from 32 random bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// `data_key` wrapped for storage (nonce, then AES-GCM ciphertext and
    /// tag), bound to `key_id` so a wrapped key cannot be swapped for another.
    pub fn wrap(&self, data_key: &DataKey, key_id: KeyId, nonce: [u8; NONCE_BYTES]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&self.0));
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &data_key.0, aad: &key_id.0 })
            .expect("AES-GCM encrypts 32 bytes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The data key in `wrapped`, or `None` when this master key did not
    /// wrap it for `key_id` (a wrong master key, or a damaged row).
    pub fn unwrap(&self, wrapped: &[u8], key_id: KeyId) -> Option<DataKey> {
        if wrapped.len() != NONCE_BYTES + 32 + 16 {
            return None;
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_BYTES);
        let cipher = Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&self.0));
        let plain = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &key_id.0 }).ok()?;
        Some(DataKey(plain.try_into().ok()?))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

/// The key of the blind index: lookups by a personal value without storing
/// it. Holds the HMAC state already keyed (the key's two padded blocks
/// compressed once), so a token costs two SHA-256 compressions, not four.
/// `Debug` never shows it.
#[derive(Clone)]
pub struct BlindIndexKey(Hmac<sha2::Sha256>);

impl BlindIndexKey {
    /// A key from 32 random bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> BlindIndexKey {
        BlindIndexKey(<Hmac<sha2::Sha256> as Mac>::new_from_slice(&bytes).expect("HMAC takes a key of any length"))
    }

    /// A blind key with the bytes of `key` (a key store keeps its blind
    /// key wrapped like a data key).
    pub fn from_data_key(key: &DataKey) -> BlindIndexKey {
        BlindIndexKey::from_bytes(key.0)
    }

    /// The token of `value` for `field` in `organization_id`: hex of
    /// HMAC-SHA256 over the three, separated by NUL. Per organization and
    /// field, so equal values elsewhere do not share tokens. Callers pass
    /// the normalised value (see [`normalise_email`]).
    pub fn token(&self, organization_id: &str, field: &str, value: &str) -> String {
        let mut mac = self.0.clone();
        for part in [organization_id, field, value] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(…)")
    }
}

/// A configured personal path inside `metadata`, `previous_state` or
/// `new_state` (`new_state.email`, `metadata.client.ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalPath {
    /// The top-level member: `metadata`, `previous_state` or `new_state`.
    pub root: &'static str,
    /// Member names below it, outermost first (at least one).
    pub members: Vec<String>,
}

impl PersonalPath {
    /// Parses `root.member[.member…]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<PersonalPath, String> {
        let mut parts = text.trim().split('.');
        let root = match parts.next() {
            Some("metadata") => "metadata",
            Some("previous_state") => "previous_state",
            Some("new_state") => "new_state",
            _ => {
                return Err(format!(
                    "{text:?}: a personal path starts with metadata, previous_state or new_state (e.g. new_state.email)"
                ));
            }
        };
        let members: Vec<String> = parts.map(str::to_owned).collect();
        if members.is_empty() || members.iter().any(String::is_empty) {
            return Err(format!("{text:?}: name at least one member below {root}, without empty names"));
        }
        Ok(PersonalPath { root, members })
    }

    /// The path as written (`new_state.email`), as bound into ciphertexts.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.root, self.members.join("."))
    }
}

/// A personal value's member path: one of the four top-level names, or a
/// configured path written out.
type SlotPath = std::borrow::Cow<'static, str>;

/// The draft's organization and its personal values, each with its member
/// path, mutably: the four top-level members, then each configured path
/// that is present (`None` where a path's parent is missing or not an
/// object).
fn personal_slots<'a>(draft: &'a mut EventDraft, paths: &'a [PersonalPath]) -> (&'a str, Vec<(SlotPath, Slot<'a>)>) {
    let EventDraft {
        organization_id,
        actor_email,
        actor_ip,
        user_agent,
        session_id,
        metadata,
        previous_state,
        new_state,
        ..
    } = draft;
    let mut slots: Vec<(SlotPath, Slot<'a>)> = Vec::with_capacity(PERSONAL_MEMBERS.len() + paths.len());
    for (name, member) in PERSONAL_MEMBERS.into_iter().zip([actor_email, actor_ip, user_agent, session_id]) {
        if let Some(text) = member.as_mut() {
            slots.push((SlotPath::Borrowed(name), Slot::Member(text)));
        }
    }
    let roots = [
        ("metadata", metadata.as_mut()),
        ("previous_state", previous_state.as_mut()),
        ("new_state", new_state.as_mut()),
    ];
    // Paths are visited per root so that each object is borrowed once.
    for (root_name, root) in roots {
        let Some(root) = root else { continue };
        let mine: Vec<&PersonalPath> = paths.iter().filter(|p| p.root == root_name).collect();
        if !mine.is_empty() {
            // Only an object a path points into is read as a tree.
            collect_paths(root.tree_mut(), &mine, 0, &mut slots);
        }
    }
    (organization_id, slots)
}

/// Pushes the values at `paths` (their members from `depth` on) below `obj`.
fn collect_paths<'a>(obj: &'a mut Object, paths: &[&PersonalPath], depth: usize, out: &mut Vec<(SlotPath, Slot<'a>)>) {
    for (name, value) in obj.iter_mut() {
        let here: Vec<&PersonalPath> = paths.iter().copied().filter(|p| p.members[depth] == name).collect();
        if here.is_empty() {
            continue;
        }
        if let Some(leaf) = here.iter().find(|p| p.members.len() == depth + 1) {
            out.push((SlotPath::Owned(leaf.dotted()), Slot::Value(value)));
        } else if let Value::Object(inner) = value {
            collect_paths(inner, &here, depth + 1, out);
        }
    }
}

/// Where a personal value sits in a draft.
enum Slot<'a> {
    /// A top-level string member.
    Member(&'a mut String),
    /// A value at a configured path.
    Value(&'a mut Value),
}

/// Seals `draft`'s personal values in place with `sealer` (the key of the
/// draft's subject, see [`Subject::of`]), each with a nonce from `nonce`.
/// Returns how many were sealed. Every value is sealed, even one that
/// already has the sealed form: a client cannot slip a ciphertext copied
/// from another event past the service (input validation refuses the form
/// in the top-level members; at a configured path it is sealed again and
/// reads back as the string the client sent).
pub fn protect(
    draft: &mut EventDraft,
    paths: &[PersonalPath],
    sealer: &Sealer,
    nonce: impl FnMut() -> [u8; NONCE_BYTES],
) -> usize {
    let sealed = protect_counted(draft, paths, sealer, nonce);
    sealed.members + sealed.at_paths
}

/// How many values [`protect`] sealed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SealedCount {
    /// Top-level personal members (strings).
    pub(crate) members: usize,
    /// Values at configured paths.
    pub(crate) at_paths: usize,
}

pub(crate) fn protect_counted(
    draft: &mut EventDraft,
    paths: &[PersonalPath],
    sealer: &Sealer,
    mut nonce: impl FnMut() -> [u8; NONCE_BYTES],
) -> SealedCount {
    let mut sealed = SealedCount::default();
    let mut buf = Vec::with_capacity(256);
    let (organization_id, slots) = personal_slots(draft, paths);
    for (path, slot) in slots {
        let place = Place { organization_id, path: &path };
        match slot {
            Slot::Member(text) => {
                // A string's canonical text is the string written out.
                let write = |out: &mut Vec<u8>| crate::canonical::write_string(text, out);
                *text = sealer.seal_text(write, place, nonce(), &mut buf);
                sealed.members += 1;
            }
            Slot::Value(value) => {
                let write = |out: &mut Vec<u8>| crate::canonical::write_canonical(value, out);
                *value = Value::String(sealer.seal_text(write, place, nonce(), &mut buf));
                sealed.at_paths += 1;
            }
        }
    }
    sealed
}

/// True when `draft` carries any personal value (a top-level personal
/// member, or a value at one of `paths`): only then does it need a key.
pub fn has_personal_data(draft: &EventDraft, paths: &[PersonalPath]) -> bool {
    let members = [&draft.actor_email, &draft.actor_ip, &draft.user_agent, &draft.session_id];
    members.iter().any(|m| m.is_some())
        || paths.iter().any(|p| {
            let root = match p.root {
                "metadata" => &draft.metadata,
                "previous_state" => &draft.previous_state,
                _ => &draft.new_state,
            };
            let tree = root.as_ref().map(|o| o.to_object());
            let mut at = tree.as_deref();
            for (i, name) in p.members.iter().enumerate() {
                let Some(value) = at.and_then(|o| o.get(name)) else { return false };
                if i + 1 == p.members.len() {
                    return true;
                }
                at = match value {
                    Value::Object(o) => Some(o),
                    _ => None,
                };
            }
            false
        })
}

/// What [`reveal`] made of a draft's sealed values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revealing {
    /// Opened.
    pub opened: usize,
    /// Erased (their key is gone): now [`ERASED`].
    pub erased: usize,
    /// Unreadable (altered, moved or not JSON): now [`UNREADABLE`].
    pub unreadable: usize,
}

/// Replaces `draft`'s sealed personal values by what they hold, or by
/// [`ERASED`] where `key_for` has no key (destroyed), or by [`UNREADABLE`]
/// where it does not open (altered or moved; counted). Top-level members get the opened
/// string (a non-string sealed there reads as its JSON text).
pub fn reveal_draft(
    draft: &mut EventDraft,
    paths: &[PersonalPath],
    mut key_for: impl FnMut(KeyId) -> Option<DataKey>,
) -> Revealing {
    let mut outcome = Revealing::default();
    let (organization_id, slots) = personal_slots(draft, paths);
    for (path, slot) in slots {
        let place = Place { organization_id, path: &path };
        let stored = match &slot {
            Slot::Member(text) => text.as_str(),
            Slot::Value(Value::String(text)) => text.as_str(),
            Slot::Value(_) => continue,
        };
        let shown = match reveal(stored, place, &mut key_for) {
            Revealed::Plain => continue,
            Revealed::Value(v) => {
                outcome.opened += 1;
                v
            }
            Revealed::Erased => {
                outcome.erased += 1;
                Value::String(ERASED.to_owned())
            }
            Revealed::Unreadable(_) => {
                outcome.unreadable += 1;
                Value::String(UNREADABLE.to_owned())
            }
        };
        match slot {
            Slot::Member(text) => {
                *text = match shown {
                    Value::String(s) => s,
                    other => String::from_utf8(crate::canonical::to_canonical(&other)).unwrap_or_default(),
                }
            }
            Slot::Value(value) => *value = shown,
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: DataKey = DataKey::from_bytes([7; 32]);
    const ID: KeyId = KeyId::from_bytes([0xab; 16]);
    const PLACE: Place<'static> = Place { organization_id: "org-1", path: "actor_email" };

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_shows_only_its_key_id() {
        for value in [
            Value::String("Ada@Example.com".into()),
            Value::Number(42.5),
            Value::Array(vec![Value::Bool(true), Value::Null]),
        ] {
            let stored = seal(&value, &KEY, ID, PLACE, [1; 12]);
            assert!(stored.starts_with("enc:v1:abababababababababababababababab:"), "{stored}");
            assert!(!stored.contains("Ada") && !stored.contains("42"), "{stored}");
            let sealed = SealedValue::parse(&stored).unwrap();
            assert_eq!(sealed.key_id, ID);
            assert_eq!(sealed.open(&KEY, PLACE).unwrap(), value);
        }
    }

    #[test]
    fn nonces_make_equal_values_differ() {
        let v = Value::String("ada@example.com".into());
        assert_ne!(seal(&v, &KEY, ID, PLACE, [1; 12]), seal(&v, &KEY, ID, PLACE, [2; 12]));
    }

    #[test]
    fn a_value_altered_moved_or_under_another_key_does_not_open() {
        let stored = seal(&Value::String("ada@example.com".into()), &KEY, ID, PLACE, [1; 12]);
        let sealed = SealedValue::parse(&stored).unwrap();
        assert_eq!(sealed.open(&DataKey::from_bytes([8; 32]), PLACE), Err(OpenError::Forged));
        let other_member = Place { path: "session_id", ..PLACE };
        assert_eq!(sealed.open(&KEY, other_member), Err(OpenError::Forged));
        let other_org = Place { organization_id: "org-2", ..PLACE };
        assert_eq!(sealed.open(&KEY, other_org), Err(OpenError::Forged));
        // One character of the payload changed.
        let mut tampered = stored.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = SealedValue::parse(std::str::from_utf8(&tampered).unwrap()).unwrap();
        assert_eq!(tampered.open(&KEY, PLACE), Err(OpenError::Forged));
    }

    #[test]
    fn other_strings_are_not_sealed_values() {
        for text in
            ["ada@example.com", "enc:v1:", "enc:v1:zz:AAAA", "enc:v1:abababababababababababababababab:!!", "enc:v2:x:y"]
        {
            assert_eq!(SealedValue::parse(text), None, "{text}");
        }
    }

    #[test]
    fn reveal_tells_plain_opened_erased_and_unreadable_apart() {
        let stored = seal(&Value::String("ada@example.com".into()), &KEY, ID, PLACE, [1; 12]);
        assert_eq!(reveal("plain text", PLACE, |_| Some(KEY.clone())), Revealed::Plain);
        assert_eq!(
            reveal(&stored, PLACE, |_| Some(KEY.clone())),
            Revealed::Value(Value::String("ada@example.com".into()))
        );
        assert_eq!(reveal(&stored, PLACE, |_| None), Revealed::Erased);
        assert_eq!(
            reveal(&stored, PLACE, |_| Some(DataKey::from_bytes([9; 32]))),
            Revealed::Unreadable(OpenError::Forged)
        );
    }

    #[test]
    fn the_subject_is_the_email_else_a_users_id_else_the_month() {
        let at = Timestamp::parse_rfc3339("2026-12-06T10:00:00Z").unwrap();
        assert_eq!(
            Subject::of(Some(ActorType::User), Some("u1"), Some("  Ada@Example.COM "), at),
            Subject::Email("ada@example.com".into())
        );
        assert_eq!(Subject::of(Some(ActorType::User), Some("u1"), None, at), Subject::User("u1".into()));
        assert_eq!(Subject::of(Some(ActorType::User), Some("u1"), Some("  "), at), Subject::User("u1".into()));
        let month = Subject::Unattributed { month: "2026-12".into() };
        assert_eq!(Subject::of(Some(ActorType::ApiKey), Some("k1"), None, at), month);
        assert_eq!(Subject::of(Some(ActorType::Anonymous), None, None, at), month);
        assert_eq!(month.key_name(), "unattributed:2026-12");
        assert_eq!(Subject::Email("ada@example.com".into()).key_name(), "email:ada@example.com");
    }

    #[test]
    fn wrapped_keys_open_only_with_their_master_key_and_key_id() {
        let master = MasterKey::from_bytes([3; 32]);
        let wrapped = master.wrap(&KEY, ID, [4; 12]);
        assert_eq!(master.unwrap(&wrapped, ID), Some(KEY));
        assert_eq!(MasterKey::from_bytes([5; 32]).unwrap(&wrapped, ID), None, "another master key");
        assert_eq!(master.unwrap(&wrapped, KeyId::from_bytes([1; 16])), None, "another key id");
        assert_eq!(master.unwrap(&wrapped[1..], ID), None, "a damaged row");
    }

    #[test]
    fn key_ids_are_written_as_32_lowercase_hex_digits_and_read_back() {
        let id = KeyId::from_bytes([0x00, 0x01, 0x7f, 0x80, 0xab, 0xff, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xfe]);
        let text = id.to_string();
        assert_eq!(text, "00017f80abff02030405060708090afe");
        assert_eq!(KeyId::parse(&text), Some(id));
    }

    #[test]
    fn blind_tokens_are_stable_and_separate_organizations_and_fields() {
        let key = BlindIndexKey::from_bytes([6; 32]);
        let t = key.token("org-1", "actor_email", "ada@example.com");
        // Known answer from Python's standard library, an independent HMAC:
        // hmac.new(bytes([6] * 32), b"org-1\0actor_email\0ada@example.com\0",
        //          hashlib.sha256).hexdigest()
        assert_eq!(t, "72574fc31ec2e37c741a3701eeb2aae508a6fc0f3cf1492af5bdd682ec25058e");
        assert_eq!(t, key.token("org-1", "actor_email", "ada@example.com"));
        assert_ne!(t, key.token("org-2", "actor_email", "ada@example.com"));
        assert_ne!(t, key.token("org-1", "actor_id", "ada@example.com"));
        assert_ne!(t, BlindIndexKey::from_bytes([7; 32]).token("org-1", "actor_email", "ada@example.com"));
        // No ambiguity from the separators: ("a", "bc") is not ("ab", "c").
        assert_ne!(key.token("a", "bc", "x"), key.token("ab", "c", "x"));
    }

    #[test]
    fn personal_paths_name_a_member_below_one_of_three_roots() {
        let p = PersonalPath::parse("new_state.email").unwrap();
        assert_eq!((p.root, p.members.clone()), ("new_state", vec!["email".to_owned()]));
        assert_eq!(PersonalPath::parse("metadata.client.ip").unwrap().dotted(), "metadata.client.ip");
        for bad in ["email", "new_state", "new_state.", "request.path", "metadata..ip"] {
            assert!(PersonalPath::parse(bad).is_err(), "{bad}");
        }
    }

    fn draft_with_personal_data() -> EventDraft {
        let mut new_state = Object::new();
        new_state.insert("email", Value::String("ada@example.com".into()));
        new_state.insert("plan", Value::String("pro".into()));
        let mut client = Object::new();
        client.insert("ip", Value::String("192.0.2.7".into()));
        client.insert("zone", Value::Number(3.0));
        let mut metadata = Object::new();
        metadata.insert("client", Value::Object(client));
        EventDraft {
            organization_id: "org-1".into(),
            event_type: "user.updated".into(),
            actor_email: Some("ada@example.com".into()),
            actor_ip: Some("192.0.2.7".into()),
            user_agent: Some("curl/8".into()),
            actor_id: Some("u1".into()),
            new_state: Some(new_state.into()),
            metadata: Some(metadata.into()),
            ..EventDraft::default()
        }
    }

    fn paths() -> Vec<PersonalPath> {
        ["new_state.email", "metadata.client.ip", "metadata.client.zone", "previous_state.email", "metadata.absent.x"]
            .iter()
            .map(|p| PersonalPath::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn protect_seals_every_personal_value_and_nothing_else_and_reveal_gives_them_back() {
        let original = draft_with_personal_data();
        let mut draft = original.clone();
        let mut n = 0u8;
        let sealed = protect(&mut draft, &paths(), &Sealer::new(&KEY, ID), || {
            n += 1;
            [n; 12]
        });
        // actor_email, actor_ip, user_agent, new_state.email, metadata.client.ip and .zone.
        assert_eq!(sealed, 6);
        let text = format!("{draft:?}");
        assert!(!text.contains("ada@example.com") && !text.contains("192.0.2.7") && !text.contains("curl/8"), "{text}");
        assert_eq!(draft.actor_id.as_deref(), Some("u1"), "actor_id is not personal by default");
        let new_state = draft.new_state.as_ref().unwrap().to_object();
        assert_eq!(new_state.get("plan"), Some(&Value::String("pro".into())), "other members stay");
        // Sealing a sealed draft seals again: one layer opens to the first.
        let mut twice = draft.clone();
        assert_eq!(protect(&mut twice, &paths(), &Sealer::new(&KEY, ID), || [9; 12]), 6);
        reveal_draft(&mut twice, &paths(), |_| Some(KEY.clone()));
        assert_eq!(twice, draft);

        let mut read = draft.clone();
        let outcome = reveal_draft(&mut read, &paths(), |id| (id == ID).then(|| KEY.clone()));
        assert_eq!(outcome, Revealing { opened: 6, erased: 0, unreadable: 0 });
        assert_eq!(read, original, "revealed, the draft is what was protected, number included");

        let mut erased = draft.clone();
        let outcome = reveal_draft(&mut erased, &paths(), |_| None);
        assert_eq!(outcome, Revealing { opened: 0, erased: 6, unreadable: 0 });
        assert_eq!(erased.actor_email.as_deref(), Some(ERASED));
        let client = match erased.metadata.as_ref().unwrap().to_object().get("client") {
            Some(Value::Object(c)) => c.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(client.get("zone"), Some(&Value::String(ERASED.into())));
    }

    #[test]
    fn a_sealed_value_moved_to_another_member_reads_unreadable_not_revealed() {
        let mut draft = draft_with_personal_data();
        protect(&mut draft, &paths(), &Sealer::new(&KEY, ID), || [5; 12]);
        // Someone swaps the sealed email into user_agent.
        draft.user_agent = draft.actor_email.clone();
        let outcome = reveal_draft(&mut draft, &paths(), |_| Some(KEY.clone()));
        assert_eq!(outcome.unreadable, 1);
        assert_eq!(draft.user_agent.as_deref(), Some(UNREADABLE), "never the email it holds");
        assert_eq!(draft.actor_email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let shown = format!("{:?} {:?} {:?}", KEY, MasterKey::from_bytes([1; 32]), BlindIndexKey::from_bytes([2; 32]));
        assert!(!shown.contains('7') && !shown.contains("[1"), "{shown}");
    }
}
