//! Reading one batch of newline-delimited JSON into Arrow: lines are
//! classified, records are decoded chunk by chunk with arrow-json against
//! a schema that is inferred once and evolved by policy, and the lineage
//! columns are added.
//!
//! Why not arrow-json alone: one broken line fails its whole decode, and
//! the contract needs each line's fate (row, dead letter or blank), its
//! number and its exact text.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, StringBuilder};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_json::ReaderBuilder;
use lake_core::{LakeError, RawBatch, Result, TableId};
use tokio::runtime::RuntimeFlavor;

use crate::columns;
use crate::dlq::DeadLetters;
use crate::json::{
    Classified, DEAD_LETTER_PREFIX, DeadLetterReason, Line, LineSplitter, classify_with_keys,
    strict,
};
use crate::options::{BronzeOptions, SchemaPolicy};

use super::batch::{Lineage, ReadOutcome, normalize_field, output_schema, without_reserved};

/// Records waiting to be decoded together, one after another.
///
/// The records sit back to back, with nothing between them: each is a
/// JSON object, so arrow-json's tape decoder finds where one ends without
/// a separator, and the same bytes then become the values of `_raw` with
/// no copy (the record starts are its offsets).
#[derive(Default)]
struct Records {
    /// The records, back to back.
    text: String,
    /// Where each record starts in `text`.
    starts: Vec<usize>,
    /// Each record's line number.
    lines: Vec<i64>,
}

impl Records {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn record(&self, i: usize) -> &str {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        &self.text[self.starts[i]..end]
    }

    /// The records as a string array over their own bytes, moved, not
    /// copied. The records come back when they are too long for 32-bit
    /// offsets, which [`CHUNK_BYTES`] rules out unless one record alone is
    /// over 2 GiB.
    fn into_raw(self) -> std::result::Result<StringArray, Self> {
        let Ok(end) = i32::try_from(self.text.len()) else {
            return Err(self);
        };
        // Each start fits because the total does.
        let offsets: Vec<i32> = self
            .starts
            .iter()
            .map(|&start| start as i32)
            .chain(std::iter::once(end))
            .collect();
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let values = Buffer::from_vec(self.text.into_bytes());
        Ok(StringArray::new(offsets, values, None))
    }
}

/// A chunk is decoded once it holds this many bytes of records, even with
/// fewer than [`BronzeOptions::batch_rows`] rows: long records (a 10 MB
/// string each) must not gather by the thousand in memory, and `_raw`'s
/// 32-bit offsets must not overflow.
const CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// The current chunk: its records and the keys they use.
#[derive(Default)]
struct Chunk {
    records: Records,
    /// Every distinct top-level key seen in the chunk (raw, undecoded).
    keys: HashSet<Box<[u8]>>,
    /// The keys whose value is an object or an array in some record of
    /// the chunk: in a text column, such a value is kept as its JSON text.
    nested: HashSet<Box<[u8]>>,
    /// The current line's keys, each followed by [`KEY_SEPARATOR`] or,
    /// when its value is an object or an array, [`NESTED_SEPARATOR`].
    line_keys: Vec<u8>,
    /// The keys of the last record whose keys went into `keys`.
    last_keys: Vec<u8>,
}

/// Ends each key in a line's key list; never part of UTF-8 text.
const KEY_SEPARATOR: u8 = 0xFF;
/// Ends a key whose value is an object or an array; never part of UTF-8 text.
const NESTED_SEPARATOR: u8 = 0xFE;

impl Chunk {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn record(&self, i: usize) -> &str {
        self.records.record(i)
    }

    /// Adds the current line's keys to the chunk's key set. Records of one
    /// source almost always repeat the previous record's keys, so one
    /// comparison usually replaces a hash lookup per key.
    fn note_keys(&mut self) {
        if self.line_keys == self.last_keys {
            return;
        }
        let mut rest = &self.line_keys[..];
        while let Some(end) = rest
            .iter()
            .position(|b| matches!(*b, KEY_SEPARATOR | NESTED_SEPARATOR))
        {
            let key = &rest[..end];
            if !self.keys.contains(key) {
                self.keys.insert(key.into());
            }
            if rest[end] == NESTED_SEPARATOR && !self.nested.contains(key) {
                self.nested.insert(key.into());
            }
            rest = &rest[end + 1..];
        }
        std::mem::swap(&mut self.last_keys, &mut self.line_keys);
    }

    /// The records, leaving the chunk empty for the next ones.
    fn take(&mut self) -> Records {
        self.keys.clear();
        self.nested.clear();
        self.last_keys.clear();
        std::mem::take(&mut self.records)
    }
}

/// Chunks whose decoding may still run while the reader reads on: one, so
/// the reader checks the next chunk's lines while the previous one is
/// decoded. Each holds its records and their columns, so this bounds memory.
const DECODING_AT_ONCE: usize = 1;

/// A chunk being decoded, in input order.
enum Decoding {
    /// Decoded here (a current-thread runtime, or no runtime).
    Done(std::result::Result<RecordBatch, Failed>),
    /// Decoded on a task of its own. A task, not the blocking pool: the
    /// decoder's buffers are freed on the runtime's workers (by the file
    /// encoder), and memory allocated on extra threads stays in their
    /// allocator arenas, which raised the peak of a whole pipeline run by
    /// a third.
    Running(tokio::task::JoinHandle<std::result::Result<RecordBatch, Failed>>),
}

/// A chunk arrow-json refused, kept to find the line to blame.
struct Failed {
    error: arrow::error::ArrowError,
    schema: SchemaRef,
    records: Records,
}

/// Decodes `records` against `schema` and adds the lineage columns.
///
/// The text columns `json_text` (by index) get the JSON text of each
/// record's value where it is an object or an array, which arrow-json
/// decodes as a type conflict (null).
fn decode_records(
    schema: SchemaRef,
    mut records: Records,
    lineage: &Lineage,
    ignore_conflicts: bool,
    json_text: &[usize],
) -> std::result::Result<RecordBatch, Failed> {
    let n = records.len();
    let fail = |error, records| Failed {
        error,
        schema: Arc::clone(&schema),
        records,
    };
    let data = match decode(&schema, records.text.as_bytes(), n, ignore_conflicts) {
        Ok(batch) => batch,
        Err(error) => return Err(fail(error, records)),
    };
    let mut columns: Vec<ArrayRef> = data.columns().to_vec();
    for &i in json_text {
        columns[i] = with_json_text(&columns[i], schema.field(i).name(), &records);
    }
    let lines = std::mem::take(&mut records.lines);
    let raw = match records.into_raw() {
        Ok(raw) => raw,
        Err(records) => {
            let longest = (0..records.len()).max_by_key(|&i| records.record(i).len());
            let error = arrow::error::ArrowError::InvalidArgumentError(format!(
                "the record on line {} is over 2 GiB, more than a text column holds",
                longest.map_or(0, |i| lines[i])
            ));
            // Nothing to locate: the message names the line.
            return Err(fail(error, Records::default()));
        }
    };
    let lines = Int64Array::from(lines);
    columns.extend(lineage.columns(Some(Arc::new(raw)), lines));
    RecordBatch::try_new(output_schema(&schema), columns)
        .map_err(|error| fail(error, Records::default()))
}

/// `column` (text) with each null replaced by the JSON text of the
/// record's `name` value when that is an object or an array.
fn with_json_text(column: &ArrayRef, name: &str, records: &Records) -> ArrayRef {
    let Some(strings) = column.as_string_opt::<i32>() else {
        return Arc::clone(column);
    };
    let mut builder = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
    for i in 0..strings.len() {
        if strings.is_valid(i) {
            builder.append_value(strings.value(i));
            continue;
        }
        let record = records.record(i);
        let mut found = None;
        let _ = strict::check_object_keys(record.as_bytes(), |key, value| {
            if matches!(record.as_bytes()[value.start], b'{' | b'[') && decode_key(key) == name {
                found = Some(value);
            }
        });
        builder.append_option(found.map(|value| &record[value]));
    }
    Arc::new(builder.finish())
}

pub(super) struct JsonReader<'a> {
    table: &'a TableId,
    source_file: String,
    options: &'a BronzeOptions,
    schema: Option<SchemaRef>,
    lineage: Arc<Lineage>,
    splitter: LineSplitter,
    chunk: Chunk,
    decoding: VecDeque<Decoding>,
    dead: DeadLetters,
    lines: u64,
    rows: u64,
    blank: u64,
    /// New keys left out of the schema, in `_raw` only: the table has
    /// [`BronzeOptions::max_columns`] columns.
    not_added: BTreeSet<String>,
}

impl<'a> JsonReader<'a> {
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
            lineage: Arc::new(lineage),
            splitter: LineSplitter::with_max_line(options.max_line_bytes),
            chunk: Chunk::default(),
            decoding: VecDeque::new(),
            dead: DeadLetters::default(),
            lines: 0,
            rows: 0,
            blank: 0,
            not_added: BTreeSet::new(),
        }
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        let mut splitter = std::mem::take(&mut self.splitter);
        let result = splitter.feed(bytes, |line| self.on_line(&line));
        self.splitter = splitter;
        result
    }

    fn on_line(&mut self, line: &Line<'_>) -> Result<()> {
        let (number, offset, bytes) = (line.number, line.offset, line.bytes);
        self.lines += 1;
        if line.is_cut() {
            let detail = format!(
                "a line of {} bytes, longer than max_line_bytes ({}); its first {} bytes are kept",
                line.length,
                self.options.max_line_bytes,
                DEAD_LETTER_PREFIX.min(bytes.len())
            );
            let prefix = &bytes[..DEAD_LETTER_PREFIX.min(bytes.len())];
            self.dead.push(
                prefix,
                DeadLetterReason::LineTooLong,
                &detail,
                number,
                offset,
            );
            return Ok(());
        }
        let line_keys = &mut self.chunk.line_keys;
        line_keys.clear();
        let classified = classify_with_keys(bytes, |key, value| {
            line_keys.extend_from_slice(key);
            line_keys.push(match bytes[value.start] {
                b'{' | b'[' => NESTED_SEPARATOR,
                _ => KEY_SEPARATOR,
            });
        });
        match classified {
            Classified::Blank => self.blank += 1,
            Classified::Dead { reason, detail } => {
                self.dead.push(bytes, reason, &detail, number, offset);
            }
            Classified::Record(text) => {
                self.chunk.note_keys();
                let records = &mut self.chunk.records;
                records.starts.push(records.text.len());
                records.text.push_str(text);
                records.lines.push(number as i64);
                if records.len() >= self.options.batch_rows.max(1)
                    || records.text.len() >= CHUNK_BYTES
                {
                    self.decode_chunk()?;
                }
            }
        }
        Ok(())
    }

    /// The batches decoded so far, in input order, for the sink. Waits for
    /// chunks still being decoded while more than [`DECODING_AT_ONCE`] are,
    /// or for all of them when `all`.
    pub(super) async fn decoded(&mut self, all: bool) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        while let Some(front) = self.decoding.front() {
            let ready = match front {
                Decoding::Done(_) => true,
                Decoding::Running(task) => task.is_finished(),
            };
            if !(ready || all || self.decoding.len() > DECODING_AT_ONCE) {
                break;
            }
            let decoded = match self.decoding.pop_front().expect("front exists") {
                Decoding::Done(decoded) => decoded,
                Decoding::Running(task) => task.await.map_err(|e| {
                    LakeError::other(
                        format!("bronze decoder of {} ({})", self.table, self.source_file),
                        e,
                    )
                })?,
            };
            match decoded {
                Ok(batch) => batches.push(batch),
                Err(failed) => return Err(self.locate_decode_error(failed)),
            }
        }
        Ok(batches)
    }

    pub(super) async fn finish(mut self) -> Result<ReadOutcome> {
        let splitter = std::mem::take(&mut self.splitter);
        let bytes = splitter.bytes_read();
        splitter.finish(|line| self.on_line(&line))?;
        if self.chunk.len() > 0 {
            self.decode_chunk()?;
        }
        let batches = self.decoded(true).await?;
        let dead_count = self.dead.len() as u64;
        Ok(ReadOutcome {
            batches,
            dead: self.dead,
            lines: self.lines,
            rows: self.rows,
            dead_count,
            blank: self.blank,
            bytes,
            not_added: self.not_added.len() as u64,
        })
    }

    /// Starts decoding the current chunk: on a task when the runtime has
    /// several workers, so the next chunk is read and checked meanwhile;
    /// here otherwise, so a current-thread runtime stays on one thread.
    fn decode_chunk(&mut self) -> Result<()> {
        let schema = self.settle_schema()?;
        let ignore_conflicts = self.options.schema_policy != SchemaPolicy::Freeze;
        let json_text = self.json_text_columns(&schema);
        let records = self.chunk.take();
        self.rows += records.len() as u64;
        let lineage = Arc::clone(&self.lineage);
        let job = move || decode_records(schema, records, &lineage, ignore_conflicts, &json_text);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let decoding = match runtime {
            Some(runtime) if runtime.runtime_flavor() != RuntimeFlavor::CurrentThread => {
                Decoding::Running(runtime.spawn(async move { job() }))
            }
            _ => Decoding::Done(job()),
        };
        self.decoding.push_back(decoding);
        Ok(())
    }

    /// The data schema for the current chunk: inferred on first use, then
    /// evolved (or not) according to the policy when new keys appear.
    fn settle_schema(&mut self) -> Result<SchemaRef> {
        let schema = match self.schema.take() {
            Some(schema) => schema,
            None => {
                let inferred = self.infer(Some(self.options.infer_records))?;
                let inferred = without_reserved(&inferred);
                let limit = self.options.max_columns;
                let (kept, left) = inferred
                    .fields()
                    .split_at(inferred.fields().len().min(limit));
                self.not_added.extend(left.iter().map(|f| f.name().clone()));
                let kept = kept.iter().map(|f| self.bounded(f.as_ref().clone()));
                Arc::new(Schema::new(kept.collect::<Vec<_>>()))
            }
        };
        // Names compare ignoring case, as Delta compares them: a key that
        // differs from a column (or another new key) only in case never
        // becomes a column, and its values stay in `_raw`.
        let mut known: HashSet<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().to_lowercase())
            .collect();
        let mut new_keys: Vec<String> = self
            .chunk
            .keys
            .iter()
            .map(|raw| decode_key(raw))
            .filter(|key| !columns::is_technical(key))
            .collect();
        new_keys.sort();
        new_keys.retain(|key| known.insert(key.to_lowercase()));
        let schema = if new_keys.is_empty() {
            schema
        } else {
            match self.options.schema_policy {
                SchemaPolicy::DiscardValue => schema,
                SchemaPolicy::Freeze => {
                    let key = &new_keys[0];
                    let line = self.first_line_with_key(key);
                    return Err(LakeError::Schema {
                        table: self.table.to_string(),
                        message: format!(
                            "new column `{key}` refused by the freeze policy (line {line} of {})",
                            self.source_file
                        ),
                    });
                }
                SchemaPolicy::Evolve => {
                    let room = self
                        .options
                        .max_columns
                        .saturating_sub(schema.fields().len());
                    if new_keys.len() > room {
                        self.not_added.extend(new_keys.split_off(room));
                    }
                    let inferred = self.infer(None)?;
                    let mut fields: Vec<Field> =
                        schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                    for key in &new_keys {
                        let field = inferred
                            .field_with_name(key)
                            .map(|f| normalize_field(f).with_nullable(true))
                            .unwrap_or_else(|_| Field::new(key, DataType::Utf8, true));
                        fields.push(self.bounded(field));
                    }
                    Arc::new(Schema::new(fields))
                }
            }
        };
        self.schema = Some(Arc::clone(&schema));
        Ok(schema)
    }

    /// `field`, or a text column of the same name when its type nests
    /// deeper than [`BronzeOptions::max_nesting_depth`]: its objects and
    /// arrays are then kept as JSON text (see [`with_json_text`]).
    fn bounded(&self, field: Field) -> Field {
        if nesting_depth(field.data_type()) > self.options.max_nesting_depth {
            Field::new(field.name(), DataType::Utf8, true)
        } else {
            field
        }
    }

    /// The text columns of `schema` that some record of the chunk gives
    /// an object or an array.
    fn json_text_columns(&self, schema: &Schema) -> Vec<usize> {
        if self.chunk.nested.is_empty() {
            return Vec::new();
        }
        let nested: HashSet<String> = self.chunk.nested.iter().map(|k| decode_key(k)).collect();
        schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.data_type() == &DataType::Utf8 && nested.contains(f.name()))
            .map(|(i, _)| i)
            .collect()
    }

    fn infer(&self, max_records: Option<usize>) -> Result<Schema> {
        // Records serde_json cannot hold (`1e999` is valid JSON but out of
        // f64 range) teach inference nothing; they still land, in `_raw`.
        let limit = max_records.unwrap_or(usize::MAX);
        let values = || {
            (0..self.chunk.len())
                .take(limit)
                .filter_map(|i| serde_json::from_str(self.chunk.record(i)).ok())
        };
        // Streamed, as every batch infers; parsed again only when it fails.
        arrow_json::reader::infer_json_schema_from_iterator(values().map(Ok))
            .or_else(|error| infer_tolerant(values().collect(), error))
            .map_err(|e| LakeError::arrow(format!("schema inference for {}", self.table), e))
    }

    fn first_line_with_key(&self, key: &str) -> i64 {
        (0..self.chunk.len())
            .find(|&i| {
                let mut found = false;
                let _ = strict::check_object_keys(self.chunk.record(i).as_bytes(), |k, _| {
                    found |= decode_key(k) == key;
                });
                found
            })
            .map_or(0, |i| self.chunk.records.lines[i])
    }

    /// Decodes record by record to name the line a chunk-level error came from.
    fn locate_decode_error(&self, failed: Failed) -> LakeError {
        let Failed {
            error,
            schema,
            records,
        } = failed;
        for i in 0..records.len() {
            if let Err(e) = decode(&schema, records.record(i).as_bytes(), 1, false) {
                return LakeError::Schema {
                    table: self.table.to_string(),
                    message: format!(
                        "line {} of {}: {e} (schema policy {:?})",
                        records.lines[i], self.source_file, self.options.schema_policy
                    ),
                };
            }
        }
        LakeError::arrow(
            format!("decoding a batch of {} ({})", self.table, self.source_file),
            error,
        )
    }
}

/// A schema for `values`, which arrow-json's inference refused with
/// `first_error`: it refuses the whole sample when one key's values differ
/// in kind (an object in one record, a string or a list in another, at any
/// depth), and hostile input must not stop a batch. Such a key becomes a
/// text column: its text-like values (strings, numbers, booleans) land
/// there, the others are null there (the decoder ignores type conflicts),
/// and every record stays whole in `_raw`. The other keys are inferred as
/// usual. `first_error` comes back when no single key is to blame.
fn infer_tolerant(
    mut values: Vec<serde_json::Value>,
    first_error: arrow::error::ArrowError,
) -> std::result::Result<Schema, arrow::error::ArrowError> {
    let infer = |values: &[serde_json::Value]| {
        arrow_json::reader::infer_json_schema_from_iterator(values.iter().cloned().map(Ok))
    };
    // Which keys disagree: each key's values inferred on their own.
    let mut keys: Vec<String> = Vec::new();
    for value in &values {
        if let serde_json::Value::Object(map) = value {
            for key in map.keys() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }
    let conflicting: Vec<String> = keys
        .into_iter()
        .filter(|key| {
            let alone: Vec<serde_json::Value> = values
                .iter()
                .filter_map(|v| v.get(key.as_str()))
                .map(|v| serde_json::json!({ key.as_str(): v }))
                .collect();
            infer(&alone).is_err()
        })
        .collect();
    if conflicting.is_empty() {
        return Err(first_error);
    }
    for value in &mut values {
        if let serde_json::Value::Object(map) = value {
            for key in &conflicting {
                map.remove(key);
            }
        }
    }
    let rest = infer(&values)?;
    let mut fields: Vec<Field> = rest.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        conflicting
            .iter()
            .map(|key| Field::new(key, DataType::Utf8, true)),
    );
    Ok(Schema::new(fields))
}

fn decode(
    schema: &SchemaRef,
    text: &[u8],
    rows: usize,
    ignore_conflicts: bool,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(rows.max(1))
        .with_coerce_primitive(true)
        .with_strict_mode(false)
        .with_ignore_type_conflicts(ignore_conflicts)
        .build_decoder()?;
    let mut rest = text;
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

/// How many levels of structs, lists and maps `data_type` nests.
pub(super) fn nesting_depth(data_type: &DataType) -> usize {
    match data_type {
        DataType::Struct(fields) => {
            1 + fields
                .iter()
                .map(|f| nesting_depth(f.data_type()))
                .max()
                .unwrap_or(0)
        }
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _)
        | DataType::Map(item, _) => 1 + nesting_depth(item.data_type()),
        _ => 0,
    }
}

fn decode_key(raw: &[u8]) -> String {
    if raw.contains(&b'\\') {
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(raw);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted)
            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
    } else {
        String::from_utf8_lossy(raw).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use chrono::Utc;
    use lake_core::InputFormat;

    use super::*;

    fn reader<'a>(table: &'a TableId, options: &'a BronzeOptions) -> JsonReader<'a> {
        let batch = RawBatch::from_bytes("b1", InputFormat::JsonLines, Vec::new()).unwrap();
        let lineage = Lineage::new(&batch, table, Utc::now());
        JsonReader::new(table, &batch, options, None, lineage)
    }

    fn raw_values(batches: &[RecordBatch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|batch| {
                let raw = batch
                    .column_by_name(columns::RAW)
                    .unwrap()
                    .as_string::<i32>();
                (0..raw.len())
                    .map(|i| raw.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn records_decode_back_to_back_and_keep_their_exact_text_in_raw() {
        let table = TableId::bronze("shop", "orders").unwrap();
        let options = BronzeOptions::default();
        let mut reader = reader(&table, &options);
        let input = "{\"a\":1}\r\n  {\"a\":2 ,\"b\":\"x\"}\n\n{\"a\":3}";
        reader.feed(input.as_bytes()).unwrap();
        let outcome = reader.finish().await.unwrap();
        assert_eq!((outcome.rows, outcome.blank), (3, 1));
        assert_eq!(
            raw_values(&outcome.batches),
            ["{\"a\":1}", "  {\"a\":2 ,\"b\":\"x\"}", "{\"a\":3}"]
        );
        let a = outcome.batches[0].column_by_name("a").unwrap();
        let a = a.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(a.values().to_vec(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn long_records_are_decoded_in_chunks_bounded_by_bytes() {
        let table = TableId::bronze("shop", "orders").unwrap();
        let options = BronzeOptions::default();
        let mut reader = reader(&table, &options);
        // Five records of a fifth of the byte bound each, then five more:
        // far fewer rows than `batch_rows`, yet more than one chunk.
        let pad = "x".repeat(CHUNK_BYTES / 5);
        let records: Vec<String> = (0..10)
            .map(|i| format!("{{\"id\":{i},\"note\":\"{pad}\"}}"))
            .collect();
        for record in &records {
            reader.feed(record.as_bytes()).unwrap();
            reader.feed(b"\n").unwrap();
        }
        let outcome = reader.finish().await.unwrap();
        assert!(
            outcome.batches.len() >= 2,
            "{} chunk(s)",
            outcome.batches.len()
        );
        assert!(outcome.batches.iter().all(|b| b.num_rows() <= 5));
        assert_eq!(raw_values(&outcome.batches), records);
    }
}
