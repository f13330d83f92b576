//! `ingest --org ORG [FILE|-]`: durable bulk append from JSON Lines.
//!
//! All lines are validated before anything is stored: a file with invalid
//! lines stores nothing and every bad line is named (unless
//! `--skip-invalid`). Standard input is spooled to an anonymous temporary
//! file first, so that both passes read the same bytes with flat memory.
//!
//! Lines without an `idempotency_key` get one derived from the input's
//! identity, their line number and their content
//! (`ingest:<input id>:<line>:<sha256 prefix>`). The input id is a SHA-256
//! prefix of the whole input (or `--input-id`): re-running the same input
//! after a crash stores nothing twice, while another input whose line 1
//! happens to equal this one's is a different event and is stored.
//!
//! Each line is read and validated once: the first pass keeps the
//! validated events (up to 512 MiB of them, [`retained_bytes`]) and the second
//! submits them as they are; only the lines of an input too large to keep
//! are read and validated again.
//!
//! Invariant: the run exits 0 only when every valid line it read is stored
//! or answered with an earlier event's receipt (`deduplicated`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::PathBuf;

use anyhow::Context;
use audit_core::event::{EventDraft, Limits, ValidatedEvent};
use audit_core::json::Value;
use audit_service::{AuditConfig, AuditService, CaptureError, DurableReceipt, PendingReceipt};
use sha2::{Digest, Sha256};

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Organization whose log receives the events. Lines may omit
    /// `organization_id`; lines naming another organization are refused.
    #[arg(long)]
    org: String,
    /// JSON Lines file of event inputs, or `-` (the default) for standard input.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Store the valid lines even if some are invalid (invalid ones are still reported).
    #[arg(long)]
    skip_invalid: bool,
    /// Names this input in the idempotency keys derived for its lines
    /// (default: a SHA-256 prefix of its content). Re-running with the same
    /// id stores nothing twice; give each distinct input its own id.
    #[arg(long, value_name = "ID")]
    input_id: Option<String>,
}

/// The input as a seekable file: the named file, or standard input spooled
/// to an anonymous temporary file (deleted when closed).
fn open_input(path: &std::path::Path) -> anyhow::Result<File> {
    if path == std::path::Path::new("-") {
        let mut spool = tempfile::tempfile().context("cannot create a temporary file for standard input")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool).context("cannot read standard input")?;
        spool.rewind().context("cannot read back standard input")?;
        Ok(spool)
    } else {
        File::open(path).with_context(|| format!("cannot open {}", path.display()))
    }
}

/// One input line read (in one pass) and validated as an event for `org`
/// (lines may leave the organization to `--org`), or why not.
fn event_for(org: &str, line: &[u8], limits: &Limits) -> Result<ValidatedEvent, String> {
    let draft = EventDraft::from_json_in(line, Some(org)).map_err(|e| e.to_string())?;
    if draft.organization_id != org {
        return Err(format!("organization_id: {:?} does not match --org {org:?}", draft.organization_id));
    }
    draft.validate(limits).map_err(|e| e.to_string())
}

/// How many bytes of validated events the first pass keeps for the
/// second (an estimate: twice the canonical form, plus the members'
/// overhead); the lines after that are read and validated again.
/// `AUDIT_INGEST_RETAINED_BYTES` overrides it (the tests use a small one
/// to run the re-reading path).
fn retained_bytes() -> usize {
    const DEFAULT: usize = 512 << 20;
    std::env::var("AUDIT_INGEST_RETAINED_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT)
}

/// An event the first pass validated, kept for the second.
struct Retained {
    line_no: u64,
    event: ValidatedEvent,
    /// For a line without an `idempotency_key`: its content's digest, for
    /// the derived key.
    digest: Option<[u8; 8]>,
}

/// The SHA-256 prefix of a line that goes into its derived key.
fn line_digest(line: &[u8]) -> [u8; 8] {
    Sha256::digest(line)[..8].try_into().expect("8 of 32 bytes")
}

/// The idempotency key of a line that brings none: bound to the input, the
/// line's position and its bytes.
fn derived_key(input_id: &str, line_no: u64, digest: [u8; 8]) -> String {
    format!("ingest:{input_id}:{line_no}:{}", hex::encode(digest))
}

/// Numbered, non-blank lines of the input (line numbers count from 1 and
/// include blank lines, so they match what an editor shows).
struct Lines {
    reader: BufReader<File>,
    line_no: u64,
    buf: Vec<u8>,
}

impl Lines {
    fn new(file: File) -> Self {
        Lines { reader: BufReader::with_capacity(1 << 20, file), line_no: 0, buf: Vec::new() }
    }

    /// Back to the first line.
    fn rewind(&mut self) -> anyhow::Result<()> {
        self.reader.rewind().context("cannot read the input again")?;
        self.line_no = 0;
        Ok(())
    }

    /// The next non-blank line; every byte read (blank lines and line ends
    /// included) also goes to `seen`, so the whole input can be hashed.
    fn next_line(&mut self, mut seen: Option<&mut Sha256>) -> anyhow::Result<Option<(u64, &[u8])>> {
        loop {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf).context("cannot read input")? == 0 {
                return Ok(None);
            }
            if let Some(h) = seen.as_deref_mut() {
                h.update(&self.buf);
            }
            self.line_no += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some((self.line_no, &self.buf)));
            }
        }
    }
}

fn receipt_json(line: u64, r: &DurableReceipt) -> Vec<u8> {
    let mut o = r.to_object();
    o.insert("line", Value::Number(line as f64));
    let mut out = audit_core::canonical::to_canonical(&Value::Object(o));
    out.push(b'\n');
    out
}

/// Waits for the oldest in-flight capture and prints its receipt.
async fn finish_oldest(
    in_flight: &mut VecDeque<(u64, PendingReceipt)>,
    out: &mut impl Write,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let Some((line_no, pending)) = in_flight.pop_front() else {
        return Ok(());
    };
    match pending.wait().await {
        Ok(receipt) => {
            out.write_all(&receipt_json(line_no, &receipt))?;
            out.flush()?;
            tally.stored += u64::from(!receipt.deduplicated);
            tally.already += u64::from(receipt.deduplicated);
        }
        Err(e) => tally.fail(line_no, &e),
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tally {
    stored: u64,
    already: u64,
    failed: u64,
}

/// Failures past this many are counted, not printed one by one.
const FAILURES_SHOWN: u64 = 10;

impl Tally {
    fn fail(&mut self, line_no: u64, e: &CaptureError) {
        self.failed += 1;
        if self.failed <= FAILURES_SHOWN {
            eprintln!("line {line_no}: not stored: {e}");
        }
    }
}

/// The `--input-id` given, checked, or the content's SHA-256 prefix.
fn input_id(given: Option<String>, content: Sha256) -> anyhow::Result<String> {
    match given {
        Some(id) if audit_core::event::is_valid_tenant_id(&id) => Ok(id),
        Some(id) => anyhow::bail!("--input-id {id:?} is not a valid id (^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$)"),
        None => Ok(hex::encode(&content.finalize()[..8])),
    }
}

pub(crate) async fn run(backends: &crate::config::Backends, config: AuditConfig, args: Args) -> anyhow::Result<u8> {
    super::check_org(&args.org)?;
    let limits = config.limits;
    // Pass 1: validate everything, store nothing; hash the whole input;
    // keep the validated events while they fit.
    let (mut invalid, mut valid) = (0u64, 0u64);
    let mut lines = Lines::new(open_input(&args.input)?);
    let mut content = Sha256::new();
    let (mut retained, mut retained_bytes, mut kept_all, budget) = (Vec::new(), 0usize, true, retained_bytes());
    while let Some((line_no, line)) = lines.next_line(Some(&mut content))? {
        match event_for(&args.org, line, &limits) {
            Ok(event) => {
                valid += 1;
                let cost = 2 * event.canonical_input().len() + 256;
                kept_all &= retained_bytes + cost <= budget;
                if kept_all {
                    retained_bytes += cost;
                    let digest = event.idempotency_key().is_none().then(|| line_digest(line));
                    retained.push(Retained { line_no, event, digest });
                }
            }
            Err(why) => {
                invalid += 1;
                eprintln!("line {line_no}: {why}");
            }
        }
    }
    if invalid > 0 && !args.skip_invalid {
        eprintln!(
            "error: {invalid} invalid line(s); nothing was stored (fix them, or pass --skip-invalid to store the {valid} valid ones)"
        );
        return Ok(exit::FAILED);
    }
    let input_id = input_id(args.input_id, content)?;

    // Pass 2: the kept events, then (for an input too large to keep) the
    // rest of the lines, read and validated again.
    let last_kept = if kept_all { u64::MAX } else { retained.last().map_or(0, |r| r.line_no) };
    let store = super::open_store(backends).await?;
    let mut builder =
        AuditService::builder(store).config(config).checkpoints(crate::signing::checkpoint_config(backends).await?);
    if let Some(p) = super::open_protection(backends).await? {
        builder = builder.protection(p);
    }
    let service = builder.start().await;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let bar = super::progress("{bar:30} {pos}/{len} lines stored ({rate}, {eta} left)", Some(valid));
    let mut in_flight: VecDeque<(u64, PendingReceipt)> = VecDeque::new();
    let mut tally = Tally::default();
    // Up to WINDOW captures are in flight so that they share writes; their
    // receipts are printed in input order.
    const WINDOW: usize = 4096;
    let result: anyhow::Result<()> = async {
        let mut rewound = false;
        let mut kept = retained.into_iter();
        loop {
            let (line_no, event, digest) = if let Some(r) = kept.next() {
                (r.line_no, r.event, r.digest)
            } else if kept_all {
                break;
            } else {
                if !rewound {
                    lines.rewind()?;
                    rewound = true;
                }
                let Some((line_no, line)) = lines.next_line(None)? else { break };
                if line_no <= last_kept {
                    continue;
                }
                let Ok(event) = event_for(&args.org, line, &limits) else {
                    continue; // reported in pass 1 (--skip-invalid)
                };
                let digest = event.idempotency_key().is_none().then(|| line_digest(line));
                (line_no, event, digest)
            };
            let event = match digest {
                Some(digest) => event.with_idempotency_key(derived_key(&input_id, line_no, digest), &limits),
                None => Ok(event),
            };
            let submitted = match event {
                Ok(event) => service.submit_validated_durable(event).await,
                Err(e) => Err(CaptureError::Invalid(e)),
            };
            match submitted {
                Ok(pending) => in_flight.push_back((line_no, pending)),
                Err(e) => tally.fail(line_no, &e),
            }
            if tally.failed > 0 {
                // Storage is failing: stop submitting; what was stored is
                // stored, and a re-run resumes without duplicates.
                break;
            }
            if in_flight.len() >= WINDOW {
                finish_oldest(&mut in_flight, &mut out, &mut tally).await?;
                bar.set_position(tally.stored + tally.already);
            }
        }
        while !in_flight.is_empty() {
            finish_oldest(&mut in_flight, &mut out, &mut tally).await?;
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    let torn = service.health().organization(&args.org).torn_bytes_removed;
    service.stop().await;
    if torn > 0 {
        eprintln!(
            "note: removed a torn, unacknowledged tail of {torn} bytes from the log of {} (a write cut short by a crash)",
            args.org
        );
    }
    result?;
    eprintln!(
        "ingest: {} stored, {} already stored (deduplicated), {} failed, {invalid} invalid",
        tally.stored, tally.already, tally.failed
    );
    let answered = tally.stored + tally.already;
    if answered != valid {
        // Whatever the cause, a run that did not store what it read must not look like success.
        eprintln!(
            "error: {answered} of {valid} valid line(s) were stored or found already stored; run the same command again to store the rest"
        );
        return Ok(exit::FAILED);
    }
    Ok(if tally.failed > 0 || invalid > 0 { exit::FAILED } else { exit::OK })
}
