//! `lake pending`: catch up on everything not yet refined or aggregated.

use clap::Args;
use lake::StageOutcome;

use super::output::{json, table};
use super::{LakeArgs, Outcome};

/// Refines and aggregates everything not processed yet.
///
/// Catches up on what bronze and silver hold that the later stages have
/// not processed (after a restart, or when another service ingests). Bookmarks make it exactly-once: running it twice adds nothing.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  lake pending --config lake.toml")]
pub(crate) struct PendingArgs {
    #[command(flatten)]
    lake: LakeArgs,
}

pub(crate) async fn pending(args: PendingArgs) -> Outcome {
    let (_, pipeline) = args.lake.pipeline().await?;
    let report = pipeline.run_pending().await?;
    if args.lake.json {
        json(&serde_json::to_value(&report).map_err(|e| super::Failure::Run(Box::new(e)))?);
        return Ok(());
    }
    let rows = report
        .stages
        .iter()
        .map(|stage| {
            let (read, written, note) = match &stage.outcome {
                StageOutcome::Refine(r) => (
                    r.rows_read,
                    r.rows_written,
                    format!("{} valid, {} quarantined", r.valid, r.quarantined),
                ),
                StageOutcome::Aggregate(a) => (
                    a.rows_read,
                    a.rows_written,
                    format!("{} partitions refreshed", a.partitions_refreshed),
                ),
                StageOutcome::Ingest(i) => (i.input_records, i.rows_written, String::new()),
            };
            vec![
                stage.stage.clone(),
                read.to_string(),
                written.to_string(),
                note,
                format!("{:.2}", stage.seconds),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["stage", "rows read", "rows written", "", "seconds"], rows)
    );
    Ok(())
}
