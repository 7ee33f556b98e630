//! `lake status`: every table and how far each stage is behind.

use clap::Args;

use super::output::{bytes, json, table};
use super::{Failure, LakeArgs, Outcome};

/// Shows every table and how far each stage is behind.
///
/// Every table of the lake (the pipeline's and the catalog's), with
/// its zone, version, files, rows, bytes and last commit, and how many
/// source versions each silver and gold stage has not processed yet.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  lake status --lake ./lake-demo")]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    lake: LakeArgs,
}

pub(crate) async fn status(args: StatusArgs) -> Outcome {
    let (_, pipeline) = args.lake.pipeline().await?;
    let status = lake::status::status(&pipeline).await?;
    if args.lake.json {
        json(&serde_json::to_value(&status).map_err(|e| Failure::Run(Box::new(e)))?);
        return Ok(());
    }
    println!("lake at {}", status.root);
    let rows = status
        .tables
        .iter()
        .map(|t| {
            vec![
                t.zone.clone(),
                t.table.clone(),
                t.version.map_or("-".to_string(), |v| v.to_string()),
                t.files.to_string(),
                t.rows.to_string(),
                bytes(t.bytes),
                t.last_commit.map_or("never".to_string(), |at| {
                    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                }),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "zone",
                "table",
                "version",
                "files",
                "rows",
                "bytes",
                "last commit"
            ],
            rows
        )
    );
    if !status.stages.is_empty() {
        let rows = status
            .stages
            .iter()
            .map(|s| {
                vec![
                    s.stage.clone(),
                    format!("{} -> {}", s.source, s.target),
                    match (s.read_up_to, s.source_version) {
                        (Some(read), Some(latest)) => format!("{read} of {latest}"),
                        (None, Some(latest)) => format!("- of {latest}"),
                        _ => "-".to_string(),
                    },
                    s.state.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["stage", "reads", "source version read", "state"], rows)
        );
    }
    Ok(())
}
