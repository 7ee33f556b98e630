//! Expectations: one check, its `mostly` threshold and its action.
//!
//! Column checks follow Great Expectations' semantics: nulls are left out
//! of the denominator (`missing_count`), `unexpected_percent` is over the
//! non-null values, and the check passes when at least `mostly` of them
//! pass. The checks run on whole Arrow columns (compute kernels and the
//! row format), never row by row through JSON values.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::boolean::is_null;
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use arrow::row::{RowConverter, SortField};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use lake_core::{Action, LakeError, Result, RuleResult};
use serde::{Deserialize, Serialize};

/// Failing values kept for reports.
pub const PARTIAL_UNEXPECTED: usize = 20;

/// What an expectation checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Check {
    /// No value of `column` is null.
    NotNull {
        /// The column.
        column: String,
    },
    /// Every non-null value of `column` lies between `min` and `max`: a
    /// number column against number bounds, or a date or timestamp column
    /// against bounds written as dates (`2025-01-01`, midnight UTC) or
    /// RFC 3339 timestamps (`2025-01-01T12:00:00+02:00`), compared as
    /// instants (a timestamp without a time zone is taken as UTC).
    Between {
        /// The column.
        column: String,
        /// The lower bound, if any.
        #[serde(default)]
        min: Option<Bound>,
        /// The upper bound, if any.
        #[serde(default)]
        max: Option<Bound>,
        /// Whether the bounds themselves are outside.
        #[serde(default)]
        exclusive: bool,
    },
    /// Every non-null value of `column`, as text, is one of `values`.
    InSet {
        /// The column.
        column: String,
        /// The allowed values (compared exactly, by code point).
        values: Vec<String>,
    },
    /// No two rows with all of `columns` non-null share the same values
    /// (within the batch); every row of a repeated combination is unexpected.
    Unique {
        /// One column, or a compound key.
        columns: Vec<String>,
    },
    /// Every non-null value of `column`, as text, matches the regular
    /// expression `pattern` (Rust `regex` syntax, unanchored: use `^…$` to
    /// match whole values). Compiled once per expectation.
    MatchesRegex {
        /// The column.
        column: String,
        /// The pattern.
        pattern: String,
    },
    /// Every non-null value of `column`, as text, has between `min` and
    /// `max` characters (Unicode code points), bounds included.
    LengthBetween {
        /// The column.
        column: String,
        /// The lower bound, if any.
        #[serde(default)]
        min: Option<usize>,
        /// The upper bound, if any.
        #[serde(default)]
        max: Option<usize>,
    },
    /// The batch has a column named `column` (a table-level check that
    /// fails instead of erroring when the column is missing).
    ColumnExists {
        /// The column.
        column: String,
    },
    /// `column` has the Arrow type `data_type`, written as Arrow displays
    /// it (`Utf8`, `Float64`, `Date32`, `Timestamp(µs, "UTC")`, …).
    ColumnType {
        /// The column.
        column: String,
        /// The type's display text.
        data_type: String,
    },
    /// A statistic of the non-null values of `column` (a number) lies
    /// between `min` and `max`, bounds included; the statistic of no values
    /// is null and fails.
    StatBetween {
        /// The column.
        column: String,
        /// Which statistic.
        stat: Stat,
        /// The lower bound, if any.
        #[serde(default)]
        min: Option<f64>,
        /// The upper bound, if any.
        #[serde(default)]
        max: Option<f64>,
    },
    /// The latest value of `column` (a timestamp or date) is at most
    /// `max_age` old (`90s`, `15m`, `6h`, `2d`) when the batch is checked;
    /// a batch with no value fails.
    Freshness {
        /// The column.
        column: String,
        /// The largest accepted age.
        max_age: String,
    },
    /// A SQL boolean expression over the row's columns, evaluated by
    /// DataFusion, like DLT's `CONSTRAINT … EXPECT (expr)`: a row fails
    /// when it is false; null passes, as in a SQL `CHECK` constraint.
    Sql {
        /// The expression, e.g. `amount >= 0 OR status = 'refunded'`.
        expr: String,
    },
    /// The batch has between `min` and `max` rows.
    RowCountBetween {
        /// The lower bound, if any.
        #[serde(default)]
        min: Option<u64>,
        /// The upper bound, if any.
        #[serde(default)]
        max: Option<u64>,
    },
}

/// A bound of [`Check::Between`]: a number, or a date or timestamp text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// For number columns.
    Number(f64),
    /// For date and timestamp columns: `YYYY-MM-DD` or RFC 3339.
    Instant(String),
}

impl From<f64> for Bound {
    fn from(value: f64) -> Self {
        Self::Number(value)
    }
}

impl From<&str> for Bound {
    fn from(value: &str) -> Self {
        Self::Instant(value.to_string())
    }
}

impl Bound {
    /// The bound as microseconds since the epoch, UTC.
    fn micros(&self) -> std::result::Result<i64, String> {
        let text = match self {
            Self::Instant(text) => text,
            Self::Number(n) => {
                return Err(format!(
                    "{n} is a number; a date or timestamp column needs a date or timestamp bound"
                ));
            }
        };
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(at.timestamp_micros());
        }
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
            .ok_or_else(|| {
                format!("{text:?} is neither a YYYY-MM-DD date nor an RFC 3339 timestamp")
            })
    }

    fn number(&self) -> std::result::Result<f64, String> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Instant(text) => Err(format!(
                "{text:?} is text; a number column needs number bounds"
            )),
        }
    }
}

/// A statistic of a numeric column, for [`Check::StatBetween`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// The arithmetic mean.
    Mean,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The sum.
    Sum,
}

/// `mostly`'s default (serde), for every expectation kind.
pub(crate) fn one() -> f64 {
    1.0
}

/// A compiled regular expression, built on first use and kept with the
/// expectation (clones share nothing; equality ignores it).
#[derive(Debug, Clone, Default)]
struct CompiledRegex(std::sync::OnceLock<std::result::Result<Pattern, String>>);

/// A pattern compiled twice. The lazy DFA (the engine inside `regex`)
/// answers "does it match" with a cache the caller owns, without the pool
/// and match bookkeeping `Regex::is_match` goes through per value (a
/// quarter less time on short values in `lake-bench quality`). `regex` answers
/// when the DFA cannot be built or gives up on a value (a Unicode word
/// boundary before non-ASCII text, a thrashing cache).
#[derive(Debug, Clone)]
struct Pattern {
    regex: regex::Regex,
    dfa: Option<regex_automata::hybrid::dfa::DFA>,
}

impl Pattern {
    fn new(pattern: &str) -> std::result::Result<Self, String> {
        Ok(Self {
            regex: regex::Regex::new(pattern).map_err(|e| e.to_string())?,
            dfa: regex_automata::hybrid::dfa::DFA::new(pattern).ok(),
        })
    }

    /// The rows of `text` that are not null and do not match.
    fn failures(&self, text: &arrow::array::StringArray) -> BooleanArray {
        let Some(dfa) = &self.dfa else {
            return mask(text, |i| !self.regex.is_match(text.value(i)));
        };
        let mut cache = dfa.create_cache();
        mask(text, |i| {
            let value = text.value(i);
            let input = regex_automata::Input::new(value).earliest(true);
            match dfa.try_search_fwd(&mut cache, &input) {
                Ok(found) => found.is_none(),
                Err(_) => !self.regex.is_match(value),
            }
        })
    }
}

impl PartialEq for CompiledRegex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A check with a name, a `mostly` threshold and an action.
///
/// Unknown fields are refused by the check itself (serde cannot deny them
/// on a struct with a flattened field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// The rule's name in reports and quarantine reasons (default: derived from the check).
    #[serde(default)]
    pub name: Option<String>,
    /// The fraction of non-null values that must pass (column checks only).
    #[serde(default = "one")]
    pub mostly: f64,
    /// What a failure does.
    #[serde(default)]
    pub action: Action,
    /// The check.
    #[serde(flatten)]
    pub check: Check,
    #[serde(skip)]
    regex: CompiledRegex,
}

impl Expectation {
    /// An expectation with `mostly = 1.0` and the `warn` action.
    pub fn new(check: Check) -> Self {
        Self {
            name: None,
            mostly: 1.0,
            action: Action::Warn,
            check,
            regex: CompiledRegex::default(),
        }
    }

    /// Sets the action.
    #[must_use]
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets `mostly`.
    #[must_use]
    pub fn with_mostly(mut self, mostly: f64) -> Self {
        self.mostly = mostly;
        self
    }

    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The rule's name.
    pub fn rule(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match &self.check {
            Check::NotNull { column } => format!("{column}_not_null"),
            Check::Between { column, .. } => format!("{column}_between"),
            Check::InSet { column, .. } => format!("{column}_in_set"),
            Check::Unique { columns } => format!("{}_unique", columns.join("_")),
            Check::MatchesRegex { column, .. } => format!("{column}_matches_regex"),
            Check::LengthBetween { column, .. } => format!("{column}_length_between"),
            Check::ColumnExists { column } => format!("{column}_exists"),
            Check::ColumnType { column, .. } => format!("{column}_type"),
            Check::StatBetween { column, stat, .. } => {
                format!("{column}_{}_between", format!("{stat:?}").to_lowercase())
            }
            Check::Freshness { column, .. } => format!("{column}_freshness"),
            Check::Sql { expr } => format!("expect {expr}"),
            Check::RowCountBetween { .. } => "row_count_between".to_string(),
        }
    }

    /// Checks `batch`; `Err` only when the check cannot run (a missing column).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<RuleResult> {
        let rule = self.rule();
        let column = |name: &str| -> Result<ArrayRef> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| LakeError::Schema {
                    table: "validated batch".to_string(),
                    message: format!(
                        "expectation `{rule}` needs column `{name}`, which the data lacks"
                    ),
                })
        };
        let arrow_error = |e| LakeError::arrow(format!("expectation `{rule}`"), e);
        match &self.check {
            Check::NotNull { column: name } => {
                let values = column(name)?;
                let failed = is_null(&values).map_err(arrow_error)?;
                Ok(self.column_result(rule, &values, failed, 0))
            }
            Check::Between {
                column: name,
                min,
                max,
                exclusive,
            } => {
                let values = column(name)?;
                let bad_bound = |message: String| {
                    LakeError::config(
                        format!("expectation `{rule}`"),
                        format!("column `{name}` is {}: {message}", values.data_type()),
                    )
                };
                let (low_open, high_open) =
                    (*exclusive && min.is_some(), *exclusive && max.is_some());
                let failed = if is_instant(values.data_type()) {
                    // Instants compare as UTC microseconds; a missing bound
                    // is the end of the line.
                    let low = min.as_ref().map_or(Ok(i64::MIN), Bound::micros);
                    let high = max.as_ref().map_or(Ok(i64::MAX), Bound::micros);
                    let (low, high) = (low.map_err(bad_bound)?, high.map_err(bad_bound)?);
                    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                    let micros = arrow::compute::cast(&values, &utc).map_err(arrow_error)?;
                    let micros = micros.as_primitive::<TimestampMicrosecondType>();
                    let raw = micros.values();
                    mask(micros, |i| !within(raw[i], low, high, low_open, high_open))
                } else {
                    // A missing bound is an infinite one, closed so that
                    // infinities pass it. NaN is in no range: every
                    // comparison with it is false.
                    let low = min.as_ref().map_or(Ok(f64::NEG_INFINITY), Bound::number);
                    let high = max.as_ref().map_or(Ok(f64::INFINITY), Bound::number);
                    let (low, high) = (low.map_err(bad_bound)?, high.map_err(bad_bound)?);
                    let numbers =
                        arrow::compute::cast(&values, &DataType::Float64).map_err(arrow_error)?;
                    let numbers = numbers.as_primitive::<Float64Type>();
                    let raw = numbers.values();
                    mask(numbers, |i| !within(raw[i], low, high, low_open, high_open))
                };
                Ok(self.column_result(rule, &values, failed, values.null_count()))
            }
            Check::InSet {
                column: name,
                values: allowed,
            } => {
                let values = column(name)?;
                let text = arrow::compute::cast(&values, &DataType::Utf8).map_err(arrow_error)?;
                let text = text.as_string::<i32>();
                // foldhash, not SipHash: hashing dominated this check in
                // `lake-bench quality`. Scanning the list instead was twice
                // as slow there (lists of 4 and 5 values), and so was
                // comparing values packed into integers.
                let allowed: HashSet<&str, RandomState> =
                    allowed.iter().map(String::as_str).collect();
                let failed = mask(text, |i| !allowed.contains(text.value(i)));
                Ok(self.column_result(rule, &values, failed, values.null_count()))
            }
            Check::Unique { columns } => {
                let arrays: Vec<ArrayRef> =
                    columns.iter().map(|c| column(c)).collect::<Result<_>>()?;
                // One string column, the common case: count the values where
                // they lie, without copying them into the row format.
                if let [only] = arrays.as_slice()
                    && let Some(text) = only.as_string_opt::<i32>()
                {
                    let failed = repeated(text.len(), |i| text.is_valid(i).then(|| text.value(i)));
                    return Ok(self.column_result(rule, only, failed, only.null_count()));
                }
                let rows = batch.num_rows();
                let mut any_null = vec![false; rows];
                for array in &arrays {
                    for (i, slot) in any_null.iter_mut().enumerate() {
                        *slot |= array.is_null(i);
                    }
                }
                let converter = RowConverter::new(
                    arrays
                        .iter()
                        .map(|a| SortField::new(a.data_type().clone()))
                        .collect(),
                )
                .map_err(arrow_error)?;
                let keys = converter.convert_columns(&arrays).map_err(arrow_error)?;
                let failed = repeated(rows, |i| (!any_null[i]).then(|| keys.row(i)));
                let missing = any_null.iter().filter(|n| **n).count();
                Ok(self.column_result(rule, &arrays[0], failed, missing))
            }
            Check::MatchesRegex {
                column: name,
                pattern,
            } => {
                let regex = self
                    .regex
                    .0
                    .get_or_init(|| Pattern::new(pattern))
                    .as_ref()
                    .map_err(|e| {
                        LakeError::config(
                            format!("expectation `{rule}`"),
                            format!("pattern {pattern:?} is not a regular expression: {e}"),
                        )
                    })?;
                let values = column(name)?;
                let text = arrow::compute::cast(&values, &DataType::Utf8).map_err(arrow_error)?;
                let text = text.as_string::<i32>();
                let failed = regex.failures(text);
                Ok(self.column_result(rule, &values, failed, values.null_count()))
            }
            Check::LengthBetween {
                column: name,
                min,
                max,
            } => {
                let values = column(name)?;
                let text = arrow::compute::cast(&values, &DataType::Utf8).map_err(arrow_error)?;
                let text = text.as_string::<i32>();
                let outside = |n: usize| min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m);
                // All-ASCII text (checked once, a fast scan) has one code
                // point per byte, so lengths come from the offsets alone.
                let failed = if text.value_data().is_ascii() {
                    let offsets = text.value_offsets();
                    mask(text, |i| outside((offsets[i + 1] - offsets[i]) as usize))
                } else {
                    mask(text, |i| outside(text.value(i).chars().count()))
                };
                Ok(self.column_result(rule, &values, failed, values.null_count()))
            }
            Check::ColumnExists { column: name } => {
                let present = batch.column_by_name(name).is_some();
                Ok(RuleResult::table_level(
                    rule,
                    self.action,
                    present,
                    batch.num_rows(),
                    Some(serde_json::json!(present)),
                ))
            }
            Check::ColumnType {
                column: name,
                data_type,
            } => {
                let actual = column(name)?.data_type().to_string();
                Ok(RuleResult::table_level(
                    rule,
                    self.action,
                    actual == *data_type,
                    batch.num_rows(),
                    Some(serde_json::json!(actual)),
                ))
            }
            Check::StatBetween {
                column: name,
                stat,
                min,
                max,
            } => {
                let values = column(name)?;
                let numbers =
                    arrow::compute::cast(&values, &DataType::Float64).map_err(arrow_error)?;
                let numbers = numbers.as_primitive::<Float64Type>();
                let count = numbers.len() - numbers.null_count();
                let observed = match stat {
                    Stat::Sum => arrow::compute::sum(numbers),
                    Stat::Min => arrow::compute::min(numbers),
                    Stat::Max => arrow::compute::max(numbers),
                    Stat::Mean => arrow::compute::sum(numbers).map(|s| s / count as f64),
                };
                let success = observed.is_some_and(|v| {
                    !v.is_nan() && min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)
                });
                Ok(RuleResult::table_level(
                    rule,
                    self.action,
                    success,
                    batch.num_rows(),
                    Some(observed.map_or(serde_json::Value::Null, |v| serde_json::json!(v))),
                ))
            }
            Check::Freshness {
                column: name,
                max_age,
            } => {
                let limit = parse_age(max_age).ok_or_else(|| {
                    LakeError::config(
                        format!("expectation `{rule}`"),
                        format!("max_age {max_age:?} is not a number followed by s, m, h or d"),
                    )
                })?;
                let values = column(name)?;
                let utc = DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                );
                let micros = arrow::compute::cast(&values, &utc).map_err(arrow_error)?;
                let latest = arrow::compute::max(
                    micros.as_primitive::<arrow::datatypes::TimestampMicrosecondType>(),
                );
                let now = chrono::Utc::now().timestamp_micros();
                let age_seconds = latest.map(|t| (now - t) as f64 / 1e6);
                Ok(RuleResult::table_level(
                    rule,
                    self.action,
                    age_seconds.is_some_and(|age| age <= limit),
                    batch.num_rows(),
                    Some(serde_json::json!({ "age_seconds": age_seconds })),
                ))
            }
            Check::Sql { expr } => {
                let failed = sql_failures(batch, expr).map_err(|e| {
                    LakeError::config(
                        format!("expectation `{rule}`"),
                        format!("cannot evaluate {expr:?}: {e}"),
                    )
                })?;
                // The examples of a row-level expression are row positions.
                let rows: ArrayRef = Arc::new(arrow::array::Int64Array::from_iter_values(
                    0..batch.num_rows() as i64,
                ));
                Ok(self.column_result(rule, &rows, failed, 0))
            }
            Check::RowCountBetween { min, max } => {
                let rows = batch.num_rows() as u64;
                let success = min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m);
                Ok(RuleResult::table_level(
                    rule,
                    self.action,
                    success,
                    batch.num_rows(),
                    Some(serde_json::json!(rows)),
                ))
            }
        }
    }

    fn column_result(
        &self,
        rule: String,
        values: &ArrayRef,
        failed: BooleanArray,
        missing: usize,
    ) -> RuleResult {
        let examples: Vec<serde_json::Value> = failed
            .values()
            .set_indices()
            .take(PARTIAL_UNEXPECTED)
            .map(|i| {
                if values.is_null(i) {
                    serde_json::Value::Null
                } else {
                    arrow::util::display::array_value_to_string(values, i)
                        .map_or(serde_json::Value::Null, serde_json::Value::String)
                }
            })
            .collect();
        let mut result = RuleResult::from_mask(rule, self.action, failed);
        result.missing_count = missing;
        let counted = result.element_count - missing;
        result.success = counted == 0
            || (counted - result.unexpected_count) as f64 / counted as f64 >= self.mostly;
        // Column checks observe no single value (Great Expectations leaves
        // `observed_value` to aggregate checks); the share of failures is
        // `RuleResult::unexpected_percent`.
        result.partial_unexpected_list = examples;
        result
    }
}

/// The rows of `array` that are not null and fail `test`, as a mask
/// without nulls. Built 64 rows at a time, not through `Option<bool>`
/// iterators, which cost as much as the checks themselves; `test` also
/// sees the (meaningless) values under nulls, whose results the validity
/// bitmap then clears, so the loop has no branch on nulls.
fn mask(array: &dyn Array, test: impl FnMut(usize) -> bool) -> BooleanArray {
    let failed = BooleanBuffer::collect_bool(array.len(), test);
    let failed = match array.logical_nulls() {
        Some(valid) => &failed & valid.inner(),
        None => failed,
    };
    BooleanArray::new(failed, None)
}

/// The rows whose key (`None` for a row left out) occurs more than once.
///
/// One hash lookup per row in a table of row numbers (4 bytes a slot, so a
/// batch's table stays in cache; keys are read back from the batch), which
/// remembers where each key was first seen.
fn repeated<K: Hash + Eq>(rows: usize, key: impl Fn(usize) -> Option<K>) -> BooleanArray {
    let hasher = RandomState::default();
    let mut first: HashTable<u32> = HashTable::with_capacity(rows);
    let mut failed = BooleanBufferBuilder::new(rows);
    failed.append_n(rows, false);
    let rehash = |j: &u32| key(*j as usize).map_or(0, |k| hasher.hash_one(k));
    for i in 0..rows {
        let Some(k) = key(i) else { continue };
        let same = |j: &u32| key(*j as usize).is_some_and(|other| other == k);
        match first.entry(hasher.hash_one(&k), same, rehash) {
            Entry::Occupied(seen) => {
                failed.set_bit(*seen.get() as usize, true);
                failed.set_bit(i, true);
            }
            Entry::Vacant(slot) => {
                slot.insert(i as u32);
            }
        }
    }
    BooleanArray::new(failed.finish(), None)
}

/// Whether `low ≤ v ≤ high`, each bound open when asked (`low < v`);
/// false for anything unordered against them (NaN).
fn within<T: PartialOrd>(v: T, low: T, high: T, low_open: bool, high_open: bool) -> bool {
    (if low_open { v > low } else { v >= low }) && (if high_open { v < high } else { v <= high })
}

/// Whether `between` compares `data_type` as instants (dates, timestamps).
fn is_instant(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

/// Seconds in an age written `90s`, `15m`, `6h` or `2d`.
fn parse_age(text: &str) -> Option<f64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: f64 = text[..text.len() - unit.len_utf8()].trim().parse().ok()?;
    let seconds = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then_some(number * seconds)
}

/// The rows of `batch` for which `expr` is false (null passes). The
/// expression is planned against the batch's schema and evaluated as a
/// DataFusion physical expression over the whole batch, in row order.
fn sql_failures(
    batch: &RecordBatch,
    expr: &str,
) -> std::result::Result<BooleanArray, lake_core::datafusion::error::DataFusionError> {
    use lake_core::datafusion::common::DFSchema;
    use lake_core::datafusion::prelude::SessionContext;

    let ctx = SessionContext::new();
    let schema = DFSchema::try_from(batch.schema().as_ref().clone())?;
    let logical = ctx.parse_sql_expr(expr, &schema)?;
    let physical = ctx.create_physical_expr(logical, &schema)?;
    let values = physical.evaluate(batch)?.into_array(batch.num_rows())?;
    let passed = values
        .as_boolean_opt()
        .ok_or_else(|| {
            lake_core::datafusion::error::DataFusionError::Plan(format!(
                "the expression is {}, not a boolean",
                values.data_type()
            ))
        })?
        .clone();
    // False fails; true and null pass.
    Ok(mask(&passed, |i| !passed.value(i)))
}

/// A shared expectation.
pub type ExpectationRef = Arc<Expectation>;
