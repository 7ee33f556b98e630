//! Reading Arrow batches, Parquet, Avro and CSV into bronze batches.
//!
//! Decoding runs on a blocking thread (the parquet, arrow-avro and csv
//! readers are synchronous) and hands batches over a bounded channel, so a
//! large file is never held whole. CSV and Avro streams are bridged to the
//! blocking reader the same way; a Parquet stream is buffered first, because
//! Parquet's footer comes last (pass a file for large Parquet inputs).
//!
//! Schema reconciliation by [`SchemaPolicy`]: a column the table lacks is
//! added (`Evolve`), refused (`Freeze`) or dropped (`DiscardValue`). A
//! column whose type differs is cast when the cast only widens (`Int32` to
//! `Int64`, `Float32` to `Float64`, ...); otherwise `Evolve` keeps the
//! values in a variant column `{name}__v_{type}` (dlt's convention), so
//! nothing is lost, `Freeze` refuses the batch and `DiscardValue` stores null.

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Read};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringBuilder, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::StreamExt;
use lake_core::{InputFormat, LakeError, Payload, RawBatch, Result, TableId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::mpsc;

use crate::columns;
use crate::dlq::DeadLetters;
use crate::json::{DEAD_LETTER_PREFIX, DeadLetterReason};
use crate::options::{BronzeOptions, SchemaPolicy};

use super::batch::{Lineage, ReadOutcome, normalize_field, output_schema};
use super::sink::DeltaSink;

/// What the blocking decoder sends.
enum Decoded {
    /// Records; with their source line numbers when the format has lines.
    Batch(RecordBatch, Option<Int64Array>),
    /// A record that could not be read.
    Dead {
        bytes: Vec<u8>,
        reason: DeadLetterReason,
        detail: String,
        line: u64,
        offset: u64,
    },
}

/// Where the blocking decoder reads from.
enum Input {
    File(PathBuf),
    Bytes(Bytes),
    Channel(mpsc::Receiver<Result<Bytes>>),
}

/// Reads `payload` as `format` into `reader`.
pub(super) async fn read(
    format: InputFormat,
    payload: Payload,
    reader: &mut ColumnarReader<'_>,
    sink: &mut DeltaSink,
) -> Result<()> {
    let input = match payload {
        Payload::Batches(batches) => {
            for batch in batches {
                reader.push(batch, None)?;
                reader.drain(sink).await?;
            }
            return Ok(());
        }
        Payload::File(path) => Input::File(path),
        Payload::Bytes(bytes) => Input::Bytes(bytes),
        Payload::Stream(mut stream) if format == InputFormat::Parquet => {
            let mut buffer = Vec::new();
            while let Some(chunk) = stream.next().await {
                buffer.extend_from_slice(&chunk?);
            }
            Input::Bytes(Bytes::from(buffer))
        }
        Payload::Stream(stream) => {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let mut stream = stream;
                while let Some(chunk) = stream.next().await {
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
            });
            Input::Channel(rx)
        }
    };
    if format == InputFormat::Arrow {
        return Err(LakeError::config(
            "format",
            format!(
                "{}: Arrow input must be handed in as record batches",
                reader.source_file
            ),
        ));
    }
    let (tx, mut rx) = mpsc::channel::<Result<Decoded>>(2);
    let options = reader.options.clone();
    let source_file = reader.source_file.clone();
    let decoder = tokio::task::spawn_blocking(move || {
        let failed = tx.clone();
        if let Err(e) = decode(format, input, &options, &source_file, &tx) {
            let _ = failed.blocking_send(Err(e));
        }
    });
    while let Some(message) = rx.recv().await {
        match message? {
            Decoded::Batch(batch, lines) => {
                reader.push(batch, lines)?;
                reader.drain(sink).await?;
            }
            Decoded::Dead {
                bytes,
                reason,
                detail,
                line,
                offset,
            } => reader.dead(&bytes, reason, &detail, line, offset),
        }
    }
    decoder
        .await
        .map_err(|e| LakeError::other(format!("decoder of {}", reader.source_file), e))
}

fn decode(
    format: InputFormat,
    input: Input,
    options: &BronzeOptions,
    source_file: &str,
    tx: &mpsc::Sender<Result<Decoded>>,
) -> Result<()> {
    let batch_rows = options.batch_rows.max(1);
    let send = |decoded: Decoded| -> Result<()> {
        tx.blocking_send(Ok(decoded))
            .map_err(|_| LakeError::other(format!("decoder of {source_file}"), "reader went away"))
    };
    let io_error = |e: std::io::Error| LakeError::Io {
        path: source_file.to_string(),
        source: e,
    };
    match format {
        InputFormat::Parquet => {
            let failed = |e: parquet::errors::ParquetError| {
                LakeError::other(format!("parquet reader of {source_file}"), e)
            };
            let batches: Box<
                dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>,
            > = match input {
                Input::File(path) => {
                    let file = std::fs::File::open(&path).map_err(io_error)?;
                    Box::new(
                        ParquetRecordBatchReaderBuilder::try_new(file)
                            .map_err(failed)?
                            .with_batch_size(batch_rows)
                            .build()
                            .map_err(failed)?,
                    )
                }
                Input::Bytes(bytes) => Box::new(
                    ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .map_err(failed)?
                        .with_batch_size(batch_rows)
                        .build()
                        .map_err(failed)?,
                ),
                Input::Channel(_) => unreachable!("parquet streams are buffered first"),
            };
            for batch in batches {
                let batch = batch
                    .map_err(|e| LakeError::arrow(format!("parquet reader of {source_file}"), e))?;
                send(Decoded::Batch(batch, None))?;
            }
            Ok(())
        }
        InputFormat::Avro => {
            let reader = arrow_avro::reader::ReaderBuilder::new()
                .with_batch_size(batch_rows)
                .build(BufReader::new(open(input, source_file)?))
                .map_err(|e| LakeError::arrow(format!("avro reader of {source_file}"), e))?;
            for batch in reader {
                let batch = batch
                    .map_err(|e| LakeError::arrow(format!("avro reader of {source_file}"), e))?;
                send(Decoded::Batch(batch, None))?;
            }
            Ok(())
        }
        InputFormat::Csv => decode_csv(open(input, source_file)?, options, source_file, &send),
        other => Err(LakeError::config(
            "format",
            format!("{source_file}: {other:?} is not a columnar or delimited format"),
        )),
    }
}

fn open(input: Input, source_file: &str) -> Result<Box<dyn Read + Send>> {
    Ok(match input {
        Input::File(path) => Box::new(std::fs::File::open(&path).map_err(|e| LakeError::Io {
            path: source_file.to_string(),
            source: e,
        })?),
        Input::Bytes(bytes) => Box::new(Cursor::new(bytes)),
        Input::Channel(rx) => Box::new(ChannelRead {
            rx,
            current: Bytes::new(),
        }),
    })
}

/// A blocking `Read` over chunks arriving from an async stream.
struct ChannelRead {
    rx: mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

fn decode_csv(
    input: Box<dyn Read + Send>,
    bronze: &BronzeOptions,
    source_file: &str,
    send: &dyn Fn(Decoded) -> Result<()>,
) -> Result<()> {
    let (batch_rows, options) = (bronze.batch_rows.max(1), &bronze.csv);
    let (delimiter, quote) = options.ascii()?;
    // Records end at LF only, and a CR before it is stripped below: the same
    // line-end rule as JSON lines, and it keeps csv's line numbers exact
    // (with CRLF terminators they lag by one).
    let mut reader = csv::ReaderBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .delimiter(delimiter)
        .quote(quote)
        .flexible(true)
        .from_reader(input);
    let csv_error = |e: csv::Error| LakeError::other(format!("csv reader of {source_file}"), e);
    let mut record = csv::ByteRecord::new();
    let names: Vec<String> = if options.has_header {
        if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            return Ok(());
        }
        strip_cr(&mut record);
        header_names(&record, source_file)?
    } else {
        Vec::new()
    };
    let mut names = names;
    let mut builders: Vec<StringBuilder> = Vec::new();
    let mut lines: Vec<i64> = Vec::new();
    let flush =
        |names: &[String], builders: &mut Vec<StringBuilder>, lines: &mut Vec<i64>| -> Result<()> {
            if lines.is_empty() {
                return Ok(());
            }
            let schema = Arc::new(Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(n, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ));
            let columns: Vec<ArrayRef> = builders
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            let batch = RecordBatch::try_new(schema, columns)
                .map_err(|e| LakeError::arrow(format!("csv batch of {source_file}"), e))?;
            send(Decoded::Batch(
                batch,
                Some(Int64Array::from(std::mem::take(lines))),
            ))
        };
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        strip_cr(&mut record);
        let position = record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        if names.is_empty() {
            names = (1..=record.len()).map(|i| format!("column_{i}")).collect();
        }
        if builders.is_empty() {
            builders = names.iter().map(|_| StringBuilder::new()).collect();
        }
        let raw = || {
            let fields: Vec<&[u8]> = record.iter().collect();
            fields.join(&delimiter)
        };
        // The csv reader holds a record whole before it is seen here, so
        // unlike a JSON line an overlong record is bounded only by memory.
        let length = record.as_slice().len() + record.len().saturating_sub(1);
        if length > bronze.max_line_bytes {
            let mut bytes = raw();
            bytes.truncate(DEAD_LETTER_PREFIX);
            send(Decoded::Dead {
                detail: format!(
                    "a record of {length} bytes, longer than max_line_bytes ({}); its first {} bytes are kept",
                    bronze.max_line_bytes,
                    bytes.len()
                ),
                bytes,
                reason: DeadLetterReason::LineTooLong,
                line: position.line(),
                offset: position.byte(),
            })?;
            continue;
        }
        if record.len() != names.len() {
            send(Decoded::Dead {
                bytes: raw(),
                reason: DeadLetterReason::InvalidCsv,
                detail: format!("expected {} fields, found {}", names.len(), record.len()),
                line: position.line(),
                offset: position.byte(),
            })?;
            continue;
        }
        let fields: std::result::Result<Vec<&str>, _> =
            record.iter().map(std::str::from_utf8).collect();
        let Ok(fields) = fields else {
            send(Decoded::Dead {
                bytes: raw(),
                reason: DeadLetterReason::InvalidUtf8,
                detail: "a field is not valid UTF-8".to_string(),
                line: position.line(),
                offset: position.byte(),
            })?;
            continue;
        };
        for (builder, value) in builders.iter_mut().zip(fields) {
            if options.null_values.iter().any(|n| n == value) {
                builder.append_null();
            } else {
                builder.append_value(value);
            }
        }
        lines.push(position.line() as i64);
        if lines.len() >= batch_rows {
            flush(&names, &mut builders, &mut lines)?;
        }
    }
    flush(&names, &mut builders, &mut lines)
}

/// Drops the CR of a CRLF line end from the record's last field.
fn strip_cr(record: &mut csv::ByteRecord) {
    let Some(last) = record.iter().next_back() else {
        return;
    };
    if let Some(stripped) = last.strip_suffix(b"\r") {
        let mut fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
        let n = fields.len();
        fields[n - 1] = stripped.to_vec();
        let position = record.position().cloned();
        *record = csv::ByteRecord::from(fields);
        record.set_position(position);
    }
}

fn header_names(record: &csv::ByteRecord, source_file: &str) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let name = String::from_utf8_lossy(raw).trim().to_string();
        let name = if name.is_empty() {
            format!("column_{}", i + 1)
        } else {
            name
        };
        if names.contains(&name) {
            return Err(LakeError::Schema {
                table: source_file.to_string(),
                message: format!("csv header names column `{name}` twice"),
            });
        }
        names.push(name);
    }
    Ok(names)
}

/// Reconciles incoming batches with the table's schema and adds lineage.
pub(super) struct ColumnarReader<'a> {
    table: &'a TableId,
    source_file: String,
    options: &'a BronzeOptions,
    schema: Option<SchemaRef>,
    lineage: Lineage,
    batches: Vec<RecordBatch>,
    dead: DeadLetters,
    rows: u64,
    next_record: i64,
}

impl<'a> ColumnarReader<'a> {
    pub(super) fn new(
        table: &'a TableId,
        batch: &RawBatch,
        options: &'a BronzeOptions,
        schema: Option<SchemaRef>,
        lineage: Lineage,
    ) -> Self {
        Self {
            table,
            source_file: batch.source_file.clone(),
            options,
            schema,
            lineage,
            batches: Vec::new(),
            dead: DeadLetters::default(),
            rows: 0,
            next_record: 1,
        }
    }

    fn dead(
        &mut self,
        bytes: &[u8],
        reason: DeadLetterReason,
        detail: &str,
        line: u64,
        offset: u64,
    ) {
        self.dead.push(bytes, reason, detail, line, offset);
    }

    /// Adds `batch`, whose rows are the next records of the input.
    fn push(&mut self, batch: RecordBatch, lines: Option<Int64Array>) -> Result<()> {
        let n = batch.num_rows();
        let lines = lines.unwrap_or_else(|| {
            Int64Array::from_iter_values(self.next_record..self.next_record + n as i64)
        });
        self.next_record += n as i64;
        let mut fields: Vec<Field> = self
            .schema
            .as_ref()
            .map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect())
            .unwrap_or_default();
        let mut data: HashMap<String, ArrayRef> = HashMap::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            // A column named like one bronze adds keeps its values under
            // another name: columnar input has no `_raw` to hold them.
            let name = &columns::input_column_name(field.name());
            let wanted = normalize_field(field).with_name(name).with_nullable(true);
            let column = cast(column, wanted.data_type(), self.table, name)?;
            match fields.iter().find(|f| f.name() == name) {
                Some(target) if target.data_type() == wanted.data_type() => {
                    data.insert(name.clone(), column);
                }
                Some(target) if widens(wanted.data_type(), target.data_type()) => {
                    let column = cast(&column, target.data_type(), self.table, name)?;
                    data.insert(name.clone(), column);
                }
                Some(target) => match self.options.schema_policy {
                    SchemaPolicy::Freeze => {
                        return Err(LakeError::Schema {
                            table: self.table.to_string(),
                            message: format!(
                                "column `{}` is {} in the table but {} in {} (refused by the freeze policy)",
                                name,
                                target.data_type(),
                                wanted.data_type(),
                                self.source_file
                            ),
                        });
                    }
                    SchemaPolicy::DiscardValue => {}
                    SchemaPolicy::Evolve => {
                        let variant = format!("{}__v_{}", name, type_tag(wanted.data_type()));
                        if !fields.iter().any(|f| *f.name() == variant) {
                            fields.push(wanted.clone().with_name(&variant));
                        }
                        data.insert(variant, column);
                    }
                },
                None => match self.options.schema_policy {
                    SchemaPolicy::Freeze if self.schema.is_some() => {
                        return Err(LakeError::Schema {
                            table: self.table.to_string(),
                            message: format!(
                                "new column `{}` in {} refused by the freeze policy",
                                name, self.source_file
                            ),
                        });
                    }
                    SchemaPolicy::DiscardValue if self.schema.is_some() => {}
                    _ => {
                        self.check_bounds(&wanted, fields.len() + 1)?;
                        fields.push(wanted);
                        data.insert(name.clone(), column);
                    }
                },
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let mut columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                data.remove(f.name())
                    .unwrap_or_else(|| new_null_array(f.data_type(), n))
            })
            .collect();
        columns.extend(self.lineage.columns(None, lines));
        let out = RecordBatch::try_new(output_schema(&schema), columns)
            .map_err(|e| LakeError::arrow(format!("bronze batch of {}", self.table), e))?;
        self.rows += n as u64;
        self.batches.push(out);
        self.schema = Some(schema);
        Ok(())
    }

    /// Refuses a new column that nests deeper than
    /// [`BronzeOptions::max_nesting_depth`] or would make the table wider
    /// than [`BronzeOptions::max_columns`]: a columnar input has no `_raw`
    /// to keep it in, so the batch fails rather than losing it.
    fn check_bounds(&self, field: &Field, columns: usize) -> Result<()> {
        let depth = super::json::nesting_depth(field.data_type());
        let message = if depth > self.options.max_nesting_depth {
            format!(
                "column `{}` in {} nests {depth} levels, more than max_nesting_depth ({})",
                field.name(),
                self.source_file,
                self.options.max_nesting_depth
            )
        } else if columns > self.options.max_columns {
            format!(
                "column `{}` in {} would be column {columns}, past max_columns ({})",
                field.name(),
                self.source_file,
                self.options.max_columns
            )
        } else {
            return Ok(());
        };
        Err(LakeError::Schema {
            table: self.table.to_string(),
            message,
        })
    }

    async fn drain(&mut self, sink: &mut DeltaSink) -> Result<()> {
        for batch in std::mem::take(&mut self.batches) {
            sink.write(batch).await?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self, bytes: u64) -> Result<ReadOutcome> {
        let batches = std::mem::take(&mut self.batches);
        let dead_count = self.dead.len() as u64;
        Ok(ReadOutcome {
            batches,
            dead: self.dead,
            lines: self.rows + dead_count,
            rows: self.rows,
            dead_count,
            blank: 0,
            bytes,
            not_added: 0,
        })
    }
}

fn cast(column: &ArrayRef, to: &DataType, table: &TableId, name: &str) -> Result<ArrayRef> {
    if column.data_type() == to {
        return Ok(Arc::clone(column));
    }
    arrow::compute::cast(column, to)
        .map_err(|e| LakeError::arrow(format!("column `{name}` of {table}"), e))
}

/// Whether every value of `from` converts to `to` exactly.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    matches!(
        (from, to),
        (Null, _)
            | (Int8, Int16 | Int32 | Int64 | Float32 | Float64)
            | (Int16, Int32 | Int64 | Float32 | Float64)
            | (Int32, Int64 | Float64)
            | (Float32, Float64)
            | (Date32, Timestamp(_, _))
    )
}

/// A short name of a type for variant columns: `utf8`, `int64`, `struct`, ...
fn type_tag(data_type: &DataType) -> String {
    let text = match data_type {
        DataType::Struct(_) => "struct".to_string(),
        DataType::List(_) => "list".to_string(),
        DataType::Map(_, _) => "map".to_string(),
        DataType::Timestamp(_, _) => "timestamp".to_string(),
        DataType::Decimal128(_, _) => "decimal".to_string(),
        other => other.to_string(),
    };
    text.to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}
