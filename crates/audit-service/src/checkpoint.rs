//! Signed checkpoints (SPEC §6): each organization's log is also an RFC 9162
//! Merkle tree; after commits — at most once per interval, only when the log
//! grew, and at every graceful stop — its head is signed as a C2SP
//! `tlog-checkpoint` note and stored beside the log, write-once.

use std::time::Duration;

use audit_core::Hash;
use audit_core::merkle::{Frontier, leaf_hash};
use audit_core::note::{Checkpoint, SignerKey, sign};
use audit_core::stored::claimed_hash;
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
    frontier: Frontier,
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
        let check = |frontier: &Frontier, anchors: &[(&str, Checkpoint)]| -> Result<(), String> {
            for (label, cp) in anchors {
                if cp.size == frontier.size() && cp.root != frontier.root() {
                    return Err(format!(
                        "the first {} events of {org} do not have the root {label} signed: storage was rewritten; refusing to append until an operator acts (run verify)",
                        cp.size
                    ));
                }
            }
            Ok(())
        };
        // Resume from the frontier stored with the newest checkpoint when its
        // root is the signed one (then its peaks are right) and no anchor
        // lies before it; otherwise rebuild the tree from the whole log.
        let frontier = match Self::stored_frontier(shared, org, &anchors).await {
            Some(resumed) => resumed,
            None => Self::tree_below_the_cut(shared, org, &verifier).await?,
        };
        check(&frontier, &anchors)?;
        let mut frontier = frontier;
        let start = frontier.size();
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
            let lines = bytes[..end].split(|b| *b == b'\n').filter(|l| !l.is_empty());
            let skip = start.saturating_sub(chunk.first_sequence) as usize;
            for line in lines.skip(skip) {
                if frontier.size() == next_sequence {
                    break; // appended by another instance since the tail was read
                }
                let claimed = claimed_hash(line).ok_or_else(|| format!("{}: a line without a hash", chunk.name))?;
                frontier.push(leaf_hash(claimed.as_bytes()));
                check(&frontier, &anchors)?;
            }
        }
        if frontier.size() != next_sequence {
            return Err(format!(
                "read {} events of {org} for its Merkle tree, expected {next_sequence}",
                frontier.size()
            ));
        }
        Ok(Some(Checkpointer {
            origin_line,
            signer,
            interval: cfg.interval,
            frontier,
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
    ) -> Result<Frontier, String> {
        let Some(p) = shared.store.pruned(org).await.map_err(|e| e.to_string())? else { return Ok(Frontier::new()) };
        let record = audit_core::prune::PruneRecord::open(&p.record, verifier)
            .map_err(|e| format!("the prune record of {org} cannot be trusted: {e}"))?;
        tokio::task::spawn_blocking(move || record.check_hashes(&p.hashes))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{org}: {e}; refusing to append until an operator acts (run verify)"))
    }

    /// The frontier stored beside the log's newest checkpoint, if it can be
    /// trusted: its root is that checkpoint's signed root, and every other
    /// anchor is at least as large (so none goes unchecked).
    async fn stored_frontier(shared: &Shared, org: &str, anchors: &[(&str, Checkpoint)]) -> Option<Frontier> {
        let newest = anchors.iter().find(|(label, _)| *label == "its newest checkpoint").map(|(_, cp)| cp)?;
        if anchors.iter().any(|(_, cp)| cp.size < newest.size) {
            return None;
        }
        let bytes = match shared.store.checkpoint_frontier(org, newest.size).await {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(organization_id = org, error = %e, "cannot read the stored frontier; rebuilding the tree");
                return None;
            }
        };
        let peaks: Option<Vec<Hash>> = (bytes.len() % 32 == 0)
            .then(|| bytes.chunks_exact(32).map(|c| Hash::from_bytes(c.try_into().expect("32 bytes"))).collect());
        let frontier = Frontier::from_peaks(newest.size, peaks?)?;
        if frontier.root() != newest.root {
            tracing::warn!(
                organization_id = org,
                size = newest.size,
                "the stored frontier does not have the signed root; rebuilding the tree"
            );
            return None;
        }
        Some(frontier)
    }

    /// Adds a committed event.
    pub(crate) fn push(&mut self, hash: &Hash) {
        self.frontier.push(leaf_hash(hash.as_bytes()));
    }

    /// When the next checkpoint is due (`None`: nothing new to sign).
    pub(crate) fn due_at(&self) -> Option<Instant> {
        (self.frontier.size() > self.written_size)
            .then(|| self.written_at.map_or_else(Instant::now, |t| t + self.interval))
    }

    /// Signs and stores a checkpoint of the current tree if one is due (or
    /// whenever the log grew, with `force`).
    pub(crate) async fn write_if_due(&mut self, shared: &Shared, org: &str, force: bool) {
        let Some(due) = self.due_at() else { return };
        if !force && due > Instant::now() {
            return;
        }
        let checkpoint =
            Checkpoint { origin: self.origin_line.clone(), size: self.frontier.size(), root: self.frontier.root() };
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
        // The peaks let the next writer resume the tree here (a cache: losing it costs a full read).
        let peaks: Vec<u8> = self.frontier.peaks().iter().flat_map(|h| *h.as_bytes()).collect();
        if let Err(e) = shared.store.put_checkpoint_frontier(org, checkpoint.size, &peaks).await {
            tracing::warn!(organization_id = org, error = %e, "cannot store the checkpoint's frontier");
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
