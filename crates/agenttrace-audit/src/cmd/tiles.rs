//! `tiles check --org ORG` and `tiles rebuild --org ORG`: compares a log's
//! stored tiles (C2SP tlog-tiles, docs/FORMAT.md) with its events; rebuild
//! also writes the missing ones. Exit 0 when every tile is stored and
//! right, 1 otherwise (a tile that differs is never replaced: see the
//! message), 2 when it cannot run.

use audit_core::json::{Object, Value};
use audit_service::tiles::check_tiles;

use crate::exit;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Compare the stored tiles with the events (exit 1 when one is missing or differs).
    Check(Args),
    /// Write the missing tiles (e.g. of a log written before tiles), then check.
    Rebuild(Args),
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The organization whose log's tiles to check.
    #[arg(long)]
    org: String,
}

pub(crate) async fn run(backends: &crate::config::Backends, command: Command) -> anyhow::Result<u8> {
    let (args, rebuild) = match command {
        Command::Check(args) => (args, false),
        Command::Rebuild(args) => (args, true),
    };
    super::check_org(&args.org)?;
    super::require_data_dir(backends)?;
    let store = super::open_store(backends).await?;
    let report = check_tiles(store.as_ref(), &args.org, rebuild).await?;
    let list = |ids: &[audit_core::tiles::TileId]| Value::Array(ids.iter().map(|t| Value::String(t.path())).collect());
    let mut out = Object::new();
    out.insert("organization_id", Value::String(args.org.clone()));
    out.insert("tree_size", Value::Number(report.tree_size as f64));
    out.insert("checked", Value::Number(report.checked as f64));
    out.insert("missing", list(&report.missing));
    out.insert("mismatched", list(&report.mismatched));
    out.insert("written", Value::Number(report.written as f64));
    out.insert("root_mismatch", Value::Bool(report.root_mismatch));
    println!("{}", String::from_utf8_lossy(&audit_core::canonical::to_canonical(&Value::Object(out))));
    if report.root_mismatch {
        eprintln!("error: the events do not have the newest checkpoint's root: run verify");
    }
    if !report.mismatched.is_empty() {
        eprintln!(
            "error: {} stored tile(s) differ from the events; tiles are write-once: remove them (local files under the log's tile/ directory) and run tiles rebuild",
            report.mismatched.len()
        );
    }
    let missing = report.missing.len() as u64 - report.written;
    if missing > 0 {
        eprintln!("error: {missing} tile(s) are missing: run tiles rebuild");
    }
    Ok(if report.root_mismatch || !report.mismatched.is_empty() || missing > 0 { exit::FAILED } else { exit::OK })
}
