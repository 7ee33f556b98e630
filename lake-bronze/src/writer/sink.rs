//! Streaming bronze batches into Delta data files while the input is read.
//!
//! deltalake's `RecordBatchWriter` encodes and uploads files as batches
//! arrive (finishing a file at the target size), so memory is bounded by
//! the file size, not by the input. The files become visible in one commit
//! at the end that also carries the batch's application transaction: a
//! failure before it leaves only unreferenced files (removed by `VACUUM`)
//! and the table at its previous version.
//!
//! When the schema grows while a batch is read (a new field under the
//! `Evolve` policy), the columns are added to the table first (a metadata
//! commit: nullable columns, so readers of the previous version are
//! unaffected) and a new writer continues; files written before simply lack
//! the column, which Delta reads as null.
//!
//! Every row of one delivered batch has the same ingestion date, so the
//! sink hands deltalake that one partition with each batch
//! (`write_partition`). Its generic `write` would group the rows by
//! partition value and copy every column with `take`, even for one group.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructField};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use indexmap::IndexMap;
use lake_core::maintenance::EXPIRED_LOG_CLEANUP;
use lake_core::{LakeError, NewTable, PartitionValue, Result, StorageExt, StorageRef, TableId};
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;
use url::Url;

use super::delivery::{self, Delivery};
use crate::columns;

/// How often a commit that lost a race is tried again before giving up.
pub(super) const MAX_COMMIT_ATTEMPTS: usize = 5;

/// The outcome of committing a batch.
pub(super) enum Written {
    /// Committed as this version.
    Committed(u64),
    /// Another writer had committed this batch already; the table is at this version.
    AlreadyPresent(u64),
}

/// Writes the rows of one delivered batch into data files of one table.
///
/// The files are encoded on a task of their own, fed through a channel
/// that holds one batch: Parquet encoding and compression cost about as
/// much as decoding the input, so on a multi-threaded runtime the reader
/// decodes the next batch while this one is encoded. The channel's bound
/// keeps memory at a few batches, however fast the input arrives.
pub(super) struct DeltaSink {
    storage: StorageRef,
    table_id: TableId,
    location: Url,
    sender: Option<mpsc::Sender<RecordBatch>>,
    encoder: Option<JoinHandle<Result<Vec<Add>>>>,
    rows: u64,
}

impl DeltaSink {
    /// A sink whose encoder task starts now; it must be created inside a
    /// tokio runtime.
    pub(super) fn new(
        storage: StorageRef,
        table_id: TableId,
        properties: WriterProperties,
        target_file_size: Option<u64>,
        partition: &[PartitionValue],
    ) -> Self {
        let location = storage.layout().table_location(&table_id);
        let partition = columns::PARTITION_COLUMNS
            .iter()
            .zip(partition)
            .map(|(column, value)| (column.to_string(), Scalar::from(value.as_str())))
            .collect();
        let encoder = Encoder {
            storage: Arc::clone(&storage),
            table_id: table_id.clone(),
            location: location.clone(),
            properties,
            target_file_size,
            partition,
            writer: None,
            schema: None,
            adds: Vec::new(),
        };
        let (sender, receiver) = mpsc::channel(1);
        Self {
            storage,
            table_id,
            location,
            sender: Some(sender),
            encoder: Some(tokio::spawn(encoder.run(receiver))),
            rows: 0,
        }
    }

    /// Rows handed to the sink so far.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    fn fail(&self, error: deltalake::DeltaTableError) -> LakeError {
        LakeError::delta(self.table_id.to_string(), error)
    }

    /// Hands `batch` to the encoder; waits while it is busy with the
    /// previous one.
    pub(super) async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let sent = match &self.sender {
            Some(sender) => sender.send(batch).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The encoder stopped early, which it does only on an error.
        match self.finish_encoding().await {
            Err(error) => Err(error),
            Ok(_) => Err(LakeError::other(
                format!("bronze file encoder of {}", self.table_id),
                "stopped before its input ended",
            )),
        }
    }

    /// Closes the channel and waits for the encoder's files.
    async fn finish_encoding(&mut self) -> Result<Vec<Add>> {
        self.sender = None;
        let Some(encoder) = self.encoder.take() else {
            return Ok(Vec::new());
        };
        match encoder.await {
            Ok(adds) => adds,
            Err(join) => Err(LakeError::other(
                format!("bronze file encoder of {}", self.table_id),
                join,
            )),
        }
    }

    /// Commits every file written, recording `delivery`, unless a commit
    /// recorded it already (with other content: a conflict).
    pub(super) async fn commit(mut self, delivery: &Delivery) -> Result<Written> {
        let adds = self.finish_encoding().await?;
        let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            let table = self.storage.open_table(&self.location).await?;
            let version = table.version().ok_or_else(|| {
                LakeError::not_found(format!("table {} at {}", self.table_id, self.location))
            })?;
            if let Some(recorded) =
                delivery::recorded_version(&table, &self.table_id, &delivery.app_id).await?
            {
                let reference = delivery.as_ref();
                let fingerprint = &delivery.fingerprint;
                delivery::check_recorded(&table, &self.table_id, &reference, recorded, fingerprint)
                    .await?;
                return Ok(Written::AlreadyPresent(version));
            }
            let operation = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: Some(
                    columns::PARTITION_COLUMNS
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                ),
                predicate: None,
            };
            let snapshot = table.snapshot().map_err(|e| self.fail(e))?;
            let result = CommitBuilder::from(keep_log(delivery.commit_properties()))
                .with_actions(actions.clone())
                .build(Some(snapshot), table.log_store(), operation)
                .await;
            match result {
                Ok(finalized) => return Ok(Written::Committed(finalized.version)),
                Err(e) => {
                    let error = self.fail(e);
                    if !error.is_retryable() || attempt == MAX_COMMIT_ATTEMPTS {
                        return Err(error);
                    }
                    debug!(table = %self.table_id, attempt, "commit conflict, retrying");
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

/// How bronze tables are created: partitioned by ingestion date, and
/// keeping their whole Delta log. Silver replays bronze's commits from the
/// first when it rebuilds (or a new silver table starts), and reads a
/// commit's rows by the batch it names once a compaction merged its files,
/// so no commit may expire from the log as Delta lets writers do after
/// `delta.logRetentionDuration` (30 days). A commit is one small JSON file;
/// checkpoints keep opening the table cheap however long the log grows.
pub(super) fn new_table() -> NewTable {
    NewTable::default()
        .with_partition_columns(columns::PARTITION_COLUMNS)
        .with_property(EXPIRED_LOG_CLEANUP, "false")
}

/// `properties` for a commit to a bronze table: it expires no log entries,
/// even on a table created before [`new_table`] kept the log.
pub(super) fn keep_log(properties: CommitProperties) -> CommitProperties {
    properties.with_cleanup_expired_logs(Some(false))
}

impl Drop for DeltaSink {
    /// A sink dropped before its commit (the read failed) stops encoding:
    /// files that no commit will name are not worth finishing.
    fn drop(&mut self) {
        if let Some(encoder) = self.encoder.take() {
            encoder.abort();
        }
    }
}

/// The encoding side of a [`DeltaSink`], owned by its task.
struct Encoder {
    storage: StorageRef,
    table_id: TableId,
    location: Url,
    properties: WriterProperties,
    target_file_size: Option<u64>,
    /// The batch's partition: its ingestion date, one value per column of
    /// [`columns::PARTITION_COLUMNS`].
    partition: IndexMap<String, Scalar>,
    writer: Option<RecordBatchWriter>,
    schema: Option<SchemaRef>,
    adds: Vec<Add>,
}

impl Encoder {
    /// Encodes every batch received, then finishes the files; stops at
    /// the first error.
    async fn run(mut self, mut batches: mpsc::Receiver<RecordBatch>) -> Result<Vec<Add>> {
        while let Some(batch) = batches.recv().await {
            self.write(batch).await?;
        }
        if let Some(mut writer) = self.writer.take() {
            let adds = writer.flush().await.map_err(|e| self.fail(e))?;
            self.adds.extend(adds);
        }
        Ok(self.adds)
    }

    fn fail(&self, error: deltalake::DeltaTableError) -> LakeError {
        LakeError::delta(self.table_id.to_string(), error)
    }

    /// Encodes `batch` into the current data file.
    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if self.schema.as_ref() != Some(&batch.schema()) {
            self.rotate(batch.schema()).await?;
        }
        let writer = self.writer.as_mut().expect("rotate sets a writer");
        let result = writer
            .write_partition(batch, &self.partition, WriteMode::Default)
            .await;
        result.map(drop).map_err(|e| self.fail(e))
    }

    /// Finishes the current files and starts a writer for `schema`, adding
    /// its new columns to the table first.
    async fn rotate(&mut self, schema: SchemaRef) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            let adds = writer.flush().await.map_err(|e| self.fail(e))?;
            self.adds.extend(adds);
        }
        let table_created = self
            .storage
            .ensure_table_with(&self.location, &schema, &new_table())
            .await?;
        add_missing_columns(&self.storage, &self.location, &self.table_id, &schema).await?;
        let table = self.storage.open_table(&self.location).await?;
        drop(table_created);
        let mut writer = RecordBatchWriter::for_table(&table)
            .map_err(|e| self.fail(e))?
            .with_writer_properties(self.properties.clone());
        if let Some(size) = self.target_file_size {
            writer = writer.with_target_file_size(size);
        }
        self.writer = Some(writer);
        self.schema = Some(schema);
        Ok(())
    }
}

/// Adds the columns of `schema` that the table lacks (nullable, so readers
/// of earlier versions are unaffected). A free function, not a method: the
/// sink holds a Parquet writer that is `Send` but not `Sync`, and a borrow
/// of it must not live across these awaits.
async fn add_missing_columns(
    storage: &StorageRef,
    location: &Url,
    table_id: &TableId,
    schema: &Schema,
) -> Result<()> {
    let fail = |e| LakeError::delta(table_id.to_string(), e);
    for attempt in 1..=MAX_COMMIT_ATTEMPTS {
        let table = storage.open_table(location).await?;
        let current = table.snapshot().map_err(&fail)?.snapshot().arrow_schema();
        let missing: Vec<StructField> = schema
            .fields()
            .iter()
            .filter(|f| current.field_with_name(f.name()).is_err())
            .map(|f| f.as_ref().try_into_kernel())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| fail(e.into()))?;
        if missing.is_empty() {
            return Ok(());
        }
        let mut grown: Vec<_> = current.fields().iter().cloned().collect();
        grown.extend(
            schema
                .fields()
                .iter()
                .filter(|f| current.field_with_name(f.name()).is_err())
                .cloned(),
        );
        lake_core::check_readable(&table_id.to_string(), &Schema::new(grown))?;
        debug!(table = %table_id, columns = missing.len(), "adding columns");
        match table
            .add_columns()
            .with_fields(missing)
            .with_commit_properties(keep_log(CommitProperties::default()))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                let error = fail(e);
                if !error.is_retryable() || attempt == MAX_COMMIT_ATTEMPTS {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}
