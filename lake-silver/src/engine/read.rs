//! The first phases of a run: where the slice of bronze it processes starts
//! and ends (the bookmark, a bound on rows per commit), and the rows bronze
//! added in it.
//!
//! Bronze only appends rows, so the `add` actions of its commits after the
//! bookmark are exactly the new rows (those with `dataChange: true`: a
//! compaction's adds hold rows read before); the files are read directly
//! instead of through a scan with a version filter, which Delta does not
//! offer. A commit whose files a compaction has since replaced is read by
//! its batch id from the files that hold its rows now (see
//! [`read_added_rows`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use lake_core::object_store::path::Path;
use lake_core::{
    Bookmark, BookmarkState, LakeError, Result, StorageExt, StorageRef, TableId, VersionRange,
    changes_data, commit_actions,
};
use tracing::warn;

use lake_core::maintenance::{add_partition, hive_path};

use super::check_buckets;
use crate::spec::SilverSpec;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The lineage columns every bronze row carries, which quarantine keeps.
pub(crate) const LINEAGE: [&str; 4] = ["_raw", BATCH_ID, "_source_file", "_source_line"];

/// The column naming the delivered batch a bronze row came in.
const BATCH_ID: &str = "_batch_id";

/// The bronze commits one run processes, and the tables as they were when
/// it started.
pub(super) struct Slice {
    /// The bronze table, at its latest version.
    pub bronze: DeltaTable,
    /// The silver table, at the bookmark (not yet created on a first run).
    pub silver: DeltaTable,
    /// The first and last bronze version of the slice.
    pub first: u64,
    /// The last bronze version of the slice.
    pub last: u64,
    /// Bronze's latest version: more slices follow when `last` is before it.
    pub latest: u64,
    /// Whether the slice replaces the silver tables (asked for, or the
    /// bronze table was created again).
    pub rebuild: bool,
}

impl Slice {
    /// The slice after `app_id`'s bookmark, or none when silver has seen
    /// every bronze version (or bronze has none).
    pub(super) async fn next(
        storage: &StorageRef,
        spec: &SilverSpec,
        app_id: &str,
        rebuild: bool,
    ) -> Result<Option<Self>> {
        let layout = storage.layout();
        let bronze = storage
            .open_table(&layout.table_location(&spec.source))
            .await?;
        let Some(latest) = bronze.version() else {
            return Ok(None);
        };
        let target = &spec.target;
        let silver = storage.open_table(&layout.table_location(target)).await?;
        check_buckets(&silver, target, spec)?;
        let source_name = spec.source.to_string();
        let state = match rebuild {
            true => BookmarkState::Unset,
            false => {
                Bookmark::new(app_id)
                    .read(&silver, &target.to_string(), &bronze, &source_name)
                    .await?
            }
        };
        // A bronze table created again holds other rows than the ones the
        // history came from: everything is recomputed from it.
        let (bookmark, rebuild) = match state {
            BookmarkState::At(read) => (Some(read), false),
            BookmarkState::Replaced { reason } => {
                warn!(table = %target, %reason, "source replaced: rebuilding");
                (None, true)
            }
            _ => (None, rebuild),
        };
        // A first run replays bronze from its first commit, as a rebuild does.
        if (rebuild || bookmark.is_none())
            && let Some(horizon) = trimmed_before(&bronze, &source_name)?
        {
            return Err(LakeError::config(
                format!("rebuild of {target}"),
                format!(
                    "{source_name} was trimmed by retention (it holds nothing ingested before {horizon}), so {target} cannot be recomputed from it: the versions the removed rows made would be lost. Keep the silver table as it is, or rebuild it from a bronze table with its full history"
                ),
            ));
        }
        if bookmark.is_some_and(|b| b >= latest) {
            return Ok(None);
        }
        let first = bookmark.map_or(0, |b| b + 1);
        // This slice ends where the next commit would pass the row bound.
        let last = slice_end(
            &bronze,
            &source_name,
            (first, latest),
            spec.max_rows_per_commit,
        )
        .await?;
        Ok(Some(Self {
            bronze,
            silver,
            first,
            last,
            latest,
            rebuild,
        }))
    }

    /// The bronze versions read, for the report.
    pub(super) fn versions(&self) -> VersionRange {
        VersionRange::new(self.first, self.last)
    }

    /// The rows bronze added in the slice: the typer's columns and the
    /// lineage, or every column.
    pub(super) async fn read(
        &self,
        storage: &StorageRef,
        spec: &SilverSpec,
        columns: Option<&[&str]>,
    ) -> Result<AddedRows> {
        let projection: Option<Vec<&str>> = columns.map(|columns| {
            let mut all = LINEAGE.to_vec();
            all.extend(columns.iter().filter(|c| !LINEAGE.contains(c)));
            all
        });
        read_added_rows(
            storage,
            &self.bronze,
            &spec.source,
            (self.first, self.last),
            projection.as_deref(),
        )
        .await
    }

    /// The transactions that move `app_id`'s bookmark to the slice's end:
    /// the first (the version read) goes into the event log and quarantine
    /// commits, all of them (version and source id) into the SCD2 commit.
    pub(super) fn transactions(&self, spec: &SilverSpec, app_id: &str) -> Result<Vec<Transaction>> {
        Bookmark::new(app_id).transactions(&self.bronze, &spec.source.to_string(), self.last)
    }
}

/// The first ingestion day `bronze` still holds, when a retention trimmed it.
fn trimmed_before(bronze: &DeltaTable, name: &str) -> Result<Option<String>> {
    let snapshot = bronze.snapshot().map_err(|e| LakeError::delta(name, e))?;
    Ok(snapshot
        .metadata()
        .configuration()
        .get(lake_core::maintenance::TRIMMED_BEFORE)
        .cloned())
}

/// The last bronze version of the slice that starts at `first`: the versions
/// up to `latest` whose added rows (as their commits' statistics count
/// them) stay within `limit`, and at least `first`.
async fn slice_end(
    bronze: &DeltaTable,
    name: &str,
    (first, latest): (u64, u64),
    limit: u64,
) -> Result<u64> {
    let mut rows = 0u64;
    for version in first..=latest {
        let added: u64 = commit_actions(bronze, version, name)
            .await?
            .iter()
            .filter_map(|action| action.get("add").filter(|add| changes_data(add)))
            .filter_map(file_rows)
            .sum();
        if version > first && rows + added > limit {
            return Ok(version - 1);
        }
        rows += added;
    }
    Ok(latest)
}

/// The rows bronze added, in version order, and which version added each.
pub(crate) struct AddedRows {
    /// The rows, as one batch.
    pub(crate) rows: RecordBatch,
    /// Each version read with the number of rows it added, in order.
    versions: Vec<(u64, usize)>,
}

impl AddedRows {
    /// The bronze version of each row, in row order.
    pub(crate) fn row_versions(&self) -> impl Iterator<Item = u64> + '_ {
        self.versions
            .iter()
            .flat_map(|&(version, rows)| std::iter::repeat_n(version, rows))
    }
}

/// The rows of the files bronze added in versions `first..=last`, as one
/// batch: only the `columns` named, or every data column of the table when
/// `None` (a column the files lack, because the table gained it later or
/// their records never had it, is null in their rows).
///
/// A commit whose files are all still live is read from them. One whose
/// files a compaction replaced (maintenance rewrites bronze's small files,
/// `dataChange: false`) is read by its batch instead: every bronze commit
/// holds one delivered batch, named in its [`lake_core::BATCH_COMMIT_METADATA`]
/// and in each row's `_batch_id`, and a compaction keeps rows in their
/// partition, so the commit's rows are the rows of that batch in the live
/// files of the partitions it wrote. Their count must equal the one its
/// files' statistics give: rows retention removed before silver read them
/// are an error naming the commit, never a silent gap.
async fn read_added_rows(
    storage: &StorageRef,
    bronze: &DeltaTable,
    id: &TableId,
    (first, last): (u64, u64),
    columns: Option<&[&str]>,
) -> Result<AddedRows> {
    let name = id.to_string();
    let snapshot = bronze.snapshot().map_err(|e| LakeError::delta(&name, e))?;
    let table_fields: Vec<Field> = match columns {
        Some(_) => Vec::new(),
        None => {
            let partitions = snapshot.metadata().partition_columns().to_vec();
            snapshot
                .snapshot()
                .arrow_schema()
                .fields()
                .iter()
                .filter(|f| !partitions.contains(f.name()))
                .map(|f| f.as_ref().clone())
                .collect()
        }
    };
    let live: HashSet<Path> = snapshot
        .log_data()
        .iter()
        .map(|file| file.object_store_path())
        .collect();
    let root = storage.object_path(&storage.layout().table_location(id))?;
    let store = storage.object_store();
    let mut per_version: Vec<(u64, Vec<RecordBatch>)> = Vec::new();
    let mut moved: Vec<Moved> = Vec::new();
    for version in first..=last {
        let actions = commit_actions(bronze, version, &name).await?;
        // A compaction's files hold rows of earlier versions.
        let adds: Vec<&serde_json::Value> = actions
            .iter()
            .filter_map(|action| action.get("add").filter(|add| changes_data(add)))
            .collect();
        let mut paths = Vec::with_capacity(adds.len());
        for add in &adds {
            let path = add.get("path").and_then(|p| p.as_str()).unwrap_or_default();
            paths.push(Path::from_url_path(path).map_err(|e| LakeError::storage(path, e.into()))?);
        }
        if paths.iter().all(|path| live.contains(path)) {
            let mut batches = Vec::new();
            for relative in &paths {
                let location = Path::from_iter(root.parts().chain(relative.parts()));
                let bytes = crate::engine::fetch(store.as_ref(), &location).await?;
                batches.extend(read_file(bytes, &location, columns)?);
            }
            per_version.push((version, batches));
            continue;
        }
        let Some(batch_id) = lake_core::commit_batch_id(&actions) else {
            return Err(LakeError::not_found(format!(
                "the files commit {version} of {name} added (they were rewritten or removed, and the commit names no batch to find its rows by)"
            )));
        };
        let rows = adds.iter().map(|add| file_rows(add)).sum::<Option<u64>>();
        let Some(rows) = rows else {
            return Err(LakeError::not_found(format!(
                "the row count of commit {version} of {name} (its files were rewritten, and their statistics, which count the rows to find, are missing)"
            )));
        };
        moved.push(Moved {
            version,
            at: per_version.len(),
            batch_id: batch_id.to_string(),
            rows,
            partitions: adds
                .iter()
                .map(|add| add_partition(add))
                .collect::<BTreeSet<_>>(),
        });
        per_version.push((version, Vec::new()));
    }
    if !moved.is_empty() {
        find_moved(
            &mut per_version,
            &moved,
            (bronze, store.as_ref(), &root),
            columns,
            &name,
        )
        .await?;
    }
    let mut batches = Vec::new();
    let mut versions = Vec::with_capacity(per_version.len());
    for (version, rows) in per_version {
        versions.push((version, rows.iter().map(RecordBatch::num_rows).sum()));
        batches.extend(rows);
    }
    Ok(AddedRows {
        rows: unify(batches, table_fields, id)?,
        versions,
    })
}

/// A bronze commit whose files a compaction replaced: its rows are found by
/// its batch id.
struct Moved {
    version: u64,
    /// Its place in the slice's list of versions.
    at: usize,
    batch_id: String,
    /// The rows its files held.
    rows: u64,
    /// The partitions (hive paths) its files were in.
    partitions: BTreeSet<String>,
}

/// Reads the live files of the partitions the `moved` commits wrote, each
/// once, and puts each commit's rows (those with its `_batch_id`) in its
/// place in `per_version`, checking their count.
async fn find_moved(
    per_version: &mut [(u64, Vec<RecordBatch>)],
    moved: &[Moved],
    (bronze, store, root): (
        &DeltaTable,
        &dyn lake_core::object_store::ObjectStore,
        &Path,
    ),
    columns: Option<&[&str]>,
    name: &str,
) -> Result<()> {
    let snapshot = bronze.snapshot().map_err(|e| LakeError::delta(name, e))?;
    let partitions: BTreeSet<&str> = moved
        .iter()
        .flat_map(|m| m.partitions.iter().map(String::as_str))
        .collect();
    let mut candidates: Vec<Path> = snapshot
        .log_data()
        .iter()
        .filter(|file| {
            partitions.contains(hive_path(file.partition_values_map().into_iter()).as_str())
        })
        .map(|file| file.object_store_path())
        .collect();
    candidates.sort();
    let wanted: HashMap<&str, usize> = moved
        .iter()
        .enumerate()
        .map(|(i, m)| (m.batch_id.as_str(), i))
        .collect();
    let mut found: Vec<Vec<RecordBatch>> = vec![Vec::new(); moved.len()];
    for relative in &candidates {
        let location = Path::from_iter(root.parts().chain(relative.parts()));
        let bytes = crate::engine::fetch(store, &location).await?;
        for batch in read_file(bytes, &location, columns)? {
            split_by_batch(&batch, &wanted, &mut found, &location)?;
        }
    }
    // An erasure after a commit removed some of its rows, and says how many.
    let mut erased = None;
    for (m, rows) in moved.iter().zip(found) {
        let count: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
        if count < m.rows && erased.is_none() {
            let first = moved.iter().map(|m| m.version).min().unwrap_or(0);
            erased = Some(lake_core::erasure::erased_after(bronze, first, name).await?);
        }
        let gone = erased
            .as_ref()
            .and_then(|e| e.get(&m.batch_id))
            .copied()
            .unwrap_or(0);
        if count != m.rows.saturating_sub(gone) {
            return Err(LakeError::not_found(format!(
                "{} of the {} rows commit {} of {name} added (batch {:?}, {gone} of them erased since): its files were rewritten or removed, and the live files hold {count} rows of that batch (did retention remove its partition before silver read it?)",
                m.rows.saturating_sub(gone).saturating_sub(count),
                m.rows,
                m.version,
                m.batch_id,
            )));
        }
        per_version[m.at].1 = rows;
    }
    Ok(())
}

/// Appends the rows of `batch` whose `_batch_id` is one of `wanted`'s to
/// that batch's list in `found`.
fn split_by_batch(
    batch: &RecordBatch,
    wanted: &HashMap<&str, usize>,
    found: &mut [Vec<RecordBatch>],
    location: &Path,
) -> Result<()> {
    let fail = |e| LakeError::arrow(format!("bronze file {location}"), e);
    let Some(column) = batch.column_by_name(BATCH_ID) else {
        return Err(LakeError::other(
            format!("bronze file {location}"),
            format!("no {BATCH_ID} column to find a batch's rows by"),
        ));
    };
    let ids = arrow::compute::cast(column, &DataType::Utf8).map_err(fail)?;
    let ids = ids.as_string::<i32>();
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); found.len()];
    for (row, id) in ids.iter().enumerate() {
        if let Some(&i) = id.and_then(|id| wanted.get(id)) {
            rows[i].push(row as u32);
        }
    }
    for (i, rows) in rows.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let indices = UInt32Array::from(rows);
        found[i].push(arrow::compute::take_record_batch(batch, &indices).map_err(fail)?);
    }
    Ok(())
}

/// The rows an `add` action's statistics count.
fn file_rows(add: &serde_json::Value) -> Option<u64> {
    let stats = add.get("stats")?.as_str()?;
    serde_json::from_str::<serde_json::Value>(stats)
        .ok()?
        .get("numRecords")?
        .as_u64()
}

fn read_file(bytes: Bytes, location: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let fail =
        |e: parquet::errors::ParquetError| LakeError::other(format!("bronze file {location}"), e);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(fail)?;
    if let Some(columns) = columns {
        let schema = builder.parquet_schema();
        let indices: Vec<usize> = (0..schema.num_columns())
            .filter(|i| {
                let column = schema.column(*i);
                column
                    .path()
                    .parts()
                    .first()
                    .is_some_and(|top| columns.contains(&top.as_str()))
            })
            .collect();
        let mask = ProjectionMask::leaves(schema, indices);
        builder = builder.with_projection(mask);
    }
    builder
        .build()
        .map_err(fail)?
        .map(|batch| batch.map_err(|e| LakeError::arrow(format!("bronze file {location}"), e)))
        .collect()
}

/// The batches as one, under the union of their schemas and the `table`'s
/// fields (bronze adds columns as it evolves; a column a file lacks is null
/// in its rows).
fn unify(batches: Vec<RecordBatch>, table: Vec<Field>, id: &TableId) -> Result<RecordBatch> {
    let mut schemas: Vec<Schema> = batches
        .iter()
        .map(|b| b.schema().as_ref().clone())
        .collect();
    schemas.push(Schema::new(table));
    let merged =
        Schema::try_merge(schemas).map_err(|e| LakeError::arrow(format!("schemas of {id}"), e))?;
    // Nullable: a column a file lacks reads as null in that file's rows.
    let fields: Vec<Field> = merged
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let conformed = batches
        .iter()
        .map(|batch| {
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(column) => Arc::clone(column),
                    None => new_null_array(field.data_type(), batch.num_rows()),
                })
                .collect();
            RecordBatch::try_new(Arc::clone(&schema), columns)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LakeError::arrow(format!("rows of {id}"), e))?;
    arrow::compute::concat_batches(&schema, &conformed)
        .map_err(|e| LakeError::arrow(format!("rows of {id}"), e))
}
