//! `export --org ORG --format json|jsonl|csv [filters] [-o FILE]`: streams
//! every matching event (no page limit) from storage.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use audit_service::ExportFormat;

use super::filter_args::FilterArgs;
use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Stored events, one per line, byte-identical to storage (verifiable offline).
    Jsonl,
    /// One JSON array of the stored events.
    Json,
    /// RFC 4180 CSV, fixed columns (see the README), formulas neutralised.
    Csv,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// An evidence bundle (jsonl only): the newest signed checkpoint, then
    /// each event followed by its inclusion proof in that checkpoint's tree,
    /// so that even a filtered export can be checked offline with
    /// `verify-export FILE --key KEY`. Events newer than the checkpoint are
    /// left out (and counted on stderr).
    #[arg(long)]
    with_proof: bool,
}

pub(crate) async fn run(backends: &crate::config::Backends, args: Args) -> anyhow::Result<u8> {
    let filter = args.filter.to_filter()?;
    filter.check()?;
    let format = match args.format {
        Format::Jsonl => ExportFormat::Jsonl,
        Format::Json => ExportFormat::Json,
        Format::Csv => ExportFormat::Csv,
    };
    let store = super::open_store(backends).await?;
    let sink: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?),
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    // A progress line for people, only when stderr is a terminal.
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} exported {pos} events ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut progress = |n: u64| bar.set_position(n);
    let count = if args.with_proof {
        anyhow::ensure!(format == ExportFormat::Jsonl, "--with-proof goes with --format jsonl");
        let key = crate::signing::verifier_for(&backends.data_dir, &filter.organization_id)?;
        if key.is_none() {
            eprintln!(
                "warning: no signing key in the data directory: the checkpoint's signature is not checked before export"
            );
        }
        let summary =
            audit_service::export_evidence(store.as_ref(), &filter, key.as_ref(), &mut out, &mut progress).await?;
        if summary.newer_than_checkpoint > 0 {
            eprintln!(
                "left out {} matching events newer than the checkpoint (tree size {}); export again after the next checkpoint",
                summary.newer_than_checkpoint, summary.tree_size
            );
        }
        summary.events
    } else {
        audit_service::export_events(store.as_ref(), &filter, format, &mut out, &mut progress).await?
    };
    bar.finish_and_clear();
    out.flush()?;
    if let Some(path) = &args.output {
        out.into_inner().map_err(|e| e.into_error())?.flush()?;
        eprintln!("exported {count} events to {}", path.display());
    }
    Ok(exit::OK)
}
