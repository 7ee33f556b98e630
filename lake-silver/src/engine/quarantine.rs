//! Quarantine: the bronze rows a run refuses, with the reason and their
//! lineage, in `_quarantine/{domain}/{entity}`; and the expectations phase
//! that may refuse more of them.
//!
//! A refused row is never dropped: `bronze rows = valid events +
//! quarantined rows` holds for every run, and the quarantine commit carries
//! the bookmark's transaction, so a run that failed after it does not
//! quarantine the same rows twice.

use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
    new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::Utc;
use deltalake::kernel::Transaction;
use lake_core::{
    Action, ExpectationSummary, LakeError, RefineReport, Result, StorageExt, StorageRef, TableId,
    Validation, ValidatorRef, transaction_version,
};

use super::arrow_error;
use super::commit::{Commit, commit_batch};
use super::read::AddedRows;
use super::typing::Typed;
use crate::spec::ColumnType;

/// Why a bronze row went to quarantine. Its text (`Display`) is the
/// `reason` column: `null_{column}`, `bad_{column}`, `not_an_object`,
/// `bad_envelope`, `expectation: {rules}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuarantineReason {
    /// A key or sequence column is null or absent.
    Null(String),
    /// A value does not convert to its column's type or rule (the op
    /// column included: `bad_op`).
    Bad(String),
    /// The record is not a JSON object (bronze lets none through).
    NotAnObject,
    /// A change envelope without a known op or the row image it needs.
    BadEnvelope,
    /// The typed event failed these `drop` expectations.
    Expectation(Vec<String>),
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null(column) => write!(f, "null_{column}"),
            Self::Bad(column) => write!(f, "bad_{column}"),
            Self::NotAnObject => f.write_str("not_an_object"),
            Self::BadEnvelope => f.write_str("bad_envelope"),
            Self::Expectation(rules) => write!(f, "expectation: {}", rules.join(", ")),
        }
    }
}

/// The quarantine table's schema.
pub static QUARANTINE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("reason", DataType::Utf8, false),
        Field::new("_raw", DataType::Utf8, true),
        Field::new("_batch_id", DataType::Utf8, true),
        Field::new("_source_file", DataType::Utf8, true),
        Field::new("_source_line", DataType::Int64, true),
        Field::new("_bronze_version", DataType::Int64, false),
        Field::new("_quarantined_at", ColumnType::Timestamp.data_type(), false),
    ]))
});

/// Checks the typed events with `validators`: rows failing a `drop` rule
/// move from the events to the rejected rows with the rule names as the
/// reason, a failed `fail` rule aborts before anything is committed, and
/// every rule's outcome goes into the report.
pub(super) async fn expectations(
    validators: &[ValidatorRef],
    target: &TableId,
    typed: &mut Typed,
    report: &mut RefineReport,
) -> Result<()> {
    if validators.is_empty() || typed.events.num_rows() == 0 {
        return Ok(());
    }
    let mut validation = Validation::default();
    for validator in validators {
        validation.extend(validator.validate(&typed.events).await?);
    }
    // Before any commit: a failed `fail` rule leaves every table as it was.
    validation.check_fatal(&target.to_string())?;
    report
        .expectations
        .extend(validation.rules.iter().map(ExpectationSummary::from));
    let dropped = validation.drop_mask(typed.events.num_rows());
    for (i, &row) in typed.rows.iter().enumerate() {
        if dropped.value(i) {
            let rules: Vec<String> = validation
                .reasons(i)
                .into_iter()
                .filter(|rule| {
                    validation
                        .rules
                        .iter()
                        .any(|r| r.rule == *rule && r.action == Action::Drop)
                })
                .map(str::to_string)
                .collect();
            typed
                .rejected
                .push((row, QuarantineReason::Expectation(rules)));
        }
    }
    let kept = arrow::compute::not(&dropped).map_err(|e| arrow_error(target, e))?;
    typed.events = arrow::compute::filter_record_batch(&typed.events, &kept)
        .map_err(|e| arrow_error(target, e))?;
    typed.rows = std::mem::take(&mut typed.rows)
        .into_iter()
        .zip(kept.values().iter())
        .filter_map(|(row, keep)| keep.then_some(row))
        .collect();
    Ok(())
}

/// Appends the `rejected` rows of `added` to the quarantine of `target`
/// in one commit carrying `txn` (a rebuild replaces the quarantine, and
/// empties one that no row goes to any more). Rows of bronze versions an
/// earlier, failed run quarantined already are skipped: the quarantine's
/// own transaction says up to which version it holds them.
pub(super) async fn write(
    storage: &StorageRef,
    target: &TableId,
    added: &AddedRows,
    mut rejected: Vec<(u32, QuarantineReason)>,
    txn: &Transaction,
    commit: Commit,
    report: &mut RefineReport,
) -> Result<()> {
    let location = storage.layout().quarantine(target);
    if commit == Commit::AppendOnce && rejected.is_empty() {
        return Ok(());
    }
    let quarantine = storage.open_table(&location).await?;
    if rejected.is_empty() && quarantine.version().is_none() {
        return Ok(());
    }
    let held = match (commit, quarantine.version()) {
        (Commit::AppendOnce, Some(_)) => {
            transaction_version(&quarantine, &txn.app_id, location.as_ref()).await?
        }
        _ => None,
    };
    let versions: Vec<u64> = added.row_versions().collect();
    if let Some(held) = held {
        rejected.retain(|(row, _)| versions[*row as usize] as i64 > held);
    }
    let batch = quarantine_batch(&added.rows, &rejected, &versions)?;
    let quarantine = match quarantine.version() {
        Some(_) => quarantine,
        None => {
            storage
                .ensure_table(&location, &QUARANTINE_SCHEMA, &[])
                .await?
        }
    };
    if let Some(v) = commit_batch(quarantine, &[], batch, txn, target, commit).await? {
        report
            .table_versions
            .insert(format!("quarantine of {target}"), v);
    }
    Ok(())
}

/// The quarantined rows: reason, lineage, bronze version and time, for the
/// `rejected` rows of `bronze`, each with the bronze version that added it
/// (`versions`, by row).
fn quarantine_batch(
    bronze: &RecordBatch,
    rejected: &[(u32, QuarantineReason)],
    versions: &[u64],
) -> Result<RecordBatch> {
    let fail = |e| LakeError::arrow("quarantine batch", e);
    let rows = UInt32Array::from_iter_values(rejected.iter().map(|(row, _)| *row));
    let lineage = |name: &str, data_type: &DataType| -> Result<ArrayRef> {
        match bronze.column_by_name(name) {
            Some(column) => {
                let taken = arrow::compute::take(column, &rows, None).map_err(fail)?;
                arrow::compute::cast(&taken, data_type).map_err(fail)
            }
            None => Ok(new_null_array(data_type, rejected.len())),
        }
    };
    let now = Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rejected
                .iter()
                .map(|(_, reason)| Some(reason.to_string()))
                .collect::<StringArray>(),
        ),
        lineage("_raw", &DataType::Utf8)?,
        lineage("_batch_id", &DataType::Utf8)?,
        lineage("_source_file", &DataType::Utf8)?,
        lineage("_source_line", &DataType::Int64)?,
        Arc::new(Int64Array::from_iter_values(
            rejected
                .iter()
                .map(|(row, _)| versions[*row as usize] as i64),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![now; rejected.len()]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(Arc::clone(&QUARANTINE_SCHEMA), columns).map_err(fail)
}
