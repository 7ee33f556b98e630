//! A DataFusion scan of a Delta table with deletion vectors that still
//! prunes row groups and pages.
//!
//! deltalake 1.1's scan turns Parquet predicate pushdown off for every file
//! of a table with the `deletionVectors` feature, and reads the files that
//! have one on a single partition, because its deletion vectors are
//! applied by row position above the Parquet reader (a TODO in its
//! `table_provider/next/scan`: "push selection vectors into the read plan
//! by creating parquet access plans"). A reader of a few dates of a
//! clustered table then decodes every row of it. [`pruning_provider`] does
//! what that TODO says: deletion vectors ([`crate::deletion_vectors`])
//! become a [`ParquetRowSelection`] per
//! file, which DataFusion's Parquet scan intersects with what its
//! statistics and page index keep, on as many partitions as the session
//! has. Tables without the feature get deltalake's own scan.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetRowSelection,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::cache::cache_manager::{CachedFileMetadataEntry, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use delta_kernel::table_features::TableFeature;
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::arrow::arrow_reader::RowSelection;

use crate::error::{LakeError, Result};

/// A provider for `table` that keeps Parquet pushdown when the table has
/// deletion vectors (see the [module docs](self)); [`crate::delta_provider`]
/// otherwise. Its columns are the data columns in table order, then the
/// partition columns. `name` names the table in errors.
pub async fn pruning_provider(
    ctx: &SessionContext,
    table: &DeltaTable,
    name: &str,
) -> Result<Arc<dyn TableProvider>> {
    let fail = |e| LakeError::delta(name, e);
    let snapshot = table.snapshot().map_err(fail)?;
    let features = snapshot.protocol().reader_features();
    if !features.is_some_and(|f| f.contains(&TableFeature::DeletionVectors)) {
        return crate::delta_provider(ctx, table, name).await;
    }
    let state = ctx.state();
    // The table's files by their whole path in its store (the bucket, or
    // the file system), so that the metadata cache below has one key per
    // file across tables.
    let root = table.log_store().root_url().clone();
    let store_url = ObjectStoreUrl::parse(format!(
        "lake-store://{}",
        hex_name(&root[..url::Position::BeforePath])
    ))
    .map_err(|e| LakeError::datafusion(name, e))?;
    let store = table.log_store().root_object_store(None);
    state
        .runtime_env()
        .register_object_store(store_url.as_ref(), Arc::clone(&store));
    let table_path = Path::from_url_path(root.path()).map_err(|e| LakeError::other(name, e))?;
    let schema = snapshot.snapshot().arrow_schema();
    let partition_columns = snapshot.metadata().partition_columns().to_vec();
    let partition_fields: Vec<FieldRef> = partition_columns
        .iter()
        .map(|c| {
            schema
                .field_with_name(c)
                .map(|f| Arc::new(f.clone()))
                .map_err(|e| LakeError::arrow(name, e))
        })
        .collect::<Result<_>>()?;
    let file_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let mut files = Vec::new();
    let mut marked = Vec::new();
    for file in snapshot.log_data().iter() {
        let raw = file.partition_values_map();
        let values = partition_fields
            .iter()
            .map(|field| match raw.get(field.name()).cloned().flatten() {
                Some(text) => ScalarValue::try_from_string(text, field.data_type()),
                None => ScalarValue::try_from(field.data_type()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| LakeError::datafusion(name, e))?;
        let path = file.object_store_path();
        let whole: Path = table_path.parts().chain(path.parts()).collect();
        let mut scanned = PartitionedFile::new(whole.to_string(), file.size() as u64);
        if let Some(at) = chrono::DateTime::from_timestamp_millis(file.modification_time()) {
            scanned.object_meta.last_modified = at;
        }
        scanned.partition_values = values;
        if let Some(dv) = file.deletion_vector_descriptor() {
            marked.push((files.len(), path.to_string(), file.num_records(), dv));
        }
        files.push(scanned);
    }
    // The deletion vectors, read a few at a time: a file of them holds the
    // vectors of one commit, so most reads are small ranges of few files.
    let selections: Vec<(usize, RowSelection)> = futures::stream::iter(marked)
        .map(|(at, path, rows, dv)| {
            let (store, table_path) = (Arc::clone(&store), &table_path);
            async move {
                let rows = rows.ok_or_else(|| {
                    LakeError::other(
                        format!("{name} file {path}"),
                        "a file with a deletion vector has no row count in its statistics",
                    )
                })?;
                let deleted =
                    crate::deletion_vectors::read(store.as_ref(), table_path, &dv, name).await?;
                Ok::<_, LakeError>((at, kept_rows(&deleted, rows)))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    for (at, selection) in selections {
        files[at]
            .extensions
            .insert(ParquetRowSelection::new(selection));
    }
    let mut full = file_schema.fields().to_vec();
    full.extend(partition_fields.iter().cloned());
    Ok(Arc::new(SelectedFiles {
        schema: Arc::new(Schema::new(full)),
        file_schema,
        partition_fields,
        store_url,
        files,
    }))
}

/// Footers and page indexes of the files read, kept across sessions: a
/// data file never changes, and a gold refresh after every batch opens
/// the same files again, each in a new session (opening files, not
/// decoding rows, is most of a refresh of a few dates). A file is known by
/// its path, size and modification time.
static METADATA: LazyLock<Arc<DefaultCache<Path, CachedFileMetadataEntry>>> =
    LazyLock::new(|| Arc::new(DefaultCache::new(METADATA_BYTES)));

/// Memory the cache of file metadata may hold.
const METADATA_BYTES: usize = 64 << 20;

/// The rows of a file of `rows` rows that `deleted` keeps.
fn kept_rows(deleted: &roaring::RoaringTreemap, rows: usize) -> RowSelection {
    let mut ranges = Vec::new();
    let mut at = 0;
    for row in deleted.iter().map(|r| r as usize).take_while(|&r| r < rows) {
        if row > at {
            ranges.push(at..row);
        }
        at = row + 1;
    }
    if at < rows {
        ranges.push(at..rows);
    }
    RowSelection::from_consecutive_ranges(ranges.into_iter(), rows)
}

/// `text` as a host name: hexadecimal of its bytes, so every table root
/// maps to its own store URL.
fn hex_name(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The files of a Delta table, with the rows to read of each.
#[derive(Debug)]
struct SelectedFiles {
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    store_url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
}

impl SelectedFiles {
    /// Which files `filters` can match, from their partition values alone
    /// (filters naming other columns keep every file).
    fn matching(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> datafusion::common::Result<Vec<bool>> {
        let mut keep = vec![true; self.files.len()];
        if self.files.is_empty() || self.partition_fields.is_empty() {
            return Ok(keep);
        }
        let names: Vec<&str> = self
            .partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let partitions = Arc::new(Schema::new(self.partition_fields.clone()));
        let df_schema = DFSchema::try_from(Arc::clone(&partitions))?;
        let mut values: Option<RecordBatch> = None;
        for filter in filters {
            let columns = filter.column_refs();
            if columns.is_empty() || !columns.iter().all(|c| names.contains(&c.name.as_str())) {
                continue;
            }
            let batch = match &values {
                Some(batch) => batch,
                None => {
                    let columns = (0..names.len())
                        .map(|i| {
                            ScalarValue::iter_to_array(
                                self.files.iter().map(|f| f.partition_values[i].clone()),
                            )
                        })
                        .collect::<datafusion::common::Result<Vec<ArrayRef>>>()?;
                    values.insert(RecordBatch::try_new(Arc::clone(&partitions), columns)?)
                }
            };
            let physical = state.create_physical_expr(filter.clone(), &df_schema)?;
            let result = physical.evaluate(batch)?.into_array(batch.num_rows())?;
            let Some(result) = result.as_any().downcast_ref::<BooleanArray>() else {
                continue;
            };
            for (i, kept) in keep.iter_mut().enumerate() {
                // A null (unknown) keeps the file; the filter is applied
                // again to the rows.
                *kept &= !result.is_valid(i) || result.value(i);
            }
        }
        Ok(keep)
    }
}

#[async_trait]
impl TableProvider for SelectedFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        // Applied again above the scan; DataFusion pushes them into the
        // Parquet scan for pruning and row filtering.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let keep = self.matching(state, filters)?;
        let files: Vec<PartitionedFile> = self
            .files
            .iter()
            .zip(keep)
            .filter_map(|(file, kept)| kept.then(|| file.clone()))
            .collect();
        let partitions = state.config().target_partitions().max(1);
        let groups = FileGroup::new(files).split_files(partitions);
        let table_schema = TableSchema::builder(Arc::clone(&self.file_schema))
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let store = state.runtime_env().object_store(&self.store_url)?;
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                store,
                Arc::clone(&*METADATA) as Arc<FileMetadataCache>,
            )));
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
