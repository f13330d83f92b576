//! C2SP `tlog-cosignature` v1 (Ed25519, signature type `0x04`): a
//! witness's timestamped statement that a checkpoint is the largest
//! consistent tree head it has seen for the log (c2sp.org/tlog-cosignature).
//!
//! A cosignature is one more signature line on the checkpoint note,
//! `— <witness name> base64(key id || u64 timestamp || Ed25519 signature)`,
//! over the message `cosignature/v1\ntime <timestamp>\n<checkpoint text>`.
//! The key id is `SHA-256(name || 0x0A || 0x04 || public key)[:4]`, so a
//! note verifier of the log's own key (type `0x01`) ignores cosignatures and
//! a cosignature verifier ignores the log's signature.

use crate::note::{NoteError, parse_vkey, typed_key_id, valid_name};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// The signature-type byte of Ed25519 cosignatures v1.
pub const COSIGNATURE_V1: u8 = 0x04;

/// `SHA-256(name || 0x0A || 0x04 || public key)[:4]`, big-endian.
pub fn cosigner_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    typed_key_id(name, COSIGNATURE_V1, public_key)
}

/// The message a v1 cosignature signs.
fn message(checkpoint_text: &str, time: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{checkpoint_text}").into_bytes()
}

/// A witness's public key: name and Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignerVerifier {
    /// Parses the vkey form `name+hex key id+base64(0x04 || public key)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_vkey(text, COSIGNATURE_V1, "not a cosignature/v1 (0x04) key")?;
        Ok(CosignerVerifier { name, id, key })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, as in its signature lines.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The timestamp of this witness's valid cosignature among the
    /// signature lines of `note` (a signed checkpoint), if there is one.
    /// Lines of other keys are ignored.
    pub fn cosigned_at(&self, note: &str) -> Option<u64> {
        let (text, lines) = split_note(note)?;
        lines.iter().find_map(|line| self.check_line(text, line))
    }

    /// The timestamp of `line` if it is this witness's valid cosignature of
    /// `checkpoint_text`.
    pub fn check_line(&self, checkpoint_text: &str, line: &str) -> Option<u64> {
        let (name, b64) = line.strip_prefix("\u{2014} ")?.split_once(' ')?;
        if name != self.name {
            return None;
        }
        let blob = B64.decode(b64.trim_end()).ok()?;
        if blob.len() != 4 + 8 + 64 || u32::from_be_bytes(blob[..4].try_into().ok()?) != self.id {
            return None;
        }
        let time = u64::from_be_bytes(blob[4..12].try_into().ok()?);
        if time > i64::MAX as u64 {
            return None;
        }
        let signature = ed25519_dalek::Signature::from_slice(&blob[12..]).ok()?;
        self.key.verify(&message(checkpoint_text, time), &signature).ok()?;
        Some(time)
    }
}

impl std::fmt::Display for CosignerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

/// A witness's private key. `Debug` never shows the key.
#[derive(Clone)]
pub struct CosignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignerKey").field("name", &self.name).finish_non_exhaustive()
    }
}

impl CosignerKey {
    /// A cosigner named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("invalid key name"));
        }
        let key = SigningKey::from_bytes(&seed);
        Ok(CosignerKey { name: name.to_owned(), id: cosigner_key_id(name, key.verifying_key().as_bytes()), key })
    }

    /// Parses `PRIVATE+KEY+name+hex key id+base64(0x04 || seed)`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(NoteError::Key("expected PRIVATE+KEY+…"))?;
        let (name, rest) = rest.split_once('+').ok_or(NoteError::Key("expected name+id+key"))?;
        let (_, b64) = rest.split_once('+').ok_or(NoteError::Key("expected name+id+key"))?;
        let raw = B64.decode(b64).map_err(|_| NoteError::Key("bad base64"))?;
        let [COSIGNATURE_V1, seed @ ..] = raw.as_slice() else {
            return Err(NoteError::Key("not a cosignature/v1 (0x04) key"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| NoteError::Key("an Ed25519 seed has 32 bytes"))?;
        let key = CosignerKey::from_seed(name, seed)?;
        if !rest.starts_with(&format!("{:08x}+", key.id)) {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(key)
    }

    /// The private form [`CosignerKey::parse`] reads.
    pub fn to_private_string(&self) -> String {
        let mut raw = vec![COSIGNATURE_V1];
        raw.extend_from_slice(&self.key.to_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }

    /// The public key.
    pub fn verifier(&self) -> CosignerVerifier {
        CosignerVerifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The signature line (ending in a newline) cosigning `checkpoint_text`
    /// (the note's text, ending in a newline) at `time` (POSIX seconds).
    pub fn cosign(&self, checkpoint_text: &str, time: u64) -> String {
        let signature = self.key.sign(&message(checkpoint_text, time));
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// The witnesses among `witnesses` with a valid cosignature on `note`
/// (each counted once, whatever lines repeat).
pub fn cosigners<'a>(note: &str, witnesses: &'a [CosignerVerifier]) -> Vec<&'a CosignerVerifier> {
    witnesses.iter().filter(|w| w.cosigned_at(note).is_some()).collect()
}

/// Checks `note` against a witness quorum: `Err` says how many of the
/// `quorum` required cosignatures are valid.
pub fn check_quorum(note: &str, witnesses: &[CosignerVerifier], quorum: usize) -> Result<(), String> {
    let valid = cosigners(note, witnesses);
    if valid.len() >= quorum {
        return Ok(());
    }
    let names: Vec<&str> = valid.iter().map(|w| w.name()).collect();
    Err(format!(
        "the checkpoint has {} valid witness cosignature(s) ({}), the quorum is {quorum} of {} witness(es)",
        valid.len(),
        if names.is_empty() { "none".to_owned() } else { names.join(", ") },
        witnesses.len()
    ))
}

/// A signed note's text (with its final newline) and its signature lines.
pub fn split_note(note: &str) -> Option<(&str, Vec<&str>)> {
    let body = note.strip_suffix('\n')?;
    let split = body.find("\n\n")?;
    Some((&note[..split + 1], body[split + 2..].split('\n').collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const TEXT: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn a_cosignature_is_the_spec_message_signed_with_the_spec_key_id() {
        let witness = CosignerKey::from_seed("witness.example/w1", [5; 32]).unwrap();
        let line = witness.cosign(TEXT, 1_679_315_147);
        // Taken apart by hand, per c2sp.org/tlog-cosignature.
        let b64 = line.trim_end().strip_prefix("\u{2014} witness.example/w1 ").unwrap();
        let blob = B64.decode(b64).unwrap();
        assert_eq!(blob.len(), 76, "key id, u64 timestamp, Ed25519 signature");
        let public = witness.key.verifying_key();
        let mut h = Sha256::new();
        h.update(b"witness.example/w1\n\x04");
        h.update(public.as_bytes());
        assert_eq!(blob[..4], h.finalize()[..4]);
        assert_eq!(blob[4..12], 1_679_315_147u64.to_be_bytes());
        let signed = format!("cosignature/v1\ntime 1679315147\n{TEXT}");
        public.verify(signed.as_bytes(), &ed25519_dalek::Signature::from_slice(&blob[12..]).unwrap()).unwrap();
        assert_eq!(witness.verifier().check_line(TEXT, line.trim_end()), Some(1_679_315_147));
    }

    #[test]
    fn keys_round_trip_and_other_lines_are_ignored() {
        let witness = CosignerKey::from_seed("w.example", [6; 32]).unwrap();
        let vkey = witness.verifier().to_string();
        assert_eq!(CosignerVerifier::parse(&vkey).unwrap(), witness.verifier());
        assert_eq!(CosignerKey::parse(&witness.to_private_string()).unwrap().verifier(), witness.verifier());
        // A log's own note key (type 0x01) is not a cosigner key.
        let log = crate::note::SignerKey::from_seed("example.com/behind-the-sofa", [7; 32]).unwrap();
        assert!(CosignerVerifier::parse(&log.verifier().to_string()).is_err());
        let note = crate::note::sign(TEXT, &log).unwrap();
        assert_eq!(witness.verifier().cosigned_at(&note), None);
        let cosigned = format!("{note}{}", witness.cosign(TEXT, 42));
        assert_eq!(witness.verifier().cosigned_at(&cosigned), Some(42));
        // The log's verifier still opens the cosigned note.
        assert_eq!(crate::note::open(&cosigned, &log.verifier()).unwrap(), TEXT);
        // Another checkpoint, another time, another witness: no.
        let other = TEXT.replace("20852163", "20852164");
        assert_eq!(witness.verifier().check_line(&other, witness.cosign(TEXT, 42).trim_end()), None);
        let forged = witness.cosign(TEXT, 42).replace("w.example", "x.example");
        assert_eq!(witness.verifier().check_line(TEXT, forged.trim_end()), None);
        let stranger = CosignerKey::from_seed("w.example", [8; 32]).unwrap();
        assert_eq!(witness.verifier().check_line(TEXT, stranger.cosign(TEXT, 42).trim_end()), None);
    }
}
