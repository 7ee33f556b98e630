//! Planning a key from where its history can change, not from its first
//! event: what keeps a run's cost a function of its batch, not of the
//! history behind it.
//!
//! The history of a key is a function of all its events (order
//! independence), but the events before the key's earliest event in the run
//! have already been walked: their outcome is in silver. Walking a key's
//! events in order, the state before an instant `s` is the version in force
//! just before it, the row with `valid_from < s <= valid_to` (or a null
//! `valid_to`), or nothing. With `s` the key's earliest new event, the plan
//! of the key therefore needs:
//! - that version, as a stand-in event at its `valid_from` carrying its
//!   values (no run event shares that instant, so it is never a duplicate
//!   or a conflict, and it is not logged again);
//! - the logged events at or after `s`: late events reorder only these.
//!
//! Walking the stand-in, then those events and the new ones, gives every
//! version that ends at or after `s` exactly as walking every event would,
//! and those are the rows the commit replaces ([`Changes`]); the versions
//! that ended before are final and stay.
//!
//! A key whose new events all follow its latest logged event needs nothing
//! from the log. The latest logged event of a key is bounded by the
//! greatest sequence of the log's files in its bucket (from the Delta log's
//! statistics, no file is opened), so a key whose earliest new event is
//! past its bucket's bound is planned from silver alone; the others read
//! only the log files whose statistics reach `s`. In a stream that mostly
//! arrives in order, nearly every key of a run is of the first kind, and
//! the others read the newest files of their buckets.
//!
//! With untracked columns the stand-in would carry the untracked values of
//! the version's latest event, which may be later than `s`; there the key
//! is replanned from the event that opened the version in force instead
//! (it opens a version whatever came before, so no stand-in is needed).
//! Carrying nulls forward (`ignore_null_updates`), a table of the older
//! layout, SCD1, a rebuild and a compound or non-integer sequence take the
//! full path: every logged event of the run's keys.
//!
//! # What a run costs
//! For a run of `n` new events over `k` keys, of which `l` have an event at
//! or before their bucket's latest logged one:
//! - the versions in force: the key column of every current row of the
//!   touched buckets, and the other columns of the `k` keys' rows, plus
//!   the closed files whose greatest end reaches the run's earliest event
//!   (closed rows are filed by their end, so those are the newest);
//! - the event log: nothing for the `k - l` keys; for the `l` others, the
//!   log files whose greatest sequence reaches the earliest of their
//!   resume points (for a stream whose late events are at most one batch
//!   late, the files of the last two batches), and their events since;
//! - planning: a sort of `n + k` plus those events.
//!
//! So a run costs its batch plus one pass over the current rows of the
//! buckets it touches (which the commit reads again to replace them): it
//! grows with the number of live keys, not with the length of the
//! history. The full path reads every logged event of the `k` keys.
//!
//! [`Changes`]: super::commit::replace

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::common::{Column, ScalarValue};
use datafusion::prelude::{Expr, lit};
use lake_core::{Ident, LakeError, Result, TableId};

use super::commit::history::History;
use super::commit::{conform, scan_buckets};
use super::log::{EventLog, RunKeys};
use super::plan::orders_as_integer;
use super::{KeySet, arrow_error, key_filter};
use crate::spec::{KEY_BUCKET, Mode, SilverSpec};

/// Whether a run of `spec` on `history` plans keys from their version in
/// force (see the module docs), and with which sequence column.
pub(super) fn applies<'a>(
    spec: &'a SilverSpec,
    history: &History,
    log: &EventLog,
    op_column: &str,
    rebuild: bool,
) -> Option<&'a Ident> {
    let [sequence] = spec.sequence_by.as_slice() else {
        return None;
    };
    let integer = log
        .schema
        .field_with_name(sequence.as_str())
        .is_ok_and(|f| orders_as_integer(f.data_type()));
    // A stand-in event takes every other column of the log from silver, or
    // null: a required column silver does not have rules it out.
    let stands_in = log.schema.fields().iter().all(|f| {
        f.is_nullable()
            || f.name() == op_column
            || f.name() == sequence.as_str()
            || history.schema.field_with_name(f.name()).is_ok()
    });
    let usable = !rebuild
        && spec.mode == Mode::Scd2
        && !spec.ignore_null_updates
        && history.closed_apart
        && history.table.version().is_some()
        && integer
        && stands_in;
    usable.then_some(sequence)
}

/// The events a run plans its keys from, when [`applies`].
pub(super) struct Resumed {
    /// Stand-ins of the versions in force, then the logged events from
    /// each key's resume point on, then the run's events.
    pub all: RecordBatch,
    /// Where the run's events start in `all`.
    pub first_new: usize,
    /// The run's distinct keys.
    pub keys: u64,
    /// Those whose logged events were read.
    pub keys_from_log: u64,
}

/// Reads what the run's keys are planned from: their versions in force
/// from silver, and the logged events of the keys that need them (both
/// reads at once, unless the resume points depend on the versions).
pub(super) async fn resume(
    spec: &SilverSpec,
    sequence: &Ident,
    op_column: &str,
    history: &History,
    log: &EventLog,
    keys: &RunKeys,
    events: &RecordBatch,
) -> Result<Resumed> {
    let target = &spec.target;
    let fail = |e| arrow_error(target, e);
    // Each key's earliest new event, at its position in the key set.
    let positions = keys.set.positions(&keys.columns).map_err(fail)?;
    let new_sequence = integers(events, sequence.as_str(), &log.id)?;
    let mut earliest: HashMap<u32, i64> = HashMap::new();
    for (row, position) in positions.iter().enumerate() {
        if let Some(p) = position
            && new_sequence.is_valid(row)
        {
            let s = new_sequence.value(row);
            earliest
                .entry(*p)
                .and_modify(|e| *e = (*e).min(s))
                .or_insert(s);
        }
    }
    let Some(first) = earliest.values().copied().min() else {
        return Ok(Resumed {
            all: events.clone(),
            first_new: 0,
            keys: 0,
            keys_from_log: 0,
        });
    };
    let buckets = events
        .column_by_name(KEY_BUCKET)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
        .ok_or_else(|| LakeError::Schema {
            table: log.id.to_string(),
            message: format!("column `{KEY_BUCKET}` missing"),
        })?;
    let bounds = latest_logged(log, sequence.as_str());
    let log_read = LogRead {
        spec,
        sequence,
        log,
        keys,
        buckets,
        bounds: &bounds,
    };

    let untracked = !spec.untracked().is_empty();
    let (in_force, (logged, keys_from_log)) = match untracked {
        // Each key resumes at its earliest new event: the two reads are
        // independent.
        false => {
            let (in_force, logged) = tokio::join!(
                versions_in_force(spec, history, keys, &earliest, first),
                log_read.since(&earliest),
            );
            (in_force?, logged?)
        }
        // Each key resumes at the opening of its version in force.
        true => {
            let in_force = versions_in_force(spec, history, keys, &earliest, first).await?;
            let from = integers(&in_force.rows, spec.validity.from.as_str(), target)?;
            let since: HashMap<u32, i64> = earliest
                .iter()
                .map(|(&p, &s)| match in_force.rows_of.get(&p) {
                    Some(&row) => (p, from.value(row as usize)),
                    None => (p, s),
                })
                .collect();
            let logged = log_read.since(&since).await?;
            (in_force, logged)
        }
    };
    let stand_ins = match untracked {
        true => RecordBatch::new_empty(Arc::clone(&log.schema)),
        false => {
            let mut chosen: Vec<u32> = in_force.rows_of.values().copied().collect();
            chosen.sort_unstable();
            let taken =
                arrow::compute::take_record_batch(&in_force.rows, &UInt32Array::from(chosen))
                    .map_err(fail)?;
            stand_in_events(&taken, spec, sequence, op_column, &log.schema, &log.id)?
        }
    };

    let first_new = stand_ins.num_rows() + logged.num_rows();
    let all = arrow::compute::concat_batches(&log.schema, [&stand_ins, &logged, events])
        .map_err(|e| arrow_error(&log.id, e))?;
    Ok(Resumed {
        all,
        first_new,
        keys: earliest.len() as u64,
        keys_from_log,
    })
}

/// Silver rows of a run's keys, and which is in force before each key's
/// earliest new event.
struct InForce {
    /// The rows of the run's keys that are current or ended at or after
    /// the run's earliest event.
    rows: RecordBatch,
    /// By key (its position in the run's key set), its row in force.
    rows_of: HashMap<u32, u32>,
}

/// The versions in force just before each key's earliest event (`earliest`,
/// by position in the key set; `first` the least of them): the row with
/// `valid_from < s <= valid_to`, or a null `valid_to`.
async fn versions_in_force(
    spec: &SilverSpec,
    history: &History,
    keys: &RunKeys,
    earliest: &HashMap<u32, i64>,
    first: i64,
) -> Result<InForce> {
    let target = &spec.target;
    let fail = |e| arrow_error(target, e);
    let validity = &spec.validity;
    let to_type = history
        .schema
        .field_with_name(validity.to.as_str())
        .map_err(fail)?
        .data_type()
        .clone();
    let reach = column(validity.to.as_str())
        .is_null()
        .or(column(validity.to.as_str()).gt_eq(sequence_literal(first, &to_type, target)?));
    let rows = scan_buckets(
        &history.table,
        target,
        &keys.buckets,
        &history.schema,
        Some(keys.filter().and(reach)),
    )
    .await?;
    let rows = arrow::compute::concat_batches(&history.schema, &rows).map_err(fail)?;
    let from = integers(&rows, validity.from.as_str(), target)?;
    let to = integers(&rows, validity.to.as_str(), target)?;
    let row_keys = super::columns_of(&rows, &spec.keys, target)?;
    let mut rows_of: HashMap<u32, u32> = HashMap::new();
    for (row, position) in keys
        .set
        .positions(&row_keys)
        .map_err(fail)?
        .iter()
        .enumerate()
    {
        let Some(p) = position else { continue };
        let Some(&s) = earliest.get(p) else { continue };
        if from.value(row) < s && (to.is_null(row) || to.value(row) >= s) {
            rows_of.insert(*p, row as u32);
        }
    }
    Ok(InForce { rows, rows_of })
}

/// What reading the logged events of a run's keys needs.
struct LogRead<'a> {
    spec: &'a SilverSpec,
    sequence: &'a Ident,
    log: &'a EventLog,
    keys: &'a RunKeys,
    /// The bucket of each run event.
    buckets: &'a arrow::array::Int32Array,
    /// The greatest logged sequence of each bucket ([`latest_logged`]).
    bounds: &'a HashMap<i32, Option<i64>>,
}

impl LogRead<'_> {
    /// The logged events of each key (by position in the run's key set) at
    /// or after its resume point in `since`, for the keys whose bucket has
    /// logged events that late; and how many keys those are.
    async fn since(&self, since: &HashMap<u32, i64>) -> Result<(RecordBatch, u64)> {
        let (spec, log) = (self.spec, self.log);
        let fail = |e| arrow_error(&log.id, e);
        let mut from_log: Vec<u32> = since
            .iter()
            .filter(|&(&p, &s)| {
                let bucket = self.buckets.value(p as usize);
                self.bounds
                    .get(&bucket)
                    .is_some_and(|b| b.is_none_or(|b| s <= b))
            })
            .map(|(&p, _)| p)
            .collect();
        if from_log.is_empty() {
            return Ok((RecordBatch::new_empty(Arc::clone(&log.schema)), 0));
        }
        from_log.sort_unstable();
        let at = UInt32Array::from(from_log.clone());
        let columns = self
            .keys
            .columns
            .iter()
            .map(|c| arrow::compute::take(c, &at, None))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(fail)?;
        let subset = Arc::new(KeySet::new(&columns).map_err(fail)?);
        // The set's positions index `columns`: the resume point of each.
        let resume_at: Vec<i64> = from_log.iter().map(|p| since[p]).collect();
        let lowest = resume_at.iter().copied().min().unwrap_or(i64::MIN);
        let sequence = self.sequence.as_str();
        let seq_type = log
            .schema
            .field_with_name(sequence)
            .map_err(fail)?
            .data_type()
            .clone();
        let filter = key_filter::key_in_set(
            Arc::clone(&subset),
            columns.iter().map(|k| k.data_type().clone()).collect(),
            spec.keys.iter().map(|k| column(k.as_str())).collect(),
        )
        .and(column(sequence).gt_eq(sequence_literal(lowest, &seq_type, &log.id)?));
        let buckets: BTreeSet<i32> = from_log
            .iter()
            .map(|&p| self.buckets.value(p as usize))
            .collect();
        let read = scan_buckets(&log.table, &log.id, &buckets, &log.schema, Some(filter)).await?;
        let read = arrow::compute::concat_batches(&log.schema, &read).map_err(fail)?;
        // The filter's bound is the lowest resume point; each key's own is
        // applied here.
        let seq = integers(&read, sequence, &log.id)?;
        let read_keys = super::columns_of(&read, &spec.keys, &log.id)?;
        let keep: arrow::array::BooleanArray = subset
            .positions(&read_keys)
            .map_err(fail)?
            .iter()
            .enumerate()
            .map(|(row, p)| Some(p.is_some_and(|p| seq.value(row) >= resume_at[p as usize])))
            .collect();
        let logged = arrow::compute::filter_record_batch(&read, &keep).map_err(fail)?;
        Ok((logged, from_log.len() as u64))
    }
}

/// Silver rows as events of the log's layout: the sequence is the row's
/// `valid_from`, the op an update, every other column silver's (or null).
fn stand_in_events(
    rows: &RecordBatch,
    spec: &SilverSpec,
    sequence: &Ident,
    op_column: &str,
    log: &SchemaRef,
    id: &TableId,
) -> Result<RecordBatch> {
    let n = rows.num_rows();
    let columns = log
        .fields()
        .iter()
        .map(|field| {
            let name = field.name().as_str();
            let column: ArrayRef = if name == op_column {
                Arc::new(StringArray::from(vec!["u"; n]))
            } else if name == sequence.as_str() {
                column_of(rows, spec.validity.from.as_str(), id)?
            } else if let Some(column) = rows.column_by_name(name) {
                Arc::clone(column)
            } else {
                arrow::array::new_null_array(field.data_type(), n)
            };
            Ok(column)
        })
        .collect::<Result<Vec<_>>>()?;
    // Columns as silver typed them, in the log's types.
    let loose = Arc::new(arrow::datatypes::Schema::new(
        log.fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| arrow::datatypes::Field::new(f.name(), c.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(loose, columns).map_err(|e| arrow_error(id, e))?;
    conform(batch, log, id)
}

/// The greatest logged sequence of each bucket, from the statistics of the
/// log's files; `None` for a bucket with a file whose statistics do not
/// say. A bucket with no entry has no logged event.
fn latest_logged(log: &EventLog, sequence: &str) -> HashMap<i32, Option<i64>> {
    let mut bounds: HashMap<i32, Option<i64>> = HashMap::new();
    let Ok(snapshot) = log.table.snapshot() else {
        return bounds;
    };
    for file in snapshot.log_data().iter() {
        let values = file.partition_values_map();
        let Some(bucket) = values
            .get(KEY_BUCKET)
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse::<i32>().ok())
        else {
            continue;
        };
        let greatest = super::commit::greatest(&file, sequence);
        let bound = bounds.entry(bucket).or_insert(Some(i64::MIN));
        *bound = match (*bound, greatest) {
            (Some(b), Some(g)) => Some(b.max(g)),
            _ => None,
        };
    }
    bounds
}

/// The column `name` of `batch` as 64-bit integers.
fn integers(batch: &RecordBatch, name: &str, id: &TableId) -> Result<Int64Array> {
    let column = column_of(batch, name, id)?;
    let cast = arrow::compute::cast(&column, &DataType::Int64).map_err(|e| arrow_error(id, e))?;
    Ok(cast.as_primitive::<Int64Type>().clone())
}

fn column_of(batch: &RecordBatch, name: &str, id: &TableId) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| LakeError::Schema {
            table: id.to_string(),
            message: format!("column `{name}` missing"),
        })
}

/// The column `name`, as it is spelled (no SQL identifier rules).
fn column(name: &str) -> Expr {
    Expr::Column(Column::from_name(name))
}

/// `value` (a sequence as an integer) as a literal of the sequence's type.
fn sequence_literal(value: i64, data_type: &DataType, id: &TableId) -> Result<Expr> {
    let integer: ArrayRef = Arc::new(Int64Array::from(vec![value]));
    // Arrow casts days to a date from 32-bit integers only.
    let integer = match data_type {
        DataType::Date32 => {
            arrow::compute::cast(&integer, &DataType::Int32).map_err(|e| arrow_error(id, e))?
        }
        _ => integer,
    };
    let typed = arrow::compute::cast(&integer, data_type).map_err(|e| arrow_error(id, e))?;
    let scalar = ScalarValue::try_from_array(&typed, 0)
        .map_err(|e| LakeError::datafusion(id.to_string(), e))?;
    Ok(lit(scalar))
}
