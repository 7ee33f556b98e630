//! The quality benchmark: a 10-expectation suite over N rows against
//! decoding those rows from Parquet, in the same run.
//!
//! Rows are orders-like (`order_id`, `customer_id`, `region`, `amount`,
//! `status`, `updated_at`) with a few nulls and bad values, written to one
//! Parquet file. The decode is `ParquetRecordBatchReader` over that file;
//! the validation runs the suite on the decoded batches (already in
//! memory, so only the checks are timed).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lake_core::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use lake_core::parquet::arrow::ArrowWriter;
use lake_core::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use lake_core::{LakeError, Result, Validator};
use lake_quality::Suite;

use crate::workload::{REGIONS, Rng, STATUSES};

/// The suite measured: ten expectations of every kind that runs per row.
pub const SUITE: &str = r#"
name = "orders"
[[expectation]]
expect = "not_null"
column = "order_id"
[[expectation]]
expect = "unique"
columns = ["order_id"]
[[expectation]]
expect = "not_null"
column = "customer_id"
mostly = 0.99
[[expectation]]
expect = "between"
column = "amount"
min = 0.0
max = 100000.0
[[expectation]]
expect = "in_set"
column = "region"
values = ["eu-west", "eu-north", "us-east", "us-west", "apac"]
[[expectation]]
expect = "in_set"
column = "status"
values = ["placed", "paid", "shipped", "delivered"]
[[expectation]]
expect = "matches_regex"
column = "order_id"
pattern = "^o[0-9]{8}$"
[[expectation]]
expect = "length_between"
column = "customer_id"
min = 7
max = 7
[[expectation]]
expect = "stat_between"
column = "amount"
stat = "mean"
min = 1.0
max = 1000.0
[[expectation]]
expect = "row_count_between"
min = 1
"#;

const BATCH_ROWS: usize = 65_536;

fn batch(first: usize, rows: usize, rng: &mut Rng) -> RecordBatch {
    let ids = (first..first + rows).map(|i| format!("o{i:08}"));
    let customers =
        (0..rows).map(|_| (rng.below(200) != 0).then(|| format!("c{:06}", rng.below(1_000_000))));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(ids)),
        Arc::new(customers.collect::<StringArray>()),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|_| REGIONS[rng.below(REGIONS.len() as u64) as usize]),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|_| rng.below(50_000) as f64 / 100.0),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|_| STATUSES[rng.below(STATUSES.len() as u64) as usize]),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                (0..rows).map(|i| 1_764_000_000_000_000 + (first + i) as i64 * 1_000),
            )
            .with_timezone("UTC"),
        ),
    ];
    // Nullable fields, declared: inferred from a first batch without nulls,
    // the Parquet writer would store later nulls as empty strings.
    RecordBatch::try_from_iter_with_nullable(
        [
            "order_id",
            "customer_id",
            "region",
            "amount",
            "status",
            "updated_at",
        ]
        .into_iter()
        .zip(columns)
        .map(|(name, column)| (name, column, true)),
    )
    .expect("benchmark batch")
}

/// Writes `rows` rows to `path`, then times decoding and validating them
/// `repeat` times; returns the figures as one JSON object.
pub async fn run(rows: usize, repeat: usize, path: &Path) -> Result<serde_json::Value> {
    let io = |e: std::io::Error| LakeError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let parquet = |e: lake_core::parquet::errors::ParquetError| {
        LakeError::other(path.display().to_string(), e)
    };
    let mut rng = Rng::new(7);
    let first = batch(0, 1, &mut rng);
    let mut writer = ArrowWriter::try_new(File::create(path).map_err(io)?, first.schema(), None)
        .map_err(parquet)?;
    let mut written = 0;
    while written < rows {
        let n = BATCH_ROWS.min(rows - written);
        writer
            .write(&batch(written, n, &mut rng))
            .map_err(parquet)?;
        written += n;
    }
    writer.close().map_err(parquet)?;

    let suite = Suite::from_toml(SUITE)?;
    let mut decode = Vec::new();
    let mut validate = Vec::new();
    let mut failures = 0;
    for _ in 0..repeat {
        let started = Instant::now();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).map_err(io)?)
            .map_err(parquet)?
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(parquet)?;
        let batches = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| LakeError::arrow("decode", e))?;
        decode.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        failures = 0;
        for batch in &batches {
            let validation = suite.validate(batch).await?;
            failures += validation.rules.iter().filter(|r| !r.success).count();
        }
        validate.push(started.elapsed().as_secs_f64());
    }
    // Where the validation time goes: each expectation alone over the
    // batches of the last decode, so a slow check shows by name.
    let batches = ParquetRecordBatchReaderBuilder::try_new(File::open(path).map_err(io)?)
        .map_err(parquet)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| LakeError::arrow("decode", e))?;
    let mut per_expectation = serde_json::Map::new();
    for expectation in &suite.expectations {
        let started = Instant::now();
        for batch in &batches {
            expectation.evaluate(batch)?;
        }
        per_expectation.insert(
            expectation.rule(),
            serde_json::json!(started.elapsed().as_secs_f64()),
        );
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(serde_json::json!({
        "benchmark": "quality_suite",
        "command": format!("lake-bench quality --rows {rows} --repeat {repeat}"),
        "rows": rows,
        "expectations": suite.expectations.len(),
        "decode_seconds": best(&decode),
        "validate_seconds": best(&validate),
        "ratio_validate_to_decode": best(&validate) / best(&decode),
        "failed_rule_batches": failures,
        "decode_runs": decode,
        "validate_runs": validate,
        "expectation_seconds": per_expectation,
    }))
}
