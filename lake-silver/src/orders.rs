//! The silver stage of the reference workload (`SEMANTICS.md`): bronze
//! `orders` events in, SCD2 history out.
//!
//! [`OrdersSilver`] is [`SilverTable`] over [`SilverSpec::orders`]: the
//! reference rules ([`crate::rules`]) type each record's original `_raw`
//! text, which a column mapping could not do exactly (JSON number grammar,
//! strict RFC 3339, canonical JSON of `metadata`). How a run works is in
//! [`crate::table`].

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use lake_core::{
    CatalogRef, LakeError, RefineReport, RefineStage, Result, StageContext, StorageRef, TableId,
    ValidatorRef,
};

use crate::rules::{Invalid, OrderEvent, type_debezium_order, type_order};
use crate::scd2::Op;
pub use crate::spec::KEY_BUCKET;
use crate::spec::SilverSpec;
use crate::table::{Fnv, SilverTable};

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn business_fields() -> Vec<Field> {
    vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("order_date", DataType::Date32, true),
        Field::new("metadata", DataType::Utf8, true),
    ]
}

/// The bucket count of the reference workload's tables (the spec's default,
/// [`crate::spec::DEFAULT_BUCKETS`]).
pub const BUCKETS: u64 = crate::spec::DEFAULT_BUCKETS as u64;

/// The column gold partitions the reference workload by; silver records the
/// values each commit touched (see [`lake_core::touched`]).
pub const ORDER_DATE: &str = "order_date";

/// The bucket of a key among [`BUCKETS`]: FNV-1a over its UTF-8 bytes
/// (stable across processes and versions, unlike the standard library's
/// hasher).
pub fn key_bucket(key: &str) -> i32 {
    let mut hash = Fnv::new();
    hash.write(key.as_bytes());
    hash.bucket(BUCKETS as u32)
}

/// The SCD2 table's schema (the columns of `SEMANTICS.md`, then the bucket).
pub static SILVER_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = business_fields();
    fields.extend([
        Field::new("valid_from", utc_micros(), false),
        Field::new("valid_to", utc_micros(), true),
        Field::new("is_current", DataType::Boolean, false),
        Field::new(KEY_BUCKET, DataType::Int32, false),
    ]);
    Arc::new(Schema::new(fields))
});

/// The changes table's schema: typed, deduplicated events.
pub static CHANGES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = business_fields();
    fields.extend([
        Field::new("op", DataType::Utf8, false),
        Field::new("updated_at", utc_micros(), false),
        Field::new(KEY_BUCKET, DataType::Int32, false),
    ]);
    Arc::new(Schema::new(fields))
});

/// The quarantine table's schema.
pub static QUARANTINE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("reason", DataType::Utf8, false),
        Field::new("_raw", DataType::Utf8, true),
        Field::new("_batch_id", DataType::Utf8, true),
        Field::new("_source_file", DataType::Utf8, true),
        Field::new("_source_line", DataType::Int64, true),
        Field::new("_bronze_version", DataType::Int64, false),
        Field::new("_quarantined_at", utc_micros(), false),
    ]))
});

/// The silver stage of the reference `orders` workload: [`SilverTable`]
/// over [`SilverSpec::orders`].
#[derive(Debug, Clone)]
pub struct OrdersSilver {
    table: SilverTable,
}

/// How the bronze records encode a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdcFormat {
    /// Flat events with an `op` field (the reference workload).
    #[default]
    Flat,
    /// Debezium-style envelopes with `op` (`c`, `u`, `d`, `r`) and the
    /// `before` / `after` row images (see [`crate::rules::type_debezium_order`]).
    Debezium,
}

impl CdcFormat {
    pub(crate) fn typer(self) -> fn(&str) -> Result<OrderEvent, Invalid> {
        match self {
            Self::Flat => type_order,
            Self::Debezium => type_debezium_order,
        }
    }
}

/// What the target table keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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

impl OrdersSilver {
    /// Refines `source` (a bronze table of order events) into `target`.
    pub fn new(source: TableId, target: TableId) -> Result<Self> {
        let spec = SilverSpec::orders(source, target)?;
        Ok(Self {
            table: SilverTable::new(spec)?,
        })
    }

    fn with_spec(self, change: impl FnOnce(&mut SilverSpec)) -> Self {
        let mut spec = self.table.spec().clone();
        change(&mut spec);
        Self {
            table: SilverTable::new(spec).expect("the reference spec with another mode or format"),
        }
    }

    /// Keeps only the latest state of each key (see [`Mode::Scd1`]).
    #[must_use]
    pub fn with_mode(self, mode: Mode) -> Self {
        self.with_spec(|spec| spec.mode = mode)
    }

    /// Reads the bronze records as `format` (flat events by default).
    #[must_use]
    pub fn with_cdc_format(self, format: CdcFormat) -> Self {
        self.with_spec(|spec| spec.cdc = format)
    }

    /// Whether runs may write deletion vectors (see
    /// [`SilverSpec::deletion_vectors`]); on by default.
    #[must_use]
    pub fn with_deletion_vectors(self, enabled: bool) -> Self {
        self.with_spec(|spec| spec.deletion_vectors = enabled)
    }

    /// The most bronze rows one commit reads (see
    /// [`SilverSpec::max_rows_per_commit`]).
    #[must_use]
    pub fn with_max_rows_per_commit(self, rows: u64) -> Self {
        self.with_spec(|spec| spec.max_rows_per_commit = rows)
    }

    /// The spec this stage runs.
    pub fn spec(&self) -> &SilverSpec {
        self.table.spec()
    }

    /// Processes every bronze commit after the bookmark.
    pub async fn run(&self, storage: &StorageRef) -> Result<RefineReport> {
        self.table.run(storage).await
    }

    /// See [`SilverTable::run_with`].
    pub async fn run_with(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
    ) -> Result<RefineReport> {
        self.table.run_with(storage, validators).await
    }

    /// See [`SilverTable::rebuild`].
    pub async fn rebuild(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
    ) -> Result<RefineReport> {
        self.table.rebuild(storage, validators).await
    }

    /// Registers the SCD2 and changes tables (idempotent).
    pub async fn register(&self, storage: &StorageRef, catalog: &CatalogRef) -> Result<()> {
        self.table.register(storage, catalog).await
    }
}

#[async_trait]
impl RefineStage for OrdersSilver {
    fn name(&self) -> &str {
        self.table.name()
    }

    fn target(&self) -> &TableId {
        RefineStage::target(&self.table)
    }

    fn sources(&self) -> Vec<TableId> {
        self.table.sources()
    }

    fn bookmarks(&self) -> Vec<(TableId, lake_core::Bookmark)> {
        self.table.bookmarks()
    }

    async fn refine(&self, context: &StageContext) -> Result<RefineReport> {
        self.table.refine(context).await
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Create => "c",
        Op::Update => "u",
        Op::Delete => "d",
    }
}

/// Typed events as one batch in the changes table's schema
/// ([`CHANGES_SCHEMA`], key bucket among [`BUCKETS`] included).
pub fn events_batch(events: &[OrderEvent]) -> Result<RecordBatch> {
    events_batch_in(events, BUCKETS as u32)
}

/// [`events_batch`] with keys hashed among `buckets` buckets.
pub fn events_batch_in(events: &[OrderEvent], buckets: u32) -> Result<RecordBatch> {
    let strings = |f: fn(&OrderEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(events.iter().map(|e| f(e)).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            events
                .iter()
                .map(|e| Some(e.order_id.as_str()))
                .collect::<StringArray>(),
        ),
        strings(|e| e.customer_id.as_deref()),
        strings(|e| e.category.as_deref()),
        strings(|e| e.region.as_deref()),
        Arc::new(events.iter().map(|e| e.amount).collect::<Float64Array>()),
        strings(|e| e.status.as_deref()),
        Arc::new(events.iter().map(|e| e.order_date).collect::<Date32Array>()),
        strings(|e| e.metadata.as_deref()),
        Arc::new(
            events
                .iter()
                .map(|e| Some(op_text(e.op)))
                .collect::<StringArray>(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(
                events.iter().map(|e| e.updated_at).collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter_values(events.iter().map(|e| {
            let mut hash = Fnv::new();
            hash.write(e.order_id.as_bytes());
            hash.bucket(buckets)
        }))),
    ];
    RecordBatch::try_new(Arc::clone(&CHANGES_SCHEMA), columns)
        .map_err(|e| LakeError::arrow("changes batch", e))
}
