//! The commits of a run: reading the key buckets it replaces and writing
//! them back ([`history`], [`replace`]), the deletion vectors of replaced
//! rows ([`deletion`]), and the appends of the event log and quarantine
//! ([`commit_batch`]).

pub(crate) mod deletion;
pub(crate) mod history;
mod replace;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{Expr, SessionContext, col, lit};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use lake_core::{LakeError, Result, TableId, Touched, transaction_version};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};

pub use replace::{CLOSED_FILE_ROWS, CURRENT_FILES_PER_BUCKET};
pub(crate) use replace::{Changes, greatest};

use super::plan::orders_as_integer;
use super::{cores, in_parallel};
use crate::spec::KEY_BUCKET;

/// Rows per Parquet data page in the SCD2 table.
pub const PAGE_ROWS: usize = 1024;

/// The rows of `table` in `buckets`, as Arrow batches typed like `schema`;
/// with `rows`, only the rows that filter keeps, applied while the files
/// are read (see the `key_filter` module).
pub(crate) async fn scan_buckets(
    table: &DeltaTable,
    id: &TableId,
    buckets: &BTreeSet<i32>,
    schema: &SchemaRef,
    rows: Option<Expr>,
) -> Result<Vec<RecordBatch>> {
    if buckets.is_empty() || table.version().is_none_or(|v| v == 0) {
        return Ok(Vec::new());
    }
    let fail = |e| LakeError::datafusion(id.to_string(), e);
    let mut config = datafusion::prelude::SessionConfig::new();
    let parquet = &mut config.options_mut().execution.parquet;
    // Plain strings, as the tables are written: no per-batch conversion.
    parquet.schema_force_view_types = false;
    // The row filter: other columns are decoded only for the rows it keeps.
    parquet.pushdown_filters = rows.is_some();
    let ctx = SessionContext::new_with_config(config);
    let provider = lake_core::delta_provider(&ctx, table, &id.to_string()).await?;
    let mut frame = ctx
        .read_table(provider)
        .and_then(|frame| frame.filter(in_buckets(buckets)))
        .map_err(fail)?;
    if let Some(rows) = rows {
        frame = frame.filter(rows).map_err(fail)?;
    }
    let batches = frame.collect().await.map_err(fail)?;
    batches
        .into_iter()
        .map(|batch| conform(batch, schema, id))
        .collect()
}

/// The rows of `buckets`: a partition filter on small integers, so Delta
/// prunes the files of the other buckets.
fn in_buckets(buckets: &BTreeSet<i32>) -> Expr {
    col(KEY_BUCKET).in_list(buckets.iter().map(|b| lit(*b)).collect(), false)
}

/// `batch` with its columns in `schema`'s order and types. A value that
/// does not convert is an error, never a silent null.
pub(crate) fn conform(batch: RecordBatch, schema: &SchemaRef, id: &TableId) -> Result<RecordBatch> {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch
                .column_by_name(field.name())
                .ok_or_else(|| LakeError::Schema {
                    table: id.to_string(),
                    message: format!("column `{}` missing", field.name()),
                })?;
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast_with_options(column, field.data_type(), &strict)
                    .map_err(|e| LakeError::arrow(format!("column `{}` of {id}", field.name()), e))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| LakeError::arrow(id.to_string(), e))
}

/// Where a silver row goes in its file: cluster value, `valid_from`, then
/// its batch and row.
type SortKey = (Option<i64>, i64, u32, u32);

/// Per batch, a column as integers that order as its values do: the
/// values themselves for integers, dates and timestamps (no copy for 64-bit
/// ones), dense ranks over all batches for other types.
fn orderable(columns: &[&ArrayRef]) -> Result<Vec<Int64Array>> {
    let fail = |e| LakeError::arrow("silver rows", e);
    let integers = columns.iter().all(|c| orders_as_integer(c.data_type()));
    if integers {
        return columns
            .iter()
            .map(|c| {
                arrow::compute::cast(c, &DataType::Int64)
                    .map(|c| c.as_primitive::<Int64Type>().clone())
                    .map_err(fail)
            })
            .collect();
    }
    let arrays: Vec<&dyn Array> = columns.iter().map(|c| c.as_ref()).collect();
    let all = arrow::compute::concat(&arrays).map_err(fail)?;
    let ranks = crate::scd2::columnar::sequence_ranks(&[Arc::clone(&all)]).map_err(fail)?;
    let ranks = Int64Array::new(ranks.into(), all.logical_nulls());
    let mut at = 0;
    Ok(columns
        .iter()
        .map(|c| {
            let part = ranks.slice(at, c.len());
            at += c.len();
            part
        })
        .collect())
}

/// New and copied rows as one batch per core, each holding whole buckets
/// (bucket modulo the number of parts), sorted by the cluster column: with
/// small pages, each file's page index then lets a reader of a few values
/// (a gold refresh of a few dates) skip the pages of the others. Ties are
/// broken by `valid_from` and the row's position, integers: comparing keys
/// as strings made this sort cost more than the merge it serves. The parts
/// are sorted on their own threads and written by their own Parquet
/// writers ([`parallel_input`]).
pub(crate) fn sorted_for_readers(
    all: Vec<RecordBatch>,
    cluster_by: Option<&str>,
    valid_from: &str,
    buckets: u32,
) -> Result<Vec<RecordBatch>> {
    let parts = cores().min(buckets.max(1) as usize);
    let mismatch = |what: &str| LakeError::Schema {
        table: "silver rows".to_string(),
        message: format!("{what} is missing or has an unexpected type"),
    };
    let named = |name: &str| -> Result<Vec<&ArrayRef>> {
        all.iter()
            .map(|b| b.column_by_name(name).ok_or_else(|| mismatch(name)))
            .collect()
    };
    let cluster = cluster_by
        .map(|c| named(c).and_then(|c| orderable(&c)))
        .transpose()?;
    let from_columns = named(valid_from)?;
    let from = if from_columns
        .iter()
        .all(|c| matches!(c.data_type(), DataType::Struct(_)))
    {
        None
    } else {
        Some(orderable(&from_columns)?)
    };
    // Sort keys gathered per batch, then one interleave per part: the rows
    // are copied once, not concatenated first and taken again.
    let mut orders: Vec<Vec<SortKey>> = vec![Vec::new(); parts];
    for (b, batch) in all.iter().enumerate() {
        let bucket = batch
            .column_by_name(KEY_BUCKET)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::Int32Array>())
            .ok_or_else(|| mismatch(KEY_BUCKET))?;
        let cluster = cluster.as_ref().map(|c| &c[b]);
        let from = from.as_ref().map(|f| f[b].values());
        for i in 0..batch.num_rows() {
            let part = bucket.value(i).rem_euclid(parts as i32) as usize;
            let value = cluster.and_then(|c| c.is_valid(i).then(|| c.value(i)));
            let from = from.map_or(0, |f| f[i]);
            orders[part].push((value, from, b as u32, i as u32));
        }
    }
    let batches: Vec<&RecordBatch> = all.iter().collect();
    let sort_part = |mut order: Vec<SortKey>| {
        order.sort_unstable();
        let indices: Vec<(usize, usize)> = order
            .into_iter()
            .map(|(_, _, b, i)| (b as usize, i as usize))
            .collect();
        arrow::compute::interleave_record_batch(&batches, &indices)
            .map_err(|e| LakeError::arrow("silver rows", e))
    };
    in_parallel(orders, sort_part).into_iter().collect()
}

/// How [`commit_batch`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Appends, unless a commit with the transaction's version exists.
    AppendOnce,
    /// Replaces everything the table holds, schema included (a rebuild).
    Replace,
}

/// Writes `batch` to `table` as `commit` says, recording `txn`; the new
/// version, or `None` when the append had been done already.
pub(crate) async fn commit_batch(
    table: DeltaTable,
    partition_columns: &[&str],
    batch: RecordBatch,
    txn: &Transaction,
    id: &TableId,
    commit: Commit,
) -> Result<Option<u64>> {
    let write = match commit {
        Commit::AppendOnce => {
            if transaction_version(&table, &txn.app_id, &id.to_string())
                .await?
                .is_some_and(|v| v >= txn.version)
            {
                return Ok(None);
            }
            table.write(vec![batch]).with_save_mode(SaveMode::Append)
        }
        Commit::Replace => table
            .write(vec![batch])
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite),
    };
    let mut properties = CommitProperties::default().with_application_transaction(txn.clone());
    if commit == Commit::Replace {
        // The fence, as in `replace`: a racing compaction conflicts.
        properties =
            properties.with_application_transaction(lake_core::maintenance::rewrite_fence());
    }
    let table = write
        .with_partition_columns(partition_columns.iter().copied())
        .with_commit_properties(properties)
        .await
        .map_err(|e| LakeError::delta(id.to_string(), e))?;
    Ok(table.version())
}

/// The silver tables of `spec` that maintenance keeps compact, laid out as
/// runs write them: closed versions sorted by their end in files of at most
/// [`replace::CLOSED_FILE_ROWS`] rows (so runs keep skipping settled files
/// by their statistics), current rows sorted by the cluster column (or the
/// start of validity), with the SCD2 table's Parquet settings (`plain`: the
/// typer's columns without a dictionary); then the event log and the
/// quarantine.
pub(crate) fn maintenance_targets(
    spec: &crate::SilverSpec,
    plain: &[String],
    layout: &lake_core::LakeLayout,
) -> Vec<lake_core::MaintenanceTarget> {
    use lake_core::MaintenanceTarget;
    use lake_core::maintenance::PartitionLayout;
    let validity = &spec.validity;
    let current = validity.current.to_string();
    let mut current_order: Vec<String> = spec.cluster_by.iter().map(|c| c.to_string()).collect();
    current_order.push(validity.from.to_string());
    let mut targets = vec![
        MaintenanceTarget::table(layout, &spec.target)
            .with_layout(
                PartitionLayout::new(current.clone(), "false")
                    .with_sort_by([validity.to.to_string()])
                    .with_max_rows_per_file(replace::CLOSED_FILE_ROWS),
            )
            .with_layout(PartitionLayout::new(current, "true").with_sort_by(current_order))
            .with_writer_properties(silver_writer_properties(plain)),
    ];
    if let Ok(changes) = spec.target.changes_table() {
        targets.push(MaintenanceTarget::table(layout, &changes));
    }
    targets.push(
        MaintenanceTarget::new(
            format!("{} (quarantine)", spec.target),
            layout.quarantine(&spec.target),
        )
        .with_expiry(
            lake_core::maintenance::RetentionKind::Quarantine,
            lake_core::maintenance::Expiry::Column("_quarantined_at".to_string()),
        ),
    );
    targets
}

/// Parquet settings of the SCD2 table: snappy, statistics per page, and
/// pages of at most [`PAGE_ROWS`] rows, so the page index of a file sorted
/// by the cluster column narrows a filter on it to the pages holding its
/// values.
///
/// Columns with about one value per row (`plain`: keys, amounts, JSON, the
/// validity instants) are written without a dictionary: it would overflow
/// and fall back to plain encoding anyway, after the cost of building it.
pub(crate) fn silver_writer_properties(plain: &[String]) -> WriterProperties {
    snappy_without_dictionaries(plain)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .build()
}

/// Snappy, and no dictionary for the `plain` columns.
fn snappy_without_dictionaries(plain: &[String]) -> WriterPropertiesBuilder {
    plain
        .iter()
        .fold(WriterProperties::builder(), |builder, column| {
            builder.set_column_dictionary_enabled(column.as_str().into(), false)
        })
        .set_compression(Compression::SNAPPY)
}

/// Parquet settings of the SCD2 table's files of closed versions: as
/// [`silver_writer_properties`], with pages and statistics of the default
/// size. Readers of the current rows (gold) never open these files, and
/// small pages cost encoding time on every run that rewrites recent
/// history; file statistics (from the column chunks) still give each
/// file's greatest `valid_to`, which later runs skip files by.
pub(crate) fn history_writer_properties(plain: &[String]) -> WriterProperties {
    snappy_without_dictionaries(plain)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// `parts` (from [`sorted_for_readers`]) as a scan with one input
/// partition each: deltalake then encodes their buckets' Parquet files in
/// parallel (one writer per input partition, rows hashed by bucket), and as
/// every bucket comes from one part, its rows keep their order.
fn parallel_input(
    parts: Vec<RecordBatch>,
    schema: &SchemaRef,
    id: &TableId,
) -> Result<LogicalPlan> {
    let fail = |e| LakeError::datafusion(id.to_string(), e);
    let table = MemTable::try_new(
        Arc::clone(schema),
        parts.into_iter().map(|p| vec![p]).collect(),
    )
    .map_err(fail)?;
    LogicalPlanBuilder::scan("silver_rows", provider_as_source(Arc::new(table)), None)
        .and_then(LogicalPlanBuilder::build)
        .map_err(fail)
}

/// What [`replace_buckets`] writes and where.
pub(crate) struct Replacement<'a> {
    /// The SCD2 (or SCD1) table.
    pub silver: &'a DeltaTable,
    /// Its id, for errors.
    pub id: &'a TableId,
    /// Its schema.
    pub schema: &'a SchemaRef,
    /// Its partition columns (the table's own, or the new ones of a rebuild).
    pub partitions: &'a [String],
    /// The buckets replaced (none: an append), or `None` for the whole
    /// table, schema included (a rebuild).
    pub buckets: Option<&'a BTreeSet<i32>>,
    /// Within the buckets, only the rows this filter selects are replaced;
    /// deltalake copies the other rows of the files it rewrites, and leaves
    /// files without such rows alone. `None`: whole buckets.
    pub only: Option<Expr>,
    /// Columns written without a dictionary.
    pub plain: Vec<String>,
}

/// Replaces the rows `target` selects with `rows` and moves the bookmark, in one commit.
pub(crate) async fn replace_buckets(
    target: Replacement<'_>,
    rows: Vec<RecordBatch>,
    bookmark: Vec<Transaction>,
    touched: &Touched,
) -> Result<u64> {
    let Replacement {
        silver,
        id,
        schema,
        partitions,
        buckets,
        only,
        plain,
    } = target;
    // The fence, as in `replace`: a racing compaction conflicts.
    let properties = CommitProperties::default()
        .with_application_transactions(bookmark)
        .with_application_transaction(lake_core::maintenance::rewrite_fence())
        .with_metadata([touched.to_commit_metadata()]);
    let write = silver
        .clone()
        .write(Vec::new())
        .with_input_plan(parallel_input(rows, schema, id)?)
        .with_partition_columns(partitions.iter().cloned())
        .with_writer_properties(silver_writer_properties(&plain))
        .with_commit_properties(properties);
    let write = match buckets {
        None => write
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite),
        Some(buckets) if buckets.is_empty() => write.with_save_mode(SaveMode::Append),
        Some(buckets) => {
            let replaced = match only {
                Some(rows) => in_buckets(buckets).and(rows),
                None => in_buckets(buckets),
            };
            write
                .with_save_mode(SaveMode::Overwrite)
                .with_replace_where(replaced)
        }
    };
    let table = write
        .await
        .map_err(|e| LakeError::delta(id.to_string(), e))?;
    table
        .version()
        .ok_or_else(|| LakeError::not_found(format!("version of {id}")))
}
