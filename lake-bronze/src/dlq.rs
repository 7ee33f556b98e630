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

/// Text of dead letters per chunk: a chunk's text and bytes columns stay
/// far below the 2 GiB that 32-bit offsets hold, however much of the input
/// is unreadable.
const CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// Dead letters of one batch, collected while reading, in chunks of at most
/// [`CHUNK_BYTES`] of text (each becomes one record batch).
#[derive(Debug, Default)]
pub(crate) struct DeadLetters {
    current: Chunk,
    done: Vec<Chunk>,
    count: usize,
}

/// One chunk of dead letters.
#[derive(Debug, Default)]
struct Chunk {
    raw_text: StringBuilder,
    raw_bytes: BinaryBuilder,
    reason: StringBuilder,
    error: StringBuilder,
    line: Int64Builder,
    offset: Int64Builder,
    text_bytes: usize,
    rows: usize,
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
        if self.current.rows > 0 && self.current.text_bytes + bytes.len() > CHUNK_BYTES {
            self.done.push(std::mem::take(&mut self.current));
        }
        let chunk = &mut self.current;
        // The text column is for people; the bytes column keeps what the
        // text cannot (invalid UTF-8) exactly.
        chunk.raw_text.append_value(String::from_utf8_lossy(bytes));
        chunk.raw_bytes.append_value(bytes);
        chunk.reason.append_value(reason.as_str());
        chunk.error.append_value(error);
        chunk.line.append_value(line as i64);
        chunk.offset.append_value(offset as i64);
        chunk.text_bytes += bytes.len();
        chunk.rows += 1;
        self.count += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The dead letters as record batches of the dead-letter schema, one
    /// per chunk.
    pub(crate) fn finish(
        mut self,
        source_file: &str,
        batch_id: &str,
        source_system: &str,
        ingested_at_micros: i64,
    ) -> Result<Vec<RecordBatch>> {
        self.done.push(self.current);
        self.done
            .into_iter()
            .filter(|chunk| chunk.rows > 0)
            .map(|mut chunk| {
                let n = chunk.rows;
                let repeat = |value: &str| -> ArrayRef {
                    Arc::new(arrow::array::StringArray::from_iter_values(
                        std::iter::repeat_n(value, n),
                    ))
                };
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(chunk.raw_text.finish()),
                    Arc::new(chunk.raw_bytes.finish()),
                    Arc::new(chunk.reason.finish()),
                    Arc::new(chunk.error.finish()),
                    repeat(source_file),
                    Arc::new(chunk.line.finish()),
                    Arc::new(chunk.offset.finish()),
                    repeat(batch_id),
                    repeat(source_system),
                    Arc::new(
                        arrow::array::TimestampMicrosecondArray::from(vec![ingested_at_micros; n])
                            .with_timezone("UTC"),
                    ),
                ];
                RecordBatch::try_new(Arc::clone(&DEAD_LETTER_SCHEMA), columns)
                    .map_err(|e| LakeError::arrow("dead-letter batch", e))
            })
            .collect()
    }
}
