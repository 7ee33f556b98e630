//! `lake sql`: read-only SQL across the zones.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use lake::arrow::array::RecordBatch;
use lake::arrow::util::display::{ArrayFormatter, FormatOptions};
use lake::gold::{LakeSession, TimeTravel};
use lake::{LakeError, TableId};

use super::output::json;
use super::{Failure, LakeArgs, Outcome};

/// Runs a read-only SQL query across the zones.
///
/// Tables are named `zone.namespace.table` as in the catalog
/// (`silver.sales.orders`).
/// Queries only: DDL, DML and `SET` are refused. `--at` registers an
/// earlier version of a table under a name of its own (time travel).
/// With `--principal` (or the configuration's `principal`), only the
/// tables that principal may read are there (`lake grant`).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    lake sql \"SELECT order_date, total_value FROM gold.analytics.daily_summary ORDER BY 1 LIMIT 5\"\n  \
    lake sql --at first=silver.sales.orders@1 \"SELECT count(*) FROM first\"\n  \
    lake sql --format csv \"SELECT * FROM bronze.shop.orders\" > orders.csv")]
pub(crate) struct SqlArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// The query.
    query: String,
    /// How rows are printed (`--json` is `--format json`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// `NAME=TABLE@VERSION` or `NAME=TABLE@TIMESTAMP` (RFC 3339): the table
    /// as of that version, queried as `NAME`. Repeatable.
    #[arg(long, value_name = "NAME=TABLE@VERSION")]
    at: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// An aligned table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

pub(crate) async fn sql(args: SqlArgs) -> Outcome {
    let (_, pipeline) = args.lake.pipeline().await?;
    let storage = Arc::clone(pipeline.storage());
    let session = match (pipeline.catalog(), pipeline.principal()) {
        (Some(catalog), Some(principal)) => {
            LakeSession::for_principal(storage, catalog, principal).await?
        }
        (Some(catalog), None) => LakeSession::over_catalog(storage, catalog).await?,
        (None, _) => {
            // No catalog: the tables the pipeline's stages write.
            let session = LakeSession::new(storage);
            let ingest = pipeline.ingest_stages().iter().map(|s| s.target());
            let refine = pipeline.refine_stages().iter().map(|s| s.target());
            let aggregate = pipeline.aggregate_stages().iter().map(|s| s.target());
            for id in ingest.chain(refine).chain(aggregate) {
                session.register(id).await?;
            }
            session
        }
    };
    for at in &args.at {
        let (alias, id, version) = parse_at(at)?;
        session.register_at(&alias, &id, version).await?;
    }
    // A query that does not plan (a typo, a missing table, a refused
    // statement) is bad usage; one that fails while running is a failure.
    let frame = session
        .sql(&args.query)
        .await
        .map_err(|e| Failure::Usage(Box::new(e)))?;
    let batches = frame
        .collect()
        .await
        .map_err(|e| LakeError::datafusion("sql", e))?;
    let format = if args.lake.json {
        Format::Json
    } else {
        args.format
    };
    match format {
        Format::Table => {
            let text = lake::arrow::util::pretty::pretty_format_batches(&batches)
                .map_err(|e| LakeError::arrow("sql", e))?;
            println!("{text}");
        }
        Format::Csv => print_csv(&batches)?,
        Format::Json => json(&rows_json(&batches)?),
    }
    Ok(())
}

/// `NAME=TABLE@VERSION` or `NAME=TABLE@TIMESTAMP`.
fn parse_at(at: &str) -> Result<(String, TableId, TimeTravel), Failure> {
    let bad = |why: &str| {
        Failure::Usage(
            format!("--at {at:?}: {why} (expected NAME=TABLE@VERSION or NAME=TABLE@TIMESTAMP)")
                .into(),
        )
    };
    let (alias, rest) = at.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let (table, when) = rest.rsplit_once('@').ok_or_else(|| bad("no `@`"))?;
    if alias.is_empty() || !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("the name must be letters, digits and `_`"));
    }
    let id: TableId = table.parse().map_err(|e: LakeError| bad(&e.to_string()))?;
    let version = match when.parse::<u64>() {
        Ok(v) => TimeTravel::Version(v),
        Err(_) => TimeTravel::Timestamp(
            chrono::DateTime::parse_from_rfc3339(when)
                .map_err(|e| {
                    bad(&format!(
                        "{when:?} is neither a version nor a timestamp: {e}"
                    ))
                })?
                .to_utc(),
        ),
    };
    Ok((alias.to_string(), id, version))
}

fn cells(batch: &RecordBatch) -> Result<Vec<ArrayFormatter<'_>>, LakeError> {
    let options = FormatOptions::default().with_null("");
    batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<_, _>>()
        .map_err(|e| LakeError::arrow("sql", e))
}

fn print_csv(batches: &[RecordBatch]) -> Result<(), Failure> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    let io = |e: csv::Error| Failure::Run(Box::new(e));
    if let Some(first) = batches.first() {
        out.write_record(first.schema().fields().iter().map(|f| f.name().as_str()))
            .map_err(io)?;
    }
    for batch in batches {
        let columns = cells(batch)?;
        for row in 0..batch.num_rows() {
            out.write_record(columns.iter().map(|c| c.value(row).to_string()))
                .map_err(io)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn rows_json(batches: &[RecordBatch]) -> Result<serde_json::Value, Failure> {
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| LakeError::arrow("sql", e))?;
    }
    writer.finish().map_err(|e| LakeError::arrow("sql", e))?;
    let text = writer.into_inner();
    if text.is_empty() {
        return Ok(serde_json::json!([]));
    }
    serde_json::from_slice(&text).map_err(|e| Failure::Run(Box::new(e)))
}
