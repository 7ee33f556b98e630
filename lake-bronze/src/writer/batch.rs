//! What every bronze batch shares, whatever its input format: the lineage
//! columns, the output schema, type normalisation for Delta, and the
//! outcome of reading one delivered batch.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike, Utc};
use lake_core::{PartitionValue, RawBatch, Result, TableId};

use crate::columns;
use crate::dlq::DeadLetters;

/// The lineage values every row of one batch carries.
pub(crate) struct Lineage {
    ingested_at: i64,
    source_system: String,
    batch_id: String,
    source_file: String,
    year: String,
    month: String,
    day: String,
}

impl Lineage {
    /// The lineage columns for `lines.len()` rows, in [`output_schema`] order.
    pub(crate) fn columns(&self, raw: Option<ArrayRef>, lines: Int64Array) -> Vec<ArrayRef> {
        let n = lines.len();
        let repeat = |value: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, n)))
        };
        vec![
            raw.unwrap_or_else(|| new_null_array(&DataType::Utf8, n)),
            Arc::new(
                TimestampMicrosecondArray::from(vec![self.ingested_at; n]).with_timezone("UTC"),
            ),
            repeat(&self.source_system),
            repeat(&self.batch_id),
            repeat(&self.source_file),
            Arc::new(lines),
            repeat(&self.year),
            repeat(&self.month),
            repeat(&self.day),
        ]
    }

    pub(crate) fn new(batch: &RawBatch, table: &TableId, ingested_at: DateTime<Utc>) -> Self {
        Self {
            ingested_at: ingested_at.timestamp_micros(),
            source_system: table.namespace.to_string(),
            batch_id: batch.batch_id.clone(),
            source_file: batch.source_file.clone(),
            year: format!("{:04}", ingested_at.year()),
            month: format!("{:02}", ingested_at.month()),
            day: format!("{:02}", ingested_at.day()),
        }
    }
}

pub(crate) fn date_partition_values(at: DateTime<Utc>) -> Result<Vec<PartitionValue>> {
    [
        format!("{:04}", at.year()),
        format!("{:02}", at.month()),
        format!("{:02}", at.day()),
    ]
    .into_iter()
    .map(PartitionValue::new)
    .collect()
}

/// What reading one batch produced.
pub(crate) struct ReadOutcome {
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) dead: DeadLetters,
    pub(crate) lines: u64,
    pub(crate) rows: u64,
    pub(crate) dead_count: u64,
    pub(crate) blank: u64,
    pub(crate) bytes: u64,
    /// New keys left in `_raw` only, past [`crate::BronzeOptions::max_columns`].
    pub(crate) not_added: u64,
}

/// The data schema without fields whose names bronze reserves (`_*`,
/// `year`, `month`, `day`) and without a field whose name repeats an
/// earlier one's ignoring case (`a` after `A`: Delta compares names
/// ignoring case and would refuse the table); such fields stay in `_raw`.
pub(crate) fn without_reserved(schema: &Schema) -> SchemaRef {
    let mut seen = std::collections::HashSet::new();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| !columns::is_technical(f.name()) && seen.insert(f.name().to_lowercase()))
        .map(|f| normalize_field(f).with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// `field` with a type Delta can store: no null, view, large, unsigned,
/// half-float or nanosecond types (see [`normalize_type`]).
pub(crate) fn normalize_field(field: &Field) -> Field {
    field
        .clone()
        .with_data_type(normalize_type(field.data_type()))
}

/// The closest type Delta Lake stores without loss, recursively:
/// `Null` (a field only ever null so far) becomes `Utf8`; view and large
/// strings and binaries their plain forms; unsigned integers the next
/// signed width (`UInt64` a `Decimal128(20, 0)`); `Float16` `Float32`;
/// `Date64` `Date32`; timestamps microseconds (with a time zone, UTC).
pub(crate) fn normalize_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Null | DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item) => DataType::List(Arc::new(normalize_field(item))),
        DataType::FixedSizeList(item, _) => DataType::List(Arc::new(normalize_field(item))),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| normalize_field(f))
                .collect::<Fields>(),
        ),
        DataType::Map(entries, sorted) => {
            DataType::Map(Arc::new(normalize_field(entries)), *sorted)
        }
        DataType::Dictionary(_, value) => normalize_type(value),
        other => other.clone(),
    }
}

/// The full schema written: data columns, then the technical columns.
pub(crate) fn output_schema(data: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend([
        Field::new(columns::RAW, DataType::Utf8, true),
        Field::new(
            columns::INGESTED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(columns::SOURCE_SYSTEM, DataType::Utf8, false),
        Field::new(columns::BATCH_ID, DataType::Utf8, false),
        Field::new(columns::SOURCE_FILE, DataType::Utf8, false),
        Field::new(columns::SOURCE_LINE, DataType::Int64, false),
        Field::new(columns::YEAR, DataType::Utf8, false),
        Field::new(columns::MONTH, DataType::Utf8, false),
        Field::new(columns::DAY, DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
}
