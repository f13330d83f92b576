//! `query --org ORG [filters] [--limit N] [--offset N] [--order asc|desc]
//! [--cursor C] [--format table|json|csv]`: one page from the index, each
//! event read from storage and checked.

use std::io::Write;

use audit_core::filter::{Cursor, Order};
use audit_core::json::{Object, Value};
use audit_service::QueryPage;

use super::filter_args::FilterArgs;
use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Aligned columns for people.
    Table,
    /// `{"events": [...], "next_cursor": ..., "indexed_through": N}`, as the API answers.
    Json,
    /// RFC 4180 CSV with the export's columns.
    Csv,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Page size (1 to 1000; default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Events to skip (at most 10,000; page deeper with --cursor).
    #[arg(long)]
    offset: Option<u32>,
    /// Order by sequence.
    #[arg(long, default_value = "asc", value_parser = |s: &str| Order::parse(s).ok_or("expected asc or desc"))]
    order: Order,
    /// Continue after the page that returned this cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// The page as the JSON the API returns for `GET /v1/events`.
pub(crate) fn page_json(page: &QueryPage) -> Value {
    let events = page
        .events
        .iter()
        .map(|e| audit_core::json::parse(&e.to_line(), audit_core::json::NumberPolicy::Exact).unwrap_or(Value::Null))
        .collect();
    let mut o = Object::new();
    o.insert("events", Value::Array(events));
    o.insert("next_cursor", page.next_cursor.clone().map_or(Value::Null, Value::String));
    o.insert("indexed_through", Value::Number(page.indexed_through as f64));
    Value::Object(o)
}

pub(crate) async fn run(backends: &crate::config::Backends, args: Args) -> anyhow::Result<u8> {
    let mut filter = args.filter.to_filter()?;
    filter.limit = args.limit;
    filter.offset = args.offset;
    filter.order = args.order;
    filter.cursor = match &args.cursor {
        Some(c) => Some(
            Cursor::decode(c).ok_or_else(|| anyhow::anyhow!("--cursor: {c:?} is not a cursor from a previous page"))?,
        ),
        None => None,
    };
    filter.check()?;
    super::require_data_dir(backends)?;
    let store = super::open_store(backends).await?;
    let index = super::open_index(backends).await?;
    // The CLI has no background indexer: bring the index up to date first.
    let bar = super::progress("{spinner} indexing: {pos} events ({rate})", None);
    let protection = super::open_protection(backends).await?;
    let blind = protection.as_deref().map(|p| p as &dyn audit_index::BlindColumns);
    audit_index::catch_up_with_progress(store.as_ref(), index.as_ref(), &filter.organization_id, blind, &mut |n| {
        bar.set_position(n)
    })
    .await?;
    bar.finish_and_clear();
    let page = audit_service::query_events(store.as_ref(), index.as_ref(), &filter, protection.as_deref()).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            out.write_all(&audit_core::canonical::to_canonical(&page_json(&page)))?;
            out.write_all(b"\n")?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(audit_service::CSV_COLUMNS)?;
            for e in &page.events {
                w.write_record(audit_service::csv_record(e).iter().map(|c| audit_service::csv_cell(c).into_owned()))?;
            }
            w.flush()?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:>8}  {:<27}  {:<28}  {:<8}  {:<8}  {:<28}  RESOURCE",
                "SEQUENCE", "TIMESTAMP", "EVENT_TYPE", "ACTION", "SEVERITY", "ACTOR"
            )?;
            for e in &page.events {
                let d = e.body.draft();
                let actor = d.actor_email.as_deref().or(d.actor_id.as_deref()).unwrap_or(e.body.actor_type().as_str());
                let resource = match (&d.resource_type, &d.resource_id) {
                    (Some(t), Some(i)) => format!("{t}/{i}"),
                    (None, Some(i)) => i.clone(),
                    (Some(t), None) => t.clone(),
                    (None, None) => String::new(),
                };
                writeln!(
                    out,
                    "{:>8}  {:<27}  {:<28}  {:<8}  {:<8}  {:<28}  {resource}",
                    e.sequence,
                    e.timestamp.to_string(),
                    d.event_type,
                    e.body.action().as_str(),
                    e.body.severity().as_str(),
                    actor
                )?;
            }
            if let Some(c) = &page.next_cursor {
                eprintln!("more: --cursor {c}");
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
