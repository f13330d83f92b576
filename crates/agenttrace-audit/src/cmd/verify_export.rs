//! `verify-export FILE [--checkpoint NOTE --key KEY] [--json]`: checks a
//! `jsonl` export offline — no service, no data directory. Every line must
//! be a canonical, correctly hashed stored event, in sequence, linked to the
//! one before (the first line's own link cannot be checked unless the export
//! starts at sequence 0). With a signed checkpoint and its key, an export
//! that starts at 0 and reaches the checkpoint's size must have its root.
//! An evidence bundle (`export --with-proof`) carries its checkpoint and a
//! proof per event: each event is checked against the signed root.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use audit_core::note::{Checkpoint, VerifierKey};
use audit_core::stored::check_line;
use audit_core::verify::{ChainStart, ChainVerifier, FindingKind};

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The `jsonl` export.
    file: PathBuf,
    /// A signed checkpoint of the log (e.g. from `GET /v1/checkpoint`).
    #[arg(long, requires = "key")]
    checkpoint: Option<PathBuf>,
    /// The checkpoint's verifier key (`keys public --org ORG`).
    #[arg(long)]
    key: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    witnesses: super::WitnessArgs,
}

pub(crate) async fn run(_data_dir: &Path, args: Args) -> anyhow::Result<u8> {
    let (witnesses, quorum) = args.witnesses.policy()?;
    // The note the report trusts must carry the quorum (none without one).
    let hold_to_quorum = |report: &mut audit_core::verify::VerificationReport, note: Option<&str>| {
        if quorum == 0 {
            return;
        }
        let held = match note {
            Some(note) => audit_core::cosign::check_quorum(note, &witnesses, quorum),
            None => Err("no checkpoint to hold to the witness quorum (give --checkpoint)".to_owned()),
        };
        if let Err(detail) = held {
            report.valid = false;
            report.errors.push(audit_core::verify::Finding {
                event_id: None,
                sequence: None,
                kind: FindingKind::WitnessQuorum,
                detail,
            });
        }
    };
    let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, file).split(b'\n');
    let Some(first) = lines.next() else { bail!("{} is empty", args.file.display()) };
    let first = first.with_context(|| format!("cannot read {}", args.file.display()))?;
    if audit_service::evidence::is_evidence_header(&first) {
        anyhow::ensure!(
            args.checkpoint.is_none(),
            "--checkpoint: {} is an evidence bundle, which carries its own checkpoint",
            args.file.display()
        );
        let key = match &args.key {
            Some(k) => Some(VerifierKey::parse(k).map_err(|e| anyhow::anyhow!("--key: {e}"))?),
            None => None,
        };
        let mut all = vec![first];
        for line in lines {
            all.push(line.with_context(|| format!("cannot read {}", args.file.display()))?);
        }
        let mut report = audit_service::verify_evidence(all.iter().map(Vec::as_slice), key.as_ref())
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
        let header: Option<serde_json::Value> = serde_json::from_slice(&all[0]).ok();
        hold_to_quorum(&mut report, header.as_ref().and_then(|h| h["checkpoint"].as_str()));
        return print_report(&report, args.json);
    }
    let facts = check_line(&first).map_err(|e| anyhow::anyhow!("line 1 is not a stored event: {e}"))?;
    let org = facts.organization_id.into_owned();
    let from_genesis = facts.sequence == 0;
    let mut trusted_note = None;
    let checkpoint = match (&args.checkpoint, &args.key) {
        (Some(path), Some(key)) => {
            let key = VerifierKey::parse(key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let note = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let text = audit_core::note::open(&note, &key).map_err(|e| anyhow::anyhow!("--checkpoint: {e}"))?;
            let cp = Checkpoint::parse(text).map_err(|e| anyhow::anyhow!("--checkpoint: {e}"))?;
            trusted_note = Some(note);
            Some(cp)
        }
        _ => None,
    };
    let mut v = ChainVerifier::new(&org, if from_genesis { ChainStart::Genesis } else { ChainStart::Anchored });
    if let Some(cp) = &checkpoint {
        v.track_merkle_at(&[cp.size]);
    }
    if !from_genesis {
        v.push_warning(
            "partial_export",
            "the export does not start at sequence 0: its first event's link to the one before is not checked".into(),
        );
    }
    v.push_line(&first);
    for line in lines {
        let line = line.with_context(|| format!("cannot read {}", args.file.display()))?;
        v.push_line(&line);
    }
    if let Some(cp) = &checkpoint {
        match v.merkle_root_at(cp.size) {
            Some(root) if root == cp.root => {}
            Some(root) => v.push_finding(
                FindingKind::CheckpointMismatch,
                Some(cp.size.saturating_sub(1)),
                format!("the first {} events have root {root}; the signed checkpoint says {}", cp.size, cp.root),
            ),
            None if from_genesis => {
                let held = v.merkle_size().unwrap_or(0);
                v.push_warning(
                    "checkpoint_not_reached",
                    format!(
                        "the export holds {held} events, fewer than the checkpoint's {}: use an older checkpoint",
                        cp.size
                    ),
                );
            }
            None => v.push_warning(
                "checkpoint_not_checked",
                "a checkpoint can only be compared with an export that starts at sequence 0".into(),
            ),
        }
    }
    let mut report = v.finish();
    hold_to_quorum(&mut report, trusted_note.as_deref());
    print_report(&report, args.json)
}

fn print_report(report: &audit_core::verify::VerificationReport, json: bool) -> anyhow::Result<u8> {
    let org = &report.organization_id;
    if json {
        let mut out = std::io::stdout().lock();
        out.write_all(&audit_core::canonical::to_canonical(&report.to_value()))?;
        out.write_all(b"\n")?;
    } else {
        if report.valid {
            eprintln!("valid: {} events of {org}", report.total_events);
        } else {
            eprintln!("INVALID: {} error(s) in {} events of {org}", report.errors.len(), report.total_events);
            for e in &report.errors {
                eprintln!(
                    "  sequence {}: {}: {}",
                    e.sequence.map_or("?".into(), |s| s.to_string()),
                    e.kind.as_str(),
                    e.detail
                );
            }
        }
        for w in &report.warnings {
            eprintln!("  warning: {}: {}", w.kind, w.detail);
        }
    }
    Ok(if report.valid { exit::OK } else { exit::FAILED })
}
