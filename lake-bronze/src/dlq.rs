//! The dead-letter store: `_dlq/bronze/{source}/{table}`, a Delta table of
//! the records that could not be read, with their raw text and the reason.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, BinaryBuilder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use lake_core::{LakeError, Result};

use crate::json::DeadLetterReason;

/// The schema of every dead-letter table.
pub static DEAD_LETTER_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("raw_text", DataType::Utf8, false),
        Field::new("raw_bytes", DataType::Binary, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_source_line", DataType::Int64, false),
        Field::new("_source_offset", DataType::Int64, false),
        Field::new("_batch_id", DataType::Utf8, false),
        Field::new("_source_system", DataType::Utf8, false),
        Field::new(
            "_ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
});

/// Dead letters of one batch, collected while reading.
#[derive(Debug, Default)]
pub(crate) struct DeadLetters {
    raw_text: StringBuilder,
    raw_bytes: BinaryBuilder,
    reason: StringBuilder,
    error: StringBuilder,
    line: Int64Builder,
    offset: Int64Builder,
    count: usize,
}

impl DeadLetters {
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        reason: DeadLetterReason,
        error: &str,
        line: u64,
        offset: u64,
    ) {
        // The text column is for people; the bytes column keeps what the
        // text cannot (invalid UTF-8) exactly.
        self.raw_text.append_value(String::from_utf8_lossy(bytes));
        self.raw_bytes.append_value(bytes);
        self.reason.append_value(reason.as_str());
        self.error.append_value(error);
        self.line.append_value(line as i64);
        self.offset.append_value(offset as i64);
        self.count += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn finish(
        mut self,
        source_file: &str,
        batch_id: &str,
        source_system: &str,
        ingested_at_micros: i64,
    ) -> Result<RecordBatch> {
        let n = self.count;
        let repeat = |value: &str| -> ArrayRef {
            Arc::new(arrow::array::StringArray::from_iter_values(
                std::iter::repeat_n(value, n),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.raw_text.finish()),
            Arc::new(self.raw_bytes.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.error.finish()),
            repeat(source_file),
            Arc::new(self.line.finish()),
            Arc::new(self.offset.finish()),
            repeat(batch_id),
            repeat(source_system),
            Arc::new(
                arrow::array::TimestampMicrosecondArray::from(vec![ingested_at_micros; n])
                    .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(Arc::clone(&DEAD_LETTER_SCHEMA), columns)
            .map_err(|e| LakeError::arrow("dead-letter batch", e))
    }
}
