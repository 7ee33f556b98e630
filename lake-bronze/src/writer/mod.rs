//! The bronze writer: one delivered batch in, one Delta commit out.
//!
//! # Guarantees
//! - Every input line ends up counted exactly once: as a bronze row, a
//!   dead-letter row or a blank line; the report reconciles or the call fails.
//! - One commit per batch on the bronze table (and one on the dead-letter
//!   table when something was unreadable). Each commit carries a Delta
//!   application transaction (`txn`) with app id `lake-bronze:{batch_id}`, so
//!   ingesting the same batch id again adds nothing, even after a crash
//!   between the two commits.
//! - Nothing is visible to readers until the commit: a failure midway
//!   leaves the table at its previous version, and a retry completes.

mod batch;
mod columnar;
mod delivery;
mod json;
mod sink;

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;
use futures::StreamExt;
use lake_core::fingerprint::LEGACY_TRANSACTION_VERSION;
use lake_core::{
    AddPartitions, CatalogExt, CatalogRef, IngestReport, IngestStage, InputFormat, LakeError,
    Partition, PartitionStats, PartitionValue, Payload, RawBatch, Result, StageContext, StorageExt,
    StorageRef, TableDefinition, TableId, Zone,
};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio::io::AsyncReadExt;
use tracing::debug;

use crate::columns;
use crate::dlq::DEAD_LETTER_SCHEMA;
use crate::options::BronzeOptions;
use batch::{Lineage, date_partition_values, without_reserved};
use columnar::ColumnarReader;
use delivery::{Delivery, DeliveryRef};
use json::JsonReader;
use sink::{DeltaSink, MAX_COMMIT_ATTEMPTS, Written};

/// Bytes read from a file per step.
const READ_CHUNK: usize = 4 * 1024 * 1024;

/// Writes delivered batches into one bronze table; the bronze [`IngestStage`].
#[derive(Debug, Clone)]
pub struct BronzeWriter {
    name: String,
    table: TableId,
    options: BronzeOptions,
}

impl BronzeWriter {
    /// A writer for `table`, which must be in the bronze zone.
    pub fn new(table: TableId) -> Result<Self> {
        if table.zone != Zone::Bronze {
            return Err(LakeError::config(
                "table",
                format!("{table} is not a bronze table"),
            ));
        }
        Ok(Self {
            name: table.to_string(),
            table,
            options: BronzeOptions::default(),
        })
    }

    /// Sets the table's options.
    #[must_use]
    pub fn with_options(mut self, options: BronzeOptions) -> Self {
        self.options = options;
        self
    }

    /// Renames the stage (default: the table id).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The options in force.
    pub fn options(&self) -> &BronzeOptions {
        &self.options
    }

    /// An append of `batch` to the table, when awaited (like deltalake's
    /// operation builders): one commit (and one on the dead-letter table
    /// when something was unreadable), or none when the batch id was
    /// ingested before. Resolves to the batch's report.
    ///
    /// ```no_run
    /// # async fn example(storage: lake_core::StorageRef, catalog: lake_core::CatalogRef)
    /// #     -> lake_core::Result<()> {
    /// use lake_bronze::BronzeWriter;
    /// use lake_core::{RawBatch, TableId};
    ///
    /// let writer = BronzeWriter::new(TableId::bronze("shop", "orders")?)?;
    /// let batch = RawBatch::from_file("orders/batch-0001.jsonl")?;
    /// let report = writer.append(&storage, batch).with_catalog(catalog).await?;
    /// println!("{} rows, {} dead letters", report.rows_written, report.dead_lettered);
    /// # Ok(())
    /// # }
    /// ```
    pub fn append(&self, storage: &StorageRef, batch: RawBatch) -> Append<'_> {
        Append {
            writer: self,
            context: StageContext::new(Arc::clone(storage)),
            batch,
        }
    }

    fn app_id(batch_id: &str) -> String {
        format!("lake-bronze:{batch_id}")
    }

    async fn ingest_batch(
        &self,
        context: &StageContext,
        mut batch: RawBatch,
    ) -> Result<IngestReport> {
        let format = batch
            .format
            .or_else(|| InputFormat::from_file_name(&batch.source_file))
            .unwrap_or(InputFormat::JsonLines);
        if matches!(batch.payload, Payload::Batches(_)) && format != InputFormat::Arrow {
            return Err(LakeError::config(
                "format",
                format!(
                    "batch {}: record batches are Arrow input, not {format:?}",
                    batch.batch_id
                ),
            ));
        }
        let storage = &context.storage;
        let location = storage.layout().table_location(&self.table);
        let app_id = Self::app_id(&batch.batch_id);
        let table = storage.open_table(&location).await?;
        // The fingerprint where it costs no read (bytes, batches, an
        // object's ETag). A file is hashed before reading only when it must
        // be compared now or is read out of order (columnar formats); a
        // JSON file is hashed as it is read, like a stream. Only the path
        // crosses an await: a batch holding a stream is not `Sync`.
        let mut known = delivery::fingerprint_in_memory(&batch)?;
        let recorded = delivery::recorded_version(&table, &self.table, &app_id).await?;
        let file = match (&known, &batch.payload) {
            (None, Payload::File(path))
                if recorded.is_some() || format != InputFormat::JsonLines =>
            {
                Some(path.clone())
            }
            _ => None,
        };
        if let Some(path) = file {
            known = Some(delivery::fingerprint_of_file(path).await?);
        }
        let ingested = match recorded {
            Some(version) => {
                let reference = DeliveryRef {
                    batch_id: &batch.batch_id,
                    source_file: &batch.source_file,
                };
                let fingerprint = match &known {
                    Some(known) => known.clone(),
                    None => {
                        let payload =
                            std::mem::replace(&mut batch.payload, Payload::Bytes(Bytes::new()));
                        delivery::hash_stream(payload).await?
                    }
                };
                delivery::check_recorded(&table, &self.table, &reference, version, &fingerprint)
                    .await?;
                true
            }
            None => {
                let earlier = batch.earlier_id.as_deref();
                self.ingested_under_earlier_id(&table, earlier, &batch.batch_id, &batch.source_file)
                    .await?
            }
        };
        if ingested {
            debug!(table = %self.table, batch = %batch.batch_id, "already ingested");
            // The earlier delivery may have committed and then failed to
            // register: repair the catalog from the Delta log.
            if let Some(catalog) = &context.catalog {
                self.sync_catalog(storage, catalog).await?;
            }
            return Ok(IngestReport::already_ingested(
                self.table.clone(),
                &batch.batch_id,
                table.version(),
            ));
        }
        let (payload, hasher) = delivery::hash_as_read(batch.payload);
        batch.payload = payload;

        let ingested_at = Utc::now();
        let existing = match table.version() {
            Some(_) => Some(data_schema_of(&table, &self.table)?),
            None => self.options.schema.clone().map(|s| without_reserved(&s)),
        };
        let lineage = Lineage::new(&batch, &self.table, ingested_at);
        let mut sink = DeltaSink::new(
            Arc::clone(storage),
            self.table.clone(),
            self.writer_properties(&batch.batch_id, ingested_at),
            self.options.target_file_size.filter(|size| *size > 0),
            &date_partition_values(ingested_at)?,
        );
        let outcome = if format == InputFormat::JsonLines {
            let mut reader = JsonReader::new(&self.table, &batch, &self.options, existing, lineage);
            let payload = batch.payload;
            read_payload(payload, &batch.source_file, &mut reader, &mut sink, &hasher).await?;
            reader.finish().await?
        } else {
            let mut reader =
                ColumnarReader::new(&self.table, &batch, &self.options, existing, lineage);
            let bytes = payload_size(&batch.payload);
            columnar::read(format, batch.payload, &mut reader, &mut sink).await?;
            reader.finish(bytes)?
        };
        for rest in outcome.batches {
            sink.write(rest).await?;
        }
        if sink.rows() != outcome.rows {
            return Err(LakeError::Reconciliation {
                stage: self.name.clone(),
                message: format!(
                    "batch {}: {} records decoded but {} rows written",
                    batch.batch_id,
                    outcome.rows,
                    sink.rows()
                ),
            });
        }

        let delivery = Delivery {
            app_id,
            batch_id: batch.batch_id.clone(),
            source_file: batch.source_file.clone(),
            fingerprint: known
                .unwrap_or_else(|| hasher.lock().expect("the hasher never panics").finish()),
        };
        let dlq_version = if outcome.dead.len() > 0 {
            let dead = outcome.dead.finish(
                &batch.source_file,
                &batch.batch_id,
                self.table.namespace.as_str(),
                ingested_at.timestamp_micros(),
            )?;
            self.write_dead_letters(context, dead, &delivery).await?
        } else {
            None
        };

        let mut version = table.version();
        let mut already = false;
        let rows_written = sink.rows();
        if rows_written > 0 {
            match sink.commit(&delivery).await? {
                Written::Committed(v) => version = Some(v),
                Written::AlreadyPresent(v) => {
                    version = Some(v);
                    already = true;
                }
            }
            if let Some(catalog) = &context.catalog {
                let table = storage.open_table(&location).await?;
                self.register_table(catalog, &table, &location).await?;
                let values = date_partition_values(ingested_at)?;
                let partition_location = location
                    .join(&format!(
                        "{}/",
                        lake_core::ingestion_date_path(ingested_at.date_naive())
                    ))
                    .map_err(|e| LakeError::config("location", e.to_string()))?;
                catalog
                    .add_partitions(
                        &self.table,
                        vec![Partition::new(values, partition_location)],
                    )
                    .await?;
            }
        } else if dlq_version.is_none() && outcome.dead_count > 0 {
            already = true;
        }

        if already {
            // Another writer committed this batch while we read it.
            return Ok(IngestReport::already_ingested(
                self.table.clone(),
                &batch.batch_id,
                version,
            ));
        }
        let mut report = IngestReport::new(self.table.clone(), &batch.batch_id);
        report.input_records = outcome.lines;
        report.rows_written = rows_written;
        report.dead_lettered = outcome.dead_count;
        report.blank_lines = outcome.blank;
        report.bytes_read = outcome.bytes;
        report.table_version = version;
        report.keys_not_added = outcome.not_added;
        Ok(report)
    }

    /// Registers the table with its current schema (a new schema version
    /// when it changed).
    async fn register_table(
        &self,
        catalog: &CatalogRef,
        table: &DeltaTable,
        location: &url::Url,
    ) -> Result<()> {
        let keys = columns::PARTITION_COLUMNS
            .iter()
            .map(|c| lake_core::Ident::new(*c))
            .collect::<Result<Vec<_>>>()?;
        catalog
            .ensure_table(TableDefinition::delta(
                self.table.clone(),
                location.clone(),
                arrow_schema_of(table, &self.table)?,
                keys,
            ))
            .await?;
        Ok(())
    }

    /// Registers the table and every partition in its Delta log, with row,
    /// file and byte counts. Idempotent: run it after a failed registration,
    /// or to attach an existing lake to a new catalog.
    pub async fn sync_catalog(
        &self,
        storage: &StorageRef,
        catalog: &CatalogRef,
    ) -> Result<AddPartitions> {
        let location = storage.layout().table_location(&self.table);
        let table = storage.open_table(&location).await?;
        if table.version().is_none() {
            return Ok(AddPartitions::default());
        }
        self.register_table(catalog, &table, &location).await?;
        let state = table
            .snapshot()
            .map_err(|e| LakeError::delta(self.table.to_string(), e))?;
        let mut partitions: BTreeMap<Vec<String>, PartitionStats> = BTreeMap::new();
        for file in state.log_data().iter() {
            let values = file.partition_values_map();
            let values: Vec<String> = columns::PARTITION_COLUMNS
                .iter()
                .map(|c| values.get(*c).cloned().flatten().unwrap_or_default())
                .collect();
            let stats = partitions.entry(values).or_default();
            stats.row_count += file.num_records().unwrap_or_default() as u64;
            stats.file_count += 1;
            stats.size_bytes += file.size().max(0) as u64;
        }
        let mut registered = Vec::with_capacity(partitions.len());
        for (values, stats) in partitions {
            let path = columns::PARTITION_COLUMNS
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("/");
            registered.push(
                Partition::new(
                    values
                        .into_iter()
                        .map(PartitionValue::new)
                        .collect::<Result<Vec<_>>>()?,
                    location
                        .join(&format!("{path}/"))
                        .map_err(|e| LakeError::config("location", e.to_string()))?,
                )
                .with_stats(Some(stats)),
            );
        }
        catalog.add_partitions(&self.table, registered).await
    }

    /// Whether a lake written before batch ids were full locations holds
    /// this delivery under the id it had then (its file's base name): when
    /// that batch's rows came from the same file, it is the same delivery.
    async fn ingested_under_earlier_id(
        &self,
        table: &DeltaTable,
        earlier: Option<&str>,
        batch_id: &str,
        source_file: &str,
    ) -> Result<bool> {
        use lake_core::datafusion::prelude::{SessionContext, col, lit};
        let Some(earlier) = earlier.filter(|e| *e != batch_id) else {
            return Ok(false);
        };
        let version =
            delivery::recorded_version(table, &self.table, &Self::app_id(earlier)).await?;
        if version != Some(LEGACY_TRANSACTION_VERSION) {
            return Ok(false);
        }
        let name = self.table.to_string();
        let fail = |e| LakeError::datafusion(&name, e);
        let ctx = SessionContext::new();
        let provider = lake_core::delta_provider(&ctx, table, &name).await?;
        let rows = ctx
            .read_table(provider)
            .and_then(|frame| frame.filter(col(columns::BATCH_ID).eq(lit(earlier))))
            .and_then(|frame| frame.select_columns(&[columns::SOURCE_FILE]))
            .and_then(|frame| frame.limit(0, Some(1)))
            .map_err(fail)?
            .collect()
            .await
            .map_err(fail)?;
        // DataFusion may hand text as a view or a dictionary: cast it.
        let earlier_file = match rows.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => {
                let files = arrow::compute::cast(batch.column(0), &DataType::Utf8)
                    .map_err(|e| LakeError::arrow(&name, e))?;
                Some(files.as_string::<i32>().value(0).to_string())
            }
            None => None,
        };
        Ok(earlier_file.is_some_and(|file| {
            file == source_file
                || std::fs::canonicalize(&file).is_ok_and(|path| path.to_str() == Some(source_file))
        }))
    }

    async fn write_dead_letters(
        &self,
        context: &StageContext,
        dead: Vec<RecordBatch>,
        delivery: &Delivery,
    ) -> Result<Option<u64>> {
        let location = context.storage.layout().dead_letter(&self.table);
        let name = format!("dead letters of {}", self.table);
        context
            .storage
            .ensure_table(&location, &DEAD_LETTER_SCHEMA, &[])
            .await?;
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            let table = context.storage.open_table(&location).await?;
            if let Some(version) =
                delivery::recorded_version(&table, &self.table, &delivery.app_id).await?
            {
                delivery::check_recorded(
                    &table,
                    &self.table,
                    &delivery.as_ref(),
                    version,
                    &delivery.fingerprint,
                )
                .await?;
                return Ok(None);
            }
            let result = table
                .write(dead.clone())
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(delivery.commit_properties())
                .await;
            match result {
                Ok(table) => return Ok(table.version()),
                Err(e) => {
                    let error = LakeError::delta(name.clone(), e);
                    if !error.is_retryable() || attempt == MAX_COMMIT_ATTEMPTS {
                        return Err(error);
                    }
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    fn writer_properties(&self, batch_id: &str, ingested_at: DateTime<Utc>) -> WriterProperties {
        let mut metadata = self.file_metadata();
        metadata.push(KeyValue::new(
            "lake.ingested_at".to_string(),
            ingested_at.to_rfc3339(),
        ));
        metadata.push(KeyValue::new(
            "lake.batch_id".to_string(),
            batch_id.to_string(),
        ));
        self.file_properties()
            .set_key_value_metadata(Some(metadata))
            .build()
    }

    /// The Parquet settings of maintenance's merged files: those of
    /// ingestion, without the one batch's metadata (a merged file holds many).
    fn merged_file_properties(&self) -> WriterProperties {
        self.file_properties()
            .set_key_value_metadata(Some(self.file_metadata()))
            .build()
    }

    fn file_properties(&self) -> parquet::file::properties::WriterPropertiesBuilder {
        WriterProperties::builder()
            .set_compression(self.options.compression.to_parquet())
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            // The original text is unique per row and long: a dictionary is
            // pure overhead there, and min/max statistics of it prune nothing.
            .set_column_dictionary_enabled(ColumnPath::from(columns::RAW), false)
            .set_column_statistics_enabled(ColumnPath::from(columns::RAW), EnabledStatistics::None)
            .set_max_row_group_row_count(Some(self.options.row_group_size.max(1)))
    }

    fn file_metadata(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new(
                "lake.source_system".to_string(),
                self.table.namespace.to_string(),
            ),
            KeyValue::new("lake.table".to_string(), self.table.to_string()),
        ]
    }
}

/// An append of one batch to a bronze table, which does nothing until
/// awaited; see [`BronzeWriter::append`].
#[derive(Debug)]
#[must_use = "an append does nothing until awaited"]
pub struct Append<'a> {
    writer: &'a BronzeWriter,
    context: StageContext,
    batch: RawBatch,
}

impl Append<'_> {
    /// Registers the table and the partitions the batch wrote in `catalog`.
    pub fn with_catalog(mut self, catalog: CatalogRef) -> Self {
        self.context = self.context.with_catalog(catalog);
        self
    }

    /// Runs in the context of a pipeline run (its catalog, its run id).
    pub fn with_context(mut self, context: StageContext) -> Self {
        self.context = context;
        self
    }
}

impl<'a> IntoFuture for Append<'a> {
    type Output = Result<IngestReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.writer.ingest_batch(&self.context, self.batch).await })
    }
}

#[async_trait]
impl IngestStage for BronzeWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> &TableId {
        &self.table
    }

    async fn ingest(&self, context: &StageContext, batch: RawBatch) -> Result<IngestReport> {
        self.append(&context.storage, batch)
            .with_context(context.clone())
            .await
    }

    /// The bronze table, aging by ingestion-date partition, its small files
    /// merged per partition in ingestion order (silver reads a commit whose
    /// files were merged by its batch id, see `lake-silver`), its whole log
    /// kept (silver replays it from the first commit), and the dead-letter
    /// store, aging by `_ingested_at`.
    fn maintenance_targets(
        &self,
        layout: &lake_core::LakeLayout,
    ) -> Vec<lake_core::MaintenanceTarget> {
        use lake_core::maintenance::{Expiry, RetentionKind};
        let table = &self.table;
        vec![
            lake_core::MaintenanceTarget::table(layout, table)
                .with_keep_log(true)
                .with_writer_properties(self.merged_file_properties())
                .with_expiry(RetentionKind::Bronze, Expiry::Partitions),
            lake_core::MaintenanceTarget::new(
                format!("{table} (dead letters)"),
                layout.dead_letter(table),
            )
            .with_expiry(
                RetentionKind::DeadLetters,
                Expiry::Column(crate::columns::INGESTED_AT.to_string()),
            ),
        ]
    }

    /// The bronze table, whose rows name the subject in the subject's
    /// column or anywhere in `_raw` (the record as delivered), counted by
    /// batch so that silver still finds each batch's rows; and the dead
    /// letters, searched in every text column (the raw text of a record
    /// that never parsed has no columns).
    fn erasure_targets(
        &self,
        layout: &lake_core::LakeLayout,
    ) -> Option<Vec<lake_core::erasure::ErasureTarget>> {
        use lake_core::erasure::ErasureTarget;
        let table = &self.table;
        Some(vec![
            ErasureTarget::new(
                lake_core::MaintenanceTarget::table(layout, table)
                    .with_keep_log(true)
                    .with_writer_properties(self.merged_file_properties()),
            )
            .with_text_columns([crate::columns::RAW])
            .with_count_by(crate::columns::BATCH_ID),
            ErasureTarget::new(lake_core::MaintenanceTarget::new(
                format!("{table} (dead letters)"),
                layout.dead_letter(table),
            )),
        ])
    }
}

/// Bytes of a payload whose size is known up front (files and buffers).
fn payload_size(payload: &Payload) -> u64 {
    match payload {
        Payload::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
        Payload::Bytes(bytes) => bytes.len() as u64,
        Payload::Stream(_) | Payload::Batches(_) => 0,
    }
}

/// Feeds `payload` to `reader`; a file's bytes also go to `hasher` (a
/// stream's do already, see [`delivery::hash_as_read`]).
async fn read_payload(
    payload: Payload,
    source_file: &str,
    reader: &mut JsonReader<'_>,
    sink: &mut DeltaSink,
    hasher: &std::sync::Mutex<lake_core::ContentHasher>,
) -> Result<()> {
    match payload {
        Payload::Bytes(bytes) => {
            // Fed in slices so decoded batches reach the sink as they fill.
            for piece in bytes.chunks(READ_CHUNK) {
                reader.feed(piece)?;
                drain(reader, sink).await?;
            }
            Ok(())
        }
        Payload::File(path) => {
            let io_error = |e| LakeError::Io {
                path: path.display().to_string(),
                source: e,
            };
            let mut file = tokio::fs::File::open(&path).await.map_err(io_error)?;
            let mut buffer = vec![0u8; READ_CHUNK];
            loop {
                let n = file.read(&mut buffer).await.map_err(io_error)?;
                if n == 0 {
                    return Ok(());
                }
                hasher
                    .lock()
                    .expect("the hasher never panics")
                    .update(&buffer[..n]);
                reader.feed(&buffer[..n])?;
                drain(reader, sink).await?;
            }
        }
        Payload::Stream(mut stream) => {
            while let Some(chunk) = stream.next().await {
                reader.feed(&chunk?)?;
                drain(reader, sink).await?;
            }
            Ok(())
        }
        Payload::Batches(_) => Err(LakeError::config(
            "payload",
            format!("{source_file}: Arrow batches are not newline-delimited JSON"),
        )),
    }
}

async fn drain(reader: &mut JsonReader<'_>, sink: &mut DeltaSink) -> Result<()> {
    for batch in reader.decoded(false).await? {
        sink.write(batch).await?;
    }
    Ok(())
}

fn arrow_schema_of(table: &DeltaTable, id: &TableId) -> Result<SchemaRef> {
    let state = table
        .snapshot()
        .map_err(|e| LakeError::delta(id.to_string(), e))?;
    Ok(state.snapshot().arrow_schema())
}

/// The data columns of an existing bronze table.
fn data_schema_of(table: &DeltaTable, id: &TableId) -> Result<SchemaRef> {
    Ok(without_reserved(
        &arrow_schema_of(table, id)?.as_ref().clone(),
    ))
}
