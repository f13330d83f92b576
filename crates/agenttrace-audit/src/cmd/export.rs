//! `export --org ORG --format json|jsonl|csv [filters] [-o FILE]`: streams
//! every matching event (no page limit) from storage.

use std::io::{BufWriter, Write};
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
    /// Output format (any letter case).
    #[arg(long, value_enum, ignore_case = true)]
    format: Format,
    /// Write to this file instead of standard output. An existing file is
    /// refused unless --force; the export is written to a temporary file
    /// beside it and renamed into place only once complete.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Replace the --output file if it exists.
    #[arg(long, requires = "output")]
    force: bool,
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
    if !super::log_exists(backends, store.as_ref(), &filter.organization_id).await? {
        anyhow::bail!(
            "no log for organization {} in {} (check --org and --data-dir); nothing was exported",
            filter.organization_id,
            backends.describe_storage()
        );
    }
    // A file is written whole or not at all: a temporary file beside it,
    // renamed into place once the export is complete and synced.
    let partial = match &args.output {
        Some(path) => {
            if path.try_exists().with_context(|| format!("cannot check {}", path.display()))? && !args.force {
                anyhow::bail!("{} exists; pass --force to replace it", path.display());
            }
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            Some(
                tempfile::NamedTempFile::new_in(dir)
                    .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?,
            )
        }
        None => None,
    };
    let sink: Box<dyn Write + Send> = match &partial {
        Some(tmp) => Box::new(tmp.reopen().with_context(|| format!("cannot write {}", tmp.path().display()))?),
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let protection = super::open_protection(backends).await?;
    let bar = super::progress("{spinner} exported {pos} events ({rate})", None);
    let mut progress = |n: u64| bar.set_position(n);
    let count = if args.with_proof {
        anyhow::ensure!(format == ExportFormat::Jsonl, "--with-proof goes with --format jsonl");
        let key = crate::signing::verifier_for(backends, &filter.organization_id)?;
        if key.is_none() {
            eprintln!(
                "warning: no signing key in the data directory: the checkpoint's signature is not checked before export"
            );
        }
        let summary = audit_service::export_evidence(
            store.as_ref(),
            &filter,
            key.as_ref(),
            &mut out,
            protection.as_deref(),
            &mut progress,
        )
        .await?;
        if summary.newer_than_checkpoint > 0 {
            eprintln!(
                "left out {} matching events newer than the checkpoint (tree size {}); export again after the next checkpoint",
                summary.newer_than_checkpoint, summary.tree_size
            );
        }
        summary.events
    } else {
        audit_service::export_events(store.as_ref(), &filter, format, &mut out, protection.as_deref(), &mut progress)
            .await?
    };
    bar.finish_and_clear();
    out.flush()?;
    drop(out);
    if let (Some(tmp), Some(path)) = (partial, &args.output) {
        tmp.as_file().sync_data().with_context(|| format!("cannot sync {}", tmp.path().display()))?;
        tmp.persist(path).map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
        eprintln!("exported {count} events to {}", path.display());
    }
    Ok(exit::OK)
}
