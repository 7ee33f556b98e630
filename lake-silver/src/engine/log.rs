//! The event log (`{target}_changes`): every distinct typed event, by key
//! bucket. A run reads the logged events of its keys, plans their
//! histories from them and its new events, and appends the new ones in a
//! commit that lands before the one moving the bookmark.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::common::Column;
use datafusion::prelude::Expr;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use lake_core::{LakeError, NewTable, Result, StorageExt, StorageRef, TableId};

use super::commit::{Commit, commit_batch, scan_buckets};
use super::{KeySet, Owned, arrow_error, check_buckets, key_filter, table_schema};
use crate::spec::{BUCKETS_PROPERTY, KEY_BUCKET, SilverSpec};

/// The event log of a spec's target, open at the start of a run.
pub(super) struct EventLog {
    /// The table.
    pub table: DeltaTable,
    /// Its name.
    pub id: TableId,
    /// The schema new events are conformed to: the log's, or on a rebuild
    /// the typer's (the log is replaced).
    pub schema: SchemaRef,
}

impl EventLog {
    /// Opens the log of `spec`'s target, creating it with the schema of the
    /// typed events (`typed`) and the bucket count on the first run.
    pub(super) async fn open(
        storage: &StorageRef,
        spec: &SilverSpec,
        typed: &SchemaRef,
        rebuild: bool,
    ) -> Result<Self> {
        let id = spec.target.changes_table()?;
        let options = NewTable::default()
            .with_partition_columns([KEY_BUCKET])
            .with_property(BUCKETS_PROPERTY, spec.buckets.to_string());
        let table = storage
            .ensure_table_with(&storage.layout().table_location(&id), typed, &options)
            .await?;
        check_buckets(&table, &id, spec)?;
        let schema = match rebuild {
            true => Arc::clone(typed),
            false => table_schema(&table, &id)?,
        };
        Ok(Self { table, id, schema })
    }

    /// The logged events of `keys` (in `buckets`; none on a rebuild, which
    /// replaces the log), then `new`, as one batch; and where `new` starts
    /// in it. The SCD2 plan refers to its rows.
    pub(super) async fn with_history_of(
        &self,
        keys: &RunKeys,
        new: &RecordBatch,
        rebuild: bool,
    ) -> Result<(RecordBatch, usize)> {
        let logged = match rebuild {
            true => BTreeSet::new(),
            false => keys.buckets.clone(),
        };
        let mut all = scan_buckets(
            &self.table,
            &self.id,
            &logged,
            &self.schema,
            Some(keys.filter()),
        )
        .await?;
        let first_new = all.iter().map(RecordBatch::num_rows).sum();
        all.push(new.clone());
        let all = arrow::compute::concat_batches(&self.schema, &all)
            .map_err(|e| arrow_error(&self.id, e))?;
        Ok((all, first_new))
    }

    /// Appends `fresh` (the events not logged before) on a task of its own,
    /// in one commit carrying `txn`, while the SCD2 rows are prepared; await
    /// the result before the commit that moves the bookmark, so a failure
    /// between the two leaves events logged whose history the next run
    /// writes. Dropped before that (a run failing early), the task is
    /// aborted: no log commit is left running beside a retry. The table
    /// opened to read the log is used: no second log replay.
    pub(super) fn append(
        self,
        fresh: RecordBatch,
        txn: &Transaction,
        commit: Commit,
    ) -> impl Future<Output = Result<Option<u64>>> + Send + 'static {
        let write = (commit == Commit::Replace || fresh.num_rows() > 0).then(|| {
            let (txn, id) = (txn.clone(), self.id.clone());
            Owned::spawn(async move {
                commit_batch(self.table, &[KEY_BUCKET], fresh, &txn, &id, commit).await
            })
        });
        let id = self.id;
        async move {
            match write {
                Some(task) => task
                    .join()
                    .await
                    .map_err(|e| LakeError::other(format!("writing the event log {id}"), e))?,
                None => Ok(None),
            }
        }
    }
}

/// The keys of a run's events: their columns, their buckets, and a set to
/// look them up in.
pub(super) struct RunKeys {
    /// The key columns of the new events.
    pub columns: Vec<arrow::array::ArrayRef>,
    /// The buckets they hash to.
    pub buckets: BTreeSet<i32>,
    /// The set of them, shared by the scans.
    pub set: Arc<KeySet>,
    names: Vec<lake_core::Ident>,
}

impl RunKeys {
    /// The keys of `events` (a batch in the event log's layout, `id`).
    pub(super) fn new(spec: &SilverSpec, events: &RecordBatch, id: &TableId) -> Result<Self> {
        let columns = super::columns_of(events, &spec.keys, id)?;
        let buckets = events
            .column_by_name(KEY_BUCKET)
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
            .ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("column `{KEY_BUCKET}` missing"),
            })?
            .values()
            .iter()
            .copied()
            .collect();
        let set = Arc::new(KeySet::new(&columns).map_err(|e| arrow_error(id, e))?);
        Ok(Self {
            columns,
            buckets,
            set,
            names: spec.keys.clone(),
        })
    }

    /// The rows of these keys, as a scan filter the Parquet reader applies.
    pub(super) fn filter(&self) -> Expr {
        key_filter::key_in_set(
            Arc::clone(&self.set),
            self.columns.iter().map(|k| k.data_type().clone()).collect(),
            self.names
                .iter()
                .map(|k| Expr::Column(Column::from_name(k.as_str())))
                .collect(),
        )
    }
}
