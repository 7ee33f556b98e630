//! Replacing the SCD2 rows a run's events can change, file by file.
//!
//! deltalake's `replaceWhere` rewrites every file holding a row its
//! predicate selects, and writes the rows it keeps together with the new
//! rows, one file per partition. Closed versions therefore sat in one file
//! per bucket, and since every run closes some version, that file matched
//! on every run and was copied whole: each run rewrote the entire history
//! (3.8 M rows in the large workload's last batch, most of its merge time).
//!
//! This commit is built from deltalake's own parts (its Parquet writer, its
//! statistics, its commit builder and conflict checks), with two changes:
//! - A row is replaced only when an event of the run can change it: its key
//!   has an event in the run, and the row is current or ended at or after
//!   that key's earliest event in the run ([`Changes`]). The earliest event
//!   is taken per key, not over the whole run, so one late event does not
//!   reopen the history of every other key.
//! - Closed rows, kept and new, are written sorted by their end into files
//!   of at most [`CLOSED_FILE_ROWS`] rows. What a later run changes
//!   (versions that ended recently) then sits in the newest files, and
//!   older files are skipped from their statistics (their greatest end)
//!   without being read.
//!
//! Current rows are replaced differently on a table with deletion vectors
//! (see [`SilverSpec::deletion_vectors`](crate::SilverSpec)): with keys
//! spread over buckets, nearly every current file holds a key of every run,
//! so copying the rest of each file cost more than the run's own rows. The
//! rows that change are marked deleted in a deletion vector (the `deletion`
//! module) and the file stays; only the key columns are decoded to find
//! them. A file is rewritten instead once fewer than half its rows would be
//! left, and a bucket's small files (under an eighth of its rows) are
//! rewritten with the new rows, as are its smallest past
//! [`CURRENT_FILES_PER_BUCKET`]. On a table without deletion vectors every
//! current file holding a changed row is rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Int32Array, RecordBatch,
    RecordBatchReader,
};
use arrow::compute::kernels::boolean::and_not;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use bytes::Bytes;
use delta_kernel::expressions::Scalar;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, LogicalFileView, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use indexmap::IndexMap;
use lake_core::maintenance::rewrite_fence;
use lake_core::object_store::path::Path;
use lake_core::{LakeError, Result, StorageExt, StorageRef, TableId, Touched};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use roaring::RoaringTreemap;
use tokio::task::JoinSet;

use super::{
    conform, deletion, history_writer_properties, silver_writer_properties, sorted_for_readers,
};
use crate::engine::KeySet;
use crate::spec::KEY_BUCKET;

/// Most rows in one file of closed versions. Small enough that the newest
/// file of a bucket, which most runs rewrite, is cheap to copy; large enough
/// that the history of a million keys fits in a few hundred files.
pub const CLOSED_FILE_ROWS: usize = 32 * 1024;

/// The rows a run's events can change: those of the run's keys that are
/// current or ended at or after the key's earliest event in the run.
///
/// A version that ended before the key's earliest new event is final: its
/// values come from events up to its end, and no new event lands there, so
/// recomputing the key gives it again unchanged. Every event a run plans
/// is among the run's own or was planned before, so this holds after a run
/// that failed past the event-log commit too.
#[derive(Debug)]
pub(crate) struct Changes {
    keys: Arc<KeySet>,
    key_columns: Vec<String>,
    valid_to: String,
    /// At the key set's row of each key (its first event in the run), the
    /// key's earliest sequence, as an integer.
    earliest: Vec<i64>,
    /// The earliest sequence of the run.
    first: i64,
}

impl Changes {
    /// The changes of a run whose events have `sequence` (an integer, date
    /// or timestamp column, the type of the validity columns) and `keys`
    /// (the columns `keys` was built from).
    pub(crate) fn new(
        keys: Arc<KeySet>,
        key_columns: Vec<String>,
        valid_to: String,
        key_values: &[ArrayRef],
        sequence: &ArrayRef,
    ) -> std::result::Result<Option<Self>, arrow::error::ArrowError> {
        let sequence = arrow::compute::cast(sequence, &DataType::Int64)?;
        let sequence = sequence.as_primitive::<Int64Type>();
        let positions = keys.positions(key_values)?;
        let mut earliest = vec![i64::MAX; sequence.len()];
        let mut first = None::<i64>;
        for (row, position) in positions.iter().enumerate() {
            if let Some(position) = position
                && sequence.is_valid(row)
            {
                let value = sequence.value(row);
                let slot = &mut earliest[*position as usize];
                *slot = (*slot).min(value);
                first = Some(first.map_or(value, |f| f.min(value)));
            }
        }
        Ok(first.map(|first| Self {
            keys,
            key_columns,
            valid_to,
            earliest,
            first,
        }))
    }

    /// Which rows of `batch` (with the key and validity columns) may change.
    pub(crate) fn mask(
        &self,
        batch: &RecordBatch,
    ) -> std::result::Result<BooleanArray, arrow::error::ArrowError> {
        let missing =
            |name: &str| arrow::error::ArrowError::SchemaError(format!("column `{name}` missing"));
        let keys = self
            .key_columns
            .iter()
            .map(|name| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| missing(name))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let to = batch
            .column_by_name(&self.valid_to)
            .ok_or_else(|| missing(&self.valid_to))?;
        let to = arrow::compute::cast(to, &DataType::Int64)?;
        let to = to.as_primitive::<Int64Type>();
        let positions = self.keys.positions(&keys)?;
        Ok(positions
            .iter()
            .enumerate()
            .map(|(row, position)| {
                Some(
                    position.is_some_and(|p| {
                        to.is_null(row) || to.value(row) >= self.earliest[p as usize]
                    }),
                )
            })
            .collect())
    }

    /// The rows of `batch` that may change.
    pub(crate) fn select(&self, batch: &RecordBatch, id: &TableId) -> Result<RecordBatch> {
        let fail = |e| LakeError::arrow(id.to_string(), e);
        let mask = self.mask(batch).map_err(fail)?;
        arrow::compute::filter_record_batch(batch, &mask).map_err(fail)
    }
}

/// What [`replace_changed`] replaces and with what.
pub(crate) struct ChangedRows<'a> {
    /// The SCD2 table, partitioned by bucket and current flag.
    pub silver: &'a DeltaTable,
    /// Its id, for errors.
    pub id: &'a TableId,
    /// Its schema, partition columns included.
    pub schema: &'a SchemaRef,
    /// Its partition columns: the key bucket, then the current flag.
    pub partitions: &'a [String],
    /// The buckets of the run's keys.
    pub buckets: &'a BTreeSet<i32>,
    /// How many buckets the table has.
    pub bucket_count: u32,
    /// The rows that may change.
    pub changes: Arc<Changes>,
    /// The cluster column of current rows, if any.
    pub cluster_by: Option<&'a str>,
    /// The `valid_from` column.
    pub valid_from: &'a str,
    /// Columns written without a dictionary.
    pub plain: Vec<String>,
}

/// Most files of current rows in one bucket after a run, on a table with
/// deletion vectors; a run rewrites the smallest of any more, with its new
/// rows, so that many runs do not leave many small files.
pub const CURRENT_FILES_PER_BUCKET: usize = 8;

/// A file of current rows holding less than this fraction (one in ...) of
/// its bucket's current rows is rewritten with the run's new rows.
const SMALL_CURRENT_FILE: i64 = 8;

/// A file of the table, read because it may hold rows that change.
struct Candidate {
    file: LogicalFileView,
    bucket: i32,
    current: bool,
    /// Rewritten whether or not a row of it changes (see
    /// [`CURRENT_FILES_PER_BUCKET`]).
    compact: bool,
}

impl Candidate {
    /// Rows not deleted, as the log tells.
    fn live_rows(&self) -> i64 {
        let rows = self.file.num_records().map_or(i64::MAX, |n| n as i64);
        let deleted = self
            .file
            .deletion_vector_descriptor()
            .map_or(0, |dv| dv.cardinality);
        rows.saturating_sub(deleted)
    }
}

/// What happens to a candidate file.
enum Outcome {
    /// No row of it changes.
    Unchanged,
    /// It is removed and these rows of it are written again.
    Rewritten(Candidate, RecordBatch),
    /// It stays, with these rows (positions in the file) deleted.
    Marked(Candidate, RoaringTreemap),
}

/// What a read of a candidate file gives.
type Read = Result<Outcome>;

/// The files a run removes and the rows they keep, by partition, and the
/// files it keeps with rows deleted.
#[derive(Default)]
struct Kept {
    removed: Vec<Action>,
    current: Vec<RecordBatch>,
    closed: BTreeMap<i32, Vec<RecordBatch>>,
    marked: Vec<(LogicalFileView, RoaringTreemap)>,
}

impl Kept {
    /// Adds the outcome of one read task, if there was one.
    fn take(
        &mut self,
        read: Option<std::result::Result<Read, tokio::task::JoinError>>,
        id: &TableId,
    ) -> Result<()> {
        let Some(read) = read else { return Ok(()) };
        let read = read.map_err(|e| LakeError::other(format!("reading {id}"), e))?;
        match read? {
            Outcome::Unchanged => {}
            Outcome::Rewritten(candidate, kept) => {
                self.removed
                    .push(Action::Remove(candidate.file.remove_action(true)));
                if candidate.current {
                    self.current.push(kept);
                } else {
                    self.closed.entry(candidate.bucket).or_default().push(kept);
                }
            }
            Outcome::Marked(candidate, deleted) => self.marked.push((candidate.file, deleted)),
        }
        Ok(())
    }
}

/// Replaces the rows `target.changes` selects with `rows` (the recomputed
/// rows of the same selection, in `target.schema`) and moves the bookmark
/// (its transactions `bookmark`), in one commit, once `before` has finished (the event log's
/// commit, written meanwhile); the new version, and what `before` gave.
/// Nothing is committed if `before` fails.
pub(crate) async fn replace_changed<T>(
    storage: &StorageRef,
    target: ChangedRows<'_>,
    rows: RecordBatch,
    bookmark: Vec<Transaction>,
    touched: &Touched,
    before: impl Future<Output = Result<T>>,
) -> Result<(u64, T)> {
    let ChangedRows {
        silver,
        id,
        schema,
        partitions,
        buckets,
        bucket_count,
        changes,
        cluster_by,
        valid_from,
        plain,
    } = target;
    let [bucket_column, current_column] = partitions else {
        return Err(LakeError::Schema {
            table: id.to_string(),
            message: format!(
                "expected partitions `{KEY_BUCKET}` and the current flag, found {partitions:?}"
            ),
        });
    };
    let snapshot = silver
        .snapshot()
        .map_err(|e| LakeError::delta(id.to_string(), e))?;
    let valid_to = changes.valid_to.clone();
    let mut candidates: Vec<Candidate> = snapshot
        .log_data()
        .iter()
        .filter_map(|file| {
            let values = file.partition_values_map();
            let bucket = values.get(bucket_column)?.as_deref()?.parse().ok()?;
            let current = values.get(current_column)?.as_deref()? == "true";
            let may_change = buckets.contains(&bucket)
                && (current || greatest(&file, &valid_to).is_none_or(|end| end >= changes.first));
            may_change.then_some(Candidate {
                file,
                bucket,
                current,
                compact: false,
            })
        })
        .collect();
    // Current rows that change are marked deleted where the table takes
    // deletion vectors, so a new file per bucket per run holds the new
    // current rows; small files, and the smallest past a few, are
    // rewritten instead.
    let marks = deletion::enabled(snapshot);
    if marks {
        let mut current: BTreeMap<i32, Vec<&mut Candidate>> = BTreeMap::new();
        for candidate in candidates.iter_mut().filter(|c| c.current) {
            current.entry(candidate.bucket).or_default().push(candidate);
        }
        for files in current.values_mut() {
            let excess = (files.len() + 1).saturating_sub(CURRENT_FILES_PER_BUCKET);
            let live: i64 = files.iter().map(|c| c.live_rows()).sum();
            files.sort_by_key(|c| c.live_rows());
            for (at, candidate) in files.iter_mut().enumerate() {
                // Small files too: a reader opens every file, and opening
                // one costs about as much as decoding thousands of rows.
                let small = candidate.live_rows() * SMALL_CURRENT_FILE < live;
                candidate.compact = at < excess || small;
            }
        }
    }

    // Every candidate is read and split on its own task; a file without a
    // row that changes stays as it is.
    let root = storage.object_path(&storage.layout().table_location(id))?;
    let mut reads = JoinSet::new();
    let mut kept = Kept::default();
    for candidate in candidates {
        // A bounded number of files in memory as bytes at once.
        if reads.len() >= 2 * crate::engine::cores() {
            kept.take(reads.join_next().await, id)?;
        }
        let store = storage.object_store();
        let location = Path::from_iter(
            root.parts()
                .chain(candidate.file.object_store_path().parts()),
        );
        let (schema, changes, id) = (Arc::clone(schema), Arc::clone(&changes), id.clone());
        let partition_columns = [bucket_column.clone(), current_column.clone()];
        let root = root.clone();
        reads.spawn(async move {
            let bytes = crate::engine::fetch(store.as_ref(), &location).await?;
            let deleted = match candidate.file.deletion_vector_descriptor() {
                Some(dv) => Some(
                    lake_core::deletion_vectors::read(store.as_ref(), &root, &dv, &id.to_string())
                        .await?,
                ),
                None => None,
            };
            let file = File {
                bytes,
                location: &location,
                schema: &schema,
                partition_columns: &partition_columns,
                id: &id,
            };
            split(file, candidate, deleted, &changes, marks)
        });
    }
    while !reads.is_empty() {
        kept.take(reads.join_next().await, id)?;
    }
    let Kept {
        mut removed,
        mut current,
        mut closed,
        marked,
    } = kept;
    // One file holds the deletion vectors of the commit; each marked file
    // is removed and added again with its new one.
    let (files, vectors): (Vec<_>, Vec<_>) = marked.into_iter().unzip();
    let vectors = deletion::write(storage.object_store().as_ref(), &root, &vectors, id).await?;
    for (file, dv) in files.iter().zip(vectors) {
        removed.push(Action::Remove(file.remove_action(true)));
        #[allow(deprecated)] // the add action of a file view, as deltalake's own deletes build it
        let mut add = file.add_action();
        add.data_change = true;
        add.deletion_vector = Some(dv);
        // Its statistics still count the deleted rows' values.
        add.stats = add.stats.map(|stats| loose_bounds(&stats));
        removed.push(Action::Add(add));
    }
    // The new rows: current ones sort with the kept current rows, closed
    // ones join their bucket's kept closed rows.
    let fresh = rows;
    let flag = fresh
        .column_by_name(current_column)
        .and_then(|c| c.as_boolean_opt())
        .ok_or_else(|| missing(id, current_column))?
        .clone();
    let fail = |e| LakeError::arrow(id.to_string(), e);
    let fresh_closed =
        arrow::compute::filter_record_batch(&fresh, &arrow::compute::not(&flag).map_err(fail)?)
            .map_err(fail)?;
    current.push(arrow::compute::filter_record_batch(&fresh, &flag).map_err(fail)?);
    for (bucket, rows) in split_by_bucket(&fresh_closed, id)? {
        closed.entry(bucket).or_default().push(rows);
    }

    // Sorting is CPU work: off the async workers (see `engine::cpu`).
    let (order_by, from) = (cluster_by.map(str::to_string), valid_from.to_string());
    let parts = crate::engine::cpu("sorting current rows", move || {
        sorted_for_readers(current, order_by.as_deref(), &from, bucket_count)
    })
    .await?;
    let properties = silver_writer_properties(&plain);
    let history_properties = history_writer_properties(&plain);
    let mut writes = JoinSet::new();
    let part_count = parts.len() as i32;
    for (part, rows) in parts.into_iter().enumerate() {
        // The part's buckets (as `sorted_for_readers` assigns them).
        let closed: Vec<(i32, Vec<RecordBatch>)> = closed
            .extract_if(.., |bucket, _| {
                bucket.rem_euclid(part_count) as usize == part
            })
            .collect();
        let mut writer = RecordBatchWriter::for_table(silver)
            .map_err(|e| LakeError::delta(id.to_string(), e))?
            .with_writer_properties(properties.clone());
        let mut history = RecordBatchWriter::for_table(silver)
            .map_err(|e| LakeError::delta(id.to_string(), e))?
            .with_writer_properties(history_properties.clone());
        let (schema, valid_to, id) = (Arc::clone(schema), valid_to.clone(), id.clone());
        let first = changes.first;
        let (bucket_column, current_column) = (bucket_column.clone(), current_column.clone());
        writes.spawn(async move {
            let delta = |e| LakeError::delta(id.to_string(), e);
            let partition = |bucket: i32, current: bool| {
                IndexMap::from([
                    (bucket_column.clone(), Scalar::Integer(bucket)),
                    (current_column.clone(), Scalar::Boolean(current)),
                ])
            };
            let mut adds = Vec::new();
            for (bucket, rows) in split_by_bucket(&rows, &id)? {
                writer
                    .write_partition(rows, &partition(bucket, true), WriteMode::Default)
                    .await
                    .map_err(delta)?;
            }
            for (bucket, rows) in closed {
                let (rows, settled) = by_end(&schema, rows, &valid_to, first, &id)?;
                for (at, len) in file_slices(settled, rows.num_rows()) {
                    history
                        .write_partition(
                            rows.slice(at, len),
                            &partition(bucket, false),
                            WriteMode::Default,
                        )
                        .await
                        .map_err(delta)?;
                    // One file per slice: the next slice starts a new one.
                    adds.extend(history.flush().await.map_err(delta)?);
                }
            }
            adds.extend(writer.flush().await.map_err(delta)?);
            Ok::<_, LakeError>(adds)
        });
    }
    let mut actions = removed;
    while let Some(written) = writes.join_next().await {
        let adds = written.map_err(|e| LakeError::other(format!("writing {id}"), e))??;
        actions.extend(adds.into_iter().map(Action::Add));
    }

    let before = before.await?;
    // With the fence, a compaction that replaced a file this commit read
    // makes it conflict (see `lake_core::maintenance`).
    let properties = CommitProperties::default()
        .with_application_transactions(bookmark)
        .with_application_transaction(rewrite_fence())
        .with_metadata([touched.to_commit_metadata()]);
    // The files read: those of the run's buckets. The conflict check of a
    // concurrent commit compares against this.
    let read = format!(
        "{bucket_column} IN ({})",
        buckets
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(partitions.to_vec()),
        predicate: Some(read),
    };
    let commit = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(snapshot), silver.log_store(), operation)
        .await
        .map_err(|e| LakeError::delta(id.to_string(), e))?;
    Ok((commit.version, before))
}

/// The greatest value of `column` in `file` as an integer, from the file's
/// statistics; `None` when they do not say.
pub(crate) fn greatest(file: &LogicalFileView, column: &str) -> Option<i64> {
    let Scalar::Struct(values) = file.max_values()? else {
        return None;
    };
    let at = values.fields().iter().position(|f| f.name() == column)?;
    match &values.values()[at] {
        Scalar::Timestamp(v) | Scalar::TimestampNtz(v) | Scalar::Long(v) => Some(*v),
        Scalar::Integer(v) | Scalar::Date(v) => Some(i64::from(*v)),
        Scalar::Short(v) => Some(i64::from(*v)),
        Scalar::Byte(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// `stats` (a file's statistics in the log) saying that its bounds may be
/// wider than its rows' values: the file has a deletion vector now.
fn loose_bounds(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(stats) {
        Ok(mut parsed) => {
            parsed.insert("tightBounds".to_string(), serde_json::Value::Bool(false));
            serde_json::Value::Object(parsed).to_string()
        }
        Err(_) => stats.to_string(),
    }
}

/// A data file of the table, fetched.
struct File<'a> {
    bytes: Bytes,
    location: &'a Path,
    schema: &'a SchemaRef,
    partition_columns: &'a [String; 2],
    id: &'a TableId,
}

/// What happens to `candidate`, read as `file`, whose rows at `deleted`
/// are deleted already. With `marks`, current rows that change are marked
/// deleted unless that leaves fewer than half the file's rows: only the
/// key and end columns are decoded to tell. Otherwise a file with a row
/// that changes is rewritten without it (and without its deleted rows).
fn split(
    file: File<'_>,
    candidate: Candidate,
    deleted: Option<RoaringTreemap>,
    changes: &Changes,
    marks: bool,
) -> Read {
    let fail = |e| LakeError::arrow(format!("{} file {}", file.id, file.location), e);
    // The rows that change and are not deleted already.
    let changed = |batch: &RecordBatch, deleted: Option<&BooleanArray>| {
        let changed = changes.mask(batch).map_err(fail)?;
        match deleted {
            Some(deleted) => and_not(&changed, deleted).map_err(fail),
            None => Ok(changed),
        }
    };
    if marks && candidate.current && !candidate.compact {
        let mut columns = changes.key_columns.clone();
        columns.push(changes.valid_to.clone());
        let batch = read_file(&file, &candidate, Some(&columns))?;
        let flags = deleted.as_ref().map(|d| positions(d, batch.num_rows()));
        let changed = changed(&batch, flags.as_ref())?;
        let count = changed.true_count() as u64;
        if count == 0 {
            return Ok(Outcome::Unchanged);
        }
        let rows = batch.num_rows() as u64;
        let mut deleted = deleted.unwrap_or_default();
        let left = rows.saturating_sub(deleted.len() + count);
        if 2 * left >= rows {
            deleted.extend(changed.values().set_indices().map(|i| i as u64));
            return Ok(Outcome::Marked(candidate, deleted));
        }
        let batch = read_file(&file, &candidate, None)?;
        return rewrite(batch, &changed, flags.as_ref(), candidate, fail);
    }
    let batch = read_file(&file, &candidate, None)?;
    let flags = deleted.as_ref().map(|d| positions(d, batch.num_rows()));
    let changed = changed(&batch, flags.as_ref())?;
    if changed.true_count() == 0 && !candidate.compact {
        return Ok(Outcome::Unchanged);
    }
    rewrite(batch, &changed, flags.as_ref(), candidate, fail)
}

/// `candidate` rewritten with the rows of `batch` that neither change nor
/// are `deleted`.
fn rewrite(
    batch: RecordBatch,
    changed: &BooleanArray,
    deleted: Option<&BooleanArray>,
    candidate: Candidate,
    fail: impl Fn(arrow::error::ArrowError) -> LakeError,
) -> Read {
    let gone = match deleted {
        Some(deleted) => arrow::compute::or(changed, deleted).map_err(&fail)?,
        None => changed.clone(),
    };
    let kept = arrow::compute::not(&gone).map_err(&fail)?;
    let kept = arrow::compute::filter_record_batch(&batch, &kept).map_err(&fail)?;
    Ok(Outcome::Rewritten(candidate, kept))
}

/// `rows` flags, set at `deleted`.
fn positions(deleted: &RoaringTreemap, rows: usize) -> BooleanArray {
    let mut flags = BooleanBufferBuilder::new(rows);
    flags.append_n(rows, false);
    for row in deleted.iter().take_while(|&r| r < rows as u64) {
        flags.set_bit(row as usize, true);
    }
    BooleanArray::new(flags.finish(), None)
}

/// The rows of a data file (every row, deleted or not, in file order): with
/// `only`, those columns in `schema`'s types; otherwise in `schema`, its
/// partition columns set from the file's partition.
fn read_file(
    file: &File<'_>,
    candidate: &Candidate,
    only: Option<&[String]>,
) -> Result<RecordBatch> {
    let File {
        bytes,
        location,
        schema,
        partition_columns: [bucket_column, current_column],
        id,
    } = file;
    let parquet =
        |e: parquet::errors::ParquetError| LakeError::other(format!("{id} file {location}"), e);
    let arrow = |e| LakeError::arrow(format!("{id} file {location}"), e);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(parquet)?;
    if let Some(columns) = only {
        let mask =
            ProjectionMask::columns(builder.parquet_schema(), columns.iter().map(String::as_str));
        builder = builder.with_projection(mask);
    }
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    // The whole file as one batch: the rows it keeps are filtered once,
    // without concatenating batches first.
    let reader = builder
        .with_batch_size(rows.max(1))
        .build()
        .map_err(parquet)?;
    let file_schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(arrow)?;
    let batch = match batches.as_slice() {
        [one] => one.clone(),
        _ => arrow::compute::concat_batches(&file_schema, &batches).map_err(arrow)?,
    };
    if let Some(columns) = only {
        let indices = columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(arrow)?;
        let projected = Arc::new(schema.project(&indices).map_err(arrow)?);
        return conform(batch, &projected, id);
    }
    // Partition values are not in the file.
    let rows = batch.num_rows();
    let mut fields = file_schema.fields().to_vec();
    let mut columns = batch.columns().to_vec();
    fields.push(Arc::new(Field::new(bucket_column, DataType::Int32, false)));
    columns.push(Arc::new(Int32Array::from(vec![candidate.bucket; rows])));
    fields.push(Arc::new(Field::new(
        current_column,
        DataType::Boolean,
        false,
    )));
    columns.push(Arc::new(BooleanArray::from(vec![candidate.current; rows])));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow)?;
    conform(batch, schema, id)
}

/// The rows of each bucket of `rows`, in their order.
fn split_by_bucket(rows: &RecordBatch, id: &TableId) -> Result<Vec<(i32, RecordBatch)>> {
    let buckets = rows
        .column_by_name(KEY_BUCKET)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
        .ok_or_else(|| missing(id, KEY_BUCKET))?;
    let distinct: BTreeSet<i32> = buckets.values().iter().copied().collect();
    let fail = |e| LakeError::arrow(id.to_string(), e);
    distinct
        .into_iter()
        .map(|bucket| {
            let mask = arrow::compute::kernels::cmp::eq(buckets, &Int32Array::new_scalar(bucket))
                .map_err(fail)?;
            Ok((
                bucket,
                arrow::compute::filter_record_batch(rows, &mask).map_err(fail)?,
            ))
        })
        .collect()
}

/// `rows` as one batch sorted by `valid_to`, and how many of them ended
/// before `first`, the run's earliest event.
fn by_end(
    schema: &SchemaRef,
    rows: Vec<RecordBatch>,
    valid_to: &str,
    first: i64,
    id: &TableId,
) -> Result<(RecordBatch, usize)> {
    let fail = |e| LakeError::arrow(id.to_string(), e);
    let all = arrow::compute::concat_batches(schema, &rows).map_err(fail)?;
    let ends = all
        .column_by_name(valid_to)
        .ok_or_else(|| missing(id, valid_to))?;
    let order = arrow::compute::sort_to_indices(ends, None, None).map_err(fail)?;
    let all = arrow::compute::take_record_batch(&all, &order).map_err(fail)?;
    let ends = arrow::compute::cast(&all[valid_to], &DataType::Int64).map_err(fail)?;
    let ends = ends.as_primitive::<Int64Type>();
    // Closed rows all have an end; nulls, were there any, sort first and
    // go with the settled ones.
    let nulls = ends.null_count();
    let settled = nulls + ends.values()[nulls..].partition_point(|&end| end < first);
    let settled = settled.min(all.num_rows());
    Ok((all, settled))
}

/// The row ranges `(start, length)` of the files of `rows` closed rows
/// sorted by end, the first `settled` of which ended before the run's
/// earliest event. Those go to files apart from the others: the next run's
/// late events reach back about as far as this run's did, so its changes
/// fall into the files of the recent ones, and the settled files are
/// skipped from their statistics. Each file holds at most
/// [`CLOSED_FILE_ROWS`] rows.
fn file_slices(settled: usize, rows: usize) -> Vec<(usize, usize)> {
    let mut slices = Vec::new();
    for (start, end) in [(0, settled), (settled, rows)] {
        let mut at = start;
        while at < end {
            let len = CLOSED_FILE_ROWS.min(end - at);
            slices.push((at, len));
            at += len;
        }
    }
    slices
}

fn missing(id: &TableId, column: &str) -> LakeError {
    LakeError::Schema {
        table: id.to_string(),
        message: format!("column `{column}` missing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_rows_get_files_apart_and_no_file_is_too_large() {
        assert_eq!(file_slices(0, 0), []);
        assert_eq!(file_slices(0, 10), [(0, 10)]);
        assert_eq!(file_slices(10, 10), [(0, 10)]);
        assert_eq!(file_slices(4, 10), [(0, 4), (4, 6)]);
        let n = CLOSED_FILE_ROWS;
        assert_eq!(
            file_slices(n + 5, 3 * n),
            [(0, n), (n, 5), (n + 5, n), (2 * n + 5, n - 5)]
        );
    }
}
