//! `lake run`: ingest input files through bronze, silver and gold.

use std::time::Instant;

use clap::Args;
use lake::inputs::discover;
use lake::{RunTotals, StageOutcome};

use super::output::{bytes, json, pairs, progress};
use super::{Failure, LakeArgs, Outcome};

/// Ingests input files into bronze, then refines and aggregates each batch.
///
/// Inputs are files, folders (walked recursively, files in name order) and
/// `s3://bucket/prefix` URLs, in any format bronze reads: JSON lines
/// (.jsonl, .ndjson, .json), CSV (.csv, .tsv), Parquet and Avro. Each file
/// is one delivered batch: it goes to the bronze table the configuration
/// routes it to, then every silver and gold stage runs. A file ingested
/// before is not ingested again; the same name with other bytes is refused.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  lake run --input examples/data/orders --lake ./lake-demo")]
pub(crate) struct RunArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Files, folders or s3:// prefixes to ingest.
    #[arg(long, short = 'i', value_name = "PATH", required = true, num_args = 1..)]
    input: Vec<String>,
}

pub(crate) async fn run(args: RunArgs) -> Outcome {
    let (config, pipeline) = args.lake.pipeline().await?;
    let found = discover(&config, &args.input).await?;
    for (location, reason) in &found.not_read {
        eprintln!("lake: not read: {location}: {reason}");
    }
    if found.inputs.is_empty() {
        return Err(Failure::Usage(
            format!("no input files in {}", args.input.join(", ")).into(),
        ));
    }
    let bar = progress(found.inputs.len() as u64, args.lake.json);
    let started = Instant::now();
    let mut totals = RunTotals::default();
    let (mut ingested, mut already, mut reconciles) = (0u64, 0u64, true);
    let mut batches = Vec::new();
    for input in &found.inputs {
        bar.set_message(input.location.clone());
        let batch = input.batch().await?;
        let report = match pipeline.run_batch(batch).await {
            Ok(report) => report,
            Err(e) => {
                bar.abandon();
                let done = batches.len();
                return Err(Failure::from(e).context(format!(
                    "run of {} failed ({done} batches before it are committed; \
                     running again skips them)",
                    input.location
                )));
            }
        };
        bar.inc(1);
        let mut found_done = false;
        for stage in &report.stages {
            if let StageOutcome::Ingest(ingest) = &stage.outcome {
                found_done = ingest.already_ingested;
            }
        }
        match found_done {
            true => already += 1,
            false => ingested += 1,
        }
        reconciles &= report.reconcile().is_ok();
        let t = report.totals();
        totals += t;
        let line = serde_json::json!({
            "input": input.location,
            "table": input.table.to_string(),
            "already_ingested": found_done,
            "seconds": report.seconds(),
            "totals": t,
        });
        if !args.lake.json {
            bar.suspend(|| {
                println!(
                    "{} -> {}: {}",
                    input.location,
                    input.table,
                    match found_done {
                        true => "already ingested, nothing added".to_string(),
                        false => format!(
                            "{} lines, {} bronze rows, {} dead letters, {} valid, {} quarantined, {} gold partitions ({:.2} s)",
                            t.input_records,
                            t.bronze_rows,
                            t.dead_lettered,
                            t.valid,
                            t.quarantined,
                            t.partitions_refreshed,
                            report.seconds()
                        ),
                    }
                )
            });
        }
        batches.push(line);
    }
    bar.finish_and_clear();
    // Every stage's own equation held for every batch, and in sum: lines
    // read = bronze rows + dead letters + blank lines; rows silver read =
    // valid + quarantined.
    let reconciles = reconciles
        && totals.input_records == totals.bronze_rows + totals.dead_lettered + totals.blank_lines
        && totals.refine_rows_read == totals.valid + totals.quarantined;
    let seconds = started.elapsed().as_secs_f64();
    let input_bytes: u64 = found.inputs.iter().map(|i| i.bytes).sum();
    if args.lake.json {
        json(&serde_json::json!({
            "lake": config.lake,
            "batches": batches,
            "not_read": found.not_read.iter().map(|(l, r)| serde_json::json!({"input": l, "reason": r})).collect::<Vec<_>>(),
            "summary": {
                "batches": found.inputs.len(),
                "batches_ingested": ingested,
                "batches_already_ingested": already,
                "input_bytes": input_bytes,
                "seconds": seconds,
                "totals": totals,
                "reconciles": reconciles,
            },
        }));
    } else {
        println!(
            "{}",
            pairs(vec![
                ("lake", config.lake.clone().unwrap_or_default()),
                (
                    "batches",
                    format!(
                        "{} ({ingested} ingested, {already} already ingested)",
                        found.inputs.len()
                    )
                ),
                ("input", bytes(input_bytes)),
                ("lines read", totals.input_records.to_string()),
                ("bronze rows", totals.bronze_rows.to_string()),
                ("dead letters", totals.dead_lettered.to_string()),
                ("blank lines", totals.blank_lines.to_string()),
                ("silver rows read", totals.refine_rows_read.to_string()),
                ("valid", totals.valid.to_string()),
                ("quarantined", totals.quarantined.to_string()),
                (
                    "gold partitions refreshed",
                    totals.partitions_refreshed.to_string()
                ),
                ("seconds", format!("{seconds:.2}")),
                (
                    "reconciles",
                    if reconciles { "yes" } else { "NO" }.to_string()
                ),
            ])
        );
    }
    if !reconciles {
        return Err(Failure::Run(
            "the run's counts do not reconcile (see the summary)".into(),
        ));
    }
    Ok(())
}
