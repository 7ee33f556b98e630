//! The naive medallion design a user would copy from a tutorial, on the same
//! deltalake crate, as the baseline of `lake-bench compare`.
//!
//! - Bronze: the same [`BronzeWriter`] as ours (the designs differ after it).
//! - Silver: the batch's bronze rows (`WHERE _batch_id = …`), typed with
//!   the same rules as ours, invalid events left out, the latest event per
//!   key of the batch (`row_number() OVER (PARTITION BY order_id ORDER BY
//!   updated_at DESC) = 1`), then the classic two MERGEs: close the current
//!   row of every key whose values changed or that was deleted, then insert
//!   a current row for every key left without one. Late arrivals, changes
//!   within a batch and sequence conflicts are what this loses.
//! - Gold: the daily summary recomputed from every current silver row and
//!   written over the whole table, every batch.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use lake_bronze::BronzeWriter;
use lake_core::arrow::array::AsArray;
use lake_core::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use lake_core::datafusion::prelude::SessionContext;
use lake_core::deltalake::protocol::SaveMode;
use lake_core::{
    IngestStage, LakeError, RawBatch, Result, StageContext, StorageExt, StorageRef, TableId,
    delta_provider, quote_literal,
};
use lake_silver::orders::events_batch;
use lake_silver::rules::type_order;

/// Seconds per stage of one naive batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct NaiveSeconds {
    /// Bronze ingestion.
    pub bronze: f64,
    /// Typing, the latest event per key and the two MERGEs.
    pub silver: f64,
    /// The full gold recomputation.
    pub gold: f64,
}

/// The tables of the naive design.
pub struct NaiveTables {
    /// Bronze (the same as ours).
    pub bronze: TableId,
    /// The SCD2 table.
    pub silver: TableId,
    /// The daily summary.
    pub gold: TableId,
}

impl NaiveTables {
    /// The default layout's tables: `bronze/shop/orders`, `silver/sales/orders`,
    /// `gold/analytics/daily_summary`.
    pub fn reference() -> Result<Self> {
        Ok(Self {
            bronze: TableId::bronze("shop", "orders")?,
            silver: TableId::silver("sales", "orders")?,
            gold: TableId::gold("analytics", "daily_summary")?,
        })
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

const BUSINESS: [(&str, DataType); 8] = [
    ("order_id", DataType::Utf8),
    ("customer_id", DataType::Utf8),
    ("category", DataType::Utf8),
    ("region", DataType::Utf8),
    ("amount", DataType::Float64),
    ("status", DataType::Utf8),
    ("order_date", DataType::Date32),
    ("metadata", DataType::Utf8),
];

static SILVER: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = BUSINESS
        .iter()
        .map(|(name, t)| Field::new(*name, t.clone(), *name != "order_id"))
        .collect();
    fields.extend([
        Field::new("valid_from", utc_micros(), false),
        Field::new("valid_to", utc_micros(), true),
        Field::new("is_current", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(fields))
});

/// Runs one batch file through the three naive stages.
pub async fn run_batch(
    storage: &StorageRef,
    tables: &NaiveTables,
    file: &Path,
) -> Result<NaiveSeconds> {
    let mut seconds = NaiveSeconds::default();
    let started = Instant::now();
    let raw = RawBatch::from_file(file)?;
    let batch_id = raw.batch_id.clone();
    let context = StageContext::new(Arc::clone(storage)).with_run_id(format!("naive-{batch_id}"));
    BronzeWriter::new(tables.bronze.clone())?
        .ingest(&context, raw)
        .await?;
    seconds.bronze = started.elapsed().as_secs_f64();

    let started = Instant::now();
    silver(storage, tables, &batch_id).await?;
    seconds.silver = started.elapsed().as_secs_f64();

    let started = Instant::now();
    gold(storage, tables).await?;
    seconds.gold = started.elapsed().as_secs_f64();
    Ok(seconds)
}

/// The naive silver stage for the bronze rows of `batch_id`: typing, the
/// latest event per key, and the two MERGEs.
pub async fn silver(storage: &StorageRef, tables: &NaiveTables, batch_id: &str) -> Result<()> {
    let layout = storage.layout();
    let name = tables.silver.to_string();
    let fail = |e| LakeError::datafusion(name.clone(), e);
    let ctx = SessionContext::new();
    let bronze = storage
        .open_table(&layout.table_location(&tables.bronze))
        .await?;
    ctx.register_table(
        "bronze",
        delta_provider(&ctx, &bronze, &tables.bronze.to_string()).await?,
    )
    .map_err(fail)?;
    let raw = ctx
        .sql(&format!(
            "SELECT _raw FROM bronze WHERE _batch_id = {}",
            quote_literal(batch_id)
        ))
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let mut events = Vec::new();
    for batch in &raw {
        let column = lake_core::arrow::compute::cast(batch.column(0), &DataType::Utf8)
            .map_err(|e| LakeError::arrow(name.clone(), e))?;
        events.extend(
            column
                .as_string::<i32>()
                .iter()
                .flatten()
                .filter_map(|text| type_order(text).ok()),
        );
    }
    if events.is_empty() {
        return Ok(());
    }
    ctx.register_batch("staged", events_batch(&events)?)
        .map_err(fail)?;
    let latest = ctx
        .sql(
            "SELECT order_id, customer_id, category, region, amount, status, order_date, \
                    metadata, op, updated_at \
             FROM (SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC) AS rn \
                   FROM staged) \
             WHERE rn = 1",
        )
        .await
        .map_err(fail)?;

    let silver = storage
        .ensure_table(&layout.table_location(&tables.silver), &SILVER, &[])
        .await?;
    let changed = BUSINESS[1..]
        .iter()
        .map(|(c, _)| format!("(t.{c} IS DISTINCT FROM s.{c})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let on = "t.order_id = s.order_id AND t.is_current = true";
    let delta = |e| LakeError::delta(name.clone(), e);
    let (silver, _) = silver
        .merge(latest.clone(), on)
        .with_source_alias("s")
        .with_target_alias("t")
        .when_matched_update(|update| {
            update
                .predicate(format!("(s.op = 'd') OR {changed}"))
                .update("is_current", "false")
                .update("valid_to", "s.updated_at")
        })
        .map_err(delta)?
        .await
        .map_err(delta)?;
    silver
        .merge(latest, on)
        .with_source_alias("s")
        .with_target_alias("t")
        .when_not_matched_insert(|insert| {
            let insert = BUSINESS
                .iter()
                .fold(insert.predicate("s.op <> 'd'"), |i, (c, _)| {
                    i.set(*c, format!("s.{c}"))
                });
            insert
                .set("valid_from", "s.updated_at")
                .set("is_current", "true")
        })
        .map_err(delta)?
        .await
        .map_err(delta)?;
    Ok(())
}

async fn gold(storage: &StorageRef, tables: &NaiveTables) -> Result<()> {
    let layout = storage.layout();
    let name = tables.gold.to_string();
    let fail = |e| LakeError::datafusion(name.clone(), e);
    let silver = storage
        .open_table(&layout.table_location(&tables.silver))
        .await?;
    if silver.version().is_none() {
        return Ok(());
    }
    let ctx = SessionContext::new();
    ctx.register_table(
        "silver",
        delta_provider(&ctx, &silver, &tables.silver.to_string()).await?,
    )
    .map_err(fail)?;
    let summary = ctx
        .sql(
            "SELECT category, region, count(*) AS total_count, sum(amount) AS total_value, \
                    avg(amount) AS avg_value, min(amount) AS min_value, max(amount) AS max_value, \
                    stddev_samp(amount) AS stddev_value, \
                    count(DISTINCT customer_id) AS unique_users, \
                    sum(amount) / nullif(count(DISTINCT customer_id), 0) AS value_per_user, \
                    order_date \
             FROM silver WHERE is_current GROUP BY order_date, category, region",
        )
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let gold = storage
        .open_table(&layout.table_location(&tables.gold))
        .await?;
    gold.write(summary)
        .with_save_mode(SaveMode::Overwrite)
        .with_partition_columns(["order_date"])
        .await
        .map_err(|e| LakeError::delta(name.clone(), e))?;
    Ok(())
}
