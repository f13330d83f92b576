//! `ingest --org ORG [FILE|-]`: durable bulk append from JSON Lines.
//!
//! All lines are validated before anything is stored: a file with invalid
//! lines stores nothing and every bad line is named (unless
//! `--skip-invalid`). Lines without an `idempotency_key` get one derived from
//! their line number and content (`ingest:<line>:<sha256 prefix>`), so
//! re-running the same file after a crash stores nothing twice: lines already
//! stored come back with their original receipts, marked `deduplicated`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use audit_core::event::{EventDraft, Limits};
use audit_core::json::{self, NumberPolicy, Value};
use audit_service::{AuditConfig, AuditService, CaptureError, DurableReceipt, PendingReceipt};
use sha2::{Digest, Sha256};

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Organization whose log receives the events. Lines may omit
    /// `organization_id`; lines naming another organization are refused.
    #[arg(long)]
    org: String,
    /// JSON Lines file of event inputs, or `-` for standard input.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Store the valid lines even if some are invalid (invalid ones are still reported).
    #[arg(long)]
    skip_invalid: bool,
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        // Standard input is read once; keep it to validate before storing.
        let mut all = Vec::new();
        std::io::stdin().lock().read_to_end(&mut all).context("cannot read standard input")?;
        Ok(Box::new(std::io::Cursor::new(all)))
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// One input line turned into a draft for `org`, or why not.
fn draft_for(org: &str, line_no: u64, line: &[u8]) -> Result<EventDraft, String> {
    let value = json::parse(line, NumberPolicy::Exact).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err(format!("must be a JSON object, not {}", value.type_name()));
    };
    match obj.get("organization_id") {
        // Lines may leave the organization to --org.
        None => obj.insert("organization_id", Value::String(org.to_owned())),
        Some(Value::String(given)) if given != org => {
            return Err(format!("organization_id: {given:?} does not match --org {org:?}"));
        }
        Some(_) => {}
    }
    let mut draft = EventDraft::from_value(Value::Object(obj)).map_err(|e| e.to_string())?;
    if draft.idempotency_key.is_none() {
        let digest = hex::encode(&Sha256::digest(line)[..8]);
        draft.idempotency_key = Some(format!("ingest:{line_no}:{digest}"));
    }
    Ok(draft)
}

/// Numbered, non-blank lines of the input (line numbers count from 1 and
/// include blank lines, so they match what an editor shows).
struct Lines {
    reader: Box<dyn BufRead>,
    line_no: u64,
    buf: Vec<u8>,
}

impl Lines {
    fn new(reader: Box<dyn BufRead>) -> Self {
        Lines { reader, line_no: 0, buf: Vec::new() }
    }

    fn next_line(&mut self) -> anyhow::Result<Option<(u64, &[u8])>> {
        loop {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf).context("cannot read input")? == 0 {
                return Ok(None);
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

pub(crate) async fn run(backends: &crate::config::Backends, args: Args) -> anyhow::Result<u8> {
    super::check_org(&args.org)?;
    let limits = Limits::default();
    // Pass 1: validate everything, store nothing.
    let (mut invalid, mut valid) = (0u64, 0u64);
    let mut lines = Lines::new(open_input(&args.input)?);
    while let Some((line_no, line)) = lines.next_line()? {
        match draft_for(&args.org, line_no, line).and_then(|d| d.validate(&limits).map(drop).map_err(|e| e.to_string()))
        {
            Ok(()) => valid += 1,
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

    // Pass 2: the same input again (standard input was kept in memory).
    let store = super::open_store(backends).await?;
    let service = AuditService::builder(store)
        .config(AuditConfig { limits, ..AuditConfig::default() })
        .checkpoints(crate::signing::checkpoint_config(backends).await?)
        .start()
        .await;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut in_flight: VecDeque<(u64, PendingReceipt)> = VecDeque::new();
    let mut tally = Tally::default();
    // Up to WINDOW captures are in flight so that they share writes; their
    // receipts are printed in input order.
    const WINDOW: usize = 4096;
    let mut lines = Lines::new(open_input(&args.input)?);
    let result: anyhow::Result<()> = async {
        while let Some((line_no, line)) = lines.next_line()? {
            let Ok(draft) = draft_for(&args.org, line_no, line) else {
                continue;
            };
            match service.submit_durable(draft).await {
                Ok(pending) => in_flight.push_back((line_no, pending)),
                Err(CaptureError::Invalid(_)) => {} // reported in pass 1 (--skip-invalid)
                Err(e) => tally.fail(line_no, &e),
            }
            if tally.failed > 0 {
                // Storage is failing: stop submitting; what was stored is
                // stored, and a re-run resumes without duplicates.
                break;
            }
            if in_flight.len() >= WINDOW {
                finish_oldest(&mut in_flight, &mut out, &mut tally).await?;
            }
        }
        while !in_flight.is_empty() {
            finish_oldest(&mut in_flight, &mut out, &mut tally).await?;
        }
        Ok(())
    }
    .await;
    service.stop().await;
    result?;
    eprintln!(
        "ingest: {} stored, {} already stored (deduplicated), {} failed, {invalid} invalid",
        tally.stored, tally.already, tally.failed
    );
    Ok(if tally.failed > 0 || invalid > 0 { exit::FAILED } else { exit::OK })
}
