//! `prove --org ORG (--event ID | --sequence N) --tree-size N` and
//! `prove --org ORG --from M --to N`: RFC 9162 proofs as JSON on stdout.

use std::io::Write;

use anyhow::bail;
use audit_service::proofs::{consistency_proof, inclusion_proof};
use audit_service::{TimeRange, for_each_stored_line};

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Organization whose log to prove against.
    #[arg(long)]
    org: String,
    /// Inclusion: the event's id.
    #[arg(long, conflicts_with_all = ["sequence", "from"])]
    event: Option<String>,
    /// Inclusion: the event's sequence.
    #[arg(long, conflicts_with = "from")]
    sequence: Option<u64>,
    /// Inclusion: the size of the tree (e.g. a checkpoint's).
    #[arg(long)]
    tree_size: Option<u64>,
    /// Consistency: the older tree size.
    #[arg(long, requires = "to")]
    from: Option<u64>,
    /// Consistency: the newer tree size.
    #[arg(long, requires = "from")]
    to: Option<u64>,
}

pub(crate) async fn run(backends: &crate::config::Backends, args: Args) -> anyhow::Result<u8> {
    super::check_org(&args.org)?;
    super::require_data_dir(backends)?;
    let store = super::open_store(backends).await?;
    let proof = match (args.from, args.to) {
        (Some(from), Some(to)) => consistency_proof(store.as_ref(), &args.org, from, to).await?.to_value(),
        _ => {
            let Some(tree_size) = args.tree_size else { bail!("--tree-size is required with --event or --sequence") };
            let sequence = match (&args.event, args.sequence) {
                (_, Some(s)) => s,
                (Some(id), None) => {
                    let mut found = None;
                    for_each_stored_line(store.as_ref(), &args.org, TimeRange::default(), &mut |_, e| {
                        if e.event_id == *id {
                            found = Some(e.sequence);
                        }
                        Ok(())
                    })
                    .await?;
                    found.ok_or_else(|| anyhow::anyhow!("--event: no event {id} in the log of {}", args.org))?
                }
                (None, None) => bail!("give --event ID or --sequence N (inclusion), or --from M --to N (consistency)"),
            };
            inclusion_proof(store.as_ref(), &args.org, sequence, tree_size).await?.to_value()
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&audit_core::canonical::to_canonical(&proof))?;
    out.write_all(b"\n")?;
    Ok(exit::OK)
}
