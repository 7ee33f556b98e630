//! The first phases of a run: where the slice of bronze it processes starts
//! and ends (the bookmark, a bound on rows per commit), and the rows bronze
//! added in it.
//!
//! Bronze is append-only, so the `add` actions of its commits after the
//! bookmark are exactly the new rows (those with `dataChange: true`: a
//! compaction's adds hold rows read before); the files are read directly instead of
//! through a scan with a version filter, which Delta does not offer.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use bytes::Bytes;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use lake_core::object_store::path::Path;
use lake_core::{
    Bookmark, BookmarkState, LakeError, Result, StorageExt, StorageRef, TableId, VersionRange,
    changes_data, commit_actions,
};
use tracing::warn;

use super::check_buckets;
use crate::spec::SilverSpec;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The lineage columns every bronze row carries, which quarantine keeps.
pub(crate) const LINEAGE: [&str; 4] = ["_raw", "_batch_id", "_source_file", "_source_line"];

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
            .filter_map(|add| add.get("stats").and_then(|s| s.as_str()))
            .filter_map(|stats| serde_json::from_str::<serde_json::Value>(stats).ok())
            .filter_map(|stats| stats.get("numRecords").and_then(|n| n.as_u64()))
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
async fn read_added_rows(
    storage: &StorageRef,
    bronze: &DeltaTable,
    id: &TableId,
    (first, last): (u64, u64),
    columns: Option<&[&str]>,
) -> Result<AddedRows> {
    let table_fields: Vec<Field> = match columns {
        Some(_) => Vec::new(),
        None => {
            let snapshot = bronze
                .snapshot()
                .map_err(|e| LakeError::delta(id.to_string(), e))?;
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
    let root = storage.object_path(&storage.layout().table_location(id))?;
    let store = storage.object_store();
    let mut batches = Vec::new();
    let mut versions = Vec::new();
    for version in first..=last {
        let before: usize = batches.iter().map(RecordBatch::num_rows).sum();
        for action in commit_actions(bronze, version, &id.to_string()).await? {
            // A compaction's files hold rows of earlier versions.
            let Some(path) = action
                .get("add")
                .filter(|add| changes_data(add))
                .and_then(|add| add.get("path"))
                .and_then(|p| p.as_str())
            else {
                continue;
            };
            let relative =
                Path::from_url_path(path).map_err(|e| LakeError::storage(path, e.into()))?;
            let location = Path::from_iter(root.parts().chain(relative.parts()));
            let bytes = crate::engine::fetch(store.as_ref(), &location).await?;
            batches.extend(read_file(bytes, &location, columns)?);
        }
        let after: usize = batches.iter().map(RecordBatch::num_rows).sum();
        versions.push((version, after - before));
    }
    Ok(AddedRows {
        rows: unify(batches, table_fields, id)?,
        versions,
    })
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
