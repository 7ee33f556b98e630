//! `lake cost`: what the lake stores and what it costs.

use clap::Args;
use lake::cost::{Prices, QueryScan};
use lake::gold::LakeSession;

use super::output::{bytes, json, pairs, table};
use super::{Failure, LakeArgs, Outcome};

/// Shows what every table stores and an estimated monthly cost.
///
/// Per table and zone: live files and bytes, the share of small files, rows,
/// bytes only old versions hold (vacuum reclaims them after the retention),
/// the Delta log, the share of rows deletion vectors delete, and the monthly
/// storage cost at S3 Standard's list price (override with
/// --price-per-gb-month). With --query, the bytes that query scans before
/// and after pruning, and their cost at Athena's price per TB.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lake cost\n  lake cost --query \"SELECT * FROM gold.analytics.daily_summary WHERE order_date = DATE '2025-11-01'\" --json"
)]
pub(crate) struct CostArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// A SQL query over the catalog's tables: report what it would scan.
    #[arg(long, value_name = "SQL")]
    query: Option<String>,
    /// Storage price per GB-month (default: S3 Standard, us-east-1, $0.023).
    #[arg(long, value_name = "USD")]
    price_per_gb_month: Option<f64>,
    /// Scan price per TB read (default: Athena, $5).
    #[arg(long, value_name = "USD")]
    price_per_tb_scanned: Option<f64>,
}

pub(crate) async fn cost(args: CostArgs) -> Outcome {
    let mut prices = Prices::default();
    if args.price_per_gb_month.is_some() || args.price_per_tb_scanned.is_some() {
        for (flag, price) in [
            ("--price-per-gb-month", args.price_per_gb_month),
            ("--price-per-tb-scanned", args.price_per_tb_scanned),
        ] {
            if price.is_some_and(|p| !(p >= 0.0 && p.is_finite())) {
                return Err(Failure::Usage(
                    format!("{flag} must be a price, not {price:?}").into(),
                ));
            }
        }
        prices = Prices::new(
            args.price_per_gb_month
                .unwrap_or(prices.storage_per_gb_month),
            args.price_per_tb_scanned.unwrap_or(prices.scan_per_tb),
            "given on the command line",
        );
    }
    let (_, pipeline) = args.lake.pipeline().await?;
    let report = lake::cost::cost(&pipeline, &prices).await?;
    let scan = match &args.query {
        Some(sql) => {
            let storage = pipeline.storage().clone();
            let session = match pipeline.catalog() {
                Some(catalog) => LakeSession::over_catalog(storage.clone(), catalog).await?,
                None => LakeSession::new(storage.clone()),
            };
            Some(lake::cost::query_scan(&session, &storage, sql, &prices).await?)
        }
        None => None,
    };
    if args.lake.json {
        let value = serde_json::json!({ "storage": report, "query": scan });
        json(&value);
        return Ok(());
    }
    println!("lake at {} ({})", report.root, report.prices.source);
    let rows = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.zone.clone(),
                t.table.clone(),
                t.files.to_string(),
                format!("{:.0}%", 100.0 * t.small_file_share),
                t.rows.to_string(),
                bytes(t.bytes),
                bytes(t.reclaimable_bytes),
                bytes(t.log_bytes),
                format!("{:.1}%", 100.0 * t.deletion_vector_share),
                format!("${:.4}", t.monthly_cost),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "zone",
                "table",
                "files",
                "small",
                "rows",
                "live",
                "reclaimable",
                "log",
                "deleted rows",
                "per month"
            ],
            rows
        )
    );
    let zones = report
        .zones
        .iter()
        .map(|z| {
            vec![
                z.zone.clone(),
                z.tables.to_string(),
                bytes(z.stored_bytes),
                bytes(z.reclaimable_bytes),
                format!("${:.4}", z.monthly_cost),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["zone", "tables", "stored", "reclaimable", "per month"],
            zones
        )
    );
    println!(
        "total: {} stored, ${:.4} per month",
        bytes(report.stored_bytes),
        report.monthly_cost
    );
    if let Some(scan) = scan {
        print_scan(&scan);
    }
    Ok(())
}

fn print_scan(scan: &QueryScan) {
    println!(
        "{}",
        pairs(vec![
            ("query", scan.sql.clone()),
            ("tables", scan.tables.join(", ")),
            (
                "without pruning",
                format!(
                    "{} files, {}, ${:.6}",
                    scan.files_before_pruning,
                    bytes(scan.bytes_before_pruning),
                    scan.cost_before_pruning
                ),
            ),
            (
                "after pruning",
                format!(
                    "{} files, {}, ${:.6}",
                    scan.files_after_pruning,
                    bytes(scan.bytes_after_pruning),
                    scan.cost_after_pruning
                ),
            ),
        ])
    );
}
