//! The README's main job: writes a few delivered batches of the reference
//! `orders` change stream (messy lines included) under `./lake-demo/incoming`,
//! runs them through bronze, silver and gold on the embedded defaults (local
//! files and the file catalog), prints each run report, and queries the
//! three zones with SQL through the catalog.
//!
//! Usage: `cargo run -p lake-examples --example quickstart [LAKE_DIR]`

use std::path::Path;
use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_catalog::FileCatalog;
use lake_core::{
    CatalogRef, ObjectStorage, PartitionFilter, Pipeline, RawBatch, StageOutcome, StorageRef,
    TableId,
};
use lake_gold::{GoldAggregation, LakeSession, daily_summary};
use lake_silver::OrdersSilver;

const BATCHES: usize = 3;
const EVENTS_PER_BATCH: usize = 1000;

#[tokio::main]
async fn main() -> lake_core::Result<()> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "lake-demo".to_string());
    let incoming = Path::new(&root).join("incoming");
    write_batches(&incoming)?;

    let storage: StorageRef = Arc::new(ObjectStorage::from_url(&root)?);
    // The embedded default catalog: JSON documents under {root}/_catalog/.
    let catalog: CatalogRef = Arc::new(FileCatalog::new(&storage)?);
    let orders = TableId::bronze("shop", "orders")?;
    let silver = TableId::silver("sales", "orders")?;
    let gold = TableId::gold("analytics", "daily_summary")?;
    let pipeline = Pipeline::builder()
        .with_storage(storage.clone())
        .with_catalog(catalog.clone())
        .with_ingest(Arc::new(BronzeWriter::new(orders.clone())?))
        .with_refine(Arc::new(OrdersSilver::new(orders.clone(), silver.clone())?))
        .with_aggregate(Arc::new(GoldAggregation::new(daily_summary(
            silver.clone(),
            gold,
        )?)?))
        .build()?;

    for i in 1..=BATCHES {
        let file = incoming.join(format!("batch-{i:05}.jsonl"));
        let report = pipeline.run_batch(RawBatch::from_file(&file)?).await?;
        let already = report
            .stages
            .iter()
            .any(|s| matches!(&s.outcome, StageOutcome::Ingest(r) if r.already_ingested));
        if already {
            println!("{}: already ingested, nothing added", file.display());
            continue;
        }
        let totals = report.totals();
        println!(
            "{}: {} lines -> {} bronze rows, {} dead letters, {} blank -> {} valid events, {} quarantined -> {} gold partitions refreshed",
            file.display(),
            totals.input_records,
            totals.bronze_rows,
            totals.dead_lettered,
            totals.blank_lines,
            totals.valid,
            totals.quarantined,
            totals.partitions_refreshed
        );
        print!("{report}");
    }

    // SQL across the three zones, with tables named as the catalog knows them.
    let session = LakeSession::from_catalog(storage.clone(), &catalog).await?;
    for sql in [
        "SELECT _batch_id, count(*) AS rows, count(DISTINCT order_id) AS orders \
         FROM bronze.shop.orders GROUP BY _batch_id ORDER BY _batch_id",
        "SELECT is_current, count(*) AS versions, count(DISTINCT order_id) AS orders \
         FROM silver.sales.orders GROUP BY is_current ORDER BY is_current",
        "SELECT order_date, category, region, total_count, total_value, unique_users, \
         round(value_per_user, 2) AS value_per_user FROM gold.analytics.daily_summary \
         WHERE order_date >= '2025-11-20' ORDER BY order_date, category, region LIMIT 8",
    ] {
        println!("\n{sql}");
        session
            .sql(sql)
            .await?
            .show()
            .await
            .map_err(|e| lake_core::LakeError::datafusion("quickstart", e))?;
    }
    let definition = catalog.get_table(&orders).await?;
    let partitions = catalog
        .list_partitions(&orders, &PartitionFilter::all())
        .await?;
    println!(
        "catalog: {} at {} (schema version {}, {} partition(s))",
        definition.id,
        definition.location,
        definition.schema_version,
        partitions.len()
    );
    println!("tables are under {}", storage.layout().root());
    Ok(())
}

/// A small, deterministic slice of the reference workload, with the mess
/// real streams have: duplicates, CRLF, blank and broken lines.
fn write_batches(dir: &Path) -> lake_core::Result<()> {
    let io = |e| lake_core::LakeError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let categories = ["books", "garden", "toys", "music"];
    let regions = ["eu", "us", "apac"];
    for b in 1..=BATCHES {
        let mut text = String::new();
        for e in 0..EVENTS_PER_BATCH {
            let n = (b - 1) * EVENTS_PER_BATCH + e;
            let order = n % 700;
            let op = if n < 700 {
                "c"
            } else if n.is_multiple_of(97) {
                "d"
            } else {
                "u"
            };
            let amount = if n.is_multiple_of(5) {
                format!("\"{}.50\"", n % 300)
            } else {
                format!("{}.25", n % 300)
            };
            text.push_str(&format!(
                "{{\"order_id\":\"o{order:05}\",\"customer_id\":\"c{:04}\",\"category\":\"{}\",\"region\":\"{}\",\"amount\":{amount},\"status\":\"placed\",\"order_date\":\"2025-11-{:02}\",\"op\":\"{op}\",\"updated_at\":\"2025-11-{:02}T{:02}:{:02}:00Z\",\"metadata\":{{\"channel\":\"web\"}}}}\n",
                order % 250,
                categories[order % 4],
                regions[order % 3],
                1 + order % 28,
                1 + n / 600,
                n / 60 % 24,
                n % 60,
            ));
            if e.is_multiple_of(250) {
                text.push_str("{\"order_id\": broken\r\n\n");
            }
        }
        std::fs::write(dir.join(format!("batch-{b:05}.jsonl")), text).map_err(io)?;
    }
    Ok(())
}
