//! Reading logs back from storage: verification and JSON Lines export.
//!
//! Both read storage directly (never the index, never the writer), so they
//! run beside a live writer and need no lock.

use std::io::Write;
use std::ops::ControlFlow;

use audit_core::merkle::{ProofTree, leaf_hash, verify_inclusion};
use audit_core::note::{Checkpoint, VerifierKey};
use audit_core::prune::{PruneRecord, PruneRecordError};
use audit_core::stored::{StoredEvent, check_line, claimed_timestamp};
use audit_core::verify::{ChainStart, ChainVerifier, FindingKind, VerificationReport, VerifiedPrefix};
use audit_core::{Hash, Timestamp};
use audit_storage::{Chunk, LogStore, StorageError};

use crate::personal::Protection;

/// A time range over `timestamp` (the service's time): `since` inclusive,
/// `until` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub since: Option<Timestamp>,
    /// Exclusive end.
    pub until: Option<Timestamp>,
}

impl TimeRange {
    fn is_everything(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

/// A signed note's text, its signatures not checked (no key was given).
fn unchecked_text(note: &str) -> Option<&str> {
    note.rfind("\n\n").map(|i| &note[..i + 1])
}

/// A stored checkpoint note: opened with `key` when there is one; without
/// one, its text is read and a warning says the signature went unchecked.
pub(crate) fn read_checkpoint(
    note: &[u8],
    key: Option<&VerifierKey>,
) -> Result<(Checkpoint, Option<String>), (FindingKind, String)> {
    let note =
        std::str::from_utf8(note).map_err(|_| (FindingKind::BadSignature, "the checkpoint is not UTF-8".to_owned()))?;
    let (text, warning) = match key {
        Some(k) => (audit_core::note::open(note, k).map_err(|e| (FindingKind::BadSignature, e.to_string()))?, None),
        None => {
            let text = unchecked_text(note)
                .ok_or((FindingKind::BadSignature, "the checkpoint is not a signed note".to_owned()))?;
            (
                text,
                Some(
                    "no verifier key was given: the checkpoint's signature was not checked (use keys public / --key)"
                        .to_owned(),
                ),
            )
        }
    };
    let cp = Checkpoint::parse(text).map_err(|e| (FindingKind::CheckpointMismatch, e.to_string()))?;
    Ok((cp, warning))
}

/// One chunk's lines, split; a final piece without its newline is `torn`.
struct ChunkLines {
    chunk: Chunk,
    bytes: Vec<u8>,
}

impl ChunkLines {
    fn lines(&self) -> (impl Iterator<Item = &[u8]>, Option<&[u8]>) {
        Self::split(&self.bytes)
    }

    /// The complete lines of a chunk, and a final piece without its newline.
    fn split(bytes: &[u8]) -> (impl Iterator<Item = &[u8]>, Option<&[u8]>) {
        let (complete, torn) = match memchr_last_newline(bytes) {
            Some(end) => (&bytes[..end], &bytes[end + 1..]),
            None => (&bytes[..0], bytes),
        };
        let torn = (!torn.is_empty()).then_some(torn);
        let iter = audit_core::stored::split_lines(complete).filter(|l| !complete.is_empty() || !l.is_empty());
        (iter, torn)
    }
}

fn memchr_last_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|b| *b == b'\n')
}

async fn read_chunks<'a>(store: &'a dyn LogStore, org: &'a str) -> Result<Vec<Chunk>, StorageError> {
    store.chunks(org).await
}

/// Lines checked per parallel step (bounds the facts held at once).
const CHECK_BLOCK: usize = 16 * 1024;

/// Checks `lines` with [`check_line`] on all cores and feeds the results to
/// the verifier in log order (linking is sequential and cheap; checking a
/// line — canonical form, shape, SHA-256 — is independent per line).
fn check_in_parallel(v: &mut ChainVerifier, lines: &[&[u8]]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    for block in lines.chunks(CHECK_BLOCK) {
        if threads == 1 || block.len() < 256 {
            for l in block {
                v.push_checked(check_line(l));
            }
            continue;
        }
        let per_thread = block.len().div_ceil(threads);
        let results: Vec<Vec<_>> = std::thread::scope(|scope| {
            let handles: Vec<_> = block
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        super::heavy::lower_this_threads_priority();
                        part.iter().map(|l| check_line(l)).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("line checks do not panic")).collect()
        });
        for checked in results.into_iter().flatten() {
            v.push_checked(checked);
        }
    }
}

/// A stored checkpoint note with the size its file name says.
type StoredCheckpoint = (u64, Vec<u8>);

/// Where checkpoints to hold a log to come from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CheckpointSources<'a> {
    pub(crate) key: Option<&'a VerifierKey>,
    pub(crate) mirror: Option<&'a dyn LogStore>,
    pub(crate) trusted: Option<&'a str>,
    /// Told the lines checked so far after each chunk (a progress bar).
    pub(crate) progress: Option<ProgressFn<'a>>,
}

/// A progress callback (lines or events so far).
#[derive(Clone, Copy)]
pub(crate) struct ProgressFn<'a>(pub(crate) &'a (dyn Fn(u64) + Send + Sync));

impl std::fmt::Debug for ProgressFn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// Where a valid whole-log verification stopped: its verified prefix (the
/// events up to the newest checkpoint it checked) and the byte just after
/// the prefix's last line, so that the next run reads only what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedThrough {
    prefix: VerifiedPrefix,
    chunk: Chunk,
    /// Just past the `\n` ending the prefix's last line in `chunk`.
    offset: u64,
}

impl VerifiedThrough {
    /// Events verified (sequences `0..size`): the checkpoint size covered.
    pub fn size(&self) -> u64 {
        self.prefix.size()
    }

    /// The Merkle root at that size (the signed root checked).
    pub fn root(&self) -> Hash {
        self.prefix.root()
    }

    /// The log it belongs to.
    pub fn organization_id(&self) -> &str {
        self.prefix.organization_id()
    }

    /// As JSON, to keep between runs of a service (sign it where it is kept:
    /// [`VerifiedThrough::from_value`] believes what it reads).
    pub fn to_value(&self) -> audit_core::json::Value {
        use audit_core::json::Value;
        let mut o = audit_core::json::Object::new();
        o.insert("prefix", self.prefix.to_value());
        o.insert("chunk_first_sequence", Value::Number(self.chunk.first_sequence as f64));
        o.insert("chunk_name", Value::String(self.chunk.name.clone()));
        o.insert("offset", Value::Number(self.offset as f64));
        Value::Object(o)
    }

    /// What [`VerifiedThrough::to_value`] wrote; the error names the member.
    pub fn from_value(value: &audit_core::json::Value) -> Result<VerifiedThrough, String> {
        use audit_core::json::Value;
        let Value::Object(o) = value else { return Err("not a JSON object".into()) };
        let number = |name: &str| match o.get(name) {
            Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 && *n < 9_007_199_254_740_992.0 => Ok(*n as u64),
            _ => Err(format!("{name}: missing or not a whole number")),
        };
        let prefix = VerifiedPrefix::from_value(o.get("prefix").ok_or("prefix: missing")?)?;
        let Some(Value::String(name)) = o.get("chunk_name") else { return Err("chunk_name: missing".into()) };
        let chunk = Chunk { first_sequence: number("chunk_first_sequence")?, name: name.clone() };
        let offset = number("offset")?;
        if offset == 0 {
            return Err("offset: the prefix ends after a line, never at 0".into());
        }
        Ok(VerifiedThrough { prefix, chunk, offset })
    }
}

/// Verifies a whole log against every checkpoint `sources_of` yields —
/// from its first event, or (`resume`) only the events after a prefix an
/// earlier run verified — or a time range of it (see [`crate::Verifier`],
/// the public way in). A whole-log run also says where it can be resumed
/// from, when it is valid.
pub(crate) async fn verify_log_checked(
    store: &dyn LogStore,
    organization_id: &str,
    range: TimeRange,
    sources_of: &CheckpointSources<'_>,
    resume: Option<&VerifiedThrough>,
) -> Result<(VerificationReport, Option<VerifiedThrough>), StorageError> {
    let chunks = read_chunks(store, organization_id).await?;
    if range.is_everything() {
        return verify_whole_log(store, organization_id, &chunks, sources_of, resume).await;
    }
    // A range: find the event just before it (the anchor), then check every
    // event in it, linked to the anchor. Parsing and checking are CPU work:
    // each chunk is walked on a low-priority thread, off the async ones.
    // A range from the start of a pruned log links to its prune record.
    let start = match store.pruned(organization_id).await? {
        None => None,
        Some(p) => {
            let (org, key) = (organization_id.to_owned(), sources_of.key.cloned());
            Some(super::heavy::run(move || pruned_start(&org, &p, key.as_ref()).map(|(prefix, _)| prefix)).await?)
        }
    };
    let cut = start.as_ref().and_then(|s| s.as_ref().ok()).map_or(0, VerifiedPrefix::size);
    // Segments wholly before the range are not read: the anchor is in the
    // one the range starts in, or the last one before it.
    let skip = match range.since {
        Some(since) => first_chunk_reaching(store, organization_id, &chunks, since).await?,
        None => 0,
    };
    let mut walk = RangeWalk { organization_id: organization_id.to_owned(), range, start, ..RangeWalk::default() };
    for (i, chunk) in chunks.iter().cloned().enumerate().skip(skip) {
        if chunks.get(i + 1).is_some_and(|next| next.first_sequence <= cut) {
            continue; // covered by the prune record, not removed yet
        }
        let bytes = store.read_chunk(organization_id, &chunk).await?;
        walk = super::heavy::run(move || {
            walk.chunk(ChunkLines { chunk, bytes });
            walk
        })
        .await?;
        if walk.past_the_end {
            break;
        }
    }
    let RangeWalk { v, ends, .. } = walk;
    let mut v = v.unwrap_or_else(|| ChainVerifier::new(organization_id, ChainStart::Anchored));
    if let Some((first, last)) = ends {
        anchor_range_ends(store, organization_id, sources_of, &mut v, [first, last]).await?;
    }
    Ok((v.finish(), None))
}

/// The newest checkpoints to hold a log to: the one beside it, the
/// mirror's, and one the verifier saved; each signature checked.
async fn checkpoints_to_hold_to(
    store: &dyn LogStore,
    organization_id: &str,
    sources_of: &CheckpointSources<'_>,
    v: &mut ChainVerifier,
) -> Result<Vec<(&'static str, Checkpoint)>, StorageError> {
    let mut checkpoints: Vec<(&'static str, Checkpoint)> = Vec::new();
    let mut sources: Vec<(&'static str, Option<StoredCheckpoint>)> =
        vec![("stored", store.latest_checkpoint(organization_id).await?)];
    if let Some(mirror) = sources_of.mirror {
        sources.push(("mirrored", mirror.latest_checkpoint(organization_id).await?));
    }
    if let Some(note) = sources_of.trusted {
        sources.push(("trusted", Some((u64::MAX, note.as_bytes().to_vec()))));
    }
    for (label, found) in sources {
        let Some((size, note)) = found else { continue };
        match read_checkpoint(&note, sources_of.key) {
            Ok((cp, warning)) => {
                if let Some(w) = warning {
                    v.push_warning("checkpoint_unchecked", format!("{label} checkpoint: {w}"));
                }
                if size != u64::MAX && cp.size != size {
                    let detail =
                        format!("{label} checkpoint file of size {size} holds a checkpoint of size {}", cp.size);
                    v.push_finding(FindingKind::CheckpointMismatch, None, detail);
                }
                checkpoints.push((label, cp));
            }
            Err((kind, detail)) => v.push_finding(kind, None, format!("{label} checkpoint: {detail}")),
        }
    }
    Ok(checkpoints)
}

/// The bytes of a resumed run's first chunk after the verified prefix,
/// or why they cannot be trusted to follow it (the chunk is gone, shorter
/// than it was, or no longer has a line end where the prefix ended).
async fn bytes_after_prefix(
    store: &dyn LogStore,
    organization_id: &str,
    chunks: &[Chunk],
    through: &VerifiedThrough,
) -> Result<Result<(usize, Vec<u8>), String>, StorageError> {
    let verified = through.size();
    let Some(index) = chunks.iter().position(|c| *c == through.chunk) else {
        return Ok(Err(format!(
            "segment {}, which held events up to sequence {} when the log was last verified, is gone",
            through.chunk.name,
            verified.saturating_sub(1)
        )));
    };
    // From the prefix's final newline: proof that the chunk still reaches it.
    let mut bytes = store.read_chunk_from(organization_id, &through.chunk, through.offset.saturating_sub(1)).await?;
    if bytes.first() != Some(&b'\n') {
        return Ok(Err(format!(
            "segment {} no longer holds the {verified} events verified earlier in the same place: it was cut or rewritten",
            through.chunk.name
        )));
    }
    bytes.remove(0);
    Ok(Ok((index, bytes)))
}

/// The start of a pruned log: its prune record opened with `key` (or read
/// unchecked, with a warning) and the kept hashes checked against it.
fn pruned_start(
    organization_id: &str,
    pruned: &audit_storage::Pruned,
    key: Option<&VerifierKey>,
) -> Result<(VerifiedPrefix, Option<String>), (FindingKind, String)> {
    let (record, warning) = match key {
        Some(k) => (
            PruneRecord::open(&pruned.record, k).map_err(|e| match e {
                PruneRecordError::Signature(why) => (FindingKind::BadSignature, why),
                other => (FindingKind::Malformed, other.to_string()),
            })?,
            None,
        ),
        None => {
            // Unchecked: its text, up to the signatures.
            let note = String::from_utf8_lossy(&pruned.record);
            let text = unchecked_text(&note).ok_or((FindingKind::BadSignature, "not a signed note".to_owned()))?;
            let record = PruneRecord::parse(text).map_err(|e| (FindingKind::Malformed, e.to_string()))?;
            (record, Some("no verifier key was given: its signature was not checked".to_owned()))
        }
    };
    if record.first_kept != pruned.first_kept {
        let detail = format!("stored as the cut at {} but says {}", pruned.first_kept, record.first_kept);
        return Err((FindingKind::Malformed, detail));
    }
    let tree = record.check_hashes(&pruned.hashes).map_err(|e| (FindingKind::CheckpointMismatch, e.to_string()))?;
    Ok((VerifiedPrefix::after_prune(organization_id, tree, record.last_hash, record.last_timestamp), warning))
}

/// A whole log, from genesis (or its prune record) or after a verified prefix.
async fn verify_whole_log(
    store: &dyn LogStore,
    organization_id: &str,
    chunks: &[Chunk],
    sources_of: &CheckpointSources<'_>,
    resume: Option<&VerifiedThrough>,
) -> Result<(VerificationReport, Option<VerifiedThrough>), StorageError> {
    // The cut is cheap to learn; the kept hashes (32 bytes per removed
    // event) are read only by a run that starts from the prune record.
    let cut = store.prune_cut(organization_id).await?;
    // A place to resume from that retention has since cut away: start
    // again from the prune record instead.
    let resume = resume.filter(|t| t.size() > cut);
    let pruned = match resume {
        None if cut > 0 => store.pruned(organization_id).await?,
        _ => None,
    };
    let (mut v, pruned_hashes) = match (resume, &pruned) {
        (Some(through), _) => (ChainVerifier::resume(&through.prefix), None),
        (None, None) => (ChainVerifier::new(organization_id, ChainStart::Genesis), None),
        (None, Some(p)) => {
            let (org, key, p) = (organization_id.to_owned(), sources_of.key.cloned(), p.clone());
            match super::heavy::run(move || pruned_start(&org, &p, key.as_ref()).map(|s| (s, p.hashes))).await? {
                Ok(((prefix, warning), hashes)) => {
                    let mut v = ChainVerifier::resume(&prefix);
                    if let Some(w) = warning {
                        v.push_warning("checkpoint_unchecked", format!("prune record: {w}"));
                    }
                    (v, Some(hashes))
                }
                Err((kind, detail)) => {
                    // The rest is still checked, linked only to itself.
                    let mut v = ChainVerifier::new(organization_id, ChainStart::Anchored);
                    v.push_finding(kind, None, format!("prune record: {detail}"));
                    (v, None)
                }
            }
        }
    };
    let verified = resume.map_or(0, VerifiedThrough::size).max(cut);
    let mut checkpoints = checkpoints_to_hold_to(store, organization_id, sources_of, &mut v).await?;
    for evidence in store.unexpected_versions(organization_id).await? {
        v.push_finding(FindingKind::UnexpectedObjectVersion, None, evidence);
    }
    checkpoints.retain(|(label, cp)| {
        if cp.size >= verified {
            return true;
        }
        // Below a prune's cut: the kept hashes still have that tree.
        if let Some(hashes) = &pruned_hashes {
            let leaves: Vec<Hash> = hashes.chunks_exact(32).take(cp.size as usize).map(leaf_hash).collect();
            let root = audit_core::merkle::root(&leaves);
            if root != cp.root {
                let detail = format!(
                    "the tree of the first {} events (kept as hashes since the prune) has root {root}; the {label} checkpoint says {}",
                    cp.size, cp.root
                );
                v.push_finding(FindingKind::InconsistentCheckpoint, Some(cp.size.saturating_sub(1)), detail);
            }
            return false;
        }
        // A checkpoint smaller than one an earlier run verified: the store
        // (or the mirror) went back in time.
        let detail = format!(
            "the newest {label} checkpoint covers {} events, but a checkpoint of {verified} was verified earlier: the log was rolled back",
            cp.size
        );
        v.push_finding(FindingKind::InconsistentCheckpoint, Some(cp.size), detail);
        false
    });
    let sizes: Vec<u64> = checkpoints.iter().map(|(_, cp)| cp.size).collect();
    v.track_merkle_at(&sizes);

    // Where reading starts: the first chunk (after any a prune record
    // covers but that are not removed yet), or just after the prefix.
    let (first_index, mut current, mut base_offset) = match resume {
        None => {
            let first = chunks
                .iter()
                .enumerate()
                .position(|(i, _)| chunks.get(i + 1).is_none_or(|n| n.first_sequence > cut))
                .unwrap_or(0);
            for leftover in &chunks[..first] {
                v.push_warning(
                    "pruned_segment_left",
                    format!(
                        "segment {} is covered by the prune record (events before {cut}) and was not removed",
                        leftover.name
                    ),
                );
            }
            let mut bytes = Vec::new();
            if let Some(chunk) = chunks.get(first) {
                store.read_chunk_into(organization_id, chunk, &mut bytes).await?;
            }
            (first, bytes, 0)
        }
        Some(through) => match bytes_after_prefix(store, organization_id, chunks, through).await? {
            Ok((index, bytes)) => (index, bytes, through.offset),
            Err(detail) => {
                v.push_finding(FindingKind::Truncated, Some(verified.saturating_sub(1)), detail);
                return Ok((v.finish(), None));
            }
        },
    };
    let last = chunks.len().saturating_sub(1);
    let mut spare = Vec::new();
    // Where the newest checkpoint's prefix ends, once the walk passes it.
    let mut kept_at: Option<(Chunk, u64)> = None;
    for (i, chunk) in chunks.iter().enumerate().skip(first_index) {
        let bytes = std::mem::take(&mut current);
        if i != first_index || resume.is_none() {
            v.begin_segment(chunk.first_sequence, &chunk.name);
        }
        // Checking lines is CPU work: off the async threads, on every
        // core, behind them in priority (see `heavy`).
        let check = super::heavy::run(move || {
            let lines: Vec<&[u8]> = ChunkLines::split(&bytes).0.collect();
            let before = v.lines_read();
            check_in_parallel(&mut v, &lines);
            // The byte after the prefix's last line, if it is in this chunk.
            let prefix_end = v.prefix_kept_after_line().filter(|n| *n > before).and_then(|n| {
                let line = lines.get(usize::try_from(n - before - 1).ok()?)?;
                Some((line.as_ptr() as usize - bytes.as_ptr() as usize + line.len() + 1) as u64)
            });
            drop(lines);
            (v, bytes, prefix_end)
        });
        let prefetch = async {
            match chunks.get(i + 1) {
                Some(next) => store.read_chunk_into(organization_id, next, &mut spare).await,
                None => Ok(()),
            }
        };
        let (checked, prefetched) = tokio::join!(check, prefetch);
        let (verifier, bytes, prefix_end) = checked?;
        prefetched?;
        v = verifier;
        if let Some(end) = prefix_end {
            kept_at = Some((chunk.clone(), base_offset + end));
        }
        base_offset = 0;
        if let Some(ProgressFn(report)) = sources_of.progress {
            report(v.lines_read());
        }
        if let Some(torn) = ChunkLines::split(&bytes).1 {
            if i == last {
                v.torn_tail(&chunk.name, torn.len());
            } else {
                let seq = v.next_sequence();
                let detail = format!("sealed segment {} ends inside a line", chunk.name);
                v.push_finding(FindingKind::Malformed, seq, detail);
            }
        }
        current = std::mem::replace(&mut spare, bytes);
    }
    for (label, cp) in checkpoints {
        // The log's own checkpoint disagreeing is a mismatch; one kept
        // elsewhere (mirror, verifier) disagreeing means the log was rewritten.
        let differs =
            if label == "stored" { FindingKind::CheckpointMismatch } else { FindingKind::InconsistentCheckpoint };
        match v.merkle_root_at(cp.size) {
            Some(root) if root == cp.root => {}
            Some(root) => {
                let since = if verified > 0 && cp.size > verified {
                    format!(" (extending the tree of {verified} events verified earlier)")
                } else {
                    String::new()
                };
                v.push_finding(
                    differs,
                    Some(cp.size.saturating_sub(1)),
                    format!(
                        "the tree of the first {} events{since} has root {root}; the {label} checkpoint says {}",
                        cp.size, cp.root
                    ),
                );
            }
            None => {
                // The tree is rebuilt only while sequences follow each
                // other: say where it stopped as well as what the log holds.
                let held = v.merkle_size().unwrap_or(0);
                let lines = verified + v.lines_read();
                let detail = if held < lines {
                    format!(
                        "the {label} checkpoint covers {} events; the log holds {lines} lines but they follow each other only through sequence {}, so its tree cannot reach the checkpoint",
                        cp.size,
                        held.saturating_sub(1)
                    )
                } else {
                    format!("the {label} checkpoint covers {} events but the log holds {lines}", cp.size)
                };
                v.push_finding(FindingKind::Truncated, Some(held), detail);
            }
        }
    }
    let (report, prefix) = v.finish_with_prefix();
    let through = match (prefix, kept_at) {
        (Some(prefix), Some((chunk, offset))) => Some(VerifiedThrough { prefix, chunk, offset }),
        // Valid, and no newer checkpoint reached: the old prefix still stands.
        _ if report.valid => resume.cloned(),
        _ => None,
    };
    Ok((report, through))
}

/// A range verification between chunks: the event just before the range
/// (the anchor), the verifier once the range has begun, and the range's
/// first and last events, as `(sequence, hash)`.
#[derive(Default)]
struct RangeWalk {
    organization_id: String,
    range: TimeRange,
    anchor: Option<Vec<u8>>,
    v: Option<ChainVerifier>,
    ends: Option<((u64, Hash), (u64, Hash))>,
    /// An event at or after the range's end was seen: nothing later counts.
    past_the_end: bool,
    /// Where the log starts when retention pruned it (or why its prune
    /// record cannot be trusted).
    start: Option<Result<VerifiedPrefix, (FindingKind, String)>>,
}

impl RangeWalk {
    fn chunk(&mut self, cl: ChunkLines) {
        let (lines, torn) = cl.lines();
        // Lines before the range only matter as the anchor (the last of
        // them): they are placed by their claimed time, not parsed.
        let mut before_range: Option<&[u8]> = None;
        for line in lines {
            if self.v.is_none()
                && let Some(since) = self.range.since
                && claimed_timestamp(line).is_some_and(|t| t < since)
            {
                before_range = Some(line);
                continue;
            }
            if let Some(anchor) = before_range.take() {
                self.anchor = Some(anchor.to_vec());
            }
            let event = StoredEvent::parse_line(line).ok();
            let ts = event.as_ref().map(|e| e.timestamp);
            let before = matches!((ts, self.range.since), (Some(t), Some(s)) if t < s);
            if self.v.is_none() && before {
                self.anchor = Some(line.to_vec());
                continue;
            }
            if matches!((ts, self.range.until), (Some(t), Some(u)) if t >= u) {
                self.past_the_end = true;
                return;
            }
            let (org, anchor) = (&self.organization_id, &self.anchor);
            let verifier = self.v.get_or_insert_with(|| match anchor {
                Some(a) => {
                    let mut v = ChainVerifier::new(org, ChainStart::Anchored);
                    v.push_anchor(a);
                    v
                }
                None => match &self.start {
                    None => ChainVerifier::new(org, ChainStart::Genesis),
                    Some(Ok(prefix)) => ChainVerifier::resume(prefix),
                    Some(Err((kind, detail))) => {
                        let mut v = ChainVerifier::new(org, ChainStart::Anchored);
                        v.push_finding(*kind, None, format!("prune record: {detail}"));
                        v
                    }
                },
            });
            verifier.push_line(line);
            if let Some(e) = event {
                let here = (e.sequence, e.hash);
                self.ends = Some(self.ends.map_or((here, here), |(first, _)| (first, here)));
            }
        }
        if let Some(anchor) = before_range {
            self.anchor = Some(anchor.to_vec());
        }
        if let (Some(torn), Some(verifier)) = (torn, self.v.as_mut()) {
            verifier.torn_tail(&cl.chunk.name, torn.len());
        }
    }
}

/// Anchors a verified range's first and last events in the newest signed
/// checkpoint (the store's or the mirror's, whichever is larger): each must
/// have an inclusion proof, in the tree over the stored hashes, that leads
/// to the signed root. This costs a pass over the whole log's hashes (not a
/// check of its events), and catches a range that verifies on its own but
/// is not part of the history the deployment signed.
async fn anchor_range_ends(
    store: &dyn LogStore,
    organization_id: &str,
    sources_of: &CheckpointSources<'_>,
    v: &mut ChainVerifier,
    ends: [(u64, Hash); 2],
) -> Result<(), StorageError> {
    let mut newest = store.latest_checkpoint(organization_id).await?;
    if let Some(mirror) = sources_of.mirror
        && let Some(m) = mirror.latest_checkpoint(organization_id).await?
        && newest.as_ref().is_none_or(|(size, _)| m.0 > *size)
    {
        newest = Some(m);
    }
    let Some((_, note)) = newest else {
        v.push_warning("range_not_anchored", "the log has no checkpoint: the range's ends are not anchored".into());
        return Ok(());
    };
    let cp = match read_checkpoint(&note, sources_of.key) {
        Ok((cp, warning)) => {
            if let Some(w) = warning {
                v.push_warning("checkpoint_unchecked", w);
            }
            cp
        }
        Err((kind, detail)) => {
            v.push_finding(kind, None, format!("newest checkpoint: {detail}"));
            return Ok(());
        }
    };
    // Each end's inclusion proof from the tree's tiles (O(log n) reads); a
    // proof that checks against the signed root puts the event in the
    // signed tree whatever the tiles are worth. Only when one does not (or
    // the tiles are missing) is the tree rebuilt from every stored hash, to
    // tell a wrong log from wrong tiles.
    let mut unproved = Vec::new();
    for &(sequence, hash) in &ends {
        if sequence >= cp.size {
            v.push_warning(
                "range_end_not_anchored",
                format!("sequence {sequence} is newer than the newest checkpoint ({} events)", cp.size),
            );
            continue;
        }
        let tiles =
            crate::read::proofs::tree_tiles(store, organization_id, cp.size, |t| t.needed_for_inclusion(sequence))
                .await
                .ok()
                .flatten();
        let proved = tiles.and_then(|t| t.inclusion_proof(sequence).ok()).is_some_and(|proof| {
            verify_inclusion(sequence, cp.size, &leaf_hash(hash.as_bytes()), &proof, &cp.root).is_ok()
        });
        if !proved {
            unproved.push((sequence, hash));
        }
    }
    if unproved.is_empty() {
        return Ok(());
    }
    let leaves = match crate::read::proofs::leaves(store, organization_id, cp.size).await {
        Ok(l) => l,
        Err(crate::read::proofs::ProofRequestError::Storage(e)) => return Err(e),
        Err(
            crate::read::proofs::ProofRequestError::OutOfRange(detail)
            | crate::read::proofs::ProofRequestError::Pruned(detail),
        ) => {
            v.push_finding(FindingKind::Truncated, None, detail);
            return Ok(());
        }
    };
    let tree = ProofTree::new(&leaves);
    for (sequence, hash) in unproved {
        let proof = tree.inclusion_proof(sequence as usize).unwrap_or_default();
        if verify_inclusion(sequence, cp.size, &leaf_hash(hash.as_bytes()), &proof, &cp.root).is_err() {
            v.push_finding(
                FindingKind::CheckpointMismatch,
                Some(sequence),
                format!("sequence {sequence} is not in the tree of {} events the checkpoint signed", cp.size),
            );
        }
    }
    Ok(())
}

/// Bytes read from storage at a time by exports.
const EXPORT_WINDOW: usize = 128 * 1024;

/// The longest line an export carries from one window to the next: far
/// above any stored event (events are limited to 256 KiB), so only a
/// damaged segment reaches it, and it is refused rather than buffered.
pub(crate) const LONGEST_LINE: usize = 4 * 1024 * 1024;

/// What [`for_each_block`] calls with each block of complete lines.
type BlockVisitor<'a> = dyn FnMut(&[u8]) -> Result<ControlFlow<()>, ExportError> + Send + 'a;

/// Calls `f` with the complete lines of `chunk` a block at a time (each
/// block ends in `\n`), reading the chunk window by window: memory holds one
/// window and at most one line carried into the next, whatever the chunk's
/// size — a slow export client costs a fixed buffer, never a segment. A
/// final piece without its newline (a torn tail, or a line being appended
/// right now) is left out. `f` breaks to stop early.
async fn for_each_block(
    store: &dyn LogStore,
    organization_id: &str,
    chunk: &Chunk,
    protection: Option<&Protection>,
    f: &mut BlockVisitor<'_>,
) -> Result<ControlFlow<()>, ExportError> {
    let mut window = Vec::with_capacity(EXPORT_WINDOW);
    let mut pending: Vec<u8> = Vec::with_capacity(EXPORT_WINDOW);
    let mut offset = 0u64;
    loop {
        store.read_chunk_window(organization_id, chunk, offset, EXPORT_WINDOW, &mut window).await?;
        offset += window.len() as u64;
        let at_end = window.len() < EXPORT_WINDOW;
        pending.extend_from_slice(&window);
        if let Some(last) = memchr::memrchr(b'\n', &pending) {
            if let Some(p) = protection {
                // The visitor is synchronous: the block's keys are fetched first.
                p.prefetch(organization_id, &pending[..=last]).await.map_err(ExportError::KeyStore)?;
            }
            if f(&pending[..=last])?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
            pending.drain(..=last);
        }
        if at_end {
            return Ok(ControlFlow::Continue(()));
        }
        if pending.len() > LONGEST_LINE {
            return Err(ExportError::Unreadable {
                chunk: chunk.name.clone(),
                detail: format!("no line ends within {LONGEST_LINE} bytes of offset {}", offset - pending.len() as u64),
            });
        }
    }
}

/// Writes an organization's stored events (or a time range of them) as JSON
/// Lines, byte-identical to storage, and returns how many were written. A
/// torn, unacknowledged tail is not exported.
pub async fn export_jsonl(
    store: &dyn LogStore,
    organization_id: &str,
    range: TimeRange,
    out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    let mut written = 0;
    if range.is_everything() {
        // Fast path: the stored bytes (up to the last complete line) are the export.
        for chunk in read_chunks(store, organization_id).await? {
            let _: ControlFlow<()> = for_each_block(store, organization_id, &chunk, None, &mut |block| {
                out.write_all(block)?;
                written += memchr::memchr_iter(b'\n', block).count() as u64;
                Ok(ControlFlow::Continue(()))
            })
            .await?;
        }
    } else {
        for_each_stored_line(store, organization_id, range, &mut |line, _| {
            out.write_all(line)?;
            out.write_all(b"\n")?;
            written += 1;
            Ok(())
        })
        .await?;
    }
    out.flush()?;
    Ok(written)
}

/// How many of an organization's stored lines contain any of `needles`
/// (a scan of the raw bytes, nothing parsed): e.g. the events sealed under
/// a set of keys.
pub(crate) async fn count_lines_containing(
    store: &dyn LogStore,
    organization_id: &str,
    needles: &[String],
) -> Result<u64, ExportError> {
    if needles.is_empty() {
        return Ok(0);
    }
    let finders: Vec<memchr::memmem::Finder<'_>> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut count = 0;
    for chunk in read_chunks(store, organization_id).await? {
        let _: ControlFlow<()> = for_each_block(store, organization_id, &chunk, None, &mut |block| {
            for line in audit_core::stored::split_lines(block) {
                if finders.iter().any(|f| f.find(line).is_some()) {
                    count += 1;
                }
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    }
    Ok(count)
}

/// What [`for_each_stored_line`] calls for each line.
pub type LineVisitor<'a> = dyn FnMut(&[u8], &StoredEvent) -> Result<(), ExportError> + Send + 'a;

/// Calls `f` with every stored line in `range` (and the event it holds), in
/// log order, reading storage a window at a time (see [`for_each_block`]).
/// A line that cannot be read stops the walk with an error: it cannot be
/// placed.
pub async fn for_each_stored_line(
    store: &dyn LogStore,
    organization_id: &str,
    range: TimeRange,
    f: &mut LineVisitor<'_>,
) -> Result<(), ExportError> {
    for_each_stored_line_with(store, organization_id, range, None, f).await
}

/// [`for_each_stored_line`], with the keys of each block's sealed values
/// fetched into `protection`'s cache before its lines are visited (so the
/// visitor can reveal them with [`Protection::reveal_cached`]).
pub async fn for_each_stored_line_with(
    store: &dyn LogStore,
    organization_id: &str,
    range: TimeRange,
    protection: Option<&Protection>,
    f: &mut LineVisitor<'_>,
) -> Result<(), ExportError> {
    for_each_block_in_range(store, organization_id, range, protection, &mut |chunk, block| {
        for line in audit_core::stored::split_lines(&block[..block.len() - 1]) {
            match read_in_range(chunk, line, range)? {
                InRange::Before => {}
                InRange::Event(event) => f(line, &event)?,
                InRange::After => return Ok(ControlFlow::Break(())),
            }
        }
        Ok(ControlFlow::Continue(()))
    })
    .await
}

/// What [`for_each_block_in_range`] calls with each block of complete
/// lines, and the name of the chunk it is from.
type RangeBlockVisitor<'a> = dyn FnMut(&str, &[u8]) -> Result<ControlFlow<()>, ExportError> + Send + 'a;

/// Calls `f` with the blocks of complete lines (see [`for_each_block`]) of
/// every chunk that may hold an event in `range`: chunks wholly before
/// `range.since` are skipped (their lines are not read); `f` places each
/// line with [`read_in_range`] and breaks at the end of the range.
async fn for_each_block_in_range(
    store: &dyn LogStore,
    organization_id: &str,
    range: TimeRange,
    protection: Option<&Protection>,
    f: &mut RangeBlockVisitor<'_>,
) -> Result<(), ExportError> {
    let chunks = read_chunks(store, organization_id).await?;
    let first = match range.since {
        Some(since) => first_chunk_reaching(store, organization_id, &chunks, since).await?,
        None => 0,
    };
    for chunk in chunks.into_iter().skip(first) {
        let flow =
            for_each_block(store, organization_id, &chunk, protection, &mut |block| f(&chunk.name, block)).await?;
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

/// Where one stored line stands against a time range.
// It lives for one line on the stack and is moved once: boxing the event
// would cost an allocation per line for nothing.
#[allow(clippy::large_enum_variant)]
enum InRange {
    /// Earlier than the range.
    Before,
    /// In the range: the event it holds.
    Event(StoredEvent),
    /// At or after the range's end, and so is every later line.
    After,
}

/// Reads one stored line of `chunk` and places it in `range`. A line that
/// cannot be read is an error: it cannot be placed.
fn read_in_range(chunk: &str, line: &[u8], range: TimeRange) -> Result<InRange, ExportError> {
    // Lines before the range are passed over on their claimed time alone
    // (a full parse is 100 times dearer).
    if let Some(since) = range.since
        && claimed_timestamp(line).is_some_and(|t| t < since)
    {
        return Ok(InRange::Before);
    }
    let event = StoredEvent::parse_line(line)
        .map_err(|e| ExportError::Unreadable { chunk: chunk.to_owned(), detail: e.to_string() })?;
    Ok(if range.since.is_some_and(|s| event.timestamp < s) {
        InRange::Before
    } else if range.until.is_some_and(|u| event.timestamp >= u) {
        InRange::After
    } else {
        InRange::Event(event)
    })
}

/// Turns the stored events of one part of a block into output bytes; many
/// parts are encoded at once, on different threads (see
/// [`encode_stored_lines`]).
pub(crate) trait PartEncoder: Sync {
    /// One part's output as it is built.
    type Part: Send;
    /// An empty part.
    fn begin(&self) -> Self::Part;
    /// Adds one event in the range (the encoder filters it or not).
    fn event(&self, part: &mut Self::Part, line: &[u8], event: &StoredEvent) -> Result<(), ExportError>;
}

/// Below this many bytes a block is encoded on the calling thread alone
/// (threads cost more than they save).
const PARALLEL_BLOCK: usize = 16 * 1024;

/// Encodes every stored event of `range` with `encoder` on all cores and
/// hands `sink` the parts in log order. Each block of lines (see
/// [`for_each_block`]) is cut at line ends into one part per core; the
/// parts are parsed and encoded at once (all but the caller's at the
/// priority of heavy reads), then handed over in order. Memory is one block
/// and its encoded parts. Parsing dominates an export like CSV's, and
/// parsing one line does not depend on any other.
pub(crate) async fn encode_stored_lines<E: PartEncoder>(
    store: &dyn LogStore,
    organization_id: &str,
    range: TimeRange,
    protection: Option<&Protection>,
    encoder: &E,
    sink: &mut (dyn FnMut(E::Part) -> Result<(), ExportError> + Send),
) -> Result<(), ExportError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    for_each_block_in_range(store, organization_id, range, protection, &mut |chunk, block| {
        let parts = split_at_lines(block, if block.len() < PARALLEL_BLOCK { 1 } else { threads });
        let encode = |part: &[u8]| encode_part(encoder, chunk, part, range);
        let results: Vec<_> = match parts.as_slice() {
            [one] => vec![encode(one)],
            [first, rest @ ..] => std::thread::scope(|scope| {
                let handles: Vec<_> = rest
                    .iter()
                    .map(|part| {
                        scope.spawn(move || {
                            super::heavy::lower_this_threads_priority();
                            encode(part)
                        })
                    })
                    .collect();
                let mut results = vec![encode(first)];
                results.extend(handles.into_iter().map(|h| h.join().expect("encoding a part does not panic")));
                results
            }),
            [] => Vec::new(),
        };
        for (part, flow) in results {
            sink(part)?;
            if flow?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    })
    .await
}

/// One part's encoded events, and whether the walk goes on after it (it
/// stops at the range's end, or at an unreadable line, after the events
/// before it).
fn encode_part<E: PartEncoder>(
    encoder: &E,
    chunk: &str,
    lines: &[u8],
    range: TimeRange,
) -> (E::Part, Result<ControlFlow<()>, ExportError>) {
    let mut part = encoder.begin();
    for line in audit_core::stored::split_lines(&lines[..lines.len() - 1]) {
        let placed = read_in_range(chunk, line, range);
        let step = match placed {
            Ok(InRange::Before) => Ok(()),
            Ok(InRange::Event(event)) => encoder.event(&mut part, line, &event),
            Ok(InRange::After) => return (part, Ok(ControlFlow::Break(()))),
            Err(e) => Err(e),
        };
        if let Err(e) = step {
            return (part, Err(e));
        }
    }
    (part, Ok(ControlFlow::Continue(())))
}

/// `block` (whole lines, ending in `\n`) cut into at most `parts` pieces of
/// about equal size, each ending at a line end.
fn split_at_lines(block: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = block;
    for left in (1..=parts).rev() {
        if rest.is_empty() {
            break;
        }
        let aim = rest.len() / left;
        let end = if left == 1 {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[aim.saturating_sub(1)..])
                .map_or(rest.len(), |at| aim.saturating_sub(1) + at + 1)
        };
        let (piece, after) = rest.split_at(end);
        pieces.push(piece);
        rest = after;
    }
    pieces
}

/// The index of the first chunk that may hold an event at or after
/// `since`: timestamps never decrease along a log, so every chunk before
/// the last one whose first event is earlier than `since` holds only
/// earlier events. A binary search reading one line per probe.
async fn first_chunk_reaching(
    store: &dyn LogStore,
    organization_id: &str,
    chunks: &[Chunk],
    since: Timestamp,
) -> Result<usize, StorageError> {
    // The smallest k whose first event is at or after `since`; the answer is k - 1.
    let (mut low, mut high) = (0, chunks.len());
    while low < high {
        let mid = (low + high) / 2;
        match first_timestamp(store, organization_id, &chunks[mid]).await? {
            Some(t) if t < since => low = mid + 1,
            // Unreadable or empty: do not skip past it (the walk reports it).
            _ => high = mid,
        }
    }
    Ok(low.saturating_sub(1))
}

/// The claimed timestamp of a chunk's first line, if it has a complete one.
async fn first_timestamp(
    store: &dyn LogStore,
    organization_id: &str,
    chunk: &Chunk,
) -> Result<Option<Timestamp>, StorageError> {
    let mut buf = Vec::new();
    let mut window = 4096;
    loop {
        store.read_chunk_window(organization_id, chunk, 0, window, &mut buf).await?;
        if let Some(end) = memchr::memchr(b'\n', &buf) {
            return Ok(claimed_timestamp(&buf[..end]));
        }
        if buf.len() < window || window >= 4 << 20 {
            return Ok(None);
        }
        window *= 8;
    }
}

/// An export that could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored line cannot be read, so it cannot be placed in the range
    /// (run `verify`).
    #[error("segment {chunk} holds an unreadable line ({detail}); run verify")]
    Unreadable {
        /// The chunk.
        chunk: String,
        /// Why.
        detail: String,
    },
    /// The filter was refused; names the parameter.
    #[error(transparent)]
    Filter(#[from] audit_core::filter::FilterError),
    /// The key store failed while personal values were being revealed.
    #[error(transparent)]
    KeyStore(audit_keystore::KeyStoreError),
    /// Writing the output failed (e.g. the reader went away).
    #[error("cannot write the export: {0}")]
    Output(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use audit_core::sample::sample_log;
    use audit_storage::local::LocalStore;
    use audit_storage::{Batch, LogStore};

    use super::*;

    /// Every cut ends at a line end, the pieces put back together are the
    /// block, and none is empty, whatever the block and the number asked.
    #[test]
    fn blocks_are_cut_at_line_ends_into_whole_lines() {
        let lines: Vec<String> = (0..200).map(|n| format!("{{\"n\":{}}}\n", "x".repeat(n * 37 % 301))).collect();
        for count in [1, 2, 3, 7, 200] {
            let block = lines[..count].concat();
            for parts in 1..=9 {
                let pieces = split_at_lines(block.as_bytes(), parts);
                assert!(!pieces.is_empty() && pieces.len() <= parts.min(count), "{count} lines, {parts} parts");
                assert!(pieces.iter().all(|p| p.ends_with(b"\n")), "{count} lines, {parts} parts");
                assert_eq!(pieces.concat(), block.as_bytes());
            }
        }
        // Two parts of a long block are of about equal size.
        let block = lines.concat();
        let halves = split_at_lines(block.as_bytes(), 2);
        assert!(halves[0].len().abs_diff(halves[1].len()) < 700, "{} vs {}", halves[0].len(), halves[1].len());
    }

    const ORG: &str = "window-org";

    /// A local log of `count` sample events, and the bytes it stores.
    async fn stored_log(count: u64) -> (tempfile::TempDir, LocalStore, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let start = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let mut bytes = Vec::new();
        for line in sample_log(ORG, count, start) {
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
        }
        let mut writer = store.open_writer(ORG).await.unwrap();
        writer.append(Arc::new(Batch { first_sequence: 0, count, bytes: bytes.clone() })).await.unwrap();
        (dir, store, bytes)
    }

    #[tokio::test]
    async fn exports_read_in_windows_give_back_every_line_across_window_edges() {
        // Far more than one window, so lines straddle window edges.
        let (_dir, store, bytes) = stored_log(3_000).await;
        assert!(bytes.len() > 4 * EXPORT_WINDOW, "the log spans several windows");
        let mut out = Vec::new();
        let n = export_jsonl(&store, ORG, TimeRange::default(), &mut out).await.unwrap();
        assert_eq!(n, 3_000);
        assert!(out == bytes, "the export is the stored bytes");

        // A time range: the middle thousand events, one per millisecond.
        let lines = sample_log(ORG, 3_000, Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap());
        let since = StoredEvent::parse_line(&lines[1_000]).unwrap().timestamp;
        let until = StoredEvent::parse_line(&lines[2_000]).unwrap().timestamp;
        let mut seen = Vec::new();
        for_each_stored_line(&store, ORG, TimeRange { since: Some(since), until: Some(until) }, &mut |line, _| {
            seen.push(line.to_vec());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen, lines[1_000..2_000].to_vec());
    }

    #[tokio::test]
    async fn a_time_range_starts_in_the_right_segment_whatever_its_boundaries() {
        // 2,000 events in batches of 100 over segments of ~16 KiB.
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).with_segment_bytes(16 * 1024);
        let lines = sample_log(ORG, 2_000, Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap());
        let mut writer = store.open_writer(ORG).await.unwrap();
        for (i, batch) in lines.chunks(100).enumerate() {
            let bytes: Vec<u8> = batch.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
            let batch = Batch { first_sequence: i as u64 * 100, count: 100, bytes };
            writer.append(Arc::new(batch)).await.unwrap();
        }
        drop(writer);
        let chunks = store.chunks(ORG).await.unwrap();
        assert!(chunks.len() > 5, "{} segments", chunks.len());
        let at = |i: usize| StoredEvent::parse_line(&lines[i]).unwrap().timestamp;
        // Starts on a segment's first event, just after it, mid-segment, at the log's ends.
        let mut starts: Vec<usize> = chunks.iter().map(|c| c.first_sequence as usize).collect();
        starts.extend([1, 101, 999, 1_999]);
        for start in starts {
            for end in [start + 1, (start + 250).min(2_000)] {
                let until = (end < 2_000).then(|| at(end));
                let mut seen = Vec::new();
                for_each_stored_line(&store, ORG, TimeRange { since: Some(at(start)), until }, &mut |line, _| {
                    seen.push(line.to_vec());
                    Ok(())
                })
                .await
                .unwrap();
                assert_eq!(seen, lines[start..end].to_vec(), "{start}..{end}");
            }
        }
        // Mid-segment: exactly the segment holding it (no earlier one is read).
        let mid = chunks.iter().map(|c| c.first_sequence as usize).find(|&f| f > 1_400).unwrap() + 50;
        let first = first_chunk_reaching(&store, ORG, &chunks, at(mid)).await.unwrap();
        assert!(chunks[first].first_sequence as usize <= mid, "{mid}");
        assert!(chunks.get(first + 1).is_none_or(|c| c.first_sequence as usize > mid), "{mid}");
        let late = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(first_chunk_reaching(&store, ORG, &chunks, late).await.unwrap(), chunks.len() - 1);

        // Range verification starts in that segment too, linked to the event before.
        let range = TimeRange { since: Some(at(mid)), until: Some(at(mid + 100)) };
        let verifier = crate::Verifier::new(&store).danger_unsigned_checkpoints().range(range);
        let report = verifier.verify(ORG).await.unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!((report.total_events, report.first_sequence), (100, Some(mid as u64)));
        // The anchor (the event before the range) is checked, not just placed.
        let path = store.log_dir(ORG).join(&chunks[first].name);
        let text = std::fs::read_to_string(&path).unwrap();
        let anchor = String::from_utf8(lines[mid - 1].clone()).unwrap();
        let at_hash = anchor.find("\"hash\":\"").unwrap() + 8;
        let mut altered = anchor.clone();
        altered.replace_range(at_hash..at_hash + 1, if &anchor[at_hash..at_hash + 1] == "0" { "1" } else { "0" });
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(&path, text.replace(&anchor, &altered)).unwrap();
        let report = verifier.verify(ORG).await.unwrap();
        assert!(!report.valid, "an altered anchor is found");
        assert_eq!(report.errors[0].sequence, Some(mid as u64 - 1), "{report:?}");
    }

    #[tokio::test]
    async fn a_segment_with_no_line_end_for_megabytes_is_refused_not_buffered() {
        let (_dir, store, _) = stored_log(10).await;
        let chunk = store.chunks(ORG).await.unwrap().remove(0);
        let path = store.log_dir(ORG).join(&chunk.name);
        let mut damaged = std::fs::read(&path).unwrap();
        damaged.extend(std::iter::repeat_n(b'x', LONGEST_LINE + EXPORT_WINDOW));
        damaged.extend_from_slice(b"\n");
        damaged.extend(std::iter::repeat_n(b'y', EXPORT_WINDOW));
        std::fs::write(&path, damaged).unwrap();
        let err = export_jsonl(&store, ORG, TimeRange::default(), &mut Vec::new()).await.unwrap_err();
        assert!(
            matches!(&err, ExportError::Unreadable { chunk: c, detail } if *c == chunk.name && detail.contains("no line ends")),
            "{err}"
        );
    }
}
