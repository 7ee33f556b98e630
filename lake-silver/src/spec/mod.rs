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

mod check;
mod columns;

use arrow::datatypes::{DataType, Field, Fields};
use lake_core::{Ident, LakeError, Result, TableId};
use serde::{Deserialize, Deserializer, Serialize};

pub use columns::{ColumnSpec, ColumnType, DeleteRule, TrackHistory, ValidityColumns};

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
    /// readers that do not. A table that has them already loses them
    /// through maintenance ([`lake_core::maintenance`],
    /// `with_drop_deletion_vectors`; `lake maintain --drop-deletion-vectors`).
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

/// How bronze records become typed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Typing {
    /// The spec's `columns`, over bronze's parsed columns.
    #[default]
    Columns,
    /// The reference workload's rules (`SEMANTICS.md`) applied to each
    /// record's original text in `_raw`; the spec must be the reference
    /// one (`SilverSpec::orders`), which the stage checks when it is built.
    Orders,
}

/// How the bronze records encode a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdcFormat {
    /// Flat events with an `op` field (the reference workload).
    #[default]
    Flat,
    /// Debezium-style envelopes with `op` (`c`, `u`, `d`, `r`) and the
    /// `before` / `after` row images (see the module docs).
    Debezium,
}

/// What the target table keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every version (SCD Type 2): `valid_from`, `valid_to`, `is_current`.
    #[default]
    Scd2,
    /// The latest state of each key only (SCD Type 1); a delete removes the
    /// key's row. Same schema as SCD2, so readers need not care: `valid_from`
    /// is when the state was set, `valid_to` is always null and
    /// `is_current` always true. It is computed from the same event log with
    /// the same rules, so it always equals the SCD2 table's current rows.
    Scd1,
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

/// The changes table's operation column under [`Typing::Columns`] (a
/// [`Typer`](crate::Typer) may name its own).
pub const OP_COLUMN: &str = "_op";

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
    /// sequence columns and those tagged `pii = "drop"`, in order.
    pub fn business_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| {
            !self.sequence_by.contains(&c.name) && c.pii != Some(lake_core::pii::Pii::Drop)
        })
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

    /// The fields of the validity columns `from` and `to`: the sequence
    /// column's type, or a struct of the sequence columns.
    pub(crate) fn validity_type(&self, sequence: &[Field]) -> DataType {
        match sequence {
            [one] => one.data_type().clone(),
            many => DataType::Struct(Fields::from(many.to_vec())),
        }
    }
}
