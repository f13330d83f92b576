//! RFC 9162 (RFC 6962) Merkle trees over a log: tree heads, inclusion and
//! consistency proofs, and their verification.
//!
//! Leaf `i` of an organization's tree is its event with sequence `i`; the
//! leaf input is the 32 raw bytes of the event's `hash`. Hashing is domain
//! separated ([`Prefix`]): a leaf can never pass for an interior node.
//!
//! The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 exactly and check
//! every element of a proof, its length, and the sizes — a verifier that
//! only checks the ends of a proof accepts forgeries.

use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// The domain-separation prefix of a hashed Merkle tree element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Prefix {
    /// `0x00`: a leaf.
    Leaf = 0x00,
    /// `0x01`: an interior node.
    Node = 0x01,
}

/// `SHA-256(0x00 || input)`.
pub fn leaf_hash(input: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([Prefix::Leaf as u8]);
    h.update(input);
    Hash::from_bytes(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([Prefix::Node as u8]);
    h.update(left.as_bytes());
    h.update(right.as_bytes());
    Hash::from_bytes(h.finalize().into())
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash::of(b"")
}

/// The largest power of two smaller than `n` (`n >= 2`).
pub(crate) fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over leaf hashes (RFC 9162 §2.1.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// A tree that grows one leaf at a time in O(log n) work and memory: the
/// roots of its complete subtrees, largest first (a "compact range").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Complete subtree roots, from the largest (leftmost) to the smallest.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.peaks.push(leaf);
        // Merge equal-sized subtrees: one merge per trailing 1 bit of the old size.
        let mut size = self.size;
        while size & 1 == 1 {
            let right = self.peaks.pop().expect("a peak per set bit");
            let left = self.peaks.pop().expect("a peak per set bit");
            self.peaks.push(node_hash(&left, &right));
            size >>= 1;
        }
        self.size += 1;
    }

    /// The roots of the complete subtrees, largest first (one per set bit
    /// of the size): all that is needed to keep appending.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// The frontier of a tree of `size` leaves from its peaks, or `None`
    /// when their number does not match the size. Nothing here proves the
    /// peaks right: compare [`Frontier::root`] with a signed root.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Frontier> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(&last) => peaks.fold(last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index is not smaller than the tree size")]
    IndexOutOfRange,
    /// The sizes cannot be consistent (the first is larger).
    #[error("the first tree is larger than the second")]
    SizesOutOfOrder,
    /// The proof has the wrong number of elements for these sizes.
    #[error("the proof has the wrong length")]
    WrongLength,
    /// The proof does not lead to the expected root.
    #[error("the proof does not match the root")]
    RootMismatch,
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Result<Vec<Hash>, ProofError> {
    inclusion_path(leaves.len(), index, &|start, len| root(&leaves[start..start + len]))
}

/// The proof that the tree of the first `first` leaves is a prefix of the
/// tree of all `leaves` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Result<Vec<Hash>, ProofError> {
    consistency_path(leaves.len(), first, &|start, len| root(&leaves[start..start + len]))
}

/// RFC 9162's PATH over a tree of `size` leaves, with `mth(start, len)`
/// giving the root of the leaves `start..start + len`.
pub(crate) fn inclusion_path(
    size: usize,
    index: usize,
    mth: &dyn Fn(usize, usize) -> Hash,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange);
    }
    fn path(m: usize, start: usize, len: usize, mth: &dyn Fn(usize, usize) -> Hash, out: &mut Vec<Hash>) {
        if len <= 1 {
            return;
        }
        let k = split(len);
        if m < k {
            path(m, start, k, mth, out);
            out.push(mth(start + k, len - k));
        } else {
            path(m - k, start + k, len - k, mth, out);
            out.push(mth(start, k));
        }
    }
    let mut out = Vec::new();
    path(index, 0, size, mth, &mut out);
    Ok(out)
}

/// RFC 9162's PROOF over a tree of `size` leaves (see [`inclusion_path`]).
pub(crate) fn consistency_path(
    size: usize,
    first: usize,
    mth: &dyn Fn(usize, usize) -> Hash,
) -> Result<Vec<Hash>, ProofError> {
    if first > size {
        return Err(ProofError::SizesOutOfOrder);
    }
    fn subproof(
        m: usize,
        start: usize,
        len: usize,
        complete: bool,
        mth: &dyn Fn(usize, usize) -> Hash,
        out: &mut Vec<Hash>,
    ) {
        if m == len {
            if !complete {
                out.push(mth(start, len));
            }
            return;
        }
        let k = split(len);
        if m <= k {
            subproof(m, start, k, complete, mth, out);
            out.push(mth(start + k, len - k));
        } else {
            subproof(m - k, start + k, len - k, false, mth, out);
            out.push(mth(start, k));
        }
    }
    let mut out = Vec::new();
    if first > 0 && first < size {
        subproof(first, 0, size, true, mth, &mut out);
    }
    Ok(out)
}

/// `f` over `items` on every core, in order (the block roots of a large
/// log are millions of hashes).
fn par_map<T: Send + Sync, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || items.len() < 4096 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::new();
    let mut items = items.into_iter();
    loop {
        let part: Vec<T> = items.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> =
            parts.into_iter().map(|p| s.spawn(move || p.into_iter().map(f).collect::<Vec<U>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a hashing thread panicked")).collect()
    })
}

/// Leaves per cached block of a [`ProofTree`].
const BLOCK: usize = 256;

/// A tree over fixed leaf hashes that answers many proofs quickly: it keeps
/// the root of every complete, aligned block of 256 leaves, so the root of
/// a complete subtree of 256 or more leaves costs O(its size / 256) instead
/// of O(its size). RFC 9162's recursion only ever asks for subtrees whose
/// start is a multiple of their largest power-of-two part, so every large
/// complete subtree it meets is a whole number of blocks.
#[derive(Debug, Clone)]
pub struct ProofTree<'a> {
    leaves: &'a [Hash],
    blocks: Vec<Hash>,
}

impl<'a> ProofTree<'a> {
    /// Builds the block cache: one pass over the leaves, on every core.
    pub fn new(leaves: &'a [Hash]) -> ProofTree<'a> {
        let blocks = par_map(leaves.chunks_exact(BLOCK).collect(), root);
        ProofTree { leaves, blocks }
    }

    /// Number of leaves.
    pub fn size(&self) -> usize {
        self.leaves.len()
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: usize) -> Option<&Hash> {
        self.leaves.get(index)
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        self.mth(0, self.leaves.len())
    }

    /// The root of the first `size` leaves (a smaller tree head).
    pub fn root_at(&self, size: usize) -> Hash {
        self.mth(0, size.min(self.leaves.len()))
    }

    fn mth(&self, start: usize, len: usize) -> Hash {
        if len >= BLOCK && len.is_power_of_two() && start.is_multiple_of(BLOCK) {
            let first = start / BLOCK;
            return root(&self.blocks[first..first + len / BLOCK]);
        }
        match len {
            0 => empty_root(),
            1 => self.leaves[start],
            _ => {
                let k = split(len);
                node_hash(&self.mth(start, k), &self.mth(start + k, len - k))
            }
        }
    }

    /// The audit path of leaf `index` (as [`inclusion_proof`]).
    pub fn inclusion_proof(&self, index: usize) -> Result<Vec<Hash>, ProofError> {
        inclusion_path(self.leaves.len(), index, &|start, len| self.mth(start, len))
    }

    /// The consistency proof from the first `first` leaves (as [`consistency_proof`]).
    pub fn consistency_proof(&self, first: usize) -> Result<Vec<Hash>, ProofError> {
        consistency_path(self.leaves.len(), first, &|start, len| self.mth(start, len))
    }
}

/// Verifies that `leaf` is at `index` in the tree of `size` with head `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `size1` with head `root1` is a prefix of the
/// tree of `size2` with head `root2` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if size1 == 0 {
        // The empty tree is a prefix of every tree.
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *root1 || sr != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
