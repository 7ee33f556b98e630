//! The reference workload of `SEMANTICS.md`: `orders` change events typed
//! by their own rules, one user of the engine among others.
//!
//! A column mapping could not type these events exactly (the JSON number
//! grammar of `amount`, strict RFC 3339 for `updated_at`, the canonical
//! JSON of `metadata`), so [`ReferenceRules`] is a [`Typer`] that applies
//! [`rules`] to each record's original `_raw` text. Everything else (the
//! event log, the SCD2 plan, the commits) is the engine's, as for any
//! [`SilverSpec`]. The stage is [`OrdersSilver`](crate::OrdersSilver).
//!
//! Nothing in the engine imports this module: the stage
//! ([`SilverTable::new`](crate::SilverTable::new)) picks this typer for
//! [`Typing::Orders`].

pub mod rules;

use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use lake_core::{Ident, LakeError, Result, TableId};

use crate::engine::{Fnv, QuarantineReason, Typed, Typer, cores, cpu, in_parallel};
use crate::scd2::Op;
use crate::spec::{CdcFormat, ColumnSpec, ColumnType, DeleteRule, KEY_BUCKET, SilverSpec, Typing};
use rules::{Invalid, OrderEvent, type_debezium_order, type_order};

/// The bucket count of the reference workload's tables (the spec's default,
/// [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS)).
pub const BUCKETS: u64 = crate::spec::DEFAULT_BUCKETS as u64;

/// The column gold partitions the reference workload by; silver records the
/// values each commit touched (see [`lake_core::touched`]).
pub const ORDER_DATE: &str = "order_date";

/// The op column of the reference event log (`c`, `u`, `d`).
pub const OP: &str = "op";

/// The reference columns whose values are nearly unique per row (the
/// canonical JSON of free-form attributes): written without a dictionary.
const PLAIN: [&str; 1] = ["metadata"];

/// The bronze column the rules read.
const RAW: [&str; 1] = ["_raw"];

/// The bucket of a key among [`BUCKETS`]: FNV-1a over its UTF-8 bytes
/// (stable across processes and versions, unlike the standard library's
/// hasher).
pub fn key_bucket(key: &str) -> i32 {
    let mut hash = Fnv::new();
    hash.write(key.as_bytes());
    hash.bucket(BUCKETS as u32)
}

/// The event log's schema: typed, deduplicated events.
pub static CHANGES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("order_date", DataType::Date32, true),
        Field::new("metadata", DataType::Utf8, true),
        Field::new(OP, DataType::Utf8, false),
        Field::new("updated_at", ColumnType::Timestamp.data_type(), false),
        Field::new(KEY_BUCKET, DataType::Int32, false),
    ]))
});

impl SilverSpec {
    /// The reference workload's spec (`SEMANTICS.md`): `order_id` keys,
    /// `updated_at` orders, `op` = `d` deletes, every column tracked, files
    /// clustered by `order_date` and the order dates recorded for gold,
    /// typed by [`ReferenceRules`].
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
            column: OP.to_string(),
            values: vec!["d".to_string()],
        });
        spec.typing = Typing::Orders;
        spec.cluster_by = Some(Ident::new(ORDER_DATE)?);
        spec.touched = vec![Ident::new(ORDER_DATE)?];
        Ok(spec)
    }
}

/// The reference rules ([`rules`]) as a [`Typer`]: each record's `_raw`
/// text, flat or a Debezium envelope as the spec's
/// [`cdc`](SilverSpec::cdc) says, becomes an [`OrderEvent`] or a reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceRules;

#[async_trait]
impl Typer for ReferenceRules {
    fn check(&self, spec: &SilverSpec) -> Result<()> {
        // The rules produce the reference columns, whatever the spec says:
        // only the knobs that do not change them may differ.
        let mut reference = SilverSpec::orders(spec.source.clone(), spec.target.clone())?;
        // Personal-data tags apply to the typed columns, whatever typed them.
        for column in &mut reference.columns {
            column.pii = spec
                .columns
                .iter()
                .find(|c| c.name == column.name)
                .and_then(|c| c.pii);
        }
        let same = SilverSpec {
            mode: spec.mode,
            cdc: spec.cdc,
            deletion_vectors: spec.deletion_vectors,
            max_rows_per_commit: spec.max_rows_per_commit,
            buckets: spec.buckets,
            ..reference
        };
        if *spec != same {
            return Err(LakeError::config(
                "typing",
                format!(
                    "the reference `orders` typing fixes the columns, keys, sequence and \
                     deletes of {}; use `typing = \"columns\"` to map your own",
                    spec.target
                ),
            ));
        }
        Ok(())
    }

    fn bronze_columns(&self) -> Option<&[&str]> {
        Some(&RAW)
    }

    fn op_column(&self) -> &str {
        OP
    }

    fn plain_columns(&self) -> &[&str] {
        &PLAIN
    }

    async fn type_rows(&self, spec: &SilverSpec, bronze: RecordBatch) -> Result<Typed> {
        let (cdc, buckets) = (spec.cdc, spec.buckets);
        cpu("typing", move || type_orders(&bronze, cdc, buckets)).await
    }
}

fn typer(format: CdcFormat) -> fn(&str) -> Result<OrderEvent, Invalid> {
    match format {
        CdcFormat::Flat => type_order,
        CdcFormat::Debezium => type_debezium_order,
    }
}

impl From<Invalid> for QuarantineReason {
    fn from(invalid: Invalid) -> Self {
        match invalid {
            Invalid::NullOrderId => Self::Null("order_id".to_string()),
            Invalid::BadUpdatedAt => Self::Bad("updated_at".to_string()),
            Invalid::BadAmount => Self::Bad("amount".to_string()),
            Invalid::BadOp => Self::Bad(OP.to_string()),
            Invalid::NotAnObject => Self::NotAnObject,
            Invalid::BadEnvelope => Self::BadEnvelope,
        }
    }
}

/// Types the reference workload's records from their `_raw` text.
/// Parsing is most of a small run's CPU time, so the rows are split over
/// the cores.
fn type_orders(bronze: &RecordBatch, format: CdcFormat, buckets: u32) -> Result<Typed> {
    let raw = bronze
        .column_by_name("_raw")
        .map(|c| arrow::compute::cast(c, &DataType::Utf8))
        .transpose()
        .map_err(|e| LakeError::arrow("bronze `_raw`", e))?;
    let raw = raw.as_ref().map(|r| r.as_string::<i32>());
    let typer = typer(format);
    let type_range = |range: Range<usize>| {
        let mut events: Vec<OrderEvent> = Vec::with_capacity(range.len());
        let mut rows = Vec::with_capacity(range.len());
        let mut rejected = Vec::new();
        for i in range {
            let typed = raw.filter(|r| r.is_valid(i)).map(|r| typer(r.value(i)));
            match typed {
                Some(Ok(event)) => {
                    events.push(event);
                    rows.push(i as u32);
                }
                Some(Err(reason)) => rejected.push((i as u32, reason.into())),
                None => rejected.push((i as u32, QuarantineReason::NotAnObject)),
            }
        }
        (events, rows, rejected)
    };
    let n = bronze.num_rows();
    let threads = cores();
    // Below a few thousand rows a thread costs more than it saves.
    let parts = if threads < 2 || n < 8_192 {
        vec![type_range(0..n)]
    } else {
        let chunk = n.div_ceil(threads);
        let ranges = (0..n)
            .step_by(chunk)
            .map(|s| s..(s + chunk).min(n))
            .collect();
        in_parallel(ranges, type_range)
    };
    let mut events = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    let mut rejected = Vec::new();
    // In range order, so events keep the order of the bronze rows.
    for (e, r, q) in parts {
        events.extend(e);
        rows.extend(r);
        rejected.extend(q);
    }
    Ok(Typed::new(
        events_batch_in(&events, buckets)?,
        rows,
        rejected,
    ))
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
