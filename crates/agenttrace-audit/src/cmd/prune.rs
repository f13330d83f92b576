//! `prune --org ORG`: applies retention to one log now, as `serve` does at
//! each time of `AUDIT_PRUNE_SCHEDULE` (SPEC §15). On S3 it writes the
//! prune record only; the bucket's lifecycle rule removes the objects. The prune is recorded
//! in the organization's log, so it is refused while a running `serve` has
//! that log open for writing (serve prunes on its own schedule).

use audit_core::json::{Object, Value};
use audit_service::PruneError;

use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The organization whose log to prune.
    #[arg(long)]
    org: String,
}

pub(crate) async fn run(backends: &crate::config::Backends, args: Args) -> anyhow::Result<u8> {
    super::check_org(&args.org)?;
    super::require_data_dir(backends)?;
    let policy = backends.retention_policy()?;
    let (days, _) = policy.days_for(&args.org);
    // Holds live in the key store: open it when there is one.
    let protection = super::open_protection(backends).await?;
    let service = super::service_writing_to(backends, &args.org, protection, "its AUDIT_PRUNE_SCHEDULE").await?;
    let outcome = service.prune_expired(&args.org, std::time::Duration::from_secs(u64::from(days) * 86_400)).await;
    service.stop().await;
    let mut out = Object::new();
    out.insert("organization_id", Value::String(args.org.clone()));
    out.insert("retention_days", Value::Number(f64::from(days)));
    match outcome {
        Ok(Some(pruned)) => {
            out.insert("first_kept", Value::Number(pruned.first_kept as f64));
            out.insert("removed_events", Value::Number(pruned.removed_events as f64));
            out.insert("removed_segments", Value::Number(pruned.removed_segments as f64));
            eprintln!(
                "removed {} event(s) in {} segment(s); the log now starts at sequence {}",
                pruned.removed_events, pruned.removed_segments, pruned.first_kept
            );
        }
        Ok(None) => {
            out.insert("removed_events", Value::Number(0.0));
            eprintln!("nothing to remove: no sealed segment is wholly older than {days} days");
        }
        Err(e @ (PruneError::LegalHold { .. } | PruneError::InvalidLog(_))) => {
            eprintln!("error: {e}");
            return Ok(exit::FAILED);
        }
        Err(e) => return Err(e.into()),
    }
    println!("{}", String::from_utf8_lossy(&audit_core::canonical::to_canonical(&Value::Object(out))));
    Ok(exit::OK)
}
