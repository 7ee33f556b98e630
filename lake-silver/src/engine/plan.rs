//! Planning: the SCD2 history of every key a run touched, recomputed from
//! all of its logged events ([`crate::scd2::plan`], over Arrow columns),
//! and the silver rows of the planned versions.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StructArray, UInt32Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::row::{RowConverter, SortField};
use lake_core::{Ident, LakeError, Result, TableId, Touched};

use super::commit::Changes;
use super::{KeySet, arrow_error, columns_of};
use crate::scd2::{self, EventColumns, Op, Plan, VersionRows};
use crate::spec::{Mode, SilverSpec};

/// The SCD2 plan of every key in `events` (a batch in the changes table's
/// layout whose rows from `first_new` on are this run's), and the events
/// the versions' values come from: `events` itself, or with
/// `ignore_null_updates` the events with their nulls carried forward.
pub(super) fn plan_histories(
    spec: &SilverSpec,
    op_column: &str,
    events: &RecordBatch,
    first_new: usize,
    id: &TableId,
) -> Result<(Plan, RecordBatch)> {
    let column = |name: &str| {
        events
            .column_by_name(name)
            .ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("column `{name}` missing"),
            })
    };
    let ops = column(op_column)?
        .as_string_opt::<i32>()
        .ok_or_else(|| LakeError::Schema {
            table: id.to_string(),
            message: format!("column `{op_column}` is not text"),
        })?
        .iter()
        .map(|op| {
            op.and_then(Op::parse).ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("op {op:?} in the event log"),
            })
        })
        .collect::<Result<Vec<Op>>>()?;
    let sequence_columns = columns_of(events, &spec.sequence_by, id)?;
    let sequence = sequence_values(&sequence_columns).map_err(|e| arrow_error(id, e))?;
    let values = |names: Vec<&Ident>| -> Result<Vec<ArrayRef>> {
        names
            .into_iter()
            .map(|name| column(name.as_str()).map(scd2::columnar::normalize_zero))
            .collect()
    };
    let tracked = values(spec.tracked())?;
    let untracked = values(spec.untracked())?;
    let keys = columns_of(events, &spec.keys, id)?;
    let mut columns = EventColumns {
        keys: &keys,
        sequence: &sequence,
        ops: &ops,
        tracked: &tracked,
        untracked: &untracked,
        first_new,
    };
    if !spec.ignore_null_updates {
        let plan = scd2::plan(&columns).map_err(|e| arrow_error(id, e))?;
        return Ok((plan, events.clone()));
    }
    let (filled_tracked, filled_untracked) =
        scd2::columnar::carry_forward(&columns).map_err(|e| arrow_error(id, e))?;
    columns.tracked = &filled_tracked;
    columns.untracked = &filled_untracked;
    let plan = scd2::plan(&columns).map_err(|e| arrow_error(id, e))?;
    // The filled columns replace the delivered ones by name.
    let names: Vec<&Ident> = spec.tracked().into_iter().chain(spec.untracked()).collect();
    let filled: Vec<&ArrayRef> = filled_tracked.iter().chain(&filled_untracked).collect();
    let schema = events.schema();
    let planned: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(events.columns())
        .map(|(field, column)| {
            names
                .iter()
                .position(|n| n.as_str() == field.name())
                .map_or_else(|| Arc::clone(column), |i| Arc::clone(filled[i]))
        })
        .collect();
    let planned = RecordBatch::try_new(schema, planned).map_err(|e| arrow_error(id, e))?;
    Ok((plan, planned))
}

/// Whether values of `data_type` cast to `Int64` keep their order:
/// integers, dates and timestamps.
pub(crate) fn orders_as_integer(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        )
}

/// The sequence of each event as integers ordered as the sequence is: the
/// column itself when it is an integer, a date or a timestamp, else ranks
/// (see [`scd2::columnar::sequence_ranks`]).
pub(super) fn sequence_values(columns: &[ArrayRef]) -> Result<Vec<i64>, arrow::error::ArrowError> {
    if let [column] = columns
        && orders_as_integer(column.data_type())
    {
        let cast = arrow::compute::cast(column, &DataType::Int64)?;
        return Ok(cast
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec());
    }
    scd2::columnar::sequence_ranks(columns)
}

/// The rows this run's events can change ([`Changes`]), when versions can
/// be told settled: an SCD2 table with one integer, date or timestamp
/// sequence column.
pub(super) fn changes_of_run(
    spec: &SilverSpec,
    events: &RecordBatch,
    keys: &[ArrayRef],
    key_set: &Arc<KeySet>,
    id: &TableId,
) -> Result<Option<Changes>> {
    if spec.mode != Mode::Scd2 || events.num_rows() == 0 {
        return Ok(None);
    }
    let sequence = sequence_column(spec, events, id)?;
    if !orders_as_integer(sequence.data_type()) {
        return Ok(None);
    }
    Changes::new(
        Arc::clone(key_set),
        spec.keys.iter().map(Ident::to_string).collect(),
        spec.validity.to.to_string(),
        keys,
        &sequence,
    )
    .map_err(|e| arrow_error(id, e))
}

/// The rows of `batch` at `rows` (a null index gives a null row).
pub(super) fn take_rows(
    batch: &RecordBatch,
    rows: impl IntoIterator<Item = Option<u32>>,
    id: &TableId,
) -> Result<RecordBatch> {
    let indices: UInt32Array = rows.into_iter().collect();
    arrow::compute::take_record_batch(batch, &indices).map_err(|e| arrow_error(id, e))
}

/// The silver rows of `versions`, gathered from the events that opened,
/// closed and last updated them: keys and tracked values from the opener,
/// untracked values from the latest event, the validity columns from the
/// sequence of the opener and the closer.
pub(super) fn silver_rows(
    spec: &SilverSpec,
    events: &RecordBatch,
    versions: &[&VersionRows],
    schema: &SchemaRef,
    id: &TableId,
) -> Result<RecordBatch> {
    let openers = take_rows(events, versions.iter().map(|v| Some(v.opener)), id)?;
    let untracked = spec.untracked();
    let latest = if untracked.is_empty() {
        None
    } else {
        Some(take_rows(
            events,
            versions.iter().map(|v| Some(v.latest)),
            id,
        )?)
    };
    let closers: UInt32Array = versions.iter().map(|v| v.closer).collect();
    let sequence = sequence_column(spec, events, id)?;
    let valid_from = arrow::compute::take(
        &sequence,
        &UInt32Array::from_iter_values(versions.iter().map(|v| v.opener)),
        None,
    )
    .map_err(|e| arrow_error(id, e))?;
    let valid_to =
        arrow::compute::take(&sequence, &closers, None).map_err(|e| arrow_error(id, e))?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let column = if name == spec.validity.from.as_str() {
            Arc::clone(&valid_from)
        } else if name == spec.validity.to.as_str() {
            Arc::clone(&valid_to)
        } else if name == spec.validity.current.as_str() {
            Arc::new(
                closers
                    .iter()
                    .map(|c| Some(c.is_none()))
                    .collect::<BooleanArray>(),
            )
        } else {
            let from = match &latest {
                Some(latest) if untracked.iter().any(|u| u.as_str() == name) => latest,
                _ => &openers,
            };
            Arc::clone(from.column_by_name(name).ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("column `{name}` missing from the event log"),
            })?)
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| arrow_error(id, e))
}

/// The sequence as one column: the sequence column, or a struct of them.
pub(super) fn sequence_column(
    spec: &SilverSpec,
    events: &RecordBatch,
    id: &TableId,
) -> Result<ArrayRef> {
    let columns = columns_of(events, &spec.sequence_by, id)?;
    if let [one] = columns.as_slice() {
        return Ok(Arc::clone(one));
    }
    let fields: Vec<Field> = spec
        .sequence_by
        .iter()
        .zip(&columns)
        .map(|(name, c)| Field::new(name.as_str(), c.data_type().clone(), true))
        .collect();
    Ok(Arc::new(
        StructArray::try_new(fields.into(), columns, None).map_err(|e| arrow_error(id, e))?,
    ))
}

/// The values of the spec's `touched` columns among `events`, as Delta
/// writes partition values.
pub(super) fn touched_values(spec: &SilverSpec, events: &RecordBatch) -> Result<Touched> {
    let mut touched = Touched::new();
    for name in &spec.touched {
        touched.track(name.as_str());
        let Some(column) = events.column_by_name(name.as_str()) else {
            continue;
        };
        // Distinct values first (a few hundred dates among many events),
        // then only those written as text.
        let fail = |e| arrow_error(&spec.target, e);
        let converter =
            RowConverter::new(vec![SortField::new(column.data_type().clone())]).map_err(fail)?;
        let rows = converter
            .convert_columns(std::slice::from_ref(column))
            .map_err(fail)?;
        let mut seen = HashSet::new();
        let firsts: UInt32Array = (0..rows.num_rows())
            .filter(|&i| seen.insert(rows.row(i).data()))
            .map(|i| i as u32)
            .collect();
        let distinct = arrow::compute::take(column, &firsts, None).map_err(fail)?;
        let text = arrow::compute::cast(&distinct, &DataType::Utf8).map_err(fail)?;
        for value in text.as_string::<i32>() {
            touched.insert(name.as_str(), value.map(str::to_string));
        }
    }
    Ok(touched)
}
