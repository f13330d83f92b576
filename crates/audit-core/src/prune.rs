//! Prune records (SPEC §15): what retention removed from the start of a
//! log, signed, so that the rest still verifies — against the record
//! instead of from the first event — and the Merkle tree still spans the
//! whole history (the record binds the kept hashes of every removed event).
//!
//! The record is a C2SP signed note under the log's checkpoint key
//! (`<origin>/<organization_id>`). Its text, one `key value` per line after
//! the origin line (the second line is not a number, so no checkpoint
//! parser takes it for one):
//!
//! ```text
//! agenttrace-audit.local/org-123
//! prune v1
//! first_kept 1048576
//! root <base64 Merkle root of the first first_kept events>
//! last_hash <hex hash of event first_kept - 1>
//! last_timestamp <its timestamp, RFC 3339>
//! hashes <hex SHA-256 of the removed events' hashes, 32 raw bytes each, in order>
//! pruned_at <RFC 3339>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::hash::Hash;
use crate::merkle::{Frontier, leaf_hash};
use crate::timestamp::Timestamp;

/// The body of a prune record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRecord {
    /// The log's origin line, `<origin>/<organization_id>`.
    pub origin: String,
    /// Events `0..first_kept` were removed; the log now starts at `first_kept`.
    pub first_kept: u64,
    /// The Merkle root of the tree of the first `first_kept` events.
    pub root: Hash,
    /// The hash of event `first_kept - 1` (what event `first_kept` links to).
    pub last_hash: Hash,
    /// Its timestamp (the next may not be earlier).
    pub last_timestamp: Timestamp,
    /// SHA-256 of the removed events' hashes (32 raw bytes each, in order).
    pub hashes: Hash,
    /// When the prune happened.
    pub pruned_at: Timestamp,
}

/// Why a prune record, or the hashes it binds, cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PruneRecordError {
    /// The text is not a prune record.
    #[error("not a prune record: {0}")]
    Malformed(String),
    /// The note's signature does not open with the log's key.
    #[error("{0}")]
    Signature(String),
    /// The kept hashes are not the ones the record binds.
    #[error("the kept hashes of the removed events do not match the prune record: {0}")]
    Hashes(String),
}

impl PruneRecord {
    /// The note text (to sign with [`crate::note::sign`]).
    pub fn to_text(&self) -> String {
        format!(
            "{}\nprune v1\nfirst_kept {}\nroot {}\nlast_hash {}\nlast_timestamp {}\nhashes {}\npruned_at {}\n",
            self.origin,
            self.first_kept,
            B64.encode(self.root.as_bytes()),
            self.last_hash.to_hex(),
            self.last_timestamp,
            self.hashes.to_hex(),
            self.pruned_at
        )
    }

    /// Parses a record's text (as [`crate::note::open`] returns it).
    pub fn parse(text: &str) -> Result<PruneRecord, PruneRecordError> {
        let bad = |why: &str| PruneRecordError::Malformed(why.to_owned());
        let mut lines = text.strip_suffix('\n').ok_or_else(|| bad("no final newline"))?.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line"))?.to_owned();
        if lines.next() != Some("prune v1") {
            return Err(bad("the second line must be `prune v1`"));
        }
        let mut field = |name: &str| -> Result<&str, PruneRecordError> {
            let line = lines.next().ok_or_else(|| bad(&format!("no {name} line")))?;
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or_else(|| bad(&format!("expected the {name} line, found {line:?}")))
        };
        let first_kept = field("first_kept")?.parse().map_err(|_| bad("first_kept is not a number"))?;
        let root = B64
            .decode(field("root")?)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Hash::from_bytes)
            .ok_or_else(|| bad("root is not a base64 SHA-256 hash"))?;
        let hex =
            |name: &str, v: &str| Hash::from_hex(v).map_err(|_| bad(&format!("{name} is not a hex SHA-256 hash")));
        let last_hash = hex("last_hash", field("last_hash")?)?;
        let last_timestamp =
            Timestamp::parse_rfc3339(field("last_timestamp")?).map_err(|_| bad("last_timestamp is not RFC 3339"))?;
        let hashes = hex("hashes", field("hashes")?)?;
        let pruned_at = Timestamp::parse_rfc3339(field("pruned_at")?).map_err(|_| bad("pruned_at is not RFC 3339"))?;
        if lines.next().is_some() {
            return Err(bad("unexpected lines after pruned_at"));
        }
        if first_kept == 0 {
            return Err(bad("first_kept must be at least 1"));
        }
        Ok(PruneRecord { origin, first_kept, root, last_hash, last_timestamp, hashes, pruned_at })
    }

    /// Opens a stored prune record: a note signed by `key`, holding a record.
    pub fn open(note: &[u8], key: &crate::note::VerifierKey) -> Result<PruneRecord, PruneRecordError> {
        let note = std::str::from_utf8(note).map_err(|_| PruneRecordError::Malformed("not UTF-8".into()))?;
        let text = crate::note::open(note, key).map_err(|e| PruneRecordError::Signature(e.to_string()))?;
        PruneRecord::parse(text)
    }

    /// Checks the kept hashes of the removed events (`first_kept` × 32 raw
    /// bytes) against the record and returns their Merkle tree.
    pub fn check_hashes(&self, hashes: &[u8]) -> Result<Frontier, PruneRecordError> {
        let count = hashes.len() / 32;
        if !hashes.len().is_multiple_of(32) || count as u64 != self.first_kept {
            return Err(PruneRecordError::Hashes(format!(
                "{} bytes kept, the record covers {} events ({} bytes)",
                hashes.len(),
                self.first_kept,
                self.first_kept.saturating_mul(32)
            )));
        }
        if Hash::of(hashes) != self.hashes {
            return Err(PruneRecordError::Hashes("their SHA-256 differs from the record's".into()));
        }
        let mut tree = Frontier::new();
        for h in hashes.chunks_exact(32) {
            tree.push(leaf_hash(h));
        }
        if tree.root() != self.root {
            return Err(PruneRecordError::Hashes("their Merkle root differs from the record's".into()));
        }
        if hashes[hashes.len() - 32..] != *self.last_hash.as_bytes() {
            return Err(PruneRecordError::Hashes("the last one is not the record's last_hash".into()));
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hashes: &[u8]) -> PruneRecord {
        let mut tree = Frontier::new();
        for h in hashes.chunks_exact(32) {
            tree.push(leaf_hash(h));
        }
        PruneRecord {
            origin: "audit.test/org-1".into(),
            first_kept: (hashes.len() / 32) as u64,
            root: tree.root(),
            last_hash: Hash::from_bytes(hashes[hashes.len() - 32..].try_into().unwrap()),
            last_timestamp: Timestamp::parse_rfc3339("2019-01-01T00:00:00Z").unwrap(),
            hashes: Hash::of(hashes),
            pruned_at: Timestamp::parse_rfc3339("2026-12-06T00:00:00Z").unwrap(),
        }
    }

    #[test]
    fn a_record_round_trips_through_its_text_and_checks_its_hashes() {
        let hashes: Vec<u8> = (0..5u8).flat_map(|n| [n; 32]).collect();
        let r = record(&hashes);
        let text = r.to_text();
        assert!(text.starts_with("audit.test/org-1\nprune v1\nfirst_kept 5\n"), "{text}");
        assert_eq!(PruneRecord::parse(&text).unwrap(), r);
        assert_eq!(r.check_hashes(&hashes).unwrap().size(), 5);
        // No checkpoint parser takes it for a checkpoint.
        assert!(crate::note::Checkpoint::parse(&text).is_err());
    }

    #[test]
    fn altered_hashes_or_text_are_refused() {
        let hashes: Vec<u8> = (0..4u8).flat_map(|n| [n; 32]).collect();
        let r = record(&hashes);
        let mut changed = hashes.clone();
        changed[40] ^= 1;
        assert!(matches!(r.check_hashes(&changed), Err(PruneRecordError::Hashes(_))));
        assert!(matches!(r.check_hashes(&hashes[32..]), Err(PruneRecordError::Hashes(_))));
        let text = r.to_text().replace("first_kept 4", "first_kept x");
        assert!(PruneRecord::parse(&text).unwrap_err().to_string().contains("first_kept"));
        assert!(PruneRecord::parse(&r.to_text().replace("prune v1", "prune v2")).is_err());
    }
}
