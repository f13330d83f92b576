//! `agenttrace-audit`: the operator CLI (and, later, the HTTP service).
//!
//! Output that scripts read goes to stdout, one JSON document per line where
//! there are several; everything for humans goes to stderr. Errors are one
//! line on stderr and a non-zero exit, never a backtrace.

mod cmd;
mod config;
mod signing;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Many small, short-lived allocations per event on several threads: a
/// thread-caching allocator cuts that cost (measured in docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes shared by every command.
pub(crate) mod exit {
    /// Success (for verify: the log is valid).
    pub(crate) const OK: u8 = 0;
    /// Failure (for verify: the log is invalid; for ingest: some input was refused or not stored).
    pub(crate) const FAILED: u8 = 1;
    /// The command could not run (bad arguments, unreadable storage).
    pub(crate) const CANNOT_RUN: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "agenttrace-audit",
    version,
    about = "Tamper-evident audit log: ingest, verify and export per-organization hash chains"
)]
struct Cli {
    /// Data directory (local storage; default ./audit_logs, or AUDIT_STORAGE_PATH).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,

    /// TOML configuration file (settings as the AUDIT_* variables, lowercase, without the prefix).
    #[arg(long, global = true)]
    config: Option<PathBuf>,

    /// Operator logs on stderr (-v info, -vv debug); RUST_LOG or AUDIT_LOG
    /// choose them exactly. Without either, commands print one line per
    /// problem and `serve` logs warnings.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (API v1) on --listen with --data-dir.
    Serve(cmd::serve::Args),
    /// API tokens: create, list, revoke.
    #[command(subcommand)]
    Keys(cmd::keys::Command),
    /// Append events from JSON Lines (one event input per line), durably; prints one receipt per line.
    Ingest(cmd::ingest::Args),
    /// Verify an organization's log: exit 0 valid, 1 invalid, 2 cannot run.
    Verify(cmd::verify::Args),
    /// Export stored events matching a filter (streams, no page limit).
    Export(cmd::export::Args),
    /// One page of events matching a filter, from the query index.
    Query(cmd::query::Args),
    /// Rebuild the query index from storage.
    Reindex,
    /// An inclusion or consistency proof (RFC 9162) as JSON.
    Prove(cmd::prove::Args),
    /// Verify a jsonl export offline (no service, no data directory): exit 0 valid, 1 invalid, 2 cannot run.
    VerifyExport(cmd::verify_export::Args),
    /// Erase a data subject's personal data by destroying its key (GDPR; exit 1 under a legal hold).
    EraseSubject(cmd::erase::EraseArgs),
    /// Legal holds: place, list, lift (an erasure under a hold is refused).
    #[command(subcommand)]
    Holds(cmd::erase::HoldsCommand),
    /// Apply retention now: remove old sealed segments, keeping a signed prune record (exit 1 under a legal hold).
    Prune(cmd::prune::Args),
    /// The tree's tiles (C2SP tlog-tiles): check them against the events, or rebuild the missing ones.
    #[command(subcommand)]
    Tiles(cmd::tiles::Command),
    /// Run a C2SP tlog-witness: cosign checkpoints of trusted logs that are consistent with the last one cosigned.
    Witness(cmd::witness::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::CANNOT_RUN } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let chosen = std::env::var("RUST_LOG").or_else(|_| std::env::var("AUDIT_LOG")).ok();
    let serving = matches!(cli.command, Command::Serve(_));
    if !matches!(cli.command, Command::Serve(_) | Command::Witness(_)) {
        // A one-shot command's heavy reads (an export, a verification) are
        // its work, not a background job beside threads that must answer:
        // they run at the command's own priority, on every core it gets.
        audit_service::set_heavy_read_priority(audit_service::HeavyReadPriority::Same);
    }
    let filter = match (chosen, cli.verbose) {
        (Some(f), _) => f,
        (None, 0) if serving => "warn".to_owned(),
        (None, 0) => "off".to_owned(),
        (None, 1) => "info".to_owned(),
        (None, _) => "debug".to_owned(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "warn".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::CANNOT_RUN);
        }
    };
    for warning in config::unknown_variables() {
        eprintln!("{warning}");
    }
    let result = runtime.block_on(async {
        let file = config::FileConfig::load(cli.config.as_deref())?;
        let backends = config::Backends::load(cli.data_dir.clone(), &file)?;
        let data_dir = backends.data_dir.clone();
        match cli.command {
            Command::Serve(args) => cmd::serve::run(cli.data_dir, file, args).await,
            Command::Keys(command) => cmd::keys::run(&backends, config::service_config(&file)?, command).await,
            Command::Ingest(args) => cmd::ingest::run(&backends, config::service_config(&file)?, args).await,
            Command::Verify(args) => cmd::verify::run(&backends, args).await,
            Command::Export(args) => cmd::export::run(&backends, args).await,
            Command::Query(args) => cmd::query::run(&backends, args).await,
            Command::Reindex => cmd::reindex::run(&backends).await,
            Command::Prove(args) => cmd::prove::run(&backends, args).await,
            Command::VerifyExport(args) => cmd::verify_export::run(&data_dir, args).await,
            Command::EraseSubject(args) => cmd::erase::erase(&backends, args).await,
            Command::Holds(command) => cmd::erase::holds(&backends, command).await,
            Command::Prune(args) => cmd::prune::run(&backends, args).await,
            Command::Tiles(command) => cmd::tiles::run(&backends, command).await,
            Command::Witness(args) => cmd::witness::run(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit::CANNOT_RUN)
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose
/// text the line already holds ("Permission denied: Permission denied") is
/// left out, and line breaks inside a cause become spaces.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A reader that went away (`| head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == ErrorKind::BrokenPipe))
}
