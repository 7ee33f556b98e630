//! The three kinds of stage a [`Pipeline`](crate::Pipeline) runs, what they
//! are handed and what they report.
//!
//! Each stage writes one target table and reports counts that must
//! reconcile: nothing read may go missing between the input and the tables,
//! the dead-letter store and quarantine. The pipeline checks every report
//! with its `reconcile` method and fails the run when the counts disagree.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::erasure::ErasureTarget;
use crate::layout::LakeLayout;
use crate::maintenance::MaintenanceTarget;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::bookmark::Bookmark;
use crate::catalog::CatalogRef;
use crate::error::{LakeError, Result};
use crate::fingerprint::Fingerprint;
use crate::ident::TableId;
use crate::storage::StorageRef;
use crate::validate::{Action, RuleResult, ValidatorRef};

/// The longest batch id accepted, in bytes: room for a full path or an
/// object URL (S3 keys reach 1,024 bytes).
pub const MAX_BATCH_ID_LEN: usize = 2048;

/// The format of raw input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum InputFormat {
    /// Newline-delimited JSON, one record per line.
    JsonLines,
    /// Comma- (or otherwise) separated values with a header.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Apache Avro object container files.
    Avro,
    /// Arrow record batches handed in by the embedding service.
    Arrow,
}

impl InputFormat {
    /// The format a file name's extension suggests (`.jsonl`, `.ndjson`,
    /// `.json`, `.csv`, `.parquet`, `.avro`).
    pub fn from_file_name(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "jsonl" | "ndjson" | "json" => Some(Self::JsonLines),
            "csv" | "tsv" => Some(Self::Csv),
            "parquet" | "pq" => Some(Self::Parquet),
            "avro" => Some(Self::Avro),
            _ => None,
        }
    }
}

/// Where the bytes or batches of a raw batch come from.
pub enum Payload {
    /// A local file, read in bounded memory.
    File(PathBuf),
    /// Bytes already in memory.
    Bytes(Bytes),
    /// A stream of byte chunks (an HTTP body, an object store read).
    Stream(BoxStream<'static, Result<Bytes>>),
    /// Arrow batches built by the embedding service.
    Batches(Vec<RecordBatch>),
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::File(path) => f.debug_tuple("File").field(path).finish(),
            Payload::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Payload::Stream(_) => f.write_str("Stream(..)"),
            Payload::Batches(batches) => write!(f, "Batches({} batches)", batches.len()),
        }
    }
}

/// One delivered batch of raw data: the unit of exactly-once ingestion.
///
/// A batch is identified by its id and described by its fingerprint (see
/// [`crate::fingerprint`] for the rule): a file's or object's id is its
/// full location, and an id delivered again with other content is refused.
#[derive(Debug)]
pub struct RawBatch {
    /// Identifies the delivery: ingesting the same id with the same content
    /// twice adds nothing, with other content fails.
    pub batch_id: String,
    /// The file or object the data came from, kept as lineage on every row.
    pub source_file: String,
    /// The data's format; `None` lets the ingest stage decide (by file name).
    pub format: Option<InputFormat>,
    /// The data.
    pub payload: Payload,
    /// The bronze table it is for, when a pipeline has several ingest stages.
    pub target: Option<TableId>,
    /// The fingerprint, when known before reading (an object's ETag); the
    /// ingest stage hashes the content otherwise.
    pub fingerprint: Option<Fingerprint>,
    /// The id earlier releases of the lake gave this delivery (the file's
    /// base name), so that a lake they wrote does not take the same file
    /// twice.
    pub earlier_id: Option<String>,
}

impl RawBatch {
    /// Whether the batch can be read again (a file, bytes or Arrow batches,
    /// not a stream), which is what lets a pipeline retry its ingestion.
    pub fn is_replayable(&self) -> bool {
        !matches!(self.payload, Payload::Stream(_))
    }

    /// A copy for another attempt, or `None` for a stream.
    pub fn try_clone(&self) -> Option<Self> {
        let payload = match &self.payload {
            Payload::File(path) => Payload::File(path.clone()),
            Payload::Bytes(bytes) => Payload::Bytes(bytes.clone()),
            Payload::Batches(batches) => Payload::Batches(batches.clone()),
            Payload::Stream(_) => return None,
        };
        Some(Self {
            batch_id: self.batch_id.clone(),
            source_file: self.source_file.clone(),
            format: self.format,
            payload,
            target: self.target.clone(),
            fingerprint: self.fingerprint.clone(),
            earlier_id: self.earlier_id.clone(),
        })
    }

    fn new(batch_id: &str, format: Option<InputFormat>, payload: Payload) -> Result<Self> {
        Ok(Self {
            batch_id: check_batch_id(batch_id)?,
            source_file: batch_id.to_string(),
            format,
            payload,
            target: None,
            fingerprint: None,
            earlier_id: None,
        })
    }

    /// A batch from a local file. The batch id and source file are its
    /// absolute path, symbolic links resolved, so files of the same name in
    /// other folders are other deliveries.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                LakeError::config("path", format!("{} has no UTF-8 file name", path.display()))
            })?
            .to_string();
        let absolute = std::fs::canonicalize(path).map_err(|source| LakeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let id = absolute.to_str().ok_or_else(|| {
            LakeError::config("path", format!("{} is not UTF-8", absolute.display()))
        })?;
        let mut batch = Self::new(
            id,
            InputFormat::from_file_name(&name),
            Payload::File(absolute.clone()),
        )?;
        batch.earlier_id = Some(name);
        Ok(batch)
    }

    /// A batch streamed from an object of an object store (an upload on
    /// S3, say), read in bounded memory as it is ingested. The batch id and
    /// source file are the object's URL; its fingerprint is its size and
    /// ETag.
    pub async fn from_object(
        store: &crate::storage::ObjectStoreRef,
        location: &url::Url,
    ) -> Result<Self> {
        use futures::{StreamExt, TryStreamExt};
        let path = object_store::path::Path::from_url_path(location.path())
            .map_err(|e| LakeError::config("input", format!("{location}: {e}")))?;
        let name = path
            .filename()
            .ok_or_else(|| LakeError::config("input", format!("{location} names no object")))?
            .to_string();
        let source = location.to_string();
        use object_store::ObjectStoreExt;
        let read = store
            .get(&path)
            .await
            .map_err(|e| LakeError::storage(source.clone(), e))?;
        let meta = read.meta.clone();
        let stream = read
            .into_stream()
            .map_err(move |e| LakeError::storage(source.clone(), e))
            .boxed();
        let mut batch = Self::new(
            location.as_str(),
            InputFormat::from_file_name(&name),
            Payload::Stream(stream),
        )?;
        batch.fingerprint = Fingerprint::of_object(&meta);
        batch.earlier_id = Some(name);
        Ok(batch)
    }

    /// A batch from bytes in memory, with an id of the caller's (a
    /// service's idempotency key, say).
    pub fn from_bytes(batch_id: &str, format: InputFormat, data: impl Into<Bytes>) -> Result<Self> {
        Self::new(batch_id, Some(format), Payload::Bytes(data.into()))
    }

    /// A batch from Arrow record batches.
    pub fn from_batches(batch_id: &str, batches: Vec<RecordBatch>) -> Result<Self> {
        Self::new(
            batch_id,
            Some(InputFormat::Arrow),
            Payload::Batches(batches),
        )
    }

    /// A batch from a stream of byte chunks; its content is hashed as it
    /// is read.
    pub fn from_stream(
        batch_id: &str,
        format: InputFormat,
        stream: BoxStream<'static, Result<Bytes>>,
    ) -> Result<Self> {
        Self::new(batch_id, Some(format), Payload::Stream(stream))
    }

    /// Names the bronze table this batch is for.
    #[must_use]
    pub fn with_target(mut self, table: TableId) -> Self {
        self.target = Some(table);
        self
    }

    /// Sets the lineage name recorded as `_source_file`.
    #[must_use]
    pub fn with_source_file(mut self, source_file: impl Into<String>) -> Self {
        self.source_file = source_file.into();
        self
    }
}

/// Checks a batch id: 1 to 512 bytes, no control characters.
///
/// Batch ids are values (a column, a Delta transaction id), never paths,
/// so any other text is accepted.
pub fn check_batch_id(batch_id: &str) -> Result<String> {
    let refuse = |reason: &str| LakeError::InvalidIdentifier {
        kind: "batch id",
        value: batch_id.to_string(),
        reason: reason.to_string(),
    };
    if batch_id.is_empty() {
        return Err(refuse("must not be empty"));
    }
    if batch_id.len() > MAX_BATCH_ID_LEN {
        return Err(refuse(&format!("longer than {MAX_BATCH_ID_LEN} bytes")));
    }
    if batch_id.chars().any(char::is_control) {
        return Err(refuse("must not contain control characters"));
    }
    Ok(batch_id.to_string())
}

/// What a stage is handed when it runs: build one with
/// [`StageContext::new`] and the `with_*` setters.
///
/// ```
/// # use std::sync::Arc;
/// use lake_core::{ObjectStorage, StageContext};
///
/// # fn main() -> lake_core::Result<()> {
/// let context = StageContext::new(Arc::new(ObjectStorage::from_url("memory:///")?))
///     .with_run_id("nightly-2025-11-01");
/// assert!(context.catalog.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StageContext {
    /// The lake's storage.
    pub storage: StorageRef,
    /// The catalog to register tables and partitions in, when one is configured.
    pub catalog: Option<CatalogRef>,
    /// The validators configured for this stage's target table.
    pub validators: Vec<ValidatorRef>,
    /// The id of the pipeline run, for lineage.
    pub run_id: String,
}

impl StageContext {
    /// A context on `storage` with no catalog, no validators and a run id
    /// of its own (`adhoc-{uuid}`).
    pub fn new(storage: StorageRef) -> Self {
        Self {
            storage,
            catalog: None,
            validators: Vec::new(),
            run_id: format!("adhoc-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Registers tables and partitions in `catalog`.
    pub fn with_catalog(mut self, catalog: CatalogRef) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Checks the target's rows with `validators`.
    pub fn with_validators(mut self, validators: Vec<ValidatorRef>) -> Self {
        self.validators = validators;
        self
    }

    /// Records the work under the pipeline run `run_id`.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = run_id.into();
        self
    }
}

/// Reads raw batches into a bronze table.
///
/// # Contract
/// - One batch is one Delta commit of the target, or none: a failure leaves
///   the table at its last version.
/// - Idempotent per batch id: a batch whose id was committed before, with
///   the same fingerprint, commits nothing and reports `already_ingested`;
///   with another fingerprint it fails with [`LakeError::BatchConflict`].
///   A rerun after a failure therefore finishes the job, never doubles it
///   (the pipeline relies on this to retry).
/// - The report reconciles ([`IngestReport::reconcile`]): every record read
///   is a row, a dead letter or a blank line.
#[async_trait]
pub trait IngestStage: Send + Sync + fmt::Debug {
    /// The stage's name in reports and logs.
    fn name(&self) -> &str;

    /// The bronze table written.
    fn target(&self) -> &TableId;

    /// Ingests one batch in one commit (or none, if it was ingested before).
    async fn ingest(&self, context: &StageContext, batch: RawBatch) -> Result<IngestReport>;

    /// The tables [`crate::maintenance`] keeps compact: by default the
    /// target, vacuumed but never rewritten (silver reads bronze by the
    /// files each commit added, rebuilds included, so those files must
    /// stay), and its dead-letter store.
    fn maintenance_targets(&self, layout: &LakeLayout) -> Vec<MaintenanceTarget> {
        let target = self.target();
        vec![
            MaintenanceTarget::table(layout, target).with_rewrite(false),
            MaintenanceTarget::new(
                format!("{target} (dead letters)"),
                layout.dead_letter(target),
            ),
        ]
    }

    /// The tables holding records that an [erasure](crate::erasure)
    /// removes a subject's rows from, with the columns whose text may name
    /// it. None by default: an erasure then refuses the pipeline, since it
    /// cannot know where the stage keeps records.
    fn erasure_targets(&self, layout: &LakeLayout) -> Option<Vec<ErasureTarget>> {
        let _ = layout;
        None
    }
}

/// Types, validates and versions records from bronze (or silver) into a silver table.
///
/// # Contract
/// - The bookmark (the last source version processed) is stored in the
///   target's own commits and moves in the commit that writes the data it
///   covers: after a crash the target and its bookmark agree, and the next
///   run starts after the last committed source version.
/// - A run with nothing new after the bookmark commits nothing; running
///   twice gives the table running once gives.
/// - A source created again (another Delta table id, or a version below the
///   bookmark) is never read as "up to date": the stage rebuilds from it
///   (see [`crate::BookmarkState::Replaced`]).
/// - The report reconciles ([`RefineReport::reconcile`]): every source row
///   read is valid or quarantined.
#[async_trait]
pub trait RefineStage: Send + Sync + fmt::Debug {
    /// The stage's name in reports and logs.
    fn name(&self) -> &str;

    /// The silver table written.
    fn target(&self) -> &TableId;

    /// The tables read.
    fn sources(&self) -> Vec<TableId>;

    /// The bookmarks the stage keeps in its target, one per source it reads
    /// incrementally: what `lake status` reads to say how far the stage is
    /// behind. None by default (a stage that keeps no bookmark).
    fn bookmarks(&self) -> Vec<(TableId, Bookmark)> {
        Vec::new()
    }

    /// Processes everything committed to the sources since the stage's bookmark.
    async fn refine(&self, context: &StageContext) -> Result<RefineReport>;

    /// Recomputes the target (and every table it keeps beside it) from
    /// what the sources hold now, replacing what it held, and moves the
    /// bookmark to their latest versions: what an [erasure](crate::erasure)
    /// runs once the sources lost a subject's rows. Refused by default.
    async fn rebuild(&self, context: &StageContext) -> Result<RefineReport> {
        let _ = context;
        Err(LakeError::config(
            self.name(),
            "this stage cannot be rebuilt from its sources, so an erasure cannot recompute it",
        ))
    }

    /// The tables [`crate::maintenance`] keeps compact, with their layouts:
    /// the target and its quarantine, by default.
    fn maintenance_targets(&self, layout: &LakeLayout) -> Vec<MaintenanceTarget> {
        let target = self.target();
        vec![
            MaintenanceTarget::table(layout, target),
            MaintenanceTarget::new(format!("{target} (quarantine)"), layout.quarantine(target)),
        ]
    }
}

/// Aggregates silver (or gold) tables into a gold table.
///
/// # Contract
/// - As [`RefineStage`]: the bookmark moves in the commit that writes the
///   refreshed data, a run with nothing new commits nothing, and a source
///   created again triggers a full refresh, never a skip.
/// - After any run the table equals a full recomputation over the sources
///   at the bookmarked versions.
#[async_trait]
pub trait AggregateStage: Send + Sync + fmt::Debug {
    /// The stage's name in reports and logs.
    fn name(&self) -> &str;

    /// The gold table written.
    fn target(&self) -> &TableId;

    /// The tables read.
    fn sources(&self) -> Vec<TableId>;

    /// The bookmarks the stage keeps in its target, one per source it reads
    /// incrementally: what `lake status` reads to say how far the stage is
    /// behind. None by default (a stage that keeps no bookmark).
    fn bookmarks(&self) -> Vec<(TableId, Bookmark)> {
        Vec::new()
    }

    /// Refreshes what changed in the sources since the stage's bookmark.
    async fn aggregate(&self, context: &StageContext) -> Result<AggregateReport>;

    /// The tables [`crate::maintenance`] keeps compact: the target, by default.
    fn maintenance_targets(&self, layout: &LakeLayout) -> Vec<MaintenanceTarget> {
        vec![MaintenanceTarget::table(layout, self.target())]
    }
}

/// A shared ingest stage.
pub type IngestStageRef = Arc<dyn IngestStage>;
/// A shared refine stage.
pub type RefineStageRef = Arc<dyn RefineStage>;
/// A shared aggregate stage.
pub type AggregateStageRef = Arc<dyn AggregateStage>;

/// What an ingest stage did with one batch.
///
/// Reconciles when `input_records = rows_written + dead_lettered + blank_lines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IngestReport {
    /// The bronze table.
    pub table: TableId,
    /// The batch id.
    pub batch_id: String,
    /// Records (lines, for text formats) read from the input.
    pub input_records: u64,
    /// Rows appended to the table.
    pub rows_written: u64,
    /// Records sent to the dead-letter store.
    pub dead_lettered: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// The batch had been ingested before, so nothing was read or written.
    pub already_ingested: bool,
    /// Bytes read from the input.
    pub bytes_read: u64,
    /// The table version committed, if any.
    pub table_version: Option<u64>,
    /// New keys that got no column because the table reached its column
    /// limit; their values are in `_raw`.
    #[serde(default)]
    pub keys_not_added: u64,
}

impl IngestReport {
    /// A report for a batch that was already ingested.
    pub fn already_ingested(table: TableId, batch_id: &str, table_version: Option<u64>) -> Self {
        Self {
            already_ingested: true,
            table_version,
            ..Self::new(table, batch_id)
        }
    }

    /// A report of batch `batch_id` into `table` with every count at zero,
    /// for an ingest stage to fill in.
    pub fn new(table: TableId, batch_id: &str) -> Self {
        Self {
            table,
            batch_id: batch_id.to_string(),
            input_records: 0,
            rows_written: 0,
            dead_lettered: 0,
            blank_lines: 0,
            already_ingested: false,
            bytes_read: 0,
            table_version: None,
            keys_not_added: 0,
        }
    }

    /// Checks `input_records = rows_written + dead_lettered + blank_lines`.
    pub fn reconcile(&self) -> Result<()> {
        let accounted = self.rows_written + self.dead_lettered + self.blank_lines;
        if self.input_records == accounted {
            Ok(())
        } else {
            Err(LakeError::Reconciliation {
                stage: self.table.to_string(),
                message: format!(
                    "batch {}: {} input records but {} written + {} dead-lettered + {} blank = {accounted}",
                    self.batch_id,
                    self.input_records,
                    self.rows_written,
                    self.dead_lettered,
                    self.blank_lines
                ),
            })
        }
    }
}

/// The outcome of one expectation, as reports and run records keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExpectationSummary {
    /// The rule's name.
    pub rule: String,
    /// Its action.
    pub action: Action,
    /// Whether it passed.
    pub success: bool,
    /// Rows examined.
    pub element_count: u64,
    /// Rows that failed.
    pub unexpected_count: u64,
    /// Rows left out because the checked value was null.
    #[serde(default)]
    pub missing_count: u64,
    /// Failed rows per hundred rows checked (nulls left out).
    #[serde(default)]
    pub unexpected_percent: f64,
    /// The value observed by aggregate rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<serde_json::Value>,
}

impl From<&RuleResult> for ExpectationSummary {
    fn from(result: &RuleResult) -> Self {
        Self {
            rule: result.rule.clone(),
            action: result.action,
            success: result.success,
            element_count: result.element_count as u64,
            unexpected_count: result.unexpected_count as u64,
            missing_count: result.missing_count as u64,
            unexpected_percent: result.unexpected_percent(),
            observed_value: result.observed_value.clone(),
        }
    }
}

/// The source versions a stage read: commits `first..=last` of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VersionRange {
    /// The first version read.
    pub first: u64,
    /// The last version read.
    pub last: u64,
}

impl VersionRange {
    /// Commits `first..=last`.
    pub fn new(first: u64, last: u64) -> Self {
        Self { first, last }
    }
}

/// What a refine stage did.
///
/// Reconciles when `rows_read = valid + quarantined`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefineReport {
    /// The silver table.
    pub table: TableId,
    /// Source rows read since the bookmark.
    pub rows_read: u64,
    /// Rows that passed typing and the `drop` expectations.
    pub valid: u64,
    /// Rows sent to quarantine.
    pub quarantined: u64,
    /// Valid rows that were exact duplicates of events already seen.
    pub duplicates: u64,
    /// Sequence conflicts resolved (same key and sequence, different content).
    pub sequence_conflicts: u64,
    /// Rows inserted or changed in the target table.
    pub rows_written: u64,
    /// Distinct keys among the valid rows.
    #[serde(default)]
    pub keys: u64,
    /// Of those, the keys whose logged events were read to plan them; the
    /// others were planned from their version in force alone (their new
    /// events all follow every logged one).
    #[serde(default)]
    pub keys_from_log: u64,
    /// Expectation outcomes.
    pub expectations: Vec<ExpectationSummary>,
    /// Versions committed, by table (the target, its changes table, quarantine).
    pub table_versions: BTreeMap<String, u64>,
    /// The source versions read, by table: the lineage a run record keeps.
    #[serde(default)]
    pub source_versions: BTreeMap<String, VersionRange>,
}

impl RefineReport {
    /// An empty report for `table`: nothing was pending.
    pub fn empty(table: TableId) -> Self {
        Self {
            table,
            rows_read: 0,
            valid: 0,
            quarantined: 0,
            duplicates: 0,
            sequence_conflicts: 0,
            rows_written: 0,
            keys: 0,
            keys_from_log: 0,
            expectations: Vec::new(),
            table_versions: BTreeMap::new(),
            source_versions: BTreeMap::new(),
        }
    }

    /// Adds the report of the run's next slice (a backlog processed in
    /// several commits): counts add up, versions are the later ones, and
    /// each source's range runs from this report's first to `later`'s last.
    pub fn absorb(&mut self, later: RefineReport) {
        self.rows_read += later.rows_read;
        self.valid += later.valid;
        self.quarantined += later.quarantined;
        self.duplicates += later.duplicates;
        self.sequence_conflicts += later.sequence_conflicts;
        self.rows_written += later.rows_written;
        self.keys += later.keys;
        self.keys_from_log += later.keys_from_log;
        self.expectations.extend(later.expectations);
        self.table_versions.extend(later.table_versions);
        for (source, range) in later.source_versions {
            self.source_versions
                .entry(source)
                .and_modify(|known| known.last = range.last)
                .or_insert(range);
        }
    }

    /// Checks `rows_read = valid + quarantined`.
    pub fn reconcile(&self) -> Result<()> {
        if self.rows_read == self.valid + self.quarantined {
            Ok(())
        } else {
            Err(LakeError::Reconciliation {
                stage: self.table.to_string(),
                message: format!(
                    "{} rows read but {} valid + {} quarantined = {}",
                    self.rows_read,
                    self.valid,
                    self.quarantined,
                    self.valid + self.quarantined
                ),
            })
        }
    }
}

/// What an aggregate stage did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AggregateReport {
    /// The gold table.
    pub table: TableId,
    /// Source rows read.
    pub rows_read: u64,
    /// Partitions recomputed and replaced.
    pub partitions_refreshed: u64,
    /// Rows written to the refreshed partitions.
    pub rows_written: u64,
    /// The table version committed, if any.
    pub table_version: Option<u64>,
    /// The source versions read, by table: the lineage a run record keeps.
    #[serde(default)]
    pub source_versions: BTreeMap<String, VersionRange>,
}

impl AggregateReport {
    /// An empty report for `table`: nothing changed upstream.
    pub fn empty(table: TableId) -> Self {
        Self {
            table,
            rows_read: 0,
            partitions_refreshed: 0,
            rows_written: 0,
            table_version: None,
            source_versions: BTreeMap::new(),
        }
    }
}
