//! The commit that moves the bookmark: the SCD2 (or SCD1) table's new rows
//! for the keys a run touched, replacing only what the run's events can
//! change (see [`replace`](super::replace)), or whole buckets in the older
//! layout, an SCD1 table or a sequence that is not an integer.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use lake_core::{Ident, LakeError, NewTable, Result, StorageExt, StorageRef, TableId, Touched};

use super::super::log::RunKeys;
use super::super::plan::{changes_of_run, orders_as_integer, silver_rows};
use super::super::{KeySet, Owned, arrow_error, check_buckets, columns_of, cpu, partition_columns};
use super::replace::{ChangedRows, replace_changed};
use super::{Replacement, deletion, replace_buckets, scan_buckets, sorted_for_readers};
use crate::scd2::{Plan, VersionRows};
use crate::spec::{BUCKETS_PROPERTY, KEY_BUCKET, Mode, SilverSpec};

/// The SCD2 table as a run writes it.
pub(in crate::engine) struct History {
    /// The table, at the bookmark (created on the first run).
    pub table: DeltaTable,
    /// Its schema.
    pub schema: SchemaRef,
    /// The partition columns it is written with.
    pub partitions: Vec<String>,
    /// Whether closed versions sit in files apart from current ones (the
    /// layout of [`silver_partitions`]; a table of the older layout has
    /// only the bucket).
    pub closed_apart: bool,
}

impl History {
    /// The SCD2 table `silver` of `spec`, created here on the first run
    /// with the schema following the event log's (`log`).
    pub(in crate::engine) async fn open(
        storage: &StorageRef,
        spec: &SilverSpec,
        silver: DeltaTable,
        log: &SchemaRef,
        rebuild: bool,
    ) -> Result<Self> {
        let target = &spec.target;
        let schema = silver_schema(spec, log)?;
        let layout = silver_partitions(spec);
        let table = match silver.version() {
            Some(_) => silver,
            None => {
                let mut options = NewTable::default()
                    .with_partition_columns(layout.iter())
                    .with_property(BUCKETS_PROPERTY, spec.buckets.to_string());
                if deletion_vectors(spec, &schema) {
                    options = options.with_property(deletion::ENABLE_DELETION_VECTORS, "true");
                }
                let created = storage
                    .ensure_table_with(&storage.layout().table_location(target), &schema, &options)
                    .await?;
                // Another process may have created it first, with its own spec.
                check_buckets(&created, target, spec)?;
                created
            }
        };
        // A rebuild writes the current layout whatever the table had.
        let partitions = match rebuild {
            true => layout.clone(),
            false => partition_columns(&table, target)?,
        };
        let closed_apart = partitions == layout;
        Ok(Self {
            table,
            schema,
            partitions,
            closed_apart,
        })
    }

    /// In the older layout (closed and current rows in the same files),
    /// every row of the run's buckets is rewritten, so the rows of other
    /// keys are read, at the same time as the event log, on another task:
    /// the two scans are independent and each keeps about one core busy.
    pub(in crate::engine) fn rows_of_other_keys(
        &self,
        spec: &SilverSpec,
        keys: &RunKeys,
    ) -> Option<Owned<Result<Vec<RecordBatch>>>> {
        (!self.closed_apart).then(|| {
            Owned::spawn(read_rows_of_other_keys(
                self.table.clone(),
                spec.target.clone(),
                keys.buckets.clone(),
                Arc::clone(&self.schema),
                spec.keys.clone(),
                Arc::clone(&keys.set),
            ))
        })
    }
}

/// What the commit that moves the bookmark writes.
pub(in crate::engine) struct Write<'a> {
    /// The spec.
    pub spec: &'a SilverSpec,
    /// The table.
    pub history: History,
    /// This run's keys.
    pub keys: &'a RunKeys,
    /// This run's new events (their sequence bounds what can change).
    pub events: &'a RecordBatch,
    /// The plan of the keys' histories.
    pub plan: &'a Plan,
    /// The events the versions' values come from.
    pub planned: &'a RecordBatch,
    /// The rows of other keys of the buckets, in the older layout.
    pub kept: Option<Owned<Result<Vec<RecordBatch>>>>,
    /// The transactions that move the bookmark.
    pub moves: Vec<Transaction>,
    /// The values the commit touched, for gold.
    pub touched: &'a Touched,
    /// Whether the table is replaced.
    pub rebuild: bool,
    /// The typer's columns written without a dictionary.
    pub plain: &'a [&'a str],
}

/// Writes the run's history in the commit that moves the bookmark, after
/// `logged` (the event log's commit) lands; the silver version, the log's
/// version if it wrote one, and the number of rows written.
pub(in crate::engine) async fn write_history<L>(
    storage: &StorageRef,
    write: Write<'_>,
    logged: L,
) -> Result<(u64, Option<u64>, u64)>
where
    L: Future<Output = Result<Option<u64>>> + Send + 'static,
{
    let Write {
        spec,
        history,
        keys,
        events,
        plan,
        planned,
        kept,
        moves,
        touched,
        rebuild,
        plain,
    } = write;
    let target = &spec.target;
    let versions: Vec<&VersionRows> = plan
        .versions
        .iter()
        .filter(|v| spec.mode == Mode::Scd2 || v.closer.is_none())
        .collect();
    let rows_written = versions.len() as u64;
    let new_rows = silver_rows(spec, planned, &versions, &history.schema, target)?;
    let plain = plain_columns(spec, &history.schema, plain);
    let changes = match (&kept, rebuild) {
        (None, false) => changes_of_run(spec, events, &keys.columns, &keys.set, target)?,
        _ => None,
    };
    let (version, log_version) = match (kept, changes) {
        // Only the rows this run's events can change are replaced, and
        // only the files holding them are rewritten (see `replace`).
        (None, Some(changes)) => {
            let new_rows = changes.select(&new_rows, target)?;
            let changed = ChangedRows {
                silver: &history.table,
                id: target,
                schema: &history.schema,
                partitions: &history.partitions,
                buckets: &keys.buckets,
                bucket_count: spec.buckets,
                changes: Arc::new(changes),
                cluster_by: spec.cluster_by.as_ref().map(Ident::as_str),
                valid_from: spec.validity.from.as_str(),
                plain,
            };
            replace_changed(storage, changed, new_rows, moves, touched, logged).await?
        }
        (kept, _) => {
            let (rows, replaced) = match kept {
                Some(kept) => {
                    let mut rows = kept.join().await.map_err(|e| {
                        LakeError::other(format!("reading the rows of {target} to keep"), e)
                    })??;
                    rows.push(new_rows);
                    (rows, None)
                }
                // A rebuild replaces everything.
                None if rebuild => (vec![new_rows], None),
                // SCD1, or a sequence that is not an integer, date or
                // timestamp: every row of this run's keys is replaced.
                None => (vec![new_rows], Some(keys.filter())),
            };
            let (cluster_by, valid_from, buckets) = (
                spec.cluster_by.clone(),
                spec.validity.from.clone(),
                spec.buckets,
            );
            let rows = cpu("sorting rows", move || {
                sorted_for_readers(
                    rows,
                    cluster_by.as_ref().map(Ident::as_str),
                    valid_from.as_str(),
                    buckets,
                )
            })
            .await?;
            let log_version = logged.await?;
            let replacement = Replacement {
                silver: &history.table,
                id: target,
                schema: &history.schema,
                partitions: &history.partitions,
                buckets: (!rebuild).then_some(&keys.buckets),
                only: replaced,
                plain,
            };
            let version = replace_buckets(replacement, rows, moves, touched).await?;
            (version, log_version)
        }
    };
    Ok((version, log_version, rows_written))
}

/// The SCD2 rows in `buckets` of keys not in `keys`: copied unchanged.
/// Takes its inputs by value so that it can run on its own task.
async fn read_rows_of_other_keys(
    silver: DeltaTable,
    id: TableId,
    buckets: BTreeSet<i32>,
    schema: SchemaRef,
    key_names: Vec<Ident>,
    key_set: Arc<KeySet>,
) -> Result<Vec<RecordBatch>> {
    let mut kept = Vec::new();
    for batch in scan_buckets(&silver, &id, &buckets, &schema, None).await? {
        let columns = columns_of(&batch, &key_names, &id)?;
        let mask = key_set.mask(&columns).map_err(|e| arrow_error(&id, e))?;
        let mask = arrow::compute::not(&mask).map_err(|e| arrow_error(&id, e))?;
        kept.push(
            arrow::compute::filter_record_batch(&batch, &mask).map_err(|e| arrow_error(&id, e))?,
        );
    }
    Ok(kept)
}

/// The SCD2 table's schema: business columns, validity columns, bucket.
fn silver_schema(spec: &SilverSpec, changes: &SchemaRef) -> Result<SchemaRef> {
    let field = |name: &str| {
        changes
            .field_with_name(name)
            .map(|f| f.as_ref().clone())
            .map_err(|e| arrow_error(&spec.target, e))
    };
    let mut fields = spec
        .business_columns()
        .map(|c| field(c.name.as_str()))
        .collect::<Result<Vec<Field>>>()?;
    let sequence = spec
        .sequence_by
        .iter()
        .map(|s| field(s.as_str()))
        .collect::<Result<Vec<_>>>()?;
    let validity = spec.validity_type(&sequence);
    fields.extend([
        Field::new(spec.validity.from.as_str(), validity.clone(), false),
        Field::new(spec.validity.to.as_str(), validity, true),
        Field::new(spec.validity.current.as_str(), DataType::Boolean, false),
        Field::new(KEY_BUCKET, DataType::Int32, false),
    ]);
    Ok(Arc::new(Schema::new(fields)))
}

/// Columns written without a dictionary: about one value per row.
fn plain_columns(spec: &SilverSpec, schema: &SchemaRef, typer: &[&str]) -> Vec<String> {
    let mut plain: Vec<String> = spec.keys.iter().map(Ident::to_string).collect();
    plain.extend([spec.validity.from.to_string(), spec.validity.to.to_string()]);
    for field in schema.fields() {
        if matches!(field.data_type(), DataType::Float64 | DataType::Float32) {
            plain.push(field.name().clone());
        }
    }
    // What the typer knows to be nearly unique per row.
    plain.extend(typer.iter().map(|c| c.to_string()));
    plain
}

/// The silver table's partition columns: the key bucket, then the current
/// flag. Apart from current rows, which every run of their bucket may
/// rewrite, a file of closed versions is rewritten only when a run's events
/// reach back before the end of one of its rows (see [`Changes`]).
fn silver_partitions(spec: &SilverSpec) -> Vec<String> {
    vec![KEY_BUCKET.to_string(), spec.validity.current.to_string()]
}

/// Whether a new SCD2 table of `spec` is created with deletion vectors:
/// when the spec allows them and its runs replace rows through the
/// `replace` module (SCD2 ordered by an integer, date or timestamp), the
/// only writer of this crate that applies and writes them.
fn deletion_vectors(spec: &SilverSpec, schema: &Schema) -> bool {
    spec.deletion_vectors
        && spec.mode == Mode::Scd2
        && schema
            .field_with_name(spec.validity.from.as_str())
            .is_ok_and(|f| orders_as_integer(f.data_type()))
}
