//! Signed checkpoints (SPEC §6): each organization's log is also an RFC 9162
//! Merkle tree; after commits — at most once per interval, only when the log
//! grew, and at every graceful stop — its head is signed as a C2SP
//! `tlog-checkpoint` note and stored beside the log, write-once.
//!
//! The tree is kept as C2SP tlog-tiles (`audit_core::tiles`): before a
//! checkpoint is stored, the tiles that filled up since the last one and
//! the partial tiles of its size are, so every stored checkpoint has the
//! tiles that prove against it. A writer resumes the tree from the partial
//! tiles of the newest checkpoint, or — when they are missing or do not
//! have its signed root — rebuilds it (and its tiles) from the whole log.

use std::time::Duration;

use audit_core::Hash;
use audit_core::note::{Checkpoint, SignerKey, sign};
use audit_core::stored::claimed_hash;
use audit_core::tiles::{TileBuilder, TileId};
use tokio::time::Instant;

use crate::shared::Shared;

/// The checkpoints found for a log before its writer opened.
#[derive(Debug, Default)]
pub(crate) struct Anchors {
    stored: Option<(u64, Vec<u8>)>,
    mirrored: Option<(u64, Vec<u8>)>,
}

/// One organization's tree and checkpoint schedule.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    origin_line: String,
    signer: SignerKey,
    interval: Duration,
    tree: TileBuilder,
    /// Full tiles made since the last checkpoint, written with the next one.
    unwritten: Vec<(TileId, Vec<u8>)>,
    written_size: u64,
    written_at: Option<Instant>,
}

impl Checkpointer {
    /// Reads the checkpoints a log must not fall behind (its newest stored
    /// one and the mirror's). Called *before* the writer reads the log's
    /// tail: on a store shared by several instances the log only grows, so
    /// a tail read afterwards that is behind them means truncation, never a
    /// race with another instance's newer checkpoint.
    pub(crate) async fn anchors(shared: &Shared, org: &str) -> Result<Anchors, String> {
        let Some(cfg) = &shared.checkpoints else { return Ok(Anchors::default()) };
        let stored = shared.store.latest_checkpoint(org).await.map_err(|e| e.to_string())?;
        let mirrored = match &cfg.mirror {
            Some(m) => m.latest_checkpoint(org).await.map_err(|e| format!("checkpoint mirror: {e}"))?,
            None => None,
        };
        Ok(Anchors { stored, mirrored })
    }

    /// Rebuilds the tree from storage and checks the log is not behind the
    /// `anchors` (a truncated or rolled-back store): then it must not be
    /// appended to until an operator has looked.
    pub(crate) async fn open(
        shared: &Shared,
        org: &str,
        found: Anchors,
        next_sequence: u64,
    ) -> Result<Option<Checkpointer>, String> {
        let Some(cfg) = &shared.checkpoints else { return Ok(None) };
        let origin_line = format!("{}/{org}", cfg.origin);
        let signer =
            cfg.signer.renamed(&origin_line).map_err(|e| format!("cannot sign checkpoints as {origin_line}: {e}"))?;
        let Anchors { stored: latest, mirrored } = found;
        // Hold the log to both: behind either, or a different tree at either
        // size, means the store was truncated, rolled back or rewritten.
        let verifier = signer.verifier();
        let mut anchors: Vec<(&str, Checkpoint)> = Vec::new();
        for (label, found) in [("its newest checkpoint", &latest), ("the checkpoint mirror", &mirrored)] {
            let Some((_, note)) = found else { continue };
            let text = std::str::from_utf8(note).ok().and_then(|n| audit_core::note::open(n, &verifier).ok());
            let cp = text
                .and_then(|t| Checkpoint::parse(t).ok())
                .ok_or_else(|| format!("{label} for {org} is not a checkpoint signed by this deployment's key"))?;
            if cp.size > next_sequence {
                return Err(format!(
                    "the log of {org} holds {next_sequence} events but {label} covers {}: storage was truncated or rolled back; refusing to append until an operator acts (run verify)",
                    cp.size
                ));
            }
            anchors.push((label, cp));
        }
        let check = |tree: &TileBuilder, anchors: &[(&str, Checkpoint)]| -> Result<(), String> {
            for (label, cp) in anchors {
                if cp.size == tree.size() && cp.root != tree.root() {
                    return Err(format!(
                        "the first {} events of {org} do not have the root {label} signed: storage was rewritten; refusing to append until an operator acts (run verify)",
                        cp.size
                    ));
                }
            }
            Ok(())
        };
        // Resume from the partial tiles of the newest checkpoint when they
        // have its signed root and no anchor lies before it; otherwise
        // rebuild the tree (and write its tiles again) from the whole log.
        let tree = match Self::stored_tree(shared, org, &anchors).await {
            Some(resumed) => resumed,
            None => Self::tree_below_the_cut(shared, org, &verifier).await?,
        };
        check(&tree, &anchors)?;
        let mut tree = tree;
        let start = tree.size();
        let chunks = shared.store.chunks(org).await.map_err(|e| e.to_string())?;
        for (i, chunk) in chunks.iter().enumerate() {
            if chunk.first_sequence >= next_sequence {
                break;
            }
            if chunks.get(i + 1).is_some_and(|next| next.first_sequence <= start) {
                continue; // entirely inside the resumed tree
            }
            let bytes = shared.store.read_chunk(org, chunk).await.map_err(|e| e.to_string())?;
            let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |e| e + 1);
            let lines = audit_core::stored::split_lines(&bytes[..end]).filter(|l| !l.is_empty());
            let skip = start.saturating_sub(chunk.first_sequence) as usize;
            for line in lines.skip(skip) {
                if tree.size() == next_sequence {
                    break; // appended by another instance since the tail was read
                }
                let claimed = claimed_hash(line).ok_or_else(|| format!("{}: a line without a hash", chunk.name))?;
                tree.push(&claimed);
                if anchors.iter().any(|(_, cp)| cp.size == tree.size()) {
                    check(&tree, &anchors)?;
                }
            }
        }
        if tree.size() != next_sequence {
            return Err(format!("read {} events of {org} for its Merkle tree, expected {next_sequence}", tree.size()));
        }
        let unwritten = tree.take_full();
        // The newest checkpoint may have been written as the last instance
        // stopped, before its witnesses saw it: submit it again (a witness
        // that has it answers with a cosignature or its size).
        if let (Some(witnesses), Some((size, note))) = (&shared.witnesses, &latest)
            && let Ok(note) = std::str::from_utf8(note)
        {
            let _ = witnesses.send((org.to_owned(), *size, note.to_owned()));
        }
        Ok(Some(Checkpointer {
            origin_line,
            signer,
            interval: cfg.interval,
            tree,
            unwritten,
            written_size: latest.map_or(0, |(size, _)| size),
            written_at: None,
        }))
    }

    /// The tree a rebuild starts from: empty, or for a pruned log the
    /// removed events' kept hashes, as its signed prune record binds them.
    async fn tree_below_the_cut(
        shared: &Shared,
        org: &str,
        verifier: &audit_core::note::VerifierKey,
    ) -> Result<TileBuilder, String> {
        let Some(p) = shared.store.pruned(org).await.map_err(|e| e.to_string())? else {
            return Ok(TileBuilder::new());
        };
        let record = audit_core::prune::PruneRecord::open(&p.record, verifier)
            .map_err(|e| format!("the prune record of {org} cannot be trusted: {e}"))?;
        tokio::task::spawn_blocking(move || {
            record.check_hashes(&p.hashes)?;
            let mut tree = TileBuilder::new();
            for h in p.hashes.chunks_exact(32) {
                tree.push(&Hash::from_bytes(h.try_into().expect("32 bytes")));
            }
            Ok(tree)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e: audit_core::prune::PruneRecordError| {
            format!("{org}: {e}; refusing to append until an operator acts (run verify)")
        })
    }

    /// The tree at the newest checkpoint from its partial tiles, if they
    /// can be trusted: their root is that checkpoint's signed root, and
    /// every other anchor is at least as large (so none goes unchecked).
    async fn stored_tree(shared: &Shared, org: &str, anchors: &[(&str, Checkpoint)]) -> Option<TileBuilder> {
        let newest = anchors.iter().find(|(label, _)| *label == "its newest checkpoint").map(|(_, cp)| cp)?;
        if anchors.iter().any(|(_, cp)| cp.size < newest.size) {
            return None;
        }
        let mut contents = Vec::new();
        for id in TileBuilder::resume_tiles(newest.size) {
            match shared.store.tile(org, &id).await {
                Ok(Some(content)) => contents.push(content),
                Ok(None) => {
                    tracing::info!(
                        organization_id = org,
                        size = newest.size,
                        tile = %id,
                        "no tiles at the newest checkpoint; rebuilding the tree and its tiles from the log"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(organization_id = org, error = %e, "cannot read a tile; rebuilding the tree from the log");
                    return None;
                }
            }
        }
        match TileBuilder::resume(newest.size, &contents) {
            Ok(tree) if tree.root() == newest.root => Some(tree),
            Ok(_) => {
                tracing::warn!(
                    organization_id = org,
                    size = newest.size,
                    "the stored tiles do not have the signed root; rebuilding the tree from the log"
                );
                None
            }
            Err(e) => {
                tracing::warn!(organization_id = org, error = %e, "unusable tiles; rebuilding the tree from the log");
                None
            }
        }
    }

    /// Adds a committed event.
    pub(crate) fn push(&mut self, hash: &Hash) {
        self.tree.push(hash);
        if self.tree.has_full() {
            self.unwritten.extend(self.tree.take_full());
        }
    }

    /// When the next checkpoint is due (`None`: nothing new to sign).
    pub(crate) fn due_at(&self) -> Option<Instant> {
        (self.tree.size() > self.written_size).then(|| self.written_at.map_or_else(Instant::now, |t| t + self.interval))
    }

    /// Signs and stores a checkpoint of the current tree if one is due (or
    /// whenever the log grew, with `force`).
    pub(crate) async fn write_if_due(&mut self, shared: &Shared, org: &str, force: bool) {
        let Some(due) = self.due_at() else { return };
        if !force && due > Instant::now() {
            return;
        }
        // The tiles first: a stored checkpoint always has the tiles that
        // prove against it.
        let mut tiles = std::mem::take(&mut self.unwritten);
        let full = tiles.len();
        tiles.extend(self.tree.partials());
        if let Err(e) = shared.store.put_tiles(org, &tiles).await {
            tracing::error!(organization_id = org, error = %e, "cannot store the tree's tiles; the checkpoint waits");
            tiles.truncate(full);
            self.unwritten = tiles;
            return;
        }
        let checkpoint =
            Checkpoint { origin: self.origin_line.clone(), size: self.tree.size(), root: self.tree.root() };
        let note = match sign(&checkpoint.to_text(), &self.signer) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(organization_id = org, error = %e, "cannot sign a checkpoint");
                return;
            }
        };
        if let Err(e) = shared.store.put_checkpoint(org, checkpoint.size, note.as_bytes()).await {
            tracing::error!(organization_id = org, error = %e, "cannot store a checkpoint; will retry");
            return;
        }
        if let Some(witnesses) = &shared.witnesses {
            let _ = witnesses.send((org.to_owned(), checkpoint.size, note.clone()));
        }
        // Published outside the store too; a mirror outage is retried with the next checkpoint.
        if let Some(mirror) = shared.checkpoints.as_ref().and_then(|c| c.mirror.as_ref())
            && let Err(e) = mirror.put_checkpoint(org, checkpoint.size, note.as_bytes()).await
        {
            tracing::error!(organization_id = org, error = %e, "cannot publish a checkpoint to the mirror");
        }
        self.written_size = checkpoint.size;
        self.written_at = Some(Instant::now());
    }
}
