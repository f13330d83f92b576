//! C2SP signed notes (Ed25519) and `tlog-checkpoint` bodies.
//!
//! A checkpoint is the text `<origin>\n<tree size>\n<base64 root hash>\n`,
//! signed as a note: the text, a blank line, then one line per signature,
//! `— <key name> base64(key id || Ed25519 signature)`. Key ids are
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, so any C2SP verifier
//! (Go's `sumdb/note`, `transparency-dev/formats`, …) checks our checkpoints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// The signature-type byte of Ed25519 in C2SP signed notes.
const ED25519: u8 = 0x01;

/// Most signatures a note may carry before it is refused.
pub const MAX_SIGNATURES: usize = 100;

/// Why a key, note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key string is malformed.
    #[error("malformed key: {0}")]
    Key(&'static str),
    /// The note is not a well-formed signed note.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature of the trusted key is on the note.
    #[error("the note has no signature by {0}")]
    Unsigned(String),
    /// The trusted key's signature does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    /// The text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    typed_key_id(name, ED25519, public_key)
}

/// `SHA-256(name || 0x0A || signature type || public key)[:4]`, big-endian.
pub(crate) fn typed_key_id(name: &str, signature_type: u8, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', signature_type]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Parses a C2SP verifier key `name+hex key id+base64(type || Ed25519
/// public key)` of signature type `signature_type`: name, key id, key.
pub(crate) fn parse_vkey(
    text: &str,
    signature_type: u8,
    wrong_type: &'static str,
) -> Result<(String, u32, VerifyingKey), NoteError> {
    let (name, rest) = text.trim().split_once('+').ok_or(NoteError::Key("expected name+id+key"))?;
    let (id_hex, b64) = rest.split_once('+').ok_or(NoteError::Key("expected name+id+key"))?;
    if !valid_name(name) {
        return Err(NoteError::Key("invalid key name"));
    }
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(NoteError::Key("the key id must be 8 lowercase hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::Key("bad key id"))?;
    let raw = B64.decode(b64).map_err(|_| NoteError::Key("bad base64"))?;
    let Some((&ty, key)) = raw.split_first().filter(|(ty, _)| **ty == signature_type) else {
        return Err(NoteError::Key(wrong_type));
    };
    let key: [u8; 32] = key.try_into().map_err(|_| NoteError::Key("an Ed25519 key has 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::Key("not a valid Ed25519 point"))?;
    if typed_key_id(name, ty, key.as_bytes()) != id {
        return Err(NoteError::Key("the key id does not match the name and key"));
    }
    Ok((name.to_owned(), id, key))
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// A note verifier key: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses the C2SP form `name+hex key id+base64(0x01 || public key)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_vkey(text, ED25519, "not an Ed25519 key")?;
        Ok(VerifierKey { name, id, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same public key under another name (the deployment key verifies
    /// each organization's checkpoints under `<origin>/<organization>`).
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("invalid key name"));
        }
        Ok(VerifierKey { name: name.to_owned(), id: key_id(name, self.key.as_bytes()), key: self.key })
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

/// A note signer: a name and an Ed25519 private key. `Debug` never shows the key.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A signer named `name` from a 32-byte Ed25519 seed (the key material;
    /// the caller supplies randomness, keeping this module free of I/O).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("invalid key name"));
        }
        let key = SigningKey::from_bytes(&seed);
        Ok(SignerKey { name: name.to_owned(), id: key_id(name, key.verifying_key().as_bytes()), key })
    }

    /// Parses the form `PRIVATE+KEY+name+hex key id+base64(0x01 || seed)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(NoteError::Key("expected PRIVATE+KEY+…"))?;
        let (name, rest) = rest.split_once('+').ok_or(NoteError::Key("expected name+id+key"))?;
        let (id_hex, b64) = rest.split_once('+').ok_or(NoteError::Key("expected name+id+key"))?;
        let raw = B64.decode(b64).map_err(|_| NoteError::Key("bad base64"))?;
        let [ED25519, seed @ ..] = raw.as_slice() else { return Err(NoteError::Key("not an Ed25519 key")) };
        let seed: [u8; 32] = seed.try_into().map_err(|_| NoteError::Key("an Ed25519 seed has 32 bytes"))?;
        let signer = SignerKey::from_seed(name, seed)?;
        if format!("{:08x}", signer.id) != id_hex {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The private key in its `PRIVATE+KEY+…` form (for the key file only).
    pub fn to_private_string(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The same private key under another name (one deployment key, one
    /// name per organization, as SPEC §6 describes).
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        SignerKey::from_seed(name, self.key.to_bytes())
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text must end with a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control characters other than newline"));
    }
    Ok(())
}

/// Signs `text` (which must end in a newline) as a C2SP note.
pub fn sign(text: &str, signer: &SignerKey) -> Result<String, NoteError> {
    check_text(text)?;
    let signature = signer.key.sign(text.as_bytes());
    let mut blob = signer.id.to_be_bytes().to_vec();
    blob.extend_from_slice(&signature.to_bytes());
    Ok(format!("{text}\n\u{2014} {} {}\n", signer.name, B64.encode(blob)))
}

/// Verifies a signed note against one trusted key and returns its text.
/// Signatures by other keys are ignored, as the specification requires.
pub fn open<'a>(note: &'a str, verifier: &VerifierKey) -> Result<&'a str, NoteError> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control characters other than newline"));
    }
    let body = note.strip_suffix('\n').ok_or(NoteError::Malformed("no final newline"))?;
    let split = body.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..split + 1], &body[split + 2..]);
    let mut seen = 0;
    let mut found = false;
    for line in sigs.split('\n') {
        seen += 1;
        if seen > MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(NoteError::Malformed("a signature line must start with an em dash"))?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed("a signature line is name and signature"))?;
        if !valid_name(name) {
            return Err(NoteError::Malformed("invalid key name in a signature"));
        }
        let blob = B64.decode(b64).map_err(|_| NoteError::Malformed("bad base64 in a signature"))?;
        if blob.len() < 4 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        if name != verifier.name || id != verifier.id {
            continue;
        }
        let signature =
            ed25519_dalek::Signature::from_slice(&blob[4..]).map_err(|_| NoteError::BadSignature(name.to_owned()))?;
        verifier.key.verify(text.as_bytes(), &signature).map_err(|_| NoteError::BadSignature(name.to_owned()))?;
        found = true;
    }
    if found { Ok(text) } else { Err(NoteError::Unsigned(verifier.name.clone())) }
}

/// The body of a C2SP `tlog-checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, e.g. `agenttrace-audit.local/org-123`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Merkle tree head.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root.as_bytes()))
    }

    /// Parses a checkpoint text (extension lines after the third are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::Checkpoint("no origin line"))?;
        let size = lines.next().ok_or(NoteError::Checkpoint("no size line"))?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(NoteError::Checkpoint("the size must be a decimal number without leading zeros"));
        }
        let size = size.parse().map_err(|_| NoteError::Checkpoint("size out of range"))?;
        let root = lines.next().ok_or(NoteError::Checkpoint("no root hash line"))?;
        let root: [u8; 32] = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Checkpoint("the root must be 32 bytes in base64"))?;
        if !text.ends_with('\n') {
            return Err(NoteError::Checkpoint("no final newline"));
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root: Hash::from_bytes(root) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The signed-note example of golang.org/x/mod/sumdb/note (note.go package
    // documentation and note_test.go): keys, text and the published note.
    const GO_SIGNER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn reproduces_and_opens_the_go_reference_note() {
        let signer = SignerKey::parse(GO_SIGNER).unwrap();
        assert_eq!(signer.verifier().to_string(), GO_VERIFIER);
        assert_eq!(signer.to_private_string(), GO_SIGNER);
        // Ed25519 is deterministic: our signature is the published one.
        assert_eq!(sign(GO_TEXT, &signer).unwrap(), GO_NOTE);
        let verifier = VerifierKey::parse(GO_VERIFIER).unwrap();
        assert_eq!(open(GO_NOTE, &verifier).unwrap(), GO_TEXT);
    }

    #[test]
    fn every_malformed_or_wrongly_signed_note_is_refused() {
        let verifier = VerifierKey::parse(GO_VERIFIER).unwrap();
        let other = SignerKey::from_seed("PeterNeumann", [7; 32]).unwrap();
        let bad: Vec<String> = vec![
            GO_NOTE.replace("cryptography", "cryptographY"),
            GO_NOTE.replace("x08go", "x08gp"),
            GO_NOTE.trim_end().to_owned(),
            GO_NOTE.replace("\n\n", "\n"),
            GO_NOTE.replace('\u{2014}', "-"),
            GO_NOTE.replace("PeterNeumann x08", "PeterNeumann  x08"),
            GO_NOTE.replace(
                "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
                "x08go/ZJ",
            ),
            GO_NOTE.replace("problem,\n", "problem,\r\n"),
            sign(GO_TEXT, &other).unwrap(),
            format!("{GO_TEXT}\n"),
            String::new(),
        ];
        for (i, note) in bad.iter().enumerate() {
            assert!(open(note, &verifier).is_err(), "case {i} opened: {note:?}");
        }
        // Another key's signature beside ours is ignored, not an error.
        let both = format!(
            "{}{}",
            GO_NOTE,
            sign(GO_TEXT, &SignerKey::from_seed("someone.else", [9; 32]).unwrap())
                .unwrap()
                .split("\n\n")
                .nth(1)
                .unwrap()
        );
        assert_eq!(open(&both, &verifier).unwrap(), GO_TEXT);
        // Keys: id mismatch, wrong length, bad names.
        assert!(VerifierKey::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq").is_err());
        assert!(VerifierKey::parse("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(SignerKey::from_seed("a+b", [1; 32]).is_err());
        assert!(sign("no newline", &other).is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_sign_per_organization() {
        let cp = Checkpoint { origin: "agenttrace-audit.local/org-123".into(), size: 8, root: Hash::of(b"root") };
        let text = cp.to_text();
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        let deployment = SignerKey::from_seed("agenttrace-audit.local", [3; 32]).unwrap();
        let org_signer = deployment.renamed(&cp.origin).unwrap();
        let note = sign(&text, &org_signer).unwrap();
        let verifier = VerifierKey::parse(&org_signer.verifier().to_string()).unwrap();
        assert_eq!(Checkpoint::parse(open(&note, &verifier).unwrap()).unwrap(), cp);
        for bad in ["", "o\n", "o\n01\nAAAA\n", "o\n1\nAAAA\n", "o\nx\n"] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
