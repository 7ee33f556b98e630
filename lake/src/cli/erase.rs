//! `lake erase`: a data subject out of every table, files and log included.

use clap::Args;
use lake::ErasureReport;
use lake::erasure::Subject;
use lake::pii::{KEY_ENV, PiiKey};

use super::output::{json, table};
use super::{Failure, LakeArgs, Outcome};

/// Erases a data subject (a GDPR or CCPA erasure request) from the lake.
///
/// Rows whose COLUMN equals a VALUE, or whose raw text names it, leave
/// bronze, the dead letters and the run records (one commit per table);
/// silver, its event log and its quarantine are rebuilt from what is left,
/// and gold is recomputed. Then the files and Delta log entries that held
/// the subject are deleted or rewritten at once: time travel to earlier
/// versions ends. A record of the erasure, holding the values only as
/// keyed hashes (HMAC-SHA256 under the key in LAKE_PII_KEY), is written
/// under _metadata/erasures/. Run it when no pipeline run writes to the
/// lake.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  LAKE_PII_KEY=... lake erase --column customer_id --value C-1042 --dry-run\n  LAKE_PII_KEY=... lake erase --column customer_id --value C-1042 --requested-by 'ticket 7731'"
)]
pub(crate) struct EraseArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// The column that identifies the subject (as the source names it).
    #[arg(long, value_name = "COLUMN")]
    column: String,
    /// A value of the column that identifies the subject (repeat for more).
    #[arg(long = "value", value_name = "VALUE", required = true)]
    values: Vec<String>,
    /// Erase only from these bronze tables (comma-separated, such as
    /// bronze.shop.orders) and the silver tables built from them; default:
    /// every bronze table of the configuration.
    #[arg(long, value_name = "TABLES", value_delimiter = ',')]
    tables: Vec<String>,
    /// Who asked for the erasure (a ticket, a person), for the record.
    #[arg(long, value_name = "WHO")]
    requested_by: Option<String>,
    /// Count the rows that would go, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) async fn erase(args: EraseArgs) -> Outcome {
    let subject = Subject::new(args.column, args.values)?;
    let key = PiiKey::from_env()?;
    let (_, pipeline) = args.lake.pipeline().await?;
    let mut erasure = pipeline
        .erase(subject)
        .with_key(key)
        .with_dry_run(args.dry_run);
    if let Some(who) = args.requested_by {
        erasure = erasure.with_requested_by(who);
    }
    if !args.tables.is_empty() {
        let tables = args
            .tables
            .iter()
            .map(|t| t.parse::<lake::TableId>())
            .collect::<lake::Result<Vec<_>>>()?;
        erasure = erasure.with_sources(tables);
    }
    let report = erasure.await?;
    print(&report, args.lake.json)
}

fn print(report: &ErasureReport, as_json: bool) -> Outcome {
    if as_json {
        json(&serde_json::to_value(report).map_err(|e| Failure::Run(Box::new(e)))?);
        return Ok(());
    }
    let title = match report.dry_run {
        true => "erasure plan (dry run: nothing changed)",
        false => "erased",
    };
    println!(
        "{title}: {} rows of {}",
        report.rows_erased(),
        report.column
    );
    let rows = report
        .erased
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.rows.to_string(),
                t.files_rewritten.to_string(),
                t.version.map_or("-".to_string(), |v| v.to_string()),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["table", "rows", "files rewritten", "version"], rows)
    );
    if report.dry_run {
        println!("silver would be rebuilt and gold recomputed; nothing was written");
        return Ok(());
    }
    for rebuilt in &report.rebuilt {
        println!(
            "rebuilt {}: {} rows read, {} valid, {} quarantined",
            rebuilt.table, rebuilt.rows_read, rebuilt.valid, rebuilt.quarantined
        );
    }
    for refreshed in &report.refreshed {
        println!("recomputed {}", refreshed.table);
    }
    let (files, entries) = report.purged.iter().fold((0, 0), |(f, e), p| {
        (f + p.files_deleted, e + p.log_entries_rewritten)
    });
    println!("purged: {files} files deleted, {entries} log entries rewritten");
    if let Some(record) = &report.record {
        println!("record: {record} (the subject as HMAC-SHA256 under {KEY_ENV})");
    }
    Ok(())
}
