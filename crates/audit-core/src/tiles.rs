//! An organization's Merkle tree as C2SP tlog-tiles (c2sp.org/tlog-tiles):
//! tile paths, the tiles a growing tree produces, and proofs computed from
//! tiles instead of from the whole log.
//!
//! A hash tile at level `L` holds up to 256 consecutive Merkle tree hashes of
//! subtrees of `256^L` leaves; level 0 holds leaf hashes. An entry bundle
//! holds the leaf inputs (here: the 32 raw bytes of each event's `hash`),
//! each prefixed by its length as a big-endian `u16`. A tile of 256 hashes
//! is *full* and never changes; the rightmost tile of each level is
//! *partial* (`.p/<W>`, 1–255 hashes) and is written for every size that a
//! checkpoint signs. Each tile path names one immutable content, so tiles
//! are write-once like the log itself.
//!
//! ```text
//! TileBuilder::push(event hash) ──▶ full tiles as they complete (take_full)
//!                                 ─▶ partial tiles of the current size (partials)
//! TreeTiles::needed_for_*(…) ──▶ the tiles a proof reads (O(log n))
//!     ──insert(tile bytes)──▶ inclusion / consistency proofs, roots
//! ```

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::hash::Hash;
use crate::merkle::{self, Frontier, ProofError, consistency_path, empty_root, inclusion_path, node_hash, split};

/// Hashes in a full tile (tiles have height 8).
pub const TILE_WIDTH: usize = 256;
/// Bytes of one hash in a hash tile.
pub const HASH_BYTES: usize = 32;
/// Bytes of one entry in an entry bundle: a `u16` length, then the 32-byte event hash.
pub const ENTRY_BYTES: usize = 2 + HASH_BYTES;
/// The highest level a tile path may name (C2SP: 0–63).
pub const MAX_LEVEL: u8 = 63;

/// Which kind of tile: Merkle tree hashes at a level, or leaf inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// `tile/<L>/…`: tree hashes of subtrees of `256^L` leaves.
    Hashes(u8),
    /// `tile/entries/…`: the leaf inputs.
    Entries,
}

impl TileKind {
    /// The tree level whose nodes this tile holds (entries sit above level 0's leaves).
    fn level(self) -> u8 {
        match self {
            TileKind::Hashes(level) => level,
            TileKind::Entries => 0,
        }
    }
}

/// One tile: kind, index within its level, and width (256 when full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Hashes at a level, or entries.
    pub kind: TileKind,
    /// Index of the tile within its level.
    pub index: u64,
    /// Number of hashes or entries, 1–256.
    pub width: u16,
}

/// Why a tile path or tile content is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path is not a tlog-tiles path.
    #[error("not a tile path ({0})")]
    BadPath(&'static str),
    /// The content does not have the tile's length or form.
    #[error("tile {path}: {why}")]
    BadContent {
        /// The tile's path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A tile a computation needs was not supplied.
    #[error("tile {0} is missing")]
    Missing(String),
    /// The sizes or index are outside the tree.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

impl TileId {
    /// The full tile (width 256) of this kind and index.
    pub fn full(kind: TileKind, index: u64) -> TileId {
        TileId { kind, index, width: TILE_WIDTH as u16 }
    }

    /// True when the tile holds 256 hashes or entries.
    pub fn is_full(&self) -> bool {
        usize::from(self.width) == TILE_WIDTH
    }

    /// The same tile at full width.
    pub fn as_full(&self) -> TileId {
        TileId::full(self.kind, self.index)
    }

    /// Bytes of this tile's content.
    pub fn content_len(&self) -> usize {
        usize::from(self.width)
            * match self.kind {
                TileKind::Hashes(_) => HASH_BYTES,
                TileKind::Entries => ENTRY_BYTES,
            }
    }

    /// The tile at `kind`/`index` a tree of `size` leaves has, if any
    /// (full, or the partial rightmost one; `None` when it would be empty).
    pub fn in_tree(kind: TileKind, index: u64, size: u64) -> Option<TileId> {
        let level = kind.level();
        let count = level_count(size, level);
        let start = index.checked_mul(TILE_WIDTH as u64)?;
        let width = count.checked_sub(start)?.min(TILE_WIDTH as u64);
        (width > 0).then_some(TileId { kind, index, width: width as u16 })
    }

    /// The path below a log's prefix: `tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`, `N` in 3-digit groups, all but the last
    /// prefixed with `x` (index 1234067 → `x001/x234/067`).
    pub fn path(&self) -> String {
        let mut groups = vec![format!("{:03}", self.index % 1000)];
        let mut rest = self.index / 1000;
        while rest > 0 {
            groups.push(format!("x{:03}", rest % 1000));
            rest /= 1000;
        }
        groups.reverse();
        let kind = match self.kind {
            TileKind::Hashes(level) => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let partial = if self.is_full() { String::new() } else { format!(".p/{}", self.width) };
        format!("tile/{kind}/{}{partial}", groups.join("/"))
    }

    /// Parses a path made by [`TileId::path`]. Only the one canonical
    /// spelling of each tile is accepted (no leading zeros in the level or
    /// width, no superfluous `x000` groups), so one tile has one path.
    pub fn parse(path: &str) -> Result<TileId, TileError> {
        let rest = path.strip_prefix("tile/").ok_or(TileError::BadPath("it does not start with tile/"))?;
        let (kind, rest) = rest.split_once('/').ok_or(TileError::BadPath("no index"))?;
        let kind = if kind == "entries" {
            TileKind::Entries
        } else {
            let level = plain_decimal(kind).ok_or(TileError::BadPath("the level is not a decimal number"))?;
            match u8::try_from(level) {
                Ok(level) if level <= MAX_LEVEL => TileKind::Hashes(level),
                _ => return Err(TileError::BadPath("the level is above 63")),
            }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let w = plain_decimal(width).ok_or(TileError::BadPath("the width is not a decimal number"))?;
                if !(1..TILE_WIDTH as u64).contains(&w) {
                    return Err(TileError::BadPath("a partial tile's width is 1 to 255"));
                }
                (index, w as u16)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let groups: Vec<&str> = index_part.split('/').collect();
        let mut index: u64 = 0;
        for (i, group) in groups.iter().enumerate() {
            let last = i + 1 == groups.len();
            let digits = if last {
                *group
            } else {
                group.strip_prefix('x').ok_or(TileError::BadPath("index groups before the last start with x"))?
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TileError::BadPath("index groups are three digits"));
            }
            let value: u64 = digits.parse().map_err(|_| TileError::BadPath("index groups are three digits"))?;
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(value))
                .ok_or(TileError::BadPath("the index is too large"))?;
        }
        let id = TileId { kind, index, width };
        if id.path() != path {
            return Err(TileError::BadPath("not the canonical spelling of the index"));
        }
        Ok(id)
    }

    /// The hashes of a hash tile's content (checked for length).
    pub fn hashes(&self, content: &[u8]) -> Result<Vec<Hash>, TileError> {
        if !matches!(self.kind, TileKind::Hashes(_)) {
            return Err(TileError::BadContent { path: self.path(), why: "an entry bundle holds no hashes".into() });
        }
        if content.len() != self.content_len() {
            return Err(TileError::BadContent {
                path: self.path(),
                why: format!("{} bytes, expected {}", content.len(), self.content_len()),
            });
        }
        Ok(content.chunks_exact(HASH_BYTES).map(|c| Hash::from_bytes(c.try_into().expect("32 bytes"))).collect())
    }

    /// The event hashes in an entry bundle's content (each entry must be
    /// 32 bytes long, as this log's leaf inputs are).
    pub fn entries(&self, content: &[u8]) -> Result<Vec<Hash>, TileError> {
        let bad = |why: String| TileError::BadContent { path: self.path(), why };
        if self.kind != TileKind::Entries {
            return Err(bad("a hash tile holds no entries".into()));
        }
        if content.len() != self.content_len() {
            return Err(bad(format!("{} bytes, expected {}", content.len(), self.content_len())));
        }
        content
            .chunks_exact(ENTRY_BYTES)
            .map(|e| {
                if e[..2] != (HASH_BYTES as u16).to_be_bytes() {
                    return Err(bad("an entry is not 32 bytes long".into()));
                }
                Ok(Hash::from_bytes(e[2..].try_into().expect("32 bytes")))
            })
            .collect()
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A decimal number without sign or leading zeros ("0" itself allowed).
fn plain_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Number of complete level-`level` nodes in a tree of `size` leaves.
fn level_count(size: u64, level: u8) -> u64 {
    size.checked_shr(8 * u32::from(level)).unwrap_or(0)
}

/// The content of a hash tile.
pub fn hash_tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| *h.as_bytes()).collect()
}

/// The content of an entry bundle of event hashes.
pub fn entry_bundle_bytes(event_hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event_hashes.len() * ENTRY_BYTES);
    for h in event_hashes {
        out.extend_from_slice(&(HASH_BYTES as u16).to_be_bytes());
        out.extend_from_slice(h.as_bytes());
    }
    out
}

/// The rightmost, incomplete tile of one level: its hashes, and the
/// binary frontier over them (so the tile's root when it fills, and the
/// tree's root at any size, cost no hashing beyond what appending did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OpenTile {
    hashes: Vec<Hash>,
    frontier: Frontier,
}

impl OpenTile {
    fn push(&mut self, hash: Hash) {
        self.hashes.push(hash);
        self.frontier.push(hash);
    }
}

/// A growing tree as tiles: push each event's hash in sequence order; take
/// the tiles that filled up, and the partial tiles of the current size
/// when a checkpoint is signed. Memory: at most 255 hashes per level and
/// 255 entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileBuilder {
    size: u64,
    /// `levels[L]`: the open tile of level `L`.
    levels: Vec<OpenTile>,
    /// The open entry bundle.
    entries: Vec<Hash>,
    /// Full tiles completed and not yet taken.
    completed: Vec<(TileId, Vec<u8>)>,
}

impl TileBuilder {
    /// The tiles of the empty tree.
    pub fn new() -> Self {
        TileBuilder::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the event with hash `event_hash` (the next sequence).
    pub fn push(&mut self, event_hash: &Hash) {
        self.entries.push(*event_hash);
        let mut node = merkle::leaf_hash(event_hash.as_bytes());
        let new_size = self.size + 1;
        let mut level: u8 = 0;
        loop {
            if self.levels.len() <= usize::from(level) {
                self.levels.push(OpenTile::default());
            }
            let open = &mut self.levels[usize::from(level)];
            open.push(node);
            if open.hashes.len() < TILE_WIDTH {
                break;
            }
            let full = std::mem::take(open);
            let index = level_count(new_size, level) / TILE_WIDTH as u64 - 1;
            if level == 0 {
                let entries = std::mem::take(&mut self.entries);
                self.completed.push((TileId::full(TileKind::Entries, index), entry_bundle_bytes(&entries)));
            }
            node = full.frontier.root();
            self.completed.push((TileId::full(TileKind::Hashes(level), index), hash_tile_bytes(&full.hashes)));
            level += 1;
        }
        self.size = new_size;
    }

    /// The full tiles completed since the last call, in completion order.
    pub fn take_full(&mut self) -> Vec<(TileId, Vec<u8>)> {
        std::mem::take(&mut self.completed)
    }

    /// True when full tiles wait to be taken.
    pub fn has_full(&self) -> bool {
        !self.completed.is_empty()
    }

    /// The partial tiles of the current size (what a checkpoint of this
    /// size needs beside the full tiles), entry bundle first.
    pub fn partials(&self) -> Vec<(TileId, Vec<u8>)> {
        let mut out = Vec::new();
        if !self.entries.is_empty() {
            let index = self.size / TILE_WIDTH as u64;
            let id = TileId { kind: TileKind::Entries, index, width: self.entries.len() as u16 };
            out.push((id, entry_bundle_bytes(&self.entries)));
        }
        for (level, open) in self.levels.iter().enumerate() {
            if open.hashes.is_empty() {
                continue;
            }
            let level = level as u8;
            let index = level_count(self.size, level) / TILE_WIDTH as u64;
            let id = TileId { kind: TileKind::Hashes(level), index, width: open.hashes.len() as u16 };
            out.push((id, hash_tile_bytes(&open.hashes)));
        }
        out
    }

    /// The tiles [`TileBuilder::resume`] reads for a tree of `size`.
    pub fn resume_tiles(size: u64) -> Vec<TileId> {
        let mut out = Vec::new();
        if !size.is_multiple_of(TILE_WIDTH as u64) {
            out.push(TileId {
                kind: TileKind::Entries,
                index: size / TILE_WIDTH as u64,
                width: (size % TILE_WIDTH as u64) as u16,
            });
        }
        let mut level = 0u8;
        while level_count(size, level) > 0 {
            let count = level_count(size, level);
            if !count.is_multiple_of(TILE_WIDTH as u64) {
                out.push(TileId {
                    kind: TileKind::Hashes(level),
                    index: count / TILE_WIDTH as u64,
                    width: (count % TILE_WIDTH as u64) as u16,
                });
            }
            level += 1;
        }
        out
    }

    /// The builder of a tree of `size` leaves from its partial tiles (the
    /// contents of [`TileBuilder::resume_tiles`], in that order), so that a
    /// writer goes on where a checkpoint left off. Nothing here proves the
    /// tiles right: compare [`TileBuilder::root`] with a signed root.
    pub fn resume(size: u64, tiles: &[Vec<u8>]) -> Result<TileBuilder, TileError> {
        let ids = TileBuilder::resume_tiles(size);
        if ids.len() != tiles.len() {
            return Err(TileError::Missing(format!("{} of {} partial tiles given", tiles.len(), ids.len())));
        }
        let mut builder = TileBuilder { size, ..TileBuilder::default() };
        let mut top = 0u8;
        while level_count(size, top) > 0 {
            top += 1;
        }
        builder.levels = vec![OpenTile::default(); usize::from(top)];
        for (id, content) in ids.iter().zip(tiles) {
            match id.kind {
                TileKind::Entries => builder.entries = id.entries(content)?,
                TileKind::Hashes(level) => {
                    let open = &mut builder.levels[usize::from(level)];
                    for h in id.hashes(content)? {
                        open.push(h);
                    }
                }
            }
        }
        if builder.levels.first().map_or(0, |l| l.hashes.len()) != builder.entries.len() {
            return Err(TileError::BadContent {
                path: ids.first().map(TileId::path).unwrap_or_default(),
                why: "the entry bundle and the level 0 tile differ in width".into(),
            });
        }
        for (entry, leaf) in builder.entries.iter().zip(builder.levels.first().map_or(&[][..], |l| &l.hashes)) {
            if merkle::leaf_hash(entry.as_bytes()) != *leaf {
                return Err(TileError::BadContent {
                    path: ids[0].path(),
                    why: "an entry does not hash to its level 0 hash".into(),
                });
            }
        }
        Ok(builder)
    }

    /// The binary frontier of the whole tree (its complete subtrees,
    /// largest first), assembled from the open tiles of every level.
    pub fn frontier(&self) -> Frontier {
        let peaks: Vec<Hash> = self.levels.iter().rev().flat_map(|l| l.frontier.peaks().iter().copied()).collect();
        Frontier::from_peaks(self.size, peaks).expect("one peak per set bit of the size")
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        self.frontier().root()
    }
}

/// A node of the binary tree: `level` (subtrees of `2^level` leaves) and index.
type Node = (u32, u64);

/// The root of `len` leaves from `start`, from complete aligned subtrees
/// (`node(level, index)`), as RFC 9162's recursion asks for them.
fn subtree_root(start: u64, len: u64, node: &dyn Fn(Node) -> Hash) -> Hash {
    match len {
        0 => empty_root(),
        _ if len.is_power_of_two() && start.is_multiple_of(len) => node((len.trailing_zeros(), start / len)),
        _ => {
            let k = split(len as usize) as u64;
            node_hash(&subtree_root(start, k, node), &subtree_root(start + k, len - k, node))
        }
    }
}

/// The hash tiles of one tree of `size` leaves that a proof reads.
#[derive(Debug, Clone)]
pub struct TreeTiles {
    size: u64,
    /// `(level, index)` → the tile's hashes (at least the width the tree has).
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl TreeTiles {
    /// An empty set for the tree of `size` leaves.
    pub fn new(size: u64) -> TreeTiles {
        TreeTiles { size, tiles: HashMap::new() }
    }

    /// The tree's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tile holding binary node `(level, index)`.
    fn tile_of(&self, (level, index): Node) -> TileId {
        let tile_level = (level / 8) as u8;
        let first = index << (level % 8);
        let kind = TileKind::Hashes(tile_level);
        let tile = first / TILE_WIDTH as u64;
        TileId::in_tree(kind, tile, self.size).unwrap_or(TileId::full(kind, tile))
    }

    fn tiles_for(&self, ask: impl FnOnce(&dyn Fn(u64, u64) -> Hash)) -> Vec<TileId> {
        let nodes = RefCell::new(BTreeSet::new());
        let record = |start: u64, len: u64| {
            subtree_root(start, len, &|n| {
                nodes.borrow_mut().insert(n);
                Hash::GENESIS
            })
        };
        ask(&record);
        let tiles: BTreeSet<TileId> = nodes.into_inner().into_iter().map(|n| self.tile_of(n)).collect();
        tiles.into_iter().collect()
    }

    /// The tiles an inclusion proof of leaf `index` reads (with the leaf's own).
    pub fn needed_for_inclusion(&self, index: u64) -> Result<Vec<TileId>, TileError> {
        if index >= self.size {
            return Err(ProofError::IndexOutOfRange.into());
        }
        let size = self.size as usize;
        Ok(self.tiles_for(|mth| {
            mth(index, 1);
            mth(0, self.size);
            let _ = inclusion_path(size, index as usize, &|s, l| mth(s as u64, l as u64));
        }))
    }

    /// The tiles a consistency proof from the tree of `first` leaves reads
    /// (with both roots').
    pub fn needed_for_consistency(&self, first: u64) -> Result<Vec<TileId>, TileError> {
        if first > self.size {
            return Err(ProofError::SizesOutOfOrder.into());
        }
        let size = self.size as usize;
        Ok(self.tiles_for(|mth| {
            mth(0, first);
            mth(0, self.size);
            let _ = consistency_path(size, first as usize, &|s, l| mth(s as u64, l as u64));
        }))
    }

    /// `ids` and the tiles above them up to the tree's top: what
    /// [`TreeTiles::authenticate`] needs to tie each tile to the root.
    pub fn with_ancestors(&self, ids: Vec<TileId>) -> Vec<TileId> {
        let mut all: BTreeSet<TileId> = ids.into_iter().collect();
        let mut frontier: Vec<TileId> = all.iter().copied().collect();
        while let Some(id) = frontier.pop() {
            let TileKind::Hashes(level) = id.kind else { continue };
            if !id.is_full() || level >= MAX_LEVEL {
                continue; // a partial tile is tied to the root directly
            }
            let Some(parent) = TileId::in_tree(TileKind::Hashes(level + 1), id.index / TILE_WIDTH as u64, self.size)
            else {
                continue;
            };
            if all.insert(parent) {
                frontier.push(parent);
            }
        }
        all.into_iter().collect()
    }

    /// Checks that the tiles given are the tree with head `root`: each full
    /// tile hashes to its entry in the tile above, and the tiles at the top
    /// hash to `root` (as Go's `tlog.TileHashReader` does). Tiles are
    /// stored unsigned; only a signed root makes them evidence.
    pub fn authenticate(&self, root: &Hash) -> Result<(), TileError> {
        for (&(level, index), hashes) in &self.tiles {
            if hashes.len() < TILE_WIDTH || level >= MAX_LEVEL {
                continue;
            }
            let Some(parent) = self.tiles.get(&(level + 1, index / TILE_WIDTH as u64)) else { continue };
            let slot = (index % TILE_WIDTH as u64) as usize;
            if parent.get(slot).is_some_and(|h| *h != merkle::root(&hashes[..TILE_WIDTH])) {
                let id = TileId::full(TileKind::Hashes(level), index);
                return Err(TileError::BadContent {
                    path: id.path(),
                    why: "does not hash to its entry in the tile above".into(),
                });
            }
        }
        if self.root_at(self.size)? != *root {
            return Err(TileError::BadContent {
                path: "tile/…".into(),
                why: "the tiles do not hash to the signed root".into(),
            });
        }
        Ok(())
    }

    /// Adds a tile's content (a tile of this tree, or a wider one of the
    /// same level and index: tiles only grow to the right).
    pub fn insert(&mut self, tile: TileId, content: &[u8]) -> Result<(), TileError> {
        let TileKind::Hashes(level) = tile.kind else {
            return Err(TileError::BadContent { path: tile.path(), why: "proofs read hash tiles".into() });
        };
        let hashes = tile.hashes(content)?;
        self.tiles.insert((level, tile.index), hashes);
        Ok(())
    }

    fn node(&self, n: Node) -> Result<Hash, TileError> {
        let id = self.tile_of(n);
        let TileKind::Hashes(level) = id.kind else { unreachable!("tile_of gives hash tiles") };
        let hashes = self.tiles.get(&(level, id.index)).ok_or_else(|| TileError::Missing(id.path()))?;
        let span = 1usize << (n.0 % 8);
        let first = ((n.1 << (n.0 % 8)) % TILE_WIDTH as u64) as usize;
        let slice = hashes.get(first..first + span).ok_or_else(|| TileError::BadContent {
            path: id.path(),
            why: format!("{} hashes, node needs {}", hashes.len(), first + span),
        })?;
        Ok(merkle::root(slice))
    }

    /// Runs `compute` with a root function over these tiles; the first
    /// missing or short tile is the error.
    fn with_roots<T>(&self, compute: impl FnOnce(&dyn Fn(u64, u64) -> Hash) -> T) -> Result<T, TileError> {
        let failure = RefCell::new(None);
        let mth = |start: u64, len: u64| {
            subtree_root(start, len, &|n| {
                self.node(n).unwrap_or_else(|e| {
                    failure.borrow_mut().get_or_insert(e);
                    Hash::GENESIS
                })
            })
        };
        let out = compute(&mth);
        match failure.into_inner() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash, TileError> {
        if index >= self.size {
            return Err(ProofError::IndexOutOfRange.into());
        }
        self.with_roots(|mth| mth(index, 1))
    }

    /// The root of the first `size` leaves (`size` up to the tree's).
    pub fn root_at(&self, size: u64) -> Result<Hash, TileError> {
        if size > self.size {
            return Err(ProofError::SizesOutOfOrder.into());
        }
        self.with_roots(|mth| mth(0, size))
    }

    /// The audit path of leaf `index` (RFC 9162 §2.1.3.1).
    pub fn inclusion_proof(&self, index: u64) -> Result<Vec<Hash>, TileError> {
        let size = self.size as usize;
        self.with_roots(|mth| inclusion_path(size, index as usize, &|s, l| mth(s as u64, l as u64)))?
            .map_err(TileError::from)
    }

    /// The consistency proof from the tree of `first` leaves (RFC 9162 §2.1.4.1).
    pub fn consistency_proof(&self, first: u64) -> Result<Vec<Hash>, TileError> {
        let size = self.size as usize;
        self.with_roots(|mth| consistency_path(size, first as usize, &|s, l| mth(s as u64, l as u64)))?
            .map_err(TileError::from)
    }
}

#[cfg(test)]
mod tests;
