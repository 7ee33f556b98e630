//! A table of your own, end to end: shipments delivered as Parquet files,
//! versioned in silver by a [`SilverSpec`] built in Rust (a compound key,
//! casts, a derived column, deletes) and aggregated in gold by an
//! [`AggregationSpec`] of its own. Nothing here knows the reference
//! `orders` workload.
//!
//! Run it with `cargo run -p lake-examples --example own_entity [LAKE_DIR]`;
//! `tests/it/own_entity.rs` checks the tables it writes.

use std::path::Path;
use std::sync::Arc;

use lake::arrow::array::{ArrayRef, RecordBatch, StringArray};
use lake::arrow::datatypes::{DataType, Field, Schema};
use lake::gold::Function;
use lake::parquet::arrow::ArrowWriter;
use lake::prelude::*;
use lake::silver::{ColumnSpec, ColumnType, DeleteRule};
use lake::{Ident, RunReport};

/// The bronze table the shipment files land in.
pub fn bronze() -> Result<TableId> {
    TableId::bronze("logistics", "shipments")
}

/// The SCD2 table of shipments.
pub fn silver() -> Result<TableId> {
    TableId::silver("logistics", "shipments")
}

/// Shipped weight per day and carrier.
pub fn gold() -> Result<TableId> {
    TableId::gold("logistics", "weight_by_day")
}

/// The silver spec: a shipment is a (carrier, tracking number) pair; its
/// changes are ordered by `updated_at`; `op = 'x'` cancels it.
pub fn shipments_spec() -> Result<SilverSpec> {
    Ok(SilverSpec::new(
        bronze()?,
        silver()?,
        &["carrier", "tracking_no"],
        &["updated_at"],
    )?
    .column(ColumnSpec::new("carrier")?.expr("upper(carrier)"))
    .column(
        ColumnSpec::new("tracking_no")?
            .from("tracking")
            .cast(ColumnType::Int64),
    )
    .column(ColumnSpec::new("status")?)
    .column(ColumnSpec::new("weight_kg")?.expr("CAST(weight_g AS DOUBLE) / 1000.0"))
    .column(ColumnSpec::new("shipped_on")?.cast(ColumnType::Date))
    .column(ColumnSpec::new("updated_at")?.cast(ColumnType::Timestamp))
    .with_deletes(DeleteRule::Column {
        column: "op".to_string(),
        values: vec!["x".to_string()],
    }))
}

/// The gold spec over silver's current rows.
pub fn weight_spec() -> Result<AggregationSpec> {
    let column = |name: &str| Ident::new(name);
    AggregationSpec::new(gold()?, silver()?, &["shipped_on", "carrier"], "shipped_on")?
        .metric("shipments", Function::Count)?
        .metric(
            "weight_kg",
            Function::Sum {
                column: column("weight_kg")?,
            },
        )
}

/// The pipeline on `storage` with the file catalog.
pub fn pipeline(storage: StorageRef) -> Result<Pipeline> {
    let catalog: CatalogRef = Arc::new(FileCatalog::new(&storage)?);
    Pipeline::builder()
        .with_storage(storage)
        .with_catalog(catalog)
        .with_ingest(Arc::new(BronzeWriter::new(bronze()?)?))
        .with_refine(Arc::new(SilverTable::new(shipments_spec()?)?))
        .with_aggregate(Arc::new(GoldAggregation::new(weight_spec()?)?))
        .build()
}

/// One delivered file: (carrier, tracking, status, weight in grams as
/// text, shipped on, updated at, op).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The two deliveries the example writes: creates, then an update, a
/// cancellation, a late event and a row whose tracking number is not a
/// number (quarantined).
pub const DELIVERIES: [&[Row]; 2] = [
    &[
        (
            "ups",
            "1001",
            "packed",
            "1500",
            "2025-11-03",
            "2025-11-03T08:00:00Z",
            "c",
        ),
        (
            "ups",
            "1002",
            "packed",
            "800",
            "2025-11-03",
            "2025-11-03T08:05:00Z",
            "c",
        ),
        (
            "dhl",
            "1001",
            "packed",
            "2250",
            "2025-11-03",
            "2025-11-03T09:00:00Z",
            "c",
        ),
    ],
    &[
        (
            "ups",
            "1001",
            "shipped",
            "1500",
            "2025-11-03",
            "2025-11-04T10:00:00Z",
            "u",
        ),
        (
            "ups",
            "1002",
            "cancelled",
            "800",
            "2025-11-03",
            "2025-11-04T11:00:00Z",
            "x",
        ),
        // Late: happened before the create the first delivery held.
        (
            "dhl",
            "1001",
            "packed",
            "2300",
            "2025-11-03",
            "2025-11-03T08:30:00Z",
            "u",
        ),
        (
            "dhl",
            "A-17",
            "packed",
            "100",
            "2025-11-04",
            "2025-11-04T12:00:00Z",
            "c",
        ),
    ],
];

/// Writes delivery `rows` as a Parquet file at `path`: every column text,
/// as a source system would export it.
pub fn write_delivery(path: &Path, rows: &[Row]) -> Result<()> {
    let names = [
        "carrier",
        "tracking",
        "status",
        "weight_g",
        "shipped_on",
        "updated_at",
        "op",
    ];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let column = |i: usize| -> ArrayRef {
        let values = rows.iter().map(|r| [r.0, r.1, r.2, r.3, r.4, r.5, r.6][i]);
        Arc::new(values.map(Some).collect::<StringArray>())
    };
    let batch = RecordBatch::try_new(Arc::clone(&schema), (0..names.len()).map(column).collect())
        .map_err(|e| LakeError::arrow("shipments", e))?;
    let io = |e: std::io::Error| LakeError::Io {
        path: path.display().to_string(),
        source: e,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let parquet = |e: lake::parquet::errors::ParquetError| LakeError::other("writing shipments", e);
    let mut writer = ArrowWriter::try_new(file, schema, None).map_err(parquet)?;
    writer.write(&batch).map_err(parquet)?;
    writer.close().map_err(parquet)?;
    Ok(())
}

/// Writes the deliveries under `{root}/incoming/` and runs each through
/// the pipeline on the lake at `root`; returns the run reports.
pub async fn run(root: &Path) -> Result<Vec<RunReport>> {
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(
        root.to_str()
            .ok_or_else(|| LakeError::config("root", "not UTF-8"))?,
    )?);
    let pipeline = pipeline(storage)?;
    let mut reports = Vec::new();
    for (i, rows) in DELIVERIES.iter().enumerate() {
        let file = root.join(format!("incoming/shipments-{:05}.parquet", i + 1));
        write_delivery(&file, rows)?;
        reports.push(pipeline.run_batch(RawBatch::from_file(&file)?).await?);
    }
    Ok(reports)
}
