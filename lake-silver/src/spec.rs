//! The declarative silver spec: what a silver table holds and how it comes
//! from bronze, from Rust or from TOML/JSON with the same meaning.
//!
//! ```toml
//! source = "bronze.crm.customers"
//! target = "silver.crm.customers"
//! keys = ["tenant", "customer_id"]     # compared column by column
//! sequence_by = ["updated_at"]         # several columns compare lexicographically
//! mode = "scd2"                        # or "scd1"
//! ignore_null_updates = false          # true: a null keeps the value in force
//! track_history = { exclude = ["last_seen"] }   # or { include = [...] }; all by default
//! deletes = { column = "op", values = ["d", "DELETE"] }  # or { condition = "op = 'D'" }
//! validity = { from = "start_at", to = "end_at", current = "is_current" }
//!
//! [[columns]]
//! name = "tenant"
//! type = "string"
//! [[columns]]
//! name = "customer_id"
//! from = "id"                          # renamed
//! type = "int64"                       # a safe cast: failure quarantines the row
//! [[columns]]
//! name = "updated_at"
//! type = "timestamp"
//! [[columns]]
//! name = "email_domain"
//! expr = "lower(split_part(email, '@', 2))"   # derived, DataFusion SQL over bronze columns
//! ```
//!
//! # What the spec means
//! - `columns` map bronze columns (or SQL expressions over them) to typed
//!   silver columns. A cast is safe: a non-null value that does not convert
//!   quarantines its row with the reason `bad_{column}`. A bronze column
//!   that does not exist yet reads as null. A value bronze could not store
//!   in the column it inferred (kept only in `_raw`) is read again from
//!   `_raw` as text, so it is cast or quarantined, not read as null.
//! - A row whose key column or sequence column is null is quarantined
//!   (`null_{column}`).
//! - The sequence columns become the validity columns: `valid_from` and
//!   `valid_to` hold the sequence value of the event that opened and closed
//!   the version (a struct of them for a sequence of several columns), so
//!   they are not silver columns themselves. Every other mapped column is.
//! - Tracked columns decide what is a new version: an event whose tracked
//!   values equal the version in force opens none. The other (untracked)
//!   columns of a version take the values of its latest event, as an
//!   in-place update would. Exact duplicates and sequence conflicts compare
//!   all columns, tracked first.
//! - A delete (by op column value or SQL condition) closes the version in
//!   force; an op value `c` is a create, every other value an update. In a
//!   conflict `d` > `u` > `c`, as in `SEMANTICS.md`.
//! - With `ignore_null_updates`, a null in an update means "unchanged": it
//!   takes the value of the version in force (as Delta Live Tables'
//!   `ignore_null_updates`). It is applied when histories are computed, from
//!   each key's whole event log, so it keeps order independence.
//!
//! - With `cdc = "debezium"`, records are Debezium envelopes (`op`,
//!   `before`, `after`, `source`, `ts_ms`, or the same inside Kafka
//!   Connect's `payload`): a `from` column reads the field of `after`, or of
//!   `before` for a delete; `r` (a snapshot read) is a create and any other
//!   unknown op is quarantined as `bad_op`. The sequence must come from the
//!   envelope through `expr` (`source['lsn']`, `ts_ms`): a delete's `before`
//!   image holds the values of the write it ends, so an image column would
//!   tie the delete with that write. Declare the bronze schema of such a
//!   source, so that bronze does not infer `before` from a batch where it
//!   is always null.
//!
//! [`SilverSpec::check`] refuses what can be refused without the data;
//! the mapping's SQL is checked by DataFusion against the bronze schema on
//! the first run.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use lake_core::{Ident, LakeError, Result, TableId, Zone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::orders::{CdcFormat, Mode};

/// What a silver table holds and where it comes from; see the [module
/// docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SilverSpec {
    /// The bronze table read.
    pub source: TableId,
    /// The silver table written (its event log is `{target}_changes`).
    pub target: TableId,
    /// The key columns (mapped names).
    pub keys: Vec<Ident>,
    /// The sequence columns (mapped names), compared in order.
    #[serde(deserialize_with = "one_or_many")]
    pub sequence_by: Vec<Ident>,
    /// The mapped columns, in silver order.
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// Which columns make a new version.
    #[serde(default)]
    pub track_history: TrackHistory,
    /// How a delete is recognised; without it every event is an upsert.
    #[serde(default)]
    pub deletes: Option<DeleteRule>,
    /// A null in an update keeps the value in force.
    #[serde(default)]
    pub ignore_null_updates: bool,
    /// SCD2 (every version) or SCD1 (the latest state of each key).
    #[serde(default)]
    pub mode: Mode,
    /// The names of the validity columns.
    #[serde(default)]
    pub validity: ValidityColumns,
    /// How bronze records become typed events: the `columns` mapping, or
    /// the reference workload's rules (see [`SilverSpec::orders`]).
    #[serde(default)]
    pub typing: Typing,
    /// How a record encodes its change: flat, or a Debezium envelope whose
    /// `after` image (`before` for a delete) holds the mapped columns.
    #[serde(default)]
    pub cdc: CdcFormat,
    /// A column each file is sorted by, so that readers filtering on it
    /// (a gold refresh of a few dates) skip pages through the page index.
    #[serde(default)]
    pub cluster_by: Option<Ident>,
    /// Columns whose values each commit records as touched (see
    /// [`lake_core::Touched`]), so gold refreshes only those partitions.
    #[serde(default)]
    pub touched: Vec<Ident>,
    /// A run marks the current rows it replaces as deleted in a deletion
    /// vector instead of copying the rest of their file (the default), for
    /// SCD2 tables ordered by an integer, date or timestamp. Read when the
    /// table is created, which then needs readers that support deletion
    /// vectors (Delta reader version 3: Spark with Delta 2.4 or later,
    /// Trino, DuckDB's `delta` extension, delta-rs); turn it off for
    /// readers that do not.
    #[serde(default = "enabled")]
    pub deletion_vectors: bool,
    /// The most bronze rows one commit of a run reads (default 4,000,000,
    /// by the row counts bronze's commits record). A run behind by more
    /// works through its backlog in several commits, each moving the
    /// bookmark, so its memory stays bounded; one bronze commit larger
    /// than this is read whole.
    #[serde(default = "default_rows_per_commit")]
    pub max_rows_per_commit: u64,
    /// How many buckets keys are hashed into (default [`DEFAULT_BUCKETS`]):
    /// both silver tables are partitioned by bucket, so a run reads and
    /// rewrites only the buckets of the keys it touched. Part of the
    /// table's layout: recorded as the table property [`BUCKETS_PROPERTY`]
    /// when the tables are created, and a spec with another count is
    /// refused on a table made with this one (a key would hash to another
    /// bucket and get a second current row). To change it, write a new
    /// target table.
    #[serde(default = "default_buckets")]
    pub buckets: u32,
}

/// The bucket count of a spec that names none, and of every silver table
/// created before the count was recorded.
///
/// 16, not more: every reader of the table opens one file per bucket, and
/// on a 1 M-order table opening 64 files cost a gold refresh of a few dates
/// more than the data it read (`lake-bench gold`: 0.15 s with 64 buckets,
/// 0.08 s with 16). Fewer buckets make a small batch rewrite more rows.
pub const DEFAULT_BUCKETS: u32 = 16;

/// The table property holding a silver table's bucket count.
pub const BUCKETS_PROPERTY: &str = "lake.silver.buckets";

/// The most buckets a spec may ask for: each is a partition of both tables.
pub const MAX_BUCKETS: u32 = 4096;

fn default_buckets() -> u32 {
    DEFAULT_BUCKETS
}

fn enabled() -> bool {
    true
}

fn default_rows_per_commit() -> u64 {
    4_000_000
}

/// One silver column: a bronze column (renamed, cast) or a SQL expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The silver name.
    pub name: Ident,
    /// The bronze column read (default: `name`); not with `expr`.
    #[serde(default)]
    pub from: Option<String>,
    /// A DataFusion SQL expression over the bronze columns; not with `from`.
    #[serde(default)]
    pub expr: Option<String>,
    /// The type cast to (safely); the bronze type when absent.
    #[serde(default, rename = "type")]
    pub data_type: Option<ColumnType>,
}

impl ColumnSpec {
    /// `name` read from the bronze column of the same name, as it is.
    pub fn new(name: &str) -> Result<Self> {
        Ok(Self {
            name: Ident::new_as("column", name)?,
            from: None,
            expr: None,
            data_type: None,
        })
    }

    /// Reads the bronze column `from`.
    #[must_use]
    pub fn from(mut self, from: &str) -> Self {
        self.from = Some(from.to_string());
        self
    }

    /// Computes the column with a SQL expression over bronze columns.
    #[must_use]
    pub fn expr(mut self, expr: &str) -> Self {
        self.expr = Some(expr.to_string());
        self
    }

    /// Casts the column to `data_type`; a failed cast quarantines the row.
    #[must_use]
    pub fn cast(mut self, data_type: ColumnType) -> Self {
        self.data_type = Some(data_type);
        self
    }

    /// The bronze column read, when the column is not derived.
    pub fn source_column(&self) -> Option<&str> {
        match (&self.expr, &self.from) {
            (Some(_), _) => None,
            (None, Some(from)) => Some(from),
            (None, None) => Some(self.name.as_str()),
        }
    }
}

/// The types a column can be cast to. In TOML: `string`, `boolean`,
/// `int32`, `int64`, `float64`, `date`, `timestamp` (microseconds, UTC),
/// `decimal(p,s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// `true` / `false`.
    Boolean,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// A calendar date.
    Date,
    /// Microseconds since the epoch, UTC.
    Timestamp,
    /// A decimal of the given precision and scale.
    Decimal(u8, i8),
}

impl ColumnType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Decimal(p, s) => DataType::Decimal128(p, s),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Boolean => f.write_str("boolean"),
            Self::Int32 => f.write_str("int32"),
            Self::Int64 => f.write_str("int64"),
            Self::Float64 => f.write_str("float64"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Decimal(p, s) => write!(f, "decimal({p},{s})"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = LakeError;

    fn from_str(text: &str) -> Result<Self> {
        let lower = text.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "string" | "utf8" | "text" | "varchar" => Self::String,
            "boolean" | "bool" => Self::Boolean,
            "int32" | "int" | "integer" => Self::Int32,
            "int64" | "bigint" | "long" => Self::Int64,
            "float64" | "double" => Self::Float64,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            other => {
                let decimal = other
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .and_then(|args| args.split_once(','))
                    .and_then(|(p, s)| Some((p.trim().parse().ok()?, s.trim().parse().ok()?)));
                match decimal {
                    Some((p, s)) if (1..=38).contains(&p) && s >= 0 && s as u8 <= p => {
                        Self::Decimal(p, s)
                    }
                    _ => {
                        return Err(LakeError::config(
                            "type",
                            format!(
                                "unknown type `{text}` (expected string, boolean, int32, int64, \
                                 float64, date, timestamp or decimal(p,s) with 1 <= p <= 38, 0 <= s <= p)"
                            ),
                        ));
                    }
                }
            }
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which columns make a new version (Delta Live Tables'
/// `track_history_column_list` / `track_history_except_column_list`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TrackHistory {
    /// Every silver column except the keys.
    #[default]
    All,
    /// Only these.
    Include(Vec<Ident>),
    /// All but these.
    Exclude(Vec<Ident>),
}

/// How a delete is recognised (Delta Live Tables' `apply_as_deletes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum DeleteRule {
    /// A bronze column whose value is one of `values`; the column's value
    /// `c` marks a create, any other value an update.
    Column {
        /// The bronze column holding the operation.
        column: String,
        /// The values meaning delete.
        values: Vec<String>,
    },
    /// A DataFusion SQL condition over the bronze columns.
    Condition {
        /// True for a delete.
        condition: String,
    },
}

/// The names of the validity columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityColumns {
    /// When the version took effect (default `valid_from`).
    #[serde(default = "ValidityColumns::default_from")]
    pub from: Ident,
    /// When it ended; null while current (default `valid_to`).
    #[serde(default = "ValidityColumns::default_to")]
    pub to: Ident,
    /// True for the version in force (default `is_current`).
    #[serde(default = "ValidityColumns::default_current")]
    pub current: Ident,
}

impl ValidityColumns {
    fn default_from() -> Ident {
        Ident::new("valid_from").expect("a valid identifier")
    }
    fn default_to() -> Ident {
        Ident::new("valid_to").expect("a valid identifier")
    }
    fn default_current() -> Ident {
        Ident::new("is_current").expect("a valid identifier")
    }
}

impl Default for ValidityColumns {
    fn default() -> Self {
        Self {
            from: Self::default_from(),
            to: Self::default_to(),
            current: Self::default_current(),
        }
    }
}

/// How bronze records become typed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Typing {
    /// The spec's `columns`, over bronze's parsed columns.
    #[default]
    Columns,
    /// The reference workload's rules (`SEMANTICS.md`, [`crate::rules`])
    /// applied to each record's original text in `_raw`; the spec must be
    /// [`SilverSpec::orders`]'s.
    Orders,
}

fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<Ident>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Ident),
        Many(Vec<Ident>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// The technical partition column holding a key's bucket.
pub const KEY_BUCKET: &str = "_key_bucket";

/// The changes table's operation column under [`Typing::Columns`].
pub const OP_COLUMN: &str = "_op";

fn idents(names: &[&str]) -> Vec<Ident> {
    names
        .iter()
        .map(|n| Ident::new(*n).expect("a valid identifier"))
        .collect()
}

impl SilverSpec {
    /// A spec reading `source` into `target` with `keys` and `sequence_by`,
    /// and no columns yet.
    pub fn new(
        source: TableId,
        target: TableId,
        keys: &[&str],
        sequence_by: &[&str],
    ) -> Result<Self> {
        let names = |names: &[&str]| {
            names
                .iter()
                .map(|n| Ident::new_as("column", *n))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Self {
            source,
            target,
            keys: names(keys)?,
            sequence_by: names(sequence_by)?,
            columns: Vec::new(),
            track_history: TrackHistory::All,
            deletes: None,
            ignore_null_updates: false,
            mode: Mode::Scd2,
            validity: ValidityColumns::default(),
            typing: Typing::Columns,
            cdc: CdcFormat::Flat,
            cluster_by: None,
            touched: Vec::new(),
            deletion_vectors: true,
            max_rows_per_commit: default_rows_per_commit(),
            buckets: DEFAULT_BUCKETS,
        })
    }

    /// The reference workload's spec (`SEMANTICS.md`): `order_id` keys,
    /// `updated_at` orders, `op` = `d` deletes, every column tracked, files
    /// clustered by `order_date` and the order dates recorded for gold.
    pub fn orders(source: TableId, target: TableId) -> Result<Self> {
        let mut spec = Self::new(source, target, &["order_id"], &["updated_at"])?;
        let types = [
            ("order_id", ColumnType::String),
            ("customer_id", ColumnType::String),
            ("category", ColumnType::String),
            ("region", ColumnType::String),
            ("amount", ColumnType::Float64),
            ("status", ColumnType::String),
            ("order_date", ColumnType::Date),
            ("metadata", ColumnType::String),
            ("updated_at", ColumnType::Timestamp),
        ];
        for (name, data_type) in types {
            spec.columns.push(ColumnSpec::new(name)?.cast(data_type));
        }
        spec.deletes = Some(DeleteRule::Column {
            column: "op".to_string(),
            values: vec!["d".to_string()],
        });
        spec.typing = Typing::Orders;
        spec.cluster_by = Some(Ident::new(crate::orders::ORDER_DATE)?);
        spec.touched = idents(&[crate::orders::ORDER_DATE]);
        Ok(spec)
    }

    /// Adds a column.
    #[must_use]
    pub fn column(mut self, column: ColumnSpec) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets which columns make a new version.
    #[must_use]
    pub fn with_track_history(mut self, track: TrackHistory) -> Self {
        self.track_history = track;
        self
    }

    /// Sets how deletes are recognised.
    #[must_use]
    pub fn with_deletes(mut self, rule: DeleteRule) -> Self {
        self.deletes = Some(rule);
        self
    }

    /// Makes a null in an update keep the value in force.
    #[must_use]
    pub fn with_ignore_null_updates(mut self, ignore: bool) -> Self {
        self.ignore_null_updates = ignore;
        self
    }

    /// Sets SCD2 or SCD1.
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Names the validity columns.
    #[must_use]
    pub fn with_validity(mut self, validity: ValidityColumns) -> Self {
        self.validity = validity;
        self
    }

    /// Whether runs may write deletion vectors (see
    /// [`SilverSpec::deletion_vectors`]); on by default.
    pub fn with_deletion_vectors(mut self, enabled: bool) -> Self {
        self.deletion_vectors = enabled;
        self
    }

    /// Sorts each file by `column`.
    pub fn with_cluster_by(mut self, column: &str) -> Result<Self> {
        self.cluster_by = Some(Ident::new_as("column", column)?);
        Ok(self)
    }

    /// Records the values of `columns` each commit touched, for gold.
    pub fn with_touched(mut self, columns: &[&str]) -> Result<Self> {
        self.touched = columns
            .iter()
            .map(|c| Ident::new_as("column", *c))
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// Hashes keys among `buckets` buckets (see [`SilverSpec::buckets`]).
    pub fn with_buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// Reads a spec from TOML, then [`check`](Self::check)s it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let spec: Self =
            toml::from_str(text).map_err(|e| LakeError::config("silver spec", e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// Reads a spec from JSON, then [`check`](Self::check)s it.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: Self = serde_json::from_str(text)
            .map_err(|e| LakeError::config("silver spec", e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// The silver columns of the business: mapped columns other than the
    /// sequence columns, in order.
    pub fn business_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns
            .iter()
            .filter(|c| !self.sequence_by.contains(&c.name))
    }

    /// The tracked columns, in silver order.
    pub fn tracked(&self) -> Vec<&Ident> {
        self.business_columns()
            .map(|c| &c.name)
            .filter(|name| !self.keys.contains(name))
            .filter(|name| match &self.track_history {
                TrackHistory::All => true,
                TrackHistory::Include(list) => list.contains(name),
                TrackHistory::Exclude(list) => !list.contains(name),
            })
            .collect()
    }

    /// The business columns that are neither keys nor tracked.
    pub fn untracked(&self) -> Vec<&Ident> {
        let tracked = self.tracked();
        self.business_columns()
            .map(|c| &c.name)
            .filter(|name| !self.keys.contains(name) && !tracked.contains(name))
            .collect()
    }

    /// The changes table's operation column.
    pub fn op_column(&self) -> &str {
        match self.typing {
            Typing::Orders => "op",
            Typing::Columns => OP_COLUMN,
        }
    }

    fn column_spec(&self, name: &Ident) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| &c.name == name)
    }

    /// Checks what can be checked without the data: zones, every named
    /// column mapped once, keys and sequence not tracked, no name used
    /// twice, and the reference typing only with the reference spec.
    pub fn check(&self) -> Result<()> {
        if self.source.zone != Zone::Bronze {
            return Err(LakeError::config(
                "source",
                format!("{} is not a bronze table", self.source),
            ));
        }
        if self.target.zone != Zone::Silver {
            return Err(LakeError::config(
                "target",
                format!("{} is not a silver table", self.target),
            ));
        }
        if self.typing == Typing::Orders {
            let reference = Self::orders(self.source.clone(), self.target.clone())?;
            let same = Self {
                mode: self.mode,
                cdc: self.cdc,
                deletion_vectors: self.deletion_vectors,
                max_rows_per_commit: self.max_rows_per_commit,
                buckets: self.buckets,
                ..reference
            };
            if *self != same {
                return Err(LakeError::config(
                    "typing",
                    format!(
                        "the reference `orders` typing fixes the columns, keys, sequence and \
                         deletes of {}; use `typing = \"columns\"` to map your own",
                        self.target
                    ),
                ));
            }
        }
        if !(1..=MAX_BUCKETS).contains(&self.buckets) {
            return Err(LakeError::config(
                "buckets",
                format!(
                    "{} buckets for {}: between 1 and {MAX_BUCKETS}",
                    self.buckets, self.target
                ),
            ));
        }
        let target = &self.target;
        let mut names = HashSet::new();
        for (i, column) in self.columns.iter().enumerate() {
            if column.name.as_str().starts_with('_') {
                return Err(LakeError::config(
                    format!("columns[{i}].name"),
                    format!(
                        "`{}`: names starting with `_` are technical columns of {target}",
                        column.name
                    ),
                ));
            }
            if !names.insert(column.name.as_str()) {
                return Err(LakeError::config(
                    format!("columns[{i}].name"),
                    format!("`{}` appears twice in {target}", column.name),
                ));
            }
            if column.expr.is_some() && column.from.is_some() {
                return Err(LakeError::config(
                    format!("columns[{i}]"),
                    format!("`{}` sets both `from` and `expr`; set one", column.name),
                ));
            }
            if column.expr.as_deref().is_some_and(|e| e.trim().is_empty()) {
                return Err(LakeError::config(
                    format!("columns[{i}].expr"),
                    format!("`{}` has an empty expression", column.name),
                ));
            }
        }
        if self.keys.is_empty() {
            return Err(LakeError::config(
                "keys",
                format!("{target} needs at least one key column"),
            ));
        }
        if self.sequence_by.is_empty() {
            return Err(LakeError::config(
                "sequence_by",
                format!("{target} needs at least one sequence column"),
            ));
        }
        let mapped = |field: &str, list: &[Ident]| -> Result<()> {
            let mut seen = HashSet::new();
            for name in list {
                if self.column_spec(name).is_none() {
                    return Err(LakeError::config(
                        field.to_string(),
                        format!("`{name}` is not one of the columns of {target}"),
                    ));
                }
                if !seen.insert(name) {
                    return Err(LakeError::config(
                        field.to_string(),
                        format!("`{name}` appears twice"),
                    ));
                }
            }
            Ok(())
        };
        mapped("keys", &self.keys)?;
        mapped("sequence_by", &self.sequence_by)?;
        if let Some(name) = self.keys.iter().find(|k| self.sequence_by.contains(k)) {
            return Err(LakeError::config(
                "sequence_by",
                format!("`{name}` is a key column of {target}"),
            ));
        }
        match &self.track_history {
            TrackHistory::All => {}
            TrackHistory::Include(list) | TrackHistory::Exclude(list) => {
                mapped("track_history", list)?;
                if let Some(name) = list
                    .iter()
                    .find(|n| self.keys.contains(n) || self.sequence_by.contains(n))
                {
                    return Err(LakeError::config(
                        "track_history",
                        format!("`{name}` is a key or sequence column: it is never tracked"),
                    ));
                }
            }
        }
        if let Some(name) = &self.cluster_by
            && !self.business_columns().any(|c| &c.name == name)
        {
            return Err(LakeError::config(
                "cluster_by",
                format!("`{name}` is not a silver column of {target}"),
            ));
        }
        for name in &self.touched {
            if !self.business_columns().any(|c| &c.name == name) {
                return Err(LakeError::config(
                    "touched",
                    format!("`{name}` is not a silver column of {target}"),
                ));
            }
        }
        match &self.deletes {
            Some(DeleteRule::Column { column, values })
                if column.trim().is_empty() || values.is_empty() =>
            {
                return Err(LakeError::config(
                    "deletes",
                    "name the op `column` and at least one delete value",
                ));
            }
            Some(DeleteRule::Condition { condition }) if condition.trim().is_empty() => {
                return Err(LakeError::config(
                    "deletes.condition",
                    "the condition is empty",
                ));
            }
            _ => {}
        }
        if self.cdc == CdcFormat::Debezium && self.typing == Typing::Columns {
            if self.deletes.is_some() {
                return Err(LakeError::config(
                    "deletes",
                    "under cdc = \"debezium\" the envelope's op says what is a delete; remove `deletes`",
                ));
            }
            if let Some(name) = self
                .sequence_by
                .iter()
                .find(|s| self.column_spec(s).is_some_and(|c| c.expr.is_none()))
            {
                return Err(LakeError::config(
                    "sequence_by",
                    format!(
                        "`{name}` reads the row image, but a delete's `before` image holds the \
                         values of the write it ends, so the delete would tie with that write; \
                         derive the sequence from the envelope (expr = \"source['lsn']\" or \"ts_ms\")"
                    ),
                ));
            }
        }
        let validity = [
            &self.validity.from,
            &self.validity.to,
            &self.validity.current,
        ];
        for (i, name) in validity.iter().enumerate() {
            if names.contains(name.as_str()) && !self.sequence_by.contains(name)
                || validity[..i].contains(name)
                || name.as_str() == KEY_BUCKET
            {
                return Err(LakeError::config(
                    "validity",
                    format!("`{name}` is already a column of {target}"),
                ));
            }
        }
        Ok(())
    }

    /// The fields of the validity columns `from` and `to`: the sequence
    /// column's type, or a struct of the sequence columns.
    pub(crate) fn validity_type(&self, sequence: &[Field]) -> DataType {
        match sequence {
            [one] => one.data_type().clone(),
            many => DataType::Struct(Fields::from(many.to_vec())),
        }
    }
}
