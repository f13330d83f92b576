//! `verify --org ORG [--since T] [--until T] [--json]`: exit 0 valid, 1 invalid, 2 cannot run.

use std::io::Write;

use audit_service::Clock as _;
use audit_service::{SystemClock, TimeRange, Verifier};

use audit_service::timearg;

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Organization whose log to verify.
    #[arg(long)]
    org: String,
    /// Verify events from this time on (RFC 3339, a date, or a duration such as 7d).
    #[arg(long)]
    since: Option<String>,
    /// Verify events before this time.
    #[arg(long)]
    until: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// The checkpoint verifier key (`keys public --org ORG`); by default the
    /// one derived from the data directory's signing key, if present.
    #[arg(long)]
    key: Option<String>,
    /// A signed checkpoint saved earlier: the log must still have its tree
    /// (else `inconsistent_checkpoint` or `truncated`).
    #[arg(long)]
    trusted_checkpoint: Option<std::path::PathBuf>,
    /// Do not compare the stored tiles with the events (a whole-log run
    /// does by default: a second, lighter pass over the log).
    #[arg(long)]
    skip_tiles: bool,
    #[command(flatten)]
    witnesses: super::WitnessArgs,
}

/// Parses `--since`/`--until` into a range.
pub(crate) fn range(since: Option<&str>, until: Option<&str>) -> anyhow::Result<TimeRange> {
    let now = SystemClock.now();
    let parse = |flag: &str, v: Option<&str>| {
        v.map(|t| timearg::parse(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))).transpose()
    };
    Ok(TimeRange { since: parse("since", since)?, until: parse("until", until)? })
}

pub(crate) async fn run(backends: &crate::config::Backends, args: Args) -> anyhow::Result<u8> {
    let data_dir = backends.data_dir.as_path();
    super::check_org(&args.org)?;
    let range = range(args.since.as_deref(), args.until.as_deref())?;
    let (witnesses, quorum) = args.witnesses.policy()?;
    let store = super::open_store(backends).await?;
    let key = match &args.key {
        Some(k) => Some(audit_core::note::VerifierKey::parse(k).map_err(|e| anyhow::anyhow!("--key: {e}"))?),
        None => crate::signing::verifier_for(backends, &args.org)?,
    };
    let trusted = match &args.trusted_checkpoint {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--trusted-checkpoint {}: {e}", path.display()))?,
        ),
        None => None,
    };
    if !super::log_exists(backends, store.as_ref(), &args.org).await? {
        anyhow::bail!(
            "no log for organization {} in {} (check --org and --data-dir); nothing was verified",
            args.org,
            backends.describe_storage()
        );
    }
    let mirror = super::open_mirror(backends).await?;
    let mut verifier = Verifier::new(store.as_ref()).range(range);
    verifier = match &key {
        Some(k) => verifier.key(k),
        None => {
            eprintln!(
                "warning: no checkpoint verifier key (no signing key in {} and no --key): checkpoint signatures are not checked",
                data_dir.display()
            );
            verifier.danger_unsigned_checkpoints()
        }
    };
    if let Some(m) = mirror.as_deref() {
        verifier = verifier.mirror(m);
    }
    if let Some(t) = trusted.as_deref() {
        verifier = verifier.trusted(t);
    }
    let bar = super::progress("{spinner} verified {pos} events ({rate})", None);
    let show = |n: u64| bar.set_position(n);
    let mut report = verifier.progress(&show).verify(&args.org).await?;
    bar.finish_and_clear();
    if quorum > 0 {
        // The checkpoint verify trusts must carry the quorum of witness
        // cosignatures: `--trusted-checkpoint` when given (e.g. one saved
        // from `GET /v1/checkpoint`), else the store's newest.
        let held = match trusted.as_deref() {
            Some(note) => audit_core::cosign::check_quorum(note, &witnesses, quorum)
                .map_err(|why| format!("--trusted-checkpoint: {why}")),
            None => match store.latest_checkpoint(&args.org).await? {
                None => Err("the log has no checkpoint for witnesses to have cosigned".to_owned()),
                Some((size, mut note)) => {
                    for line in store.cosignatures(&args.org, size).await? {
                        note.extend_from_slice(&line);
                    }
                    audit_core::cosign::check_quorum(&String::from_utf8_lossy(&note), &witnesses, quorum)
                        .map_err(|why| format!("checkpoint of {size} events: {why}"))
                }
            },
        };
        if let Err(detail) = held {
            report.valid = false;
            report.errors.push(audit_core::verify::Finding {
                event_id: None,
                sequence: None,
                kind: audit_core::verify::FindingKind::WitnessQuorum,
                detail,
            });
        }
    }
    if range.since.is_none() && range.until.is_none() && !args.skip_tiles {
        audit_service::tiles::hold_tiles(store.as_ref(), &args.org, &mut report).await;
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        out.write_all(&audit_core::canonical::to_canonical(&report.to_value()))?;
        out.write_all(b"\n")?;
        out.flush()?;
    } else {
        let span = match (report.first_sequence, report.last_sequence) {
            (Some(a), Some(b)) => format!(", sequences {a}..={b}"),
            _ => String::new(),
        };
        if let Some(n) = report.pruned_through {
            eprintln!(
                "pruned: events 0..={n} were removed under retention; the rest is checked against the signed prune record"
            );
        }
        if report.valid {
            eprintln!("valid: {} events in the log of {}{span}", report.total_events, report.organization_id);
        } else {
            eprintln!(
                "INVALID: {} error(s) in {} events of the log of {}{span}",
                report.errors.len() as u64 + report.errors_not_listed,
                report.total_events,
                report.organization_id
            );
            for e in &report.errors {
                let seq = e.sequence.map_or("?".into(), |s| s.to_string());
                let id = e.event_id.as_deref().unwrap_or("-");
                eprintln!("  sequence {seq} (event {id}): {}: {}", e.kind.as_str(), e.detail);
            }
        }
        for w in &report.warnings {
            eprintln!("  warning: {}: {}", w.kind, w.detail);
        }
    }
    Ok(if report.valid { exit::OK } else { exit::FAILED })
}
