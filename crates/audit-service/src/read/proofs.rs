//! Inclusion and consistency proofs (RFC 9162) over a stored log, as JSON
//! with lowercase hex hashes:
//!
//! ```text
//! inclusion:   {"leaf_index", "tree_size", "leaf_hash", "proof": [...], "root"}
//! consistency: {"from", "to", "proof": [...], "from_root", "to_root"}
//! ```
//!
//! The leaf input is the event's `hash` (32 raw bytes), so `leaf_hash` is
//! `SHA-256(0x00 || event hash)`. Proofs are computed from the tree's
//! stored tiles (`audit_core::tiles`): O(log n) tiles read, whatever the
//! log's size. A tree whose tiles are not all stored (a size no checkpoint
//! signed, a log from before tiles) is proved from the leaf hashes read
//! back from the log instead: O(n) to read and hash.

use audit_core::Hash;
use audit_core::json::{Object, Value};
use audit_core::merkle;
use audit_core::stored::claimed_hash;
use audit_core::tiles::{TileId, TreeTiles};
use audit_storage::{LogStore, StorageError};

/// Why a proof cannot be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofRequestError {
    /// Sizes or index out of range (the caller's mistake).
    #[error("{0}")]
    OutOfRange(String),
    /// The event was removed under retention: its hash is kept (so trees
    /// that contain it still have their roots), its content is not.
    #[error("{0}")]
    Pruned(String),
    /// Storage failed or holds an unreadable line.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The leaf hashes of the first `size` events (the stored hashes are read
/// without rechecking the events: `verify` does that). Each chunk's lines
/// are hashed on a blocking thread while the next chunk is read.
pub(crate) async fn leaves(store: &dyn LogStore, org: &str, size: u64) -> Result<Vec<Hash>, ProofRequestError> {
    type Hashed = tokio::task::JoinHandle<Result<(Vec<Hash>, Vec<u8>), StorageError>>;
    let mut out: Vec<Hash> = Vec::with_capacity(size.min(1 << 24) as usize);
    // Events retention removed: their hashes are kept beside the log.
    let cut = match store.pruned(org).await? {
        Some(p) => {
            out.extend(p.hashes.chunks_exact(32).take(size as usize).map(merkle::leaf_hash));
            p.first_kept
        }
        None => 0,
    };
    let mut spare = Vec::new();
    let mut pending: Option<Hashed> = None;
    let finish = |pending: Hashed| async move {
        pending
            .await
            .map_err(|e| StorageError::new(audit_storage::StorageErrorKind::Io, format!("hashing task failed: {e}")))?
    };
    let chunks = store.chunks(org).await?;
    for (i, chunk) in chunks.iter().cloned().enumerate() {
        if out.len() as u64 >= size {
            break;
        }
        if chunks.get(i + 1).is_some_and(|next| next.first_sequence <= cut) {
            continue; // covered by the prune record, not removed yet
        }
        let mut bytes = std::mem::take(&mut spare);
        store.read_chunk_into(org, &chunk, &mut bytes).await?;
        if let Some(p) = pending.take() {
            let (hashes, buffer) = finish(p).await?;
            out.extend(hashes);
            spare = buffer;
        }
        pending = Some(tokio::task::spawn_blocking(move || {
            let hashes = chunk_leaves(&bytes).ok_or_else(|| {
                StorageError::new(
                    audit_storage::StorageErrorKind::Unexpected,
                    format!("{}: a line without a hash; run verify", chunk.name),
                )
            })?;
            Ok((hashes, bytes))
        }));
    }
    if let Some(p) = pending.take() {
        out.extend(finish(p).await?.0);
    }
    if (out.len() as u64) < size {
        return Err(ProofRequestError::OutOfRange(format!(
            "the log of {org} holds {} events, fewer than tree_size {size}",
            out.len()
        )));
    }
    out.truncate(size as usize);
    Ok(out)
}

/// The leaf hashes of a chunk's complete lines (`None`: a line has no hash).
fn chunk_leaves(bytes: &[u8]) -> Option<Vec<Hash>> {
    let mut out = Vec::with_capacity(bytes.len() / 512);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes) {
        let line = &bytes[start..end];
        start = end + 1;
        if !line.is_empty() {
            out.push(merkle::leaf_hash(claimed_hash(line)?.as_bytes()));
        }
    }
    Some(out)
}

fn hashes(list: &[Hash]) -> Value {
    Value::Array(list.iter().map(|h| Value::String(h.to_hex())).collect())
}

/// An inclusion proof (RFC 9162).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's sequence.
    pub leaf_index: u64,
    /// The tree the proof is in.
    pub tree_size: u64,
    /// `SHA-256(0x00 || event hash)`.
    pub leaf_hash: Hash,
    /// The audit path.
    pub proof: Vec<Hash>,
    /// The root of the tree of `tree_size` events.
    pub root: Hash,
}

impl InclusionProof {
    /// `{"leaf_index","tree_size","leaf_hash","proof":[...],"root"}`, hashes in hex.
    pub fn to_value(&self) -> Value {
        let mut o = Object::new();
        o.insert("leaf_index", Value::Number(self.leaf_index as f64));
        o.insert("tree_size", Value::Number(self.tree_size as f64));
        o.insert("leaf_hash", Value::String(self.leaf_hash.to_hex()));
        o.insert("proof", hashes(&self.proof));
        o.insert("root", Value::String(self.root.to_hex()));
        Value::Object(o)
    }
}

/// A consistency proof (RFC 9162).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The smaller tree size.
    pub from: u64,
    /// The larger tree size.
    pub to: u64,
    /// The proof's hashes.
    pub proof: Vec<Hash>,
    /// The root of the tree of `from` events.
    pub from_root: Hash,
    /// The root of the tree of `to` events.
    pub to_root: Hash,
}

impl ConsistencyProof {
    /// `{"from","to","proof":[...],"from_root","to_root"}`, hashes in hex.
    pub fn to_value(&self) -> Value {
        let mut o = Object::new();
        o.insert("from", Value::Number(self.from as f64));
        o.insert("to", Value::Number(self.to as f64));
        o.insert("proof", hashes(&self.proof));
        o.insert("from_root", Value::String(self.from_root.to_hex()));
        o.insert("to_root", Value::String(self.to_root.to_hex()));
        Value::Object(o)
    }
}

/// The inclusion proof of the event at `sequence` in the tree of `tree_size`.
pub async fn inclusion_proof(
    store: &dyn LogStore,
    org: &str,
    sequence: u64,
    tree_size: u64,
) -> Result<InclusionProof, ProofRequestError> {
    if sequence >= tree_size {
        return Err(ProofRequestError::OutOfRange(format!(
            "sequence {sequence} is not in a tree of {tree_size} events (sequences 0..{tree_size})"
        )));
    }
    let cut = store.prune_cut(org).await?;
    if sequence < cut {
        return Err(ProofRequestError::Pruned(format!(
            "event {sequence} of {org} was removed under retention (the log now starts at sequence {cut}): no proof of an event that is no longer stored"
        )));
    }
    if let Some(tiles) = tree_tiles(store, org, tree_size, |t| t.needed_for_inclusion(sequence)).await?
        && let (Ok(proof), Ok(leaf_hash), Ok(root)) =
            (tiles.inclusion_proof(sequence), tiles.leaf(sequence), tiles.root_at(tree_size))
    {
        return Ok(InclusionProof { leaf_index: sequence, tree_size, leaf_hash, proof, root });
    }
    let leaves = leaves(store, org, tree_size).await?;
    let tree = merkle::ProofTree::new(&leaves);
    let proof = tree.inclusion_proof(sequence as usize).map_err(|e| ProofRequestError::OutOfRange(e.to_string()))?;
    Ok(InclusionProof {
        leaf_index: sequence,
        tree_size,
        leaf_hash: leaves[sequence as usize],
        proof,
        root: tree.root(),
    })
}

/// The consistency proof between the trees of `from` and `to` events.
pub async fn consistency_proof(
    store: &dyn LogStore,
    org: &str,
    from: u64,
    to: u64,
) -> Result<ConsistencyProof, ProofRequestError> {
    if from > to {
        return Err(ProofRequestError::OutOfRange(format!("from ({from}) is larger than to ({to})")));
    }
    if let Some(tiles) = tree_tiles(store, org, to, |t| t.needed_for_consistency(from)).await?
        && let (Ok(proof), Ok(from_root), Ok(to_root)) =
            (tiles.consistency_proof(from), tiles.root_at(from), tiles.root_at(to))
    {
        return Ok(ConsistencyProof { from, to, proof, from_root, to_root });
    }
    let leaves = leaves(store, org, to).await?;
    let tree = merkle::ProofTree::new(&leaves);
    let proof = tree.consistency_proof(from as usize).map_err(|e| ProofRequestError::OutOfRange(e.to_string()))?;
    Ok(ConsistencyProof { from, to, proof, from_root: tree.root_at(from as usize), to_root: tree.root() })
}

/// The stored tiles of the tree of `size` that `needed` lists, read at
/// once; `None` when one is not stored (the caller proves from the log).
pub(crate) async fn tree_tiles(
    store: &dyn LogStore,
    org: &str,
    size: u64,
    needed: impl FnOnce(&TreeTiles) -> Result<Vec<TileId>, audit_core::tiles::TileError>,
) -> Result<Option<TreeTiles>, ProofRequestError> {
    let mut tiles = TreeTiles::new(size);
    let Ok(mut ids) = needed(&tiles) else { return Ok(None) };
    // Tiles are not trusted on their own: when the tree is the newest
    // checkpoint's, the tiles read (and those above them) must hash to the
    // root it signs — a tile altered in storage would otherwise give proofs
    // that fail for everyone. (The signature is checked by whoever checks
    // the proof; here the checkpoint only tells a stored tile from the tree.)
    let signed = store.latest_checkpoint(org).await?.and_then(|(n, note)| {
        let (cp, _) = crate::read::stored::read_checkpoint(&note, None).ok()?;
        (n == size && cp.size == size).then_some(cp)
    });
    if signed.is_some() {
        ids = tiles.with_ancestors(ids);
        if let Ok(more) = tiles.needed_for_consistency(size) {
            ids.extend(more);
            ids.sort_unstable();
            ids.dedup();
        }
    }
    let reads = futures_util::future::try_join_all(ids.iter().map(|id| store.tile_at_least(org, id))).await?;
    for found in reads {
        let Some((id, content)) = found else { return Ok(None) };
        if tiles.insert(id, &content).is_err() {
            tracing::warn!(organization_id = org, tile = %id, "a stored tile is malformed; proving from the log (run verify)");
            return Ok(None);
        }
    }
    if let Some(cp) = signed
        && let Err(e) = tiles.authenticate(&cp.root)
    {
        tracing::warn!(organization_id = org, size, error = %e, "stored tiles are not the signed tree; proving from the log (run tiles check)");
        return Ok(None);
    }
    Ok(Some(tiles))
}
