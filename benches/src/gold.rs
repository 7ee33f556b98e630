//! The gold benchmark: an incremental refresh after a batch that touches a
//! few dates, against a full recomputation of the same table, in one run.
//!
//! Setup (not timed): `orders` orders spread evenly over `dates` order
//! dates go through the real bronze and silver stages, and both gold tables
//! (the daily summary, refreshed incrementally, and a copy always rebuilt)
//! are computed once. Then each round delivers a batch updating a share of
//! the orders of `touched` dates (a different set each round), runs bronze
//! and silver, and times the incremental refresh and the full rebuild over
//! the same silver version. The two tables are compared after every round.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lake_bronze::BronzeWriter;
use lake_core::{
    IngestStage, ObjectStorage, RawBatch, Result, StageContext, StorageExt, StorageRef, TableId,
};
use lake_gold::{GoldAggregation, LakeSession, daily_summary};
use lake_silver::OrdersSilver;

use crate::workload::{CATEGORIES, REGIONS, Rng};

/// The shape of the gold benchmark.
#[derive(Debug, Clone)]
pub struct GoldBench {
    /// Orders in silver.
    pub orders: usize,
    /// Distinct order dates.
    pub dates: usize,
    /// Dates touched by each round's batch.
    pub touched: usize,
    /// Rounds (batches) measured.
    pub rounds: usize,
    /// Maintain silver and gold (compaction, vacuum without retention)
    /// before every this many rounds' refreshes, untimed.
    pub maintain_every: Option<usize>,
}

impl Default for GoldBench {
    fn default() -> Self {
        Self {
            orders: 1_000_000,
            dates: 365,
            touched: 18,
            rounds: 3,
            maintain_every: None,
        }
    }
}

fn date(day: usize) -> String {
    // Days from 2025-01-01 (2025 is not a leap year; 365 dates fit in it).
    let base = lake_core::arrow::temporal_conversions::date32_to_datetime(20_089 + day as i32)
        .map(|t| t.date().to_string());
    base.unwrap_or_else(|| "2025-01-01".to_string())
}

fn order_line(out: &mut String, order: usize, day: usize, amount_cents: u64, at: u64) {
    let customer = order * 7_919 % 250_000;
    let _ = writeln!(
        out,
        "{{\"order_id\":\"o{order:07}\",\"customer_id\":\"c{customer:06}\",\"category\":\"{}\",\
         \"region\":\"{}\",\"amount\":{}.{:02},\"status\":\"placed\",\"order_date\":\"{}\",\
         \"op\":\"{}\",\"updated_at\":\"2026-01-01T{:02}:{:02}:{:02}Z\"}}",
        CATEGORIES[order % CATEGORIES.len()],
        REGIONS[order / CATEGORIES.len() % REGIONS.len()],
        amount_cents / 100,
        amount_cents % 100,
        date(day),
        if at == 0 { "c" } else { "u" },
        at / 3600 % 24,
        at / 60 % 60,
        at % 60,
    );
}

/// Runs the benchmark in `dir` and returns its figures as one JSON object.
pub async fn run(bench: &GoldBench, dir: &Path) -> Result<serde_json::Value> {
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(
        dir.join("lake").to_str().unwrap_or("lake"),
    )?);
    let context = StageContext::new(Arc::clone(&storage)).with_run_id("gold-bench".to_string());
    let bronze = TableId::bronze("shop", "orders")?;
    let silver = TableId::silver("sales", "orders")?;
    let writer = BronzeWriter::new(bronze.clone())?;
    let refine = OrdersSilver::new(bronze, silver.clone())?;
    let incremental = GoldAggregation::new(daily_summary(
        silver.clone(),
        TableId::gold("analytics", "daily_summary")?,
    )?)?;
    let rebuilt = GoldAggregation::new(daily_summary(
        silver,
        TableId::gold("analytics", "daily_summary_rebuilt")?,
    )?)?;
    let mut rng = Rng::new(42);

    let setup = Instant::now();
    let mut text = String::with_capacity(bench.orders * 250);
    for order in 0..bench.orders {
        order_line(
            &mut text,
            order,
            order % bench.dates,
            100 + rng.below(50_000),
            0,
        );
    }
    deliver(&writer, &refine, &context, dir, "batch-00000.jsonl", text).await?;
    incremental.refresh(&storage).await?;
    rebuilt.refresh(&storage).full_rebuild().await?;
    let setup_seconds = setup.elapsed().as_secs_f64();

    let mut rounds = Vec::new();
    for round in 0..bench.rounds {
        let first_day = (round * bench.touched) % bench.dates;
        let days: Vec<usize> = (0..bench.touched)
            .map(|d| (first_day + d) % bench.dates)
            .collect();
        let mut text = String::new();
        let mut updates = 0;
        for order in 0..bench.orders {
            let day = order % bench.dates;
            if days.contains(&day) && rng.below(10) < 3 {
                order_line(
                    &mut text,
                    order,
                    day,
                    100 + rng.below(50_000),
                    1 + round as u64,
                );
                updates += 1;
            }
        }
        let name = format!("batch-{:05}.jsonl", round + 1);
        deliver(&writer, &refine, &context, dir, &name, text).await?;
        let maintained = bench
            .maintain_every
            .is_some_and(|every| (round + 1) % every == 0);
        if maintained {
            maintain(&storage, &refine, &incremental).await?;
        }

        let started = Instant::now();
        let inc = incremental.refresh(&storage).await?;
        let incremental_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let full = rebuilt.refresh(&storage).full_rebuild().await?;
        let full_seconds = started.elapsed().as_secs_f64();
        let mismatches = compare(&storage).await?;
        rounds.push(serde_json::json!({
            "round": round + 1,
            "updates": updates,
            "dates_touched": days.len(),
            "incremental_seconds": incremental_seconds,
            "incremental_partitions": inc.report.partitions_refreshed,
            "incremental_rows_read": inc.report.rows_read,
            "full_seconds": full_seconds,
            "full_partitions": full.report.partitions_refreshed,
            "full_rows_read": full.report.rows_read,
            "ratio_full_to_incremental": full_seconds / incremental_seconds,
            "mismatched_rows": mismatches,
            "maintained_before": maintained,
        }));
    }
    let median = |key: &str| {
        let mut v: Vec<f64> = rounds.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Ok(serde_json::json!({
        "benchmark": "gold_refresh",
        "command": format!(
            "lake-bench gold --orders {} --dates {} --touched {} --rounds {}{}",
            bench.orders,
            bench.dates,
            bench.touched,
            bench.rounds,
            bench
                .maintain_every
                .map_or(String::new(), |n| format!(" --maintain-every {n}"))
        ),
        "median_incremental_seconds_last_half": median_of_last_half(&rounds, "incremental_seconds"),
        "setup_seconds": setup_seconds,
        "median_incremental_seconds": median("incremental_seconds"),
        "median_full_seconds": median("full_seconds"),
        "median_ratio_full_to_incremental": median("ratio_full_to_incremental"),
        "rounds": rounds,
    }))
}

/// The median of `key` over the second half of `rounds`, where the files
/// that earlier rounds left have piled up.
fn median_of_last_half(rounds: &[serde_json::Value], key: &str) -> Option<f64> {
    let mut v: Vec<f64> = rounds[rounds.len() / 2..]
        .iter()
        .filter_map(|r| r[key].as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Maintains silver's tables (as its runs lay them out) and the
/// incrementally refreshed gold table, vacuuming without retention.
async fn maintain(
    storage: &StorageRef,
    refine: &OrdersSilver,
    gold: &GoldAggregation,
) -> Result<()> {
    use lake_core::{AggregateStage, Maintain, MaintenanceOptions, RefineStage};
    let layout = storage.layout();
    let options = MaintenanceOptions::default()
        .with_vacuum_retention(std::time::Duration::ZERO)
        .with_short_retention(true);
    let targets = RefineStage::maintenance_targets(refine, layout)
        .into_iter()
        .chain(AggregateStage::maintenance_targets(gold, layout));
    for target in targets {
        if storage
            .open_table(&target.location)
            .await?
            .version()
            .is_none()
        {
            continue;
        }
        Maintain::target(Arc::clone(storage), target)
            .with_options(options.clone())
            .await?;
    }
    Ok(())
}

async fn deliver(
    writer: &BronzeWriter,
    refine: &OrdersSilver,
    context: &StageContext,
    dir: &Path,
    name: &str,
    text: String,
) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| lake_core::LakeError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    writer
        .ingest(context, RawBatch::from_file(&path)?)
        .await?
        .reconcile()?;
    refine.run(&context.storage).await?.reconcile()?;
    Ok(())
}

/// Rows of the summary that differ between the two gold tables (floats to
/// 9 significant decimals).
async fn compare(storage: &StorageRef) -> Result<u64> {
    let session = LakeSession::new(Arc::clone(storage));
    let a = TableId::gold("analytics", "daily_summary")?;
    let b = TableId::gold("analytics", "daily_summary_rebuilt")?;
    session.register(&a).await?;
    session.register(&b).await?;
    let columns = "order_date, category, region, total_count, unique_users, \
                   round(total_value, 6), round(stddev_value, 6), round(value_per_user, 6)";
    let sql = format!(
        "SELECT count(*) AS n FROM (\
           (SELECT {columns} FROM gold.analytics.daily_summary \
            EXCEPT SELECT {columns} FROM gold.analytics.daily_summary_rebuilt) \
           UNION ALL \
           (SELECT {columns} FROM gold.analytics.daily_summary_rebuilt \
            EXCEPT SELECT {columns} FROM gold.analytics.daily_summary))"
    );
    let batches = session
        .sql(&sql)
        .await?
        .collect()
        .await
        .map_err(|e| lake_core::LakeError::datafusion("gold comparison", e))?;
    let count = batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<lake_core::arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(-1);
    Ok(count.max(0) as u64 + u64::from(count < 0))
}
