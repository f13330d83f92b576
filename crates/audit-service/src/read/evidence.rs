//! Evidence bundles (`export --with-proof`, SPEC §8): a `jsonl` export that
//! an auditor can check offline even when it holds only some events (one
//! data subject, one project).
//!
//! ```text
//! {"checkpoint":"<signed note>","format":"agenttrace-evidence/1","organization_id":"…"}
//! <stored event, byte for byte as stored>
//! {"inclusion_proof":{"hashes":["<hex>",…],"leaf_index":S,"tree_size":N}}
//! <stored event>
//! {"inclusion_proof":{…}}
//! …
//! ```
//!
//! Every event is followed by its RFC 9162 inclusion proof in the tree of
//! the signed checkpoint (leaf = SHA-256(0x00 ‖ event hash), leaf index =
//! `sequence`). Checking a bundle needs only the organization's verifier
//! key: the checkpoint's signature, each event's hash, each proof against
//! the signed root, and the links between events that follow each other.
//! `jq -c 'select(.event_id)'` yields the plain events.

use std::cell::OnceCell;
use std::io::{BufRead as _, Seek as _, Write};

use audit_core::Hash;
use audit_core::filter::AuditEventFilter;
use audit_core::json::{Object, Value};
use audit_core::merkle::{ProofTree, leaf_hash, verify_inclusion};
use audit_core::note::VerifierKey;
use audit_core::stored::check_line;
use audit_core::tiles::{TileError, TreeTiles};
use audit_core::verify::{Finding, FindingKind, Notice, VerificationReport};
use audit_storage::{LogStore, StorageError};

use crate::read::export::ExportFormat;
use crate::read::proofs::{ProofRequestError, leaves, tree_tiles};
use crate::read::stored::read_checkpoint;

/// The `format` of the bundle's first line.
pub const EVIDENCE_FORMAT: &str = "agenttrace-evidence/1";

/// What an evidence export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceSummary {
    /// Events written, each with its proof.
    pub events: u64,
    /// The checkpoint's tree size (events at or after it are left out).
    pub tree_size: u64,
    /// Matching events left out because no checkpoint covers them yet.
    pub newer_than_checkpoint: u64,
}

/// Why an evidence export could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The log has no checkpoint to prove against.
    #[error("the log of {0} has no signed checkpoint yet (a running service writes one within a second of a commit)")]
    NoCheckpoint(String),
    /// The checkpoint is unreadable or its signature does not verify.
    #[error("the newest checkpoint of {organization_id}: {detail}")]
    BadCheckpoint {
        /// The log.
        organization_id: String,
        /// What is wrong.
        detail: String,
    },
    /// The log's tree does not have the checkpoint's root: run verify.
    #[error("the log of {0} does not match its newest checkpoint; run verify")]
    Mismatch(String),
    /// Reading storage or the export failed.
    #[error(transparent)]
    Export(#[from] crate::read::stored::ExportError),
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Events proved together: their tiles are read at once.
const BATCH_EVENTS: usize = 4096;
/// Bytes of stored lines held for one batch.
const BATCH_BYTES: usize = 8 << 20;

/// Writes an evidence bundle of the events matching `filter` that the
/// newest stored checkpoint covers. With `key`, the checkpoint's signature
/// is checked first (a bundle is only as good as its checkpoint).
///
/// The matching events are first exported into an unnamed temporary file;
/// then each batch of them gets its proofs from the O(log n) tiles it
/// needs (authenticated against the checkpoint's root), so a bundle of a
/// few events costs a few tile reads whatever the log's size. A tree whose
/// tiles are not all stored (a log from before tiles, not yet rebuilt) is
/// proved from every stored hash instead.
pub async fn export_evidence(
    store: &dyn LogStore,
    filter: &AuditEventFilter,
    key: Option<&VerifierKey>,
    out: &mut (dyn Write + Send),
    protection: Option<&crate::personal::Protection>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<EvidenceSummary, EvidenceError> {
    let org = filter.organization_id.clone();
    let (size, mut note_bytes) =
        store.latest_checkpoint(&org).await?.ok_or_else(|| EvidenceError::NoCheckpoint(org.clone()))?;
    // Witnesses' cosignatures travel with the checkpoint, so a bundle can be
    // held to a witness quorum offline (`verify-export --witness-quorum`).
    for line in store.cosignatures(&org, size).await? {
        note_bytes.extend_from_slice(&line);
    }
    let bad = |detail: String| EvidenceError::BadCheckpoint { organization_id: org.clone(), detail };
    let (checkpoint, _) = read_checkpoint(&note_bytes, key).map_err(|(_, detail)| bad(detail))?;
    let note = String::from_utf8(note_bytes).map_err(|_| bad("not UTF-8".into()))?;

    // The events as stored; `protection` only lets an `actor_email` filter
    // match the sealed addresses (a subject's right-of-access bundle).
    let mut spool = std::io::BufWriter::new(tempfile::tempfile()?);
    crate::read::export::export_events(store, filter, ExportFormat::Jsonl, &mut spool, protection, progress).await?;
    let mut spool = spool.into_inner().map_err(|e| e.into_error())?;
    spool.seek(std::io::SeekFrom::Start(0))?;

    let mut header = Object::new();
    header.insert("checkpoint", Value::String(note));
    header.insert("format", Value::String(EVIDENCE_FORMAT.into()));
    header.insert("organization_id", Value::String(org.clone()));
    out.write_all(&audit_core::canonical::to_canonical(&Value::Object(header)))?;
    out.write_all(b"\n")?;

    let all_leaves = OnceCell::new();
    let mut prover =
        Prover { store, org: &org, size: checkpoint.size, root: checkpoint.root, leaves: &all_leaves, tree: None };
    let mut summary = EvidenceSummary { events: 0, tree_size: checkpoint.size, newer_than_checkpoint: 0 };
    let mut batch: Vec<(u64, Hash, Vec<u8>)> = Vec::new();
    let mut held = 0;
    for line in std::io::BufReader::new(spool).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let facts = check_line(&line).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("an exported line is not a stored event: {e}"))
        })?;
        if facts.sequence >= checkpoint.size {
            summary.newer_than_checkpoint += 1;
            continue;
        }
        held += line.len();
        batch.push((facts.sequence, facts.hash, line));
        if batch.len() >= BATCH_EVENTS || held >= BATCH_BYTES {
            summary.events += prover.write(&batch, out).await?;
            batch.clear();
            held = 0;
        }
    }
    summary.events += prover.write(&batch, out).await?;
    Ok(summary)
}

/// Proofs in the checkpoint's tree: from tiles, or (once a batch's tiles
/// are not all stored) from every stored hash, read once.
struct Prover<'s, 'l> {
    store: &'s dyn LogStore,
    org: &'s str,
    size: u64,
    root: Hash,
    leaves: &'l OnceCell<Vec<Hash>>,
    tree: Option<ProofTree<'l>>,
}

impl<'l> Prover<'_, 'l> {
    /// Writes each event of `batch` followed by its proof; the number written.
    async fn write(
        &mut self,
        batch: &[(u64, Hash, Vec<u8>)],
        out: &mut (dyn Write + Send),
    ) -> Result<u64, EvidenceError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let proofs = match self.prove_with_tiles(batch).await? {
            Some(proofs) => proofs,
            None => self.prove_with_leaves(batch).await?,
        };
        for ((sequence, hash, line), (leaf, proof)) in batch.iter().zip(proofs) {
            if leaf != leaf_hash(hash.as_bytes()) {
                return Err(EvidenceError::Mismatch(self.org.to_owned()));
            }
            out.write_all(line)?;
            out.write_all(b"\n")?;
            out.write_all(&proof_line(*sequence, self.size, &proof))?;
        }
        Ok(batch.len() as u64)
    }

    async fn prove_with_tiles(
        &self,
        batch: &[(u64, Hash, Vec<u8>)],
    ) -> Result<Option<Vec<(Hash, Vec<Hash>)>>, EvidenceError> {
        if self.tree.is_some() {
            return Ok(None);
        }
        let needed = |t: &TreeTiles| {
            let mut ids = Vec::new();
            for (sequence, _, _) in batch {
                ids.extend(t.needed_for_inclusion(*sequence)?);
            }
            ids.sort_unstable();
            ids.dedup();
            Ok(ids)
        };
        // The checkpoint is the newest: tree_tiles authenticates the tiles
        // against its root.
        let Some(tiles) = tree_tiles(self.store, self.org, self.size, needed).await.map_err(|e| self.proof_error(e))?
        else {
            return Ok(None);
        };
        Ok(batch
            .iter()
            .map(|(s, _, _)| Ok((tiles.leaf(*s)?, tiles.inclusion_proof(*s)?)))
            .collect::<Result<Vec<_>, TileError>>()
            .ok())
    }

    async fn prove_with_leaves(
        &mut self,
        batch: &[(u64, Hash, Vec<u8>)],
    ) -> Result<Vec<(Hash, Vec<Hash>)>, EvidenceError> {
        if self.tree.is_none() {
            let leaves = leaves(self.store, self.org, self.size).await.map_err(|e| self.proof_error(e))?;
            let leaves: &'l Vec<Hash> = self.leaves.get_or_init(|| leaves);
            let tree = ProofTree::new(leaves);
            if tree.root() != self.root {
                return Err(EvidenceError::Mismatch(self.org.to_owned()));
            }
            self.tree = Some(tree);
        }
        let tree = self.tree.as_ref().expect("built above");
        batch
            .iter()
            .map(|(s, _, _)| {
                let proof =
                    tree.inclusion_proof(*s as usize).map_err(|_| EvidenceError::Mismatch(self.org.to_owned()))?;
                Ok((
                    tree.leaf(*s as usize).copied().ok_or_else(|| EvidenceError::Mismatch(self.org.to_owned()))?,
                    proof,
                ))
            })
            .collect()
    }

    fn proof_error(&self, e: ProofRequestError) -> EvidenceError {
        match e {
            ProofRequestError::Storage(s) => EvidenceError::Storage(s),
            ProofRequestError::OutOfRange(_) | ProofRequestError::Pruned(_) => {
                EvidenceError::Mismatch(self.org.to_owned())
            }
        }
    }
}

fn proof_line(sequence: u64, tree_size: u64, proof: &[Hash]) -> Vec<u8> {
    let mut p = Object::new();
    p.insert("hashes", Value::Array(proof.iter().map(|h| Value::String(h.to_hex())).collect()));
    p.insert("leaf_index", Value::Number(sequence as f64));
    p.insert("tree_size", Value::Number(tree_size as f64));
    let mut o = Object::new();
    o.insert("inclusion_proof", Value::Object(p));
    let mut line = audit_core::canonical::to_canonical(&Value::Object(o));
    line.push(b'\n');
    line
}

/// Whether `first_line` opens an evidence bundle.
pub fn is_evidence_header(first_line: &[u8]) -> bool {
    matches!(
        audit_core::json::parse(first_line, audit_core::json::NumberPolicy::Exact),
        Ok(Value::Object(o)) if o.get("format") == Some(&Value::String(EVIDENCE_FORMAT.into()))
    )
}

/// Why a file could not be checked as an evidence bundle at all (a bundle
/// that fails its checks is a report with `valid: false`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// No lines.
    #[error("the bundle is empty")]
    Empty,
    /// The first line is not a bundle header.
    #[error("line 1 is not the bundle's header")]
    NoHeader,
    /// The header lacks a member.
    #[error("line 1: the header has no {0}")]
    HeaderMissing(&'static str),
    /// The checkpoint in the header cannot be read at all.
    #[error("the bundle's checkpoint: {0}")]
    Checkpoint(String),
}

/// Checks an evidence bundle given as its lines. `key` checks the
/// checkpoint's signature (without one, the report warns that only the
/// bundle's internal consistency was checked).
pub fn verify_evidence<'l>(
    mut lines: impl Iterator<Item = &'l [u8]>,
    key: Option<&VerifierKey>,
) -> Result<VerificationReport, BundleError> {
    let header = lines.next().ok_or(BundleError::Empty)?;
    let Ok(Value::Object(h)) = audit_core::json::parse(header, audit_core::json::NumberPolicy::Exact) else {
        return Err(BundleError::NoHeader);
    };
    let text = |name: &'static str| match h.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(BundleError::HeaderMissing(name)),
    };
    let (note, org) = (text("checkpoint")?, text("organization_id")?);
    let mut errors: Vec<Finding> = Vec::new();
    let mut warnings: Vec<Notice> = Vec::new();
    let finding = |kind, sequence, event_id: Option<&str>, detail: String| Finding {
        event_id: event_id.map(str::to_owned),
        sequence,
        kind,
        detail,
    };
    // A bad signature is a finding; the events are still checked against the unchecked body.
    let checkpoint = match read_checkpoint(note.as_bytes(), key) {
        Ok((cp, warning)) => {
            if let Some(detail) = warning {
                warnings.push(Notice { kind: "checkpoint_unchecked", detail });
            }
            cp
        }
        Err((kind, detail)) => {
            errors.push(finding(kind, None, None, format!("the bundle's checkpoint: {detail}")));
            read_checkpoint(note.as_bytes(), None).map_err(|(_, d)| BundleError::Checkpoint(d))?.0
        }
    };
    if !checkpoint.origin.ends_with(&format!("/{org}")) {
        errors.push(finding(
            FindingKind::CheckpointMismatch,
            None,
            None,
            format!("the checkpoint is for {}, not for {org}", checkpoint.origin),
        ));
    }
    let (mut total, mut first, mut last) = (0u64, None, None::<u64>);
    let mut previous: Option<(u64, Hash)> = None;
    let mut n = 1usize;
    while let Some(line) = lines.next() {
        n += 1;
        let facts = match check_line(line) {
            Ok(f) => f,
            Err(e) => {
                errors.push(finding(FindingKind::Malformed, None, None, format!("line {n}: {e}")));
                let _ = lines.next();
                n += 1;
                continue;
            }
        };
        total += 1;
        let seq = facts.sequence;
        first = first.or(Some(seq));
        let id = Some(facts.event_id);
        if facts.computed_hash != facts.hash {
            errors.push(finding(
                FindingKind::HashMismatch,
                Some(seq),
                id,
                format!("line {n}: the content does not have its hash"),
            ));
        }
        if facts.organization_id != org.as_str() {
            errors.push(finding(
                FindingKind::Malformed,
                Some(seq),
                id,
                format!("line {n}: an event of {}", facts.organization_id),
            ));
        }
        match (last, previous) {
            (Some(l), _) if seq <= l => errors.push(finding(
                FindingKind::SequenceGap,
                Some(seq),
                id,
                format!("line {n}: sequence {seq} after {l} (events out of order or repeated)"),
            )),
            (_, Some((p, hash))) if p + 1 == seq && facts.previous_hash != hash => errors.push(finding(
                FindingKind::ChainBreak,
                Some(seq),
                id,
                format!("line {n}: previous_hash is not the hash of event {p}"),
            )),
            _ => {}
        }
        last = Some(seq);
        previous = Some((seq, facts.hash));
        n += 1;
        let proof = lines.next().and_then(parse_proof_line);
        match proof {
            None => errors.push(finding(
                FindingKind::Malformed,
                Some(seq),
                id,
                format!("line {n}: no inclusion proof after event {seq}"),
            )),
            Some((index, size, hashes)) => {
                let ok = index == seq
                    && size == checkpoint.size
                    && verify_inclusion(index, size, &leaf_hash(facts.hash.as_bytes()), &hashes, &checkpoint.root)
                        .is_ok();
                if !ok {
                    errors.push(finding(
                        FindingKind::CheckpointMismatch,
                        Some(seq),
                        id,
                        format!(
                            "line {n}: the inclusion proof does not place event {seq} in the signed tree of size {}",
                            checkpoint.size
                        ),
                    ));
                }
            }
        }
    }
    Ok(VerificationReport {
        valid: errors.is_empty(),
        organization_id: org,
        total_events: total,
        first_sequence: first,
        last_sequence: last,
        errors,
        errors_not_listed: 0,
        warnings,
        producer_gaps: Vec::new(),
        pruned_through: None,
    })
}

/// `(leaf_index, tree_size, hashes)` of a proof line.
fn parse_proof_line(line: &[u8]) -> Option<(u64, u64, Vec<Hash>)> {
    let Ok(Value::Object(o)) = audit_core::json::parse(line, audit_core::json::NumberPolicy::Exact) else {
        return None;
    };
    let Some(Value::Object(p)) = o.get("inclusion_proof") else { return None };
    let number = |name: &str| match p.get(name) {
        Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u64),
        _ => None,
    };
    let Some(Value::Array(items)) = p.get("hashes") else { return None };
    let hashes = items
        .iter()
        .map(|v| match v {
            Value::String(s) => Hash::from_hex(s).ok(),
            _ => None,
        })
        .collect::<Option<Vec<Hash>>>()?;
    Some((number("leaf_index")?, number("tree_size")?, hashes))
}
