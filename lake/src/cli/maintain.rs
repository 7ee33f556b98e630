//! `lake maintain`: compact, purge deletion vectors, vacuum.

use std::time::Duration;

use clap::Args;
use lake::{MaintenanceOptions, MaintenanceReport};

use super::output::{bytes, json, table};
use super::{Failure, LakeArgs, Outcome};

/// Compacts small files, rewrites files with many deleted rows, vacuums.
///
/// Every table the pipeline writes (bronze and its dead letters, silver,
/// its event log and quarantine, gold, the run and quality records): small
/// files are merged per partition (silver's as its runs lay them out), files
/// whose deletion vectors delete a quarter of their rows or more are
/// rewritten without them, and files no version within the retention
/// references are deleted. Rows never change; each table gets one commit
/// for the rewrite and vacuum's own. With a `[retention]` table in the
/// configuration, rows older than its days go too (one commit per table):
/// bronze by ingestion-date partition, dead letters, quarantine and run records. It prints the plan first, then does it
/// (with `--dry-run`, only the plan). Safe beside a running pipeline: a
/// commit that races it is refused and retried, never merged wrongly.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lake maintain --dry-run\n  lake maintain --config lake.toml\n  lake maintain --drop-deletion-vectors   # for readers without deletion-vector support"
)]
pub(crate) struct MaintainArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Print what would be rewritten and deleted, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rewrite every file with a deletion vector and drop the feature, so
    /// that readers without deletion-vector support (Redshift Spectrum,
    /// Presto, deltalake's to_pyarrow_table) read silver. Add
    /// `deletion_vectors = false` to the configuration to keep it so.
    #[arg(long)]
    drop_deletion_vectors: bool,
    /// Size a rewritten file aims at, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    target_file_mib: u64,
    /// Keep unreferenced files younger than this many hours.
    #[arg(long, value_name = "HOURS", default_value_t = 168.0)]
    vacuum_retention_hours: f64,
    /// Allow a retention below the table's (7 days unless set): files a
    /// running reader or writer may still need can go.
    #[arg(long)]
    allow_short_retention: bool,
    /// Do not vacuum.
    #[arg(long)]
    no_vacuum: bool,
}

pub(crate) async fn maintain(args: MaintainArgs) -> Outcome {
    if !(args.vacuum_retention_hours >= 0.0 && args.vacuum_retention_hours.is_finite()) {
        return Err(Failure::Usage(
            format!(
                "--vacuum-retention-hours must be a number of hours, not {}",
                args.vacuum_retention_hours
            )
            .into(),
        ));
    }
    let (config, pipeline) = args.lake.pipeline().await?;
    let options = MaintenanceOptions::default()
        .with_retention(config.retention)
        .with_target_file_bytes(args.target_file_mib.max(1) * 1024 * 1024)
        .with_drop_deletion_vectors(args.drop_deletion_vectors)
        .with_vacuum(!args.no_vacuum)
        .with_vacuum_retention(Duration::from_secs_f64(
            args.vacuum_retention_hours * 3600.0,
        ))
        .with_short_retention(args.allow_short_retention);
    let plan = pipeline
        .maintain()
        .with_options(options.clone().with_dry_run(true))
        .await?;
    if args.dry_run {
        return print(&plan, args.lake.json, "plan (dry run: nothing changed)");
    }
    if !args.lake.json {
        print(&plan, false, "plan")?;
    }
    let done = pipeline.maintain().with_options(options).await?;
    print(&done, args.lake.json, "done")
}

fn print(reports: &[MaintenanceReport], as_json: bool, title: &str) -> Outcome {
    if as_json {
        json(&serde_json::to_value(reports).map_err(|e| Failure::Run(Box::new(e)))?);
        return Ok(());
    }
    println!("{title}");
    let rows = reports
        .iter()
        .map(|r| {
            vec![
                r.table.clone(),
                format!("{} ({})", r.before.files, bytes(r.before.bytes)),
                format!("{} -> {}", r.rewrite.files_removed, r.rewrite.files_added),
                r.rewrite.deletion_vectors_removed.to_string(),
                match (r.dropped_deletion_vectors, r.dry_run) {
                    (true, true) => "would drop".to_string(),
                    (true, false) => "dropped".to_string(),
                    _ => "-".to_string(),
                },
                match r.kept_unread_partitions {
                    0 => r.expired_rows.to_string(),
                    kept => format!("{} (kept unread: {kept} partitions)", r.expired_rows),
                },
                r.vacuumed_files.to_string(),
                match r.dry_run {
                    true => "-".to_string(),
                    false => format!("{} ({})", r.after.files, bytes(r.after.bytes)),
                },
            ]
        })
        .collect();
    for r in reports.iter().filter(|r| r.log_cleanup_turned_off) {
        println!(
            "{}: log expiry {} off (silver replays this table's commits from the first)",
            r.table,
            if r.dry_run {
                "would be turned"
            } else {
                "turned"
            }
        );
    }
    println!(
        "{}",
        table(
            &[
                "table",
                "files before",
                "rewritten",
                "vectors purged",
                "vector feature",
                "expired rows",
                "vacuumed",
                "files after"
            ],
            rows
        )
    );
    Ok(())
}
