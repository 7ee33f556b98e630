//! Run records: one row per stage of every pipeline run, appended to the
//! Delta table `_metadata/runs`, so lineage is a query away.
//!
//! Each row names the stage's target table and the version it committed,
//! and (for refine and aggregate stages) the source table and the range of
//! source versions it read. "Which bronze batches produced silver version
//! 7?" is then one join:
//!
//! ```sql
//! SELECT i.batch_id
//! FROM runs s JOIN runs i
//!   ON i.target = s.source
//!  AND i.target_version BETWEEN s.source_first AND s.source_last
//! WHERE s.target = 'silver.sales.orders' AND s.target_version = 7
//! ```
//!
//! A failed run is recorded too, with `status = 'failed'` and the error,
//! and the stages that completed before the failure.
//!
//! The expectation results of every refine stage are also appended, one
//! row per rule, to `_metadata/quality` ([`QUALITY_SCHEMA`]): the metrics
//! history that anomaly checks compare a run against (as Deequ's metrics
//! repository does).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::protocol::SaveMode;

use crate::error::{LakeError, Result};
use crate::ident::Ident;
use crate::report::{RunReport, StageOutcome};
use crate::stage::VersionRange;
use crate::storage::{StorageExt, StorageRef};

/// The name of the run records table under `_metadata/`.
pub const RUNS: &str = "runs";

/// The schema of `_metadata/runs`.
pub static RUNS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        text("run_id", false),
        Field::new("started_at", utc(), false),
        Field::new("finished_at", utc(), false),
        text("status", false),
        text("error", true),
        text("batch_id", true),
        text("stage", true),
        text("kind", true),
        text("target", true),
        int("target_version"),
        text("source", true),
        int("source_first"),
        int("source_last"),
        int("rows_in"),
        int("rows_out"),
        int("dead_lettered"),
        int("quarantined"),
        Field::new("seconds", DataType::Float64, true),
        text("expectations", true),
    ]))
});

/// The name of the quality metrics table under `_metadata/`.
pub const QUALITY: &str = "quality";

/// The schema of `_metadata/quality`: one row per expectation per run.
pub static QUALITY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("recorded_at", utc, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("success", DataType::Boolean, false),
        Field::new("element_count", DataType::Int64, false),
        Field::new("missing_count", DataType::Int64, false),
        Field::new("unexpected_count", DataType::Int64, false),
        Field::new("observed_value", DataType::Utf8, true),
    ]))
});

/// Appends the expectation results of `report`'s refine stages to `_metadata/quality`.
async fn record_quality(storage: &StorageRef, report: &RunReport) -> Result<()> {
    let mut rows = Vec::new();
    for stage in &report.stages {
        if let StageOutcome::Refine(r) = &stage.outcome {
            rows.extend(r.expectations.iter().map(|e| (r.table.to_string(), e)));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let int = |f: fn(&crate::stage::ExpectationSummary) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, e)| f(e) as i64),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(t, _)| t.as_str()),
        )),
        Arc::new(StringArray::from(vec![report.run_id.as_str(); n])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![report.finished_at.timestamp_micros(); n])
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, e)| e.rule.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, e)| e.action.as_str()),
        )),
        Arc::new(arrow::array::BooleanArray::from_iter(
            rows.iter().map(|(_, e)| Some(e.success)),
        )),
        int(|e| e.element_count),
        int(|e| e.missing_count),
        int(|e| e.unexpected_count),
        Arc::new(StringArray::from_iter(
            rows.iter()
                .map(|(_, e)| e.observed_value.as_ref().map(|v| v.to_string())),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&QUALITY_SCHEMA), columns)
        .map_err(|e| LakeError::arrow("quality record", e))?;
    append(storage, QUALITY, &QUALITY_SCHEMA, batch, &report.run_id).await
}

/// Appends the rows of run `run_id` unless they are there already: the
/// commit carries the application transaction `lake-run:{run_id}`, so a
/// retried record never doubles a run.
async fn append(
    storage: &StorageRef,
    name: &str,
    schema: &SchemaRef,
    batch: RecordBatch,
    run_id: &str,
) -> Result<()> {
    let location = storage.layout().metadata(&Ident::new(name)?);
    let table = storage.ensure_table(&location, schema, &[]).await?;
    let app_id = format!("lake-run:{run_id}");
    if crate::storage::transaction_version(&table, &app_id, location.as_str())
        .await?
        .is_some()
    {
        return Ok(());
    }
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_commit_properties(
            deltalake::kernel::transaction::CommitProperties::default()
                .with_application_transaction(deltalake::kernel::Transaction::new(app_id, 0)),
        )
        .await
        .map_err(|e| LakeError::delta(location.as_str(), e))?;
    Ok(())
}

/// One row of `_metadata/runs`.
#[derive(Debug, Clone, Default)]
struct Row {
    stage: Option<String>,
    kind: Option<&'static str>,
    target: Option<String>,
    target_version: Option<i64>,
    source: Option<String>,
    source_first: Option<i64>,
    source_last: Option<i64>,
    rows_in: Option<i64>,
    rows_out: Option<i64>,
    dead_lettered: Option<i64>,
    quarantined: Option<i64>,
    seconds: Option<f64>,
    expectations: Option<String>,
}

fn rows(report: &RunReport) -> Vec<Row> {
    let mut rows = Vec::new();
    for stage in &report.stages {
        let base = || Row {
            stage: Some(stage.stage.clone()),
            seconds: Some(stage.seconds),
            ..Row::default()
        };
        let with_sources = |row: Row, sources: &BTreeMap<String, VersionRange>| {
            if sources.is_empty() {
                return vec![row];
            }
            sources
                .iter()
                .map(|(source, range)| Row {
                    source: Some(source.clone()),
                    source_first: Some(range.first as i64),
                    source_last: Some(range.last as i64),
                    ..row.clone()
                })
                .collect()
        };
        match &stage.outcome {
            StageOutcome::Ingest(r) => rows.push(Row {
                kind: Some("ingest"),
                target: Some(r.table.to_string()),
                target_version: (!r.already_ingested)
                    .then_some(r.table_version)
                    .flatten()
                    .map(|v| v as i64),
                rows_in: Some(r.input_records as i64),
                rows_out: Some(r.rows_written as i64),
                dead_lettered: Some(r.dead_lettered as i64),
                ..base()
            }),
            StageOutcome::Refine(r) => rows.extend(with_sources(
                Row {
                    kind: Some("refine"),
                    target: Some(r.table.to_string()),
                    target_version: r
                        .table_versions
                        .get(&r.table.to_string())
                        .map(|v| *v as i64),
                    rows_in: Some(r.rows_read as i64),
                    rows_out: Some(r.rows_written as i64),
                    quarantined: Some(r.quarantined as i64),
                    expectations: (!r.expectations.is_empty())
                        .then(|| serde_json::to_string(&r.expectations).unwrap_or_default()),
                    ..base()
                },
                &r.source_versions,
            )),
            StageOutcome::Aggregate(r) => rows.extend(with_sources(
                Row {
                    kind: Some("aggregate"),
                    target: Some(r.table.to_string()),
                    target_version: r.table_version.map(|v| v as i64),
                    rows_in: Some(r.rows_read as i64),
                    rows_out: Some(r.rows_written as i64),
                    ..base()
                },
                &r.source_versions,
            )),
        }
    }
    if rows.is_empty() {
        rows.push(Row::default());
    }
    rows
}

/// Appends the record of `report` to `_metadata/runs`: one row per stage
/// (per source, for stages that read several), or one row when no stage
/// completed. `error` is the run's error when it failed.
pub async fn record_run(
    storage: &StorageRef,
    report: &RunReport,
    batch_id: Option<&str>,
    error: Option<&LakeError>,
) -> Result<()> {
    let rows = rows(report);
    let n = rows.len();
    let repeat =
        |value: Option<String>| -> ArrayRef { Arc::new(StringArray::from(vec![value; n])) };
    let time = |t: chrono::DateTime<chrono::Utc>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(vec![t.timestamp_micros(); n]).with_timezone("UTC"),
        )
    };
    let text = |f: fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let int = |f: fn(&Row) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let columns: Vec<ArrayRef> = vec![
        repeat(Some(report.run_id.clone())),
        time(report.started_at),
        time(report.finished_at),
        repeat(Some(
            if error.is_some() {
                "failed"
            } else {
                "succeeded"
            }
            .to_string(),
        )),
        repeat(error.map(ToString::to_string)),
        repeat(batch_id.map(str::to_string)),
        text(|r| r.stage.clone()),
        text(|r| r.kind.map(str::to_string)),
        text(|r| r.target.clone()),
        int(|r| r.target_version),
        text(|r| r.source.clone()),
        int(|r| r.source_first),
        int(|r| r.source_last),
        int(|r| r.rows_in),
        int(|r| r.rows_out),
        int(|r| r.dead_lettered),
        int(|r| r.quarantined),
        Arc::new(rows.iter().map(|r| r.seconds).collect::<Float64Array>()),
        text(|r| r.expectations.clone()),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&RUNS_SCHEMA), columns)
        .map_err(|e| LakeError::arrow("run record", e))?;
    append(storage, RUNS, &RUNS_SCHEMA, batch, &report.run_id).await?;
    record_quality(storage, report).await
}
