//! The rules of [`history`](super::history) over Arrow columns: many keys
//! at once, without building a [`Cell`](super::Cell) per value.
//!
//! The result names rows of the input (which event opened and which closed
//! each version, which events are new to the log), so the silver rows are
//! gathered with Arrow's `take` instead of being rebuilt value by value;
//! in the silver stage that removed the per-row strings that cost more than
//! the merge itself.
//!
//! Keys and tracked values are compared through Arrow's row format
//! ([`arrow::row`]), which encodes each column in turn so that byte order is
//! the columns' order, column by column: compound keys are never compared
//! as concatenated strings. Its order is the one the conflict rule needs:
//! nulls lowest, strings by code point (UTF-8 bytes), numbers by value,
//! dates by day. Floats are ordered by `total_cmp`, so a caller must map
//! `-0.0` to `0.0` first (see [`normalize_zero`]).
//!
//! `history` stays the reference: a property test checks that both agree.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, UInt32Array};
use arrow::datatypes::{DataType, Float64Type};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};

use super::Op;

/// The events of some keys, as columns of equal length.
#[derive(Debug, Clone, Copy)]
pub struct EventColumns<'a> {
    /// The key columns (a compound key has several).
    pub keys: &'a [ArrayRef],
    /// The sequence value of each event.
    pub sequence: &'a [i64],
    /// The operation of each event.
    pub ops: &'a [Op],
    /// The tracked columns, in the conflict order: a change in one of
    /// them opens a version.
    pub tracked: &'a [ArrayRef],
    /// The other value columns: compared after the tracked ones for
    /// duplicates and conflicts, but a change in them alone opens no
    /// version (the version's [`VersionRows::latest`] event carries them).
    pub untracked: &'a [ArrayRef],
    /// Rows from here on arrived in this run; rows before it are already in
    /// the event log. Decides what is new to the log and which duplicates
    /// and conflicts this run reports.
    pub first_new: usize,
}

/// One version, as rows of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRows {
    /// The event that opened it: its values and `valid_from`.
    pub opener: u32,
    /// The event that closed it (`valid_to`); `None` while current.
    pub closer: Option<u32>,
    /// The latest event the version absorbed: the opener, or a later one
    /// whose tracked values equal it. Untracked columns come from here,
    /// as an update in place would leave them.
    pub latest: u32,
}

/// The histories of every key of an [`EventColumns`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every version of every key; a key's versions are adjacent, oldest first.
    pub versions: Vec<VersionRows>,
    /// New rows that are not exact duplicates of a logged or an earlier
    /// new row: what the event log gains (conflict losers included, so
    /// that every conflict stays on record).
    pub fresh: Vec<u32>,
    /// New rows that were exact duplicates.
    pub duplicates: u64,
    /// Sequence conflicts with at least one new event among their events.
    pub conflicts: u64,
}

/// Computes every key's history; see the rules in [`super`].
pub fn plan(events: &EventColumns<'_>) -> Result<Plan, ArrowError> {
    let n = events.ops.len();
    let (keys, tracked, untracked) = encode_events(events)?;
    let order = sorted(events, &keys, tracked.as_ref(), untracked.as_ref());
    let tracked_row = |i: u32| tracked.as_ref().map(|t| t.row(i as usize));
    let untracked_row = |i: u32| untracked.as_ref().map(|t| t.row(i as usize));
    let same_values =
        |a: u32, b: u32| tracked_row(a) == tracked_row(b) && untracked_row(a) == untracked_row(b);

    let first_new = events.first_new as u32;
    let mut plan = Plan::default();
    let mut start = 0;
    while start < n {
        let key = order[start].0;
        let len = order[start..].iter().take_while(|e| e.0 == key).count();
        walk(
            &order[start..start + len],
            &tracked_row,
            &same_values,
            first_new,
            &mut plan,
        );
        start += len;
    }
    Ok(plan)
}

/// The key, tracked and untracked columns in the row format, once their
/// lengths are checked.
fn encode_events(
    events: &EventColumns<'_>,
) -> Result<(Rows, Option<Rows>, Option<Rows>), ArrowError> {
    let n = events.ops.len();
    let lengths_match = events.sequence.len() == n
        && events
            .keys
            .iter()
            .chain(events.tracked)
            .chain(events.untracked)
            .all(|c| c.len() == n);
    if !lengths_match || events.keys.is_empty() || events.first_new > n {
        return Err(ArrowError::InvalidArgumentError(
            "scd2 plan: key, sequence, op and value columns must have one value per event"
                .to_string(),
        ));
    }
    let keys = encode(events.keys)?
        .ok_or_else(|| ArrowError::InvalidArgumentError("scd2 plan: no key column".into()))?;
    Ok((keys, encode(events.tracked)?, encode(events.untracked)?))
}

/// Every event as (key id, sequence, op, row), sorted. Keys become small
/// integers, so the sort compares integers and only looks at values for
/// events of one key at one instant. Within a key: by sequence, op, tracked
/// then untracked values (the winner of a conflict last), then by position,
/// so a logged event comes before a new one equal to it.
fn sorted(
    events: &EventColumns<'_>,
    keys: &Rows,
    tracked: Option<&Rows>,
    untracked: Option<&Rows>,
) -> Vec<(u32, i64, Op, u32)> {
    let n = events.ops.len();
    let mut ids: HashMap<&[u8], u32> = HashMap::with_capacity(n);
    let mut order: Vec<(u32, i64, Op, u32)> = (0..n)
        .map(|i| {
            let next = ids.len() as u32;
            let id = *ids.entry(keys.row(i).data()).or_insert(next);
            (id, events.sequence[i], events.ops[i], i as u32)
        })
        .collect();
    fn row(rows: Option<&Rows>, i: u32) -> Option<arrow::row::Row<'_>> {
        rows.map(|r| r.row(i as usize))
    }
    order.sort_unstable_by(|a, b| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then_with(|| row(tracked, a.3).cmp(&row(tracked, b.3)))
            .then_with(|| row(untracked, a.3).cmp(&row(untracked, b.3)))
            .then(a.3.cmp(&b.3))
    });
    order
}

/// The tracked and untracked columns with every null of a create or update
/// replaced by the value in force before it (Delta Live Tables'
/// `ignore_null_updates`): the value of the winning event of the key's
/// previous instant, itself carried forward, and nothing after a delete.
///
/// A function of each key's whole set of events, like [`plan`], so it keeps
/// order independence; conflicts are decided on the values as delivered.
/// Plan the returned columns, and log the delivered ones.
pub fn carry_forward(
    events: &EventColumns<'_>,
) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>), ArrowError> {
    let n = events.ops.len();
    let (keys, tracked, untracked) = encode_events(events)?;
    let order = sorted(events, &keys, tracked.as_ref(), untracked.as_ref());
    let columns: Vec<&ArrayRef> = events.tracked.iter().chain(events.untracked).collect();
    // For each column, the row its value is taken from.
    let mut sources: Vec<Vec<u32>> = vec![(0..n as u32).collect(); columns.len()];
    let mut start = 0;
    while start < n {
        let key = order[start].0;
        let len = order[start..].iter().take_while(|e| e.0 == key).count();
        let events_of_key = &order[start..start + len];
        start += len;
        let mut in_force: Option<Vec<u32>> = None;
        let mut i = 0;
        while i < events_of_key.len() {
            let sequence = events_of_key[i].1;
            let group_len = events_of_key[i..]
                .iter()
                .take_while(|e| e.1 == sequence)
                .count();
            let group = &events_of_key[i..i + group_len];
            i += group_len;
            if let Some(state) = &in_force {
                for &(_, _, op, row) in group {
                    if op == Op::Delete {
                        continue;
                    }
                    for (c, column) in columns.iter().enumerate() {
                        if column.is_null(row as usize) {
                            sources[c][row as usize] = state[c];
                        }
                    }
                }
            }
            let (_, _, op, winner) = group[group_len - 1];
            in_force =
                (op != Op::Delete).then(|| sources.iter().map(|s| s[winner as usize]).collect());
        }
    }
    let mut filled = columns
        .iter()
        .zip(sources)
        .map(|(column, source)| {
            arrow::compute::take(column.as_ref(), &UInt32Array::from(source), None)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let untracked = filled.split_off(events.tracked.len());
    Ok((filled, untracked))
}

/// One key's events, sorted: duplicates, conflicts, then the versions.
fn walk<'r>(
    sorted: &[(u32, i64, Op, u32)],
    tracked_row: &impl Fn(u32) -> Option<arrow::row::Row<'r>>,
    same_values: &impl Fn(u32, u32) -> bool,
    first_new: u32,
    plan: &mut Plan,
) {
    // (sequence, op, row, whether this run brought it)
    let mut distinct: Vec<(i64, Op, u32, bool)> = Vec::with_capacity(sorted.len());
    for &(_, sequence, op, row) in sorted {
        let new = row >= first_new;
        if let Some(last) = distinct.last_mut()
            && last.0 == sequence
            && last.1 == op
            && same_values(last.2, row)
        {
            last.3 |= new;
            plan.duplicates += u64::from(new);
            continue;
        }
        if new {
            plan.fresh.push(row);
        }
        distinct.push((sequence, op, row, new));
    }

    let mut open: Option<usize> = None;
    let mut i = 0;
    while i < distinct.len() {
        let sequence = distinct[i].0;
        let len = distinct[i..].iter().take_while(|d| d.0 == sequence).count();
        let group = &distinct[i..i + len];
        i += len;
        if len > 1 && group.iter().any(|d| d.3) {
            plan.conflicts += 1;
        }
        let (_, op, row, _) = group[len - 1];
        if op == Op::Delete {
            if let Some(v) = open.take() {
                plan.versions[v].closer = Some(row);
            }
            continue;
        }
        if let Some(v) = open {
            if tracked_row(plan.versions[v].opener) == tracked_row(row) {
                plan.versions[v].latest = row;
                continue;
            }
            plan.versions[v].closer = Some(row);
        }
        plan.versions.push(VersionRows {
            opener: row,
            closer: None,
            latest: row,
        });
        open = Some(plan.versions.len() - 1);
    }
}

/// Ranks of a sequence made of several columns compared lexicographically
/// (a struct sequence such as `(epoch, lsn)`), to pass as
/// [`EventColumns::sequence`]: equal values get equal ranks, and ranks
/// order as the values do (nulls lowest; callers quarantine them first).
///
/// Ranks compare only within one call, so rank every event of the keys
/// being planned at once, and take `valid_from` / `valid_to` from the
/// sequence columns at the rows the plan names.
pub fn sequence_ranks(columns: &[ArrayRef]) -> Result<Vec<i64>, ArrowError> {
    let rows = encode(columns)?.ok_or_else(|| {
        ArrowError::InvalidArgumentError("scd2 sequence: no sequence column".into())
    })?;
    let n = rows.num_rows();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| rows.row(a).cmp(&rows.row(b)));
    let mut ranks = vec![0i64; n];
    let mut rank = 0;
    for (i, &row) in order.iter().enumerate() {
        if i > 0 && rows.row(order[i - 1]) != rows.row(row) {
            rank += 1;
        }
        ranks[row] = rank;
    }
    Ok(ranks)
}

/// The row format of `columns`; `None` when there are none (no tracked
/// columns: every event equals every other in value).
fn encode(columns: &[ArrayRef]) -> Result<Option<Rows>, ArrowError> {
    if columns.is_empty() {
        return Ok(None);
    }
    let fields = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    converter.convert_columns(columns).map(Some)
}

/// `column` with `-0.0` replaced by `0.0` when it holds floats, so that
/// equal numbers encode alike; other columns are returned as they are.
pub fn normalize_zero(column: &ArrayRef) -> ArrayRef {
    if column.data_type() != &DataType::Float64 {
        return Arc::clone(column);
    }
    let values: Float64Array = column
        .as_primitive::<Float64Type>()
        .unary(|v| if v == 0.0 { 0.0 } else { v });
    Arc::new(values)
}
