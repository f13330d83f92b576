//! `erase-subject` and `holds`: the right to erasure and legal holds
//! (SPEC §9), for an operator at the machine. Each writes its audit record
//! into the organization's log, so it is refused while a running `serve`
//! has that log open for writing (the server offers the same through
//! `POST /v1/subjects/erase` and `/v1/legal-holds`); a `serve` that has not
//! opened it stops using a destroyed key within its 10 s key cache.

use audit_core::Timestamp;
use audit_core::event::ActorType;
use audit_core::json::{Object, Value};
use audit_service::{AuditService, ErasureError, ErasureTarget, Requester};

use crate::exit;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["email", "actor_id", "unattributed_before"])))]
pub(crate) struct EraseArgs {
    /// The organization.
    #[arg(long)]
    org: String,
    /// The subject's email (trimmed and lowercased, as stored subjects are).
    #[arg(long)]
    email: Option<String>,
    /// The subject's actor id (a user without an email).
    #[arg(long)]
    actor_id: Option<String>,
    /// Personal data without a subject (an anonymous caller's IP, say) of
    /// every month that ended by this date (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    unattributed_before: Option<String>,
    /// Who asks (recorded in `subject.erased`); default: the OS user.
    #[arg(long)]
    requested_by: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum HoldsCommand {
    /// Place a legal hold: on the whole organization, or on one subject.
    Place {
        /// The organization.
        #[arg(long)]
        org: String,
        /// Only this subject's email.
        #[arg(long, conflicts_with = "actor_id")]
        email: Option<String>,
        /// Only this subject's actor id.
        #[arg(long)]
        actor_id: Option<String>,
        /// Why (recorded; no personal data).
        #[arg(long)]
        reason: String,
        /// Who places it; default: the OS user.
        #[arg(long)]
        requested_by: Option<String>,
    },
    /// List the organization's holds as JSON.
    List {
        /// The organization.
        #[arg(long)]
        org: String,
    },
    /// Lift a hold by id.
    Lift {
        /// The organization.
        #[arg(long)]
        org: String,
        /// The hold's id (from `holds list`).
        id: String,
        /// Who lifts it; default: the OS user.
        #[arg(long)]
        requested_by: Option<String>,
    },
}

fn requester(named: Option<String>) -> Requester {
    let actor_id = named
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "operator".into());
    Requester { actor_type: ActorType::User, actor_id }
}

/// A service over the organization's log with protection on, or an error
/// saying why not (protection off; a running serve holds the log).
async fn service_for(backends: &crate::config::Backends, org: &str) -> anyhow::Result<AuditService> {
    super::check_org(org)?;
    let protection = super::open_protection(backends).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "personal data protection is off (AUDIT_PERSONAL_DATA_PROTECTION): nothing is sealed, nothing to erase"
        )
    })?;
    super::service_writing_to(backends, org, Some(protection), "POST /v1/subjects/erase or /v1/legal-holds").await
}

/// A date as RFC 3339, or `YYYY-MM-DD` (midnight UTC).
fn parse_date(text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse_rfc3339(text)
        .or_else(|_| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")))
        .map_err(|_| anyhow::anyhow!("--unattributed-before: {text:?} is not a date (YYYY-MM-DD or RFC 3339)"))
}

pub(crate) async fn erase(backends: &crate::config::Backends, args: EraseArgs) -> anyhow::Result<u8> {
    let target = match (args.email, args.actor_id, args.unattributed_before) {
        (Some(e), _, _) => ErasureTarget::Email(e),
        (_, Some(id), _) => ErasureTarget::ActorId(id),
        (_, _, Some(date)) => ErasureTarget::UnattributedBefore(parse_date(&date)?),
        _ => anyhow::bail!("name the subject: --email, --actor-id or --unattributed-before"),
    };
    let service = service_for(backends, &args.org).await?;
    let outcome = service.erase_subject(&args.org, &target, &requester(args.requested_by)).await;
    service.stop().await;
    match outcome {
        Ok(report) => {
            let mut out = Object::new();
            out.insert("organization_id", Value::String(args.org.clone()));
            out.insert("already_erased", Value::Bool(report.already_erased()));
            out.insert("keys_destroyed", Value::Number(report.keys_destroyed as f64));
            out.insert("affected_events", Value::Number(report.affected_events as f64));
            out.insert("record", Value::Object(report.receipt.to_object()));
            println!("{}", String::from_utf8_lossy(&audit_core::canonical::to_canonical(&Value::Object(out))));
            eprintln!(
                "{}",
                if report.already_erased() {
                    "nothing to destroy: already erased, or never seen (recorded)".to_owned()
                } else {
                    format!(
                        "erased: {} key(s) destroyed, {} event(s) affected",
                        report.keys_destroyed, report.affected_events
                    )
                }
            );
            Ok(exit::OK)
        }
        Err(e @ ErasureError::LegalHold(_)) => {
            eprintln!("error: {e}");
            Ok(exit::FAILED)
        }
        Err(e) => Err(e.into()),
    }
}

fn hold_json(hold: &audit_keystore::LegalHold) -> Value {
    let mut o = Object::new();
    o.insert("id", Value::String(hold.id.clone()));
    o.insert("reason", Value::String(hold.reason.clone()));
    o.insert("placed_at", Value::String(hold.placed_at.clone()));
    o.insert("scope", Value::String(if hold.subject_token.is_some() { "subject" } else { "organization" }.into()));
    o.insert("subject_token", hold.subject_token.as_ref().map_or(Value::Null, |t| Value::String(t.clone())));
    Value::Object(o)
}

fn print_json(v: &Value) {
    println!("{}", String::from_utf8_lossy(&audit_core::canonical::to_canonical(v)));
}

pub(crate) async fn holds(backends: &crate::config::Backends, command: HoldsCommand) -> anyhow::Result<u8> {
    match command {
        HoldsCommand::List { org } => {
            super::check_org(&org)?;
            let protection = super::open_protection(backends)
                .await?
                .ok_or_else(|| anyhow::anyhow!("personal data protection is off: there are no holds"))?;
            let holds = protection.keys().holds(&org).await?;
            print_json(&Value::Array(holds.iter().map(hold_json).collect()));
            Ok(exit::OK)
        }
        HoldsCommand::Place { org, email, actor_id, reason, requested_by } => {
            anyhow::ensure!(!reason.trim().is_empty(), "--reason: say why the hold is placed");
            let subject = email.map(ErasureTarget::Email).or(actor_id.map(ErasureTarget::ActorId));
            let service = service_for(backends, &org).await?;
            let placed = service.place_hold(&org, subject.as_ref(), &reason, &requester(requested_by)).await;
            service.stop().await;
            print_json(&hold_json(&placed?));
            Ok(exit::OK)
        }
        HoldsCommand::Lift { org, id, requested_by } => {
            let service = service_for(backends, &org).await?;
            let lifted = service.lift_hold(&org, &id, &requester(requested_by)).await;
            service.stop().await;
            match lifted? {
                Some(hold) => {
                    print_json(&hold_json(&hold));
                    Ok(exit::OK)
                }
                None => {
                    eprintln!("error: {org} has no hold {id:?} (see holds list)");
                    Ok(exit::FAILED)
                }
            }
        }
    }
}
