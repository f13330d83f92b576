//! SHA-256 digests as a type: constant-time equality, lowercase hex display.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A SHA-256 digest: an event hash, a previous-hash link or a fingerprint.
#[derive(Clone, Copy)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The all-zero value that the first event of every log links to.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Hash(Sha256::digest(bytes).into())
    }

    /// SHA-256 of several byte slices, as if concatenated.
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }

    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 lowercase hex digits (the only form the log stores).
    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        // Hot in verification and exports (two or three hashes per event).
        // Without branches on the digits: hashes are random, so a branch
        // per digit ("0-9 or a-f?") is mispredicted a third of the time.
        // A table maps each byte to its value, or to 0x10 when it is not a
        // lowercase hex digit; the bits of every lookup, ORed, say at the
        // end whether any digit was bad.
        const VALUE: [u8; 256] = {
            let mut table = [0x10u8; 256];
            let mut i = 0;
            while i < 10 {
                table[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                table[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            table
        };
        let bytes: &[u8; 64] = text.as_bytes().try_into().map_err(|_| HashParseError)?;
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (high, low) = (VALUE[usize::from(pair[0])], VALUE[usize::from(pair[1])]);
            bad |= high | low;
            *o = (high << 4) | low;
        }
        if bad & 0x10 != 0 {
            return Err(HashParseError);
        }
        Ok(Hash(out))
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut out = Vec::with_capacity(64);
        self.write_hex(&mut out);
        String::from_utf8(out).expect("hex digits are ASCII")
    }

    /// Appends the 64 lowercase hex digits to `out` (hot: every sealed
    /// line and every exported row carries two hashes).
    pub fn write_hex(&self, out: &mut Vec<u8>) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, b) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        out.extend_from_slice(&hex);
    }
}

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 lowercase hexadecimal digits")]
pub struct HashParseError;

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Hash {}

impl std::hash::Hash for Hash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 appendix B.1 ("abc").
        assert_eq!(Hash::of(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Hash::of_parts(&[b"a", b"bc"]), Hash::of(b"abc"));
    }

    #[test]
    fn every_byte_that_is_not_a_lowercase_hex_digit_is_refused_wherever_it_stands() {
        let good = Hash::of(b"abc").to_hex();
        for byte in 0u8..=255 {
            let is_digit = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            for at in [0, 1, 30, 63] {
                let mut text = good.clone().into_bytes();
                text[at] = byte;
                let Ok(text) = String::from_utf8(text) else { continue };
                assert_eq!(Hash::from_hex(&text).is_ok(), is_digit, "byte {byte:#04x} at {at}");
                if is_digit {
                    assert_eq!(Hash::from_hex(&text).unwrap().to_hex(), text, "byte {byte:#04x} at {at}");
                }
            }
        }
    }

    #[test]
    fn hex_round_trip_and_rejects_uppercase() {
        let h = Hash::of(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(Hash::from_hex(&h.to_hex().to_uppercase()).is_err());
        assert!(Hash::from_hex("00").is_err());
        assert_eq!(Hash::GENESIS.to_hex(), "0".repeat(64));
    }
}
