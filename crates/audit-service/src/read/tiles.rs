//! Checking (and rebuilding) a log's stored tiles against its events: every
//! full tile the log's events make, and the partial tiles of its newest
//! checkpoint, must be stored with exactly that content.
//!
//! Tiles are derived data — readers check them against signed checkpoints —
//! but a tile that differs from the events makes every proof through it
//! fail, so `agenttrace-audit tiles check` finds such tiles and `tiles
//! rebuild` writes the missing ones (a log written before tiles existed,
//! a crash between a tile's write and its checkpoint's).

use audit_core::Hash;
use audit_core::stored::claimed_hash;
use audit_core::tiles::{TileBuilder, TileId};
use audit_storage::{LogStore, StorageError, StorageErrorKind};

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileCheck {
    /// The tree the tiles were checked for (the newest checkpoint's size,
    /// or the whole log when it has no checkpoint yet).
    pub tree_size: u64,
    /// Tiles compared with the events.
    pub checked: u64,
    /// Tiles that were not stored (written when rebuilding).
    pub missing: Vec<TileId>,
    /// Tiles stored with other content than the events make.
    pub mismatched: Vec<TileId>,
    /// Tiles written (rebuild only).
    pub written: u64,
    /// The checkpoint's root differs from the events' (run verify).
    pub root_mismatch: bool,
}

impl TileCheck {
    /// True when every tile is stored and right.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && !self.root_mismatch
    }
}

fn unexpected(why: String) -> StorageError {
    StorageError::new(StorageErrorKind::Unexpected, why)
}

/// Compares `organization_id`'s stored tiles with its events; with
/// `rebuild`, writes the missing ones (never replaces a stored tile).
pub async fn check_tiles(
    store: &dyn LogStore,
    organization_id: &str,
    rebuild: bool,
) -> Result<TileCheck, StorageError> {
    let newest = store.latest_checkpoint(organization_id).await?;
    let checkpoint = match &newest {
        Some((_, note)) => Some(
            crate::read::stored::read_checkpoint(note, None)
                .map(|(cp, _)| cp)
                .map_err(|_| unexpected(format!("the newest checkpoint of {organization_id} is not readable")))?,
        ),
        None => None,
    };
    let limit = checkpoint.as_ref().map_or(u64::MAX, |c| c.size);
    let mut tree = TileBuilder::new();
    let mut report = TileCheck::default();
    let mut pending: Vec<(TileId, Vec<u8>)> = Vec::new();
    // Events retention removed: their hashes are kept beside the log.
    let cut = match store.pruned(organization_id).await? {
        Some(p) => {
            for h in p.hashes.chunks_exact(32).take(limit as usize) {
                tree.push(&Hash::from_bytes(h.try_into().expect("32 bytes")));
            }
            p.first_kept
        }
        None => 0,
    };
    let chunks = store.chunks(organization_id).await?;
    let mut bytes = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if tree.size() >= limit {
            break;
        }
        if chunks.get(i + 1).is_some_and(|next| next.first_sequence <= cut) {
            continue;
        }
        store.read_chunk_into(organization_id, chunk, &mut bytes).await?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |e| e + 1);
        let skip = tree.size().saturating_sub(chunk.first_sequence) as usize;
        for line in audit_core::stored::split_lines(&bytes[..complete]).filter(|l| !l.is_empty()).skip(skip) {
            if tree.size() >= limit {
                break;
            }
            let hash =
                claimed_hash(line).ok_or_else(|| unexpected(format!("{}: a line without a hash", chunk.name)))?;
            tree.push(&hash);
        }
        pending.extend(tree.take_full());
        compare(store, organization_id, &mut pending, &mut report, rebuild).await?;
    }
    if let Some(cp) = &checkpoint {
        if tree.size() < cp.size {
            return Err(unexpected(format!(
                "the log of {organization_id} holds {} events, its newest checkpoint {}: run verify",
                tree.size(),
                cp.size
            )));
        }
        report.root_mismatch = tree.root() != cp.root;
    }
    report.tree_size = tree.size();
    pending.extend(tree.take_full());
    if checkpoint.is_some() {
        pending.extend(tree.partials());
    }
    compare(store, organization_id, &mut pending, &mut report, rebuild).await?;
    Ok(report)
}

async fn compare(
    store: &dyn LogStore,
    org: &str,
    pending: &mut Vec<(TileId, Vec<u8>)>,
    report: &mut TileCheck,
    rebuild: bool,
) -> Result<(), StorageError> {
    let mut absent = Vec::new();
    for (id, content) in pending.drain(..) {
        report.checked += 1;
        match store.tile(org, &id).await? {
            Some(stored) if stored == content => {}
            Some(_) => report.mismatched.push(id),
            // A partial tile superseded by its full one is served from it.
            None if !id.is_full() && store.tile(org, &id.as_full()).await?.is_some() => {}
            None => {
                report.missing.push(id);
                absent.push((id, content));
            }
        }
    }
    if rebuild && !absent.is_empty() {
        store.put_tiles(org, &absent).await?;
        report.written += absent.len() as u64;
    }
    Ok(())
}

/// Holds a whole-log verification report to the stored tiles: a tile that
/// differs from the events is an error (`tile_mismatch`: every proof
/// through it fails), missing tiles a `tiles_missing` warning (a log from
/// before tiles: `tiles rebuild`); a log that cannot be read for it is a
/// `tiles_unchecked` warning (the report already says where it is broken).
pub async fn hold_tiles(
    store: &dyn LogStore,
    organization_id: &str,
    report: &mut audit_core::verify::VerificationReport,
) {
    use audit_core::verify::{Finding, FindingKind, Notice};
    match check_tiles(store, organization_id, false).await {
        Ok(check) => {
            for tile in &check.mismatched {
                report.valid = false;
                report.errors.push(Finding {
                    event_id: None,
                    sequence: None,
                    kind: FindingKind::TileMismatch,
                    detail: format!(
                        "{tile} differs from the tile the events make (tree of {}): proofs through it fail; run tiles check",
                        check.tree_size
                    ),
                });
            }
            if let Some(first) = check.missing.first() {
                report.warnings.push(Notice {
                    kind: "tiles_missing",
                    detail: format!(
                        "{} of {} tiles are not stored (first: {first}); run tiles rebuild",
                        check.missing.len(),
                        check.checked
                    ),
                });
            }
        }
        Err(e) => report.warnings.push(Notice { kind: "tiles_unchecked", detail: format!("tiles not compared: {e}") }),
    }
}
