//! Keeping a Delta table small and readable: rewriting small files into
//! fewer, rewriting files whose deletion vectors delete much of them, dropping
//! the deletion-vector feature for readers that lack it, and vacuum.
//!
//! ```no_run
//! # async fn example(storage: lake_core::StorageRef) -> lake_core::Result<()> {
//! use lake_core::TableId;
//! use lake_core::maintenance::{Maintain, MaintenanceOptions};
//!
//! let orders = TableId::silver("sales", "orders")?;
//! let (_table, report) = Maintain::new(storage, orders)
//!     .with_options(MaintenanceOptions::default().with_dry_run(true))
//!     .await?;
//! println!("{} files would go, {} would come", report.rewrite.files_removed, report.rewrite.files_added);
//! # Ok(())
//! # }
//! ```
//!
//! # Steps, each one commit or none
//! 1. **Rewrite**: in every partition, files under half the target size (or,
//!    with a [`PartitionLayout`] that bounds rows per file, under half that
//!    many rows) are merged into files of about the target, and a file whose
//!    deletion vector deletes at least [`MaintenanceOptions::deletion_vector_share`]
//!    of its rows is rewritten without them, so the vector goes away. Rows
//!    are unchanged: the commit removes and adds files with `dataChange:
//!    false`, and incremental readers (silver reading bronze, gold reading
//!    silver) skip such commits' files (see [`crate::storage::changes_data`]).
//!    Rows keep their partition. Merged rows are sorted as the layout says,
//!    or by [`MaintenanceTarget::sort_by`]; unsorted groups are streamed
//!    (files in log order, so bronze stays in ingestion order), and memory
//!    holds a few batches of them besides the file being written.
//! 2. **Dropping deletion vectors** ([`MaintenanceOptions::with_drop_deletion_vectors`]):
//!    the same commit rewrites every file that has one, turns
//!    `delta.enableDeletionVectors` off and removes the feature from the
//!    protocol (reader version 1 when no other reader feature is left), so
//!    readers without deletion-vector support (Athena before engine 3,
//!    Redshift Spectrum, Presto, deltalake's `to_pyarrow_table()`) read the
//!    table. Writers of this workspace then write without deletion vectors.
//! 3. **Retention** ([`MaintenanceOptions::with_retention`]): rows older
//!    than the target's [`RetentionPolicy`] allows go, in one commit: whole
//!    bronze partitions by ingestion day (recording the horizon in
//!    [`TRIMMED_BEFORE`]), rows of the other tables by their timestamp.
//! 4. **Vacuum**: deltalake's `VACUUM` in full mode deletes the files no
//!    version within the retention references (replaced data files and
//!    deletion-vector files, and files of writers that failed before their
//!    commit) once they are older than [`MaintenanceOptions::vacuum_retention`]
//!    (7 days). A retention below the table's `delta.deletedFileRetentionDuration`
//!    (7 days unless set) is refused unless [`MaintenanceOptions::with_short_retention`]
//!    allows it: a reader or writer that started before the vacuum may still
//!    need those files, and time travel to versions before the retention ends.
//! 5. **Checkpoint**: past [`CHECKPOINT_AFTER`] commits since the last one,
//!    a checkpoint, so readers replay few JSON commits.
//!
//! # The Delta log
//! Delta writers expire log entries older than `delta.logRetentionDuration`
//! (30 days) that a checkpoint covers, unless [`EXPIRED_LOG_CLEANUP`] is
//! `false`. A table whose readers replay its commits from the first
//! ([`MaintenanceTarget::keep_log`]: bronze, which silver rebuilds from and
//! reads by commit) keeps its whole log: maintenance sets the property when
//! it is missing (a table made before, or changed by another writer), as
//! its first commit, and none of its own commits expires anything. Other
//! tables' logs expire as Delta says; their readers never skip a commit that
//! went: gold refreshes in full when a silver commit after its bookmark has
//! left the log, and silver fails naming the bronze commit it cannot read.
//!
//! # Retention waits for readers
//! With [`MaintenanceTarget::read_up_to`] (the pipeline sets it from its
//! stages' bookmarks), a bronze partition is not expired while a commit
//! after the bookmark wrote to it, however old it is: a stage that fell
//! behind still finds every row. Maintaining one table on its own has no
//! bookmarks to wait for; a stage that then cannot find rows of a commit it
//! has not read fails naming it.
//!
//! # Why not deltalake's `optimize`
//! deltalake's `OPTIMIZE` bin-packs files, but it leaves a partition's only
//! small file alone and skips every file above the target size, so a large
//! file with a large deletion vector is never rewritten; and it concatenates
//! files in log order, which would undo a table's sort (silver keeps closed
//! versions sorted by their end in files of a bounded number of rows, so
//! that its runs skip old files by their statistics). The rewrite here reads
//! each file with its deletion vector applied, and writes each group sorted
//! and bounded as its [`PartitionLayout`] says, with deltalake's writer
//! (statistics included) and commit.
//!
//! Its Z-order does not fit either: deltalake 1.1 rewrites every file of
//! every partition on each Z-order run (its planner optimizes "all files
//! in each selected partition"), so a maintenance run every few hours would
//! rewrite the whole table every time. A table's readers get file skipping
//! on the columns they filter by from a sort instead
//! ([`MaintenanceTarget::with_sort_by`], `[maintenance.sort_by]` in
//! `lake.toml`), which only the merged small files pay for.
//!
//! # Racing a pipeline run
//! deltalake's conflict checker ignores removes with `dataChange: false`
//! when it checks a later commit against them (`ConcurrentDeleteRead`,
//! `ConcurrentDeleteDelete`). It still sees a compaction's new files when
//! the later commit read the compacted partitions through a predicate
//! (`ConcurrentAppend`: silver's incremental runs, gold's partition
//! refreshes), but not when it read the whole table without one (silver's
//! rebuild, a full gold refresh): that commit would replace the files it
//! read, which the compaction had replaced already, and the compacted
//! copies of their rows would stay beside the new ones. So every commit
//! that replaces files, here and in silver and gold, carries the
//! application transaction [`REWRITE_FENCE`]: two of them racing conflict
//! (`ConcurrentTransaction`) whatever they read, whichever is second fails
//! with a retryable [`LakeError::CommitConflict`], and the pipeline's retry
//! runs the stage again on the new files. Appends (bronze, the dead-letter
//! store, the event log) do not carry it and never conflict with a
//! compaction.

use std::collections::{BTreeMap, HashMap};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    BooleanArray, BooleanBufferBuilder, RecordBatch, RecordBatchOptions, new_null_array,
};
use arrow::compute::{SortColumn, concat_batches, filter_record_batch, lexsort_to_indices};
use arrow::datatypes::{Schema, SchemaRef};
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::DataType as KernelType;
use delta_kernel::table_features::TableFeature;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, LogicalFileView, MetadataExt, Protocol, Transaction};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use indexmap::IndexMap;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use tracing::{info, warn};

use crate::error::{LakeError, Result};
use crate::ident::TableId;
use crate::layout::LakeLayout;
use crate::storage::{StorageExt, StorageRef};
use url::Url;

/// The application transaction every commit that replaces files carries, so
/// that two such commits racing conflict (see [the module docs](self#racing-a-pipeline-run)).
pub const REWRITE_FENCE: &str = "lake.rewrite";

/// The table property that enables deletion vectors.
pub const ENABLE_DELETION_VECTORS: &str = "delta.enableDeletionVectors";

/// The [`REWRITE_FENCE`] transaction for a commit made now.
pub fn rewrite_fence() -> Transaction {
    let now = chrono::Utc::now().timestamp_millis();
    Transaction::new_with_last_update(REWRITE_FENCE, now, Some(now))
}

/// Default target size of a rewritten file: 128 MiB, the size Spark's and
/// Databricks' `OPTIMIZE` aim at, and large enough that a reader's cost per
/// file is small beside its cost per byte.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// How the files of the partitions where `column` is `value` are written
/// when they are rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLayout {
    /// The partition column.
    pub column: String,
    /// Its value, as the log holds it (`"true"`, `"2024-05-01"`).
    pub value: String,
    /// Rows are sorted by these columns (ascending, nulls first) across the
    /// merged files.
    pub sort_by: Vec<String>,
    /// Most rows in one written file; files under half of it count as small.
    pub max_rows_per_file: Option<usize>,
}

impl PartitionLayout {
    /// Files of the partitions where `column` is `value`, unsorted and
    /// bounded by size only, until the setters say otherwise.
    pub fn new(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            value: value.into(),
            sort_by: Vec::new(),
            max_rows_per_file: None,
        }
    }

    /// Sorts the rows of merged files by `columns`.
    pub fn with_sort_by(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sort_by = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Writes at most `rows` rows per file.
    pub fn with_max_rows_per_file(mut self, rows: usize) -> Self {
        self.max_rows_per_file = Some(rows.max(1));
        self
    }
}

/// Which retention rule of a [`RetentionPolicy`] a table follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetentionKind {
    /// A bronze table: whole ingestion-date partitions go.
    Bronze,
    /// A dead-letter store.
    DeadLetters,
    /// A quarantine.
    Quarantine,
    /// Run and quality records in `_metadata`.
    Records,
}

/// How a table's rows age: by which rule and which column.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiry {
    /// Bronze's `year`/`month`/`day` partitions (zero-padded text): a
    /// partition older than the cutoff day goes whole, its files removed
    /// without a rewrite, so silver, which reads bronze's added files, reads
    /// nothing of the commit.
    Partitions,
    /// Rows whose timestamp `column` is before the cutoff go.
    Column(String),
}

/// Days each kind of table keeps its rows; `None` keeps them forever (the
/// default for every kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Bronze partitions older than this many days go. Silver keeps every
    /// version it made from them, but cannot be rebuilt past the horizon:
    /// a rebuild of a trimmed bronze is refused.
    pub bronze_days: Option<u32>,
    /// Dead letters older than this many days go.
    pub dead_letter_days: Option<u32>,
    /// Quarantined records older than this many days go.
    pub quarantine_days: Option<u32>,
    /// Run and quality records older than this many days go.
    pub run_record_days: Option<u32>,
}

impl RetentionPolicy {
    /// Keeps everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the bronze horizon.
    pub fn with_bronze_days(mut self, days: u32) -> Self {
        self.bronze_days = Some(days);
        self
    }

    /// Sets the dead letters' horizon.
    pub fn with_dead_letter_days(mut self, days: u32) -> Self {
        self.dead_letter_days = Some(days);
        self
    }

    /// Sets the quarantine's horizon.
    pub fn with_quarantine_days(mut self, days: u32) -> Self {
        self.quarantine_days = Some(days);
        self
    }

    /// Sets the run and quality records' horizon.
    pub fn with_run_record_days(mut self, days: u32) -> Self {
        self.run_record_days = Some(days);
        self
    }

    /// The days `kind` keeps.
    pub fn days(&self, kind: RetentionKind) -> Option<u32> {
        match kind {
            RetentionKind::Bronze => self.bronze_days,
            RetentionKind::DeadLetters => self.dead_letter_days,
            RetentionKind::Quarantine => self.quarantine_days,
            RetentionKind::Records => self.run_record_days,
        }
    }
}

/// The Delta table property that lets writers expire log entries older than
/// `delta.logRetentionDuration` (30 days) at checkpoints; `false` keeps the
/// whole log.
pub const EXPIRED_LOG_CLEANUP: &str = "delta.enableExpiredLogCleanup";

/// The table property a bronze retention sets: the first ingestion day
/// bronze still holds (`2026-09-01`). Silver refuses to rebuild from a
/// table that has it.
pub const TRIMMED_BEFORE: &str = "lake.retention.trimmedBefore";

/// What [`Maintain`] does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MaintenanceOptions {
    /// Size a rewrite aims at per file ([`DEFAULT_TARGET_FILE_BYTES`]).
    pub target_file_bytes: u64,
    /// A file whose deletion vector deletes at least this share of its rows
    /// is rewritten without them (default 0.25).
    pub deletion_vector_share: f64,
    /// Rewrite every file with a deletion vector and drop the feature
    /// (default false).
    pub drop_deletion_vectors: bool,
    /// Run vacuum after the rewrite (default true).
    pub vacuum: bool,
    /// Files unreferenced for less than this are kept (default 7 days).
    pub vacuum_retention: Duration,
    /// Allow a retention below the table's `delta.deletedFileRetentionDuration`
    /// (default false).
    pub short_retention: bool,
    /// Plan and report only: nothing is written or deleted (default false).
    pub dry_run: bool,
    /// How long rows of each kind of table are kept (forever by default).
    pub retention: RetentionPolicy,
    /// The instant retention counts days back from (now by default).
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            deletion_vector_share: 0.25,
            drop_deletion_vectors: false,
            vacuum: true,
            vacuum_retention: Duration::from_secs(7 * 24 * 3600),
            short_retention: false,
            dry_run: false,
            retention: RetentionPolicy::default(),
            now: None,
        }
    }
}

impl MaintenanceOptions {
    /// Sets the target size of rewritten files.
    pub fn with_target_file_bytes(mut self, bytes: u64) -> Self {
        self.target_file_bytes = bytes.max(1);
        self
    }

    /// Sets the share of deleted rows past which a file is rewritten.
    pub fn with_deletion_vector_share(mut self, share: f64) -> Self {
        self.deletion_vector_share = share.clamp(0.0, 1.0);
        self
    }

    /// Rewrites every file with a deletion vector and drops the feature,
    /// so readers without deletion-vector support read the table.
    pub fn with_drop_deletion_vectors(mut self, drop: bool) -> Self {
        self.drop_deletion_vectors = drop;
        self
    }

    /// Runs vacuum, or not.
    pub fn with_vacuum(mut self, vacuum: bool) -> Self {
        self.vacuum = vacuum;
        self
    }

    /// Sets how long unreferenced files are kept.
    pub fn with_vacuum_retention(mut self, retention: Duration) -> Self {
        self.vacuum_retention = retention;
        self
    }

    /// Allows a retention below the table's own (see the module docs for
    /// what that risks).
    pub fn with_short_retention(mut self, allow: bool) -> Self {
        self.short_retention = allow;
        self
    }

    /// Plans and reports without writing or deleting anything.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets how long rows are kept.
    pub fn with_retention(mut self, retention: RetentionPolicy) -> Self {
        self.retention = retention;
        self
    }

    /// Counts retention's days back from `now` instead of the clock.
    pub fn with_now(mut self, now: chrono::DateTime<chrono::Utc>) -> Self {
        self.now = Some(now);
        self
    }
}

/// A table to maintain: where it is, and how its files are laid out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MaintenanceTarget {
    /// Its name in reports and errors (`silver.sales.orders`,
    /// `bronze.shop.orders (dead letters)`).
    pub name: String,
    /// Its location.
    pub location: Url,
    /// Layouts of its partitions; the first that matches a file's partition
    /// applies.
    pub layouts: Vec<PartitionLayout>,
    /// Rows of rewritten files in partitions no layout names are sorted by
    /// these columns (ascending, nulls first; none: kept in file order).
    pub sort_by: Vec<String>,
    /// Parquet settings of rewritten files (deltalake's defaults otherwise).
    pub writer_properties: Option<WriterProperties>,
    /// Whether its files may be rewritten (default true); vacuum runs either way.
    pub rewrite: bool,
    /// How its rows age, and by which rule of the [`RetentionPolicy`]
    /// (none: kept forever).
    pub expiry: Option<(RetentionKind, Expiry)>,
    /// The earliest version up to which the stages that read this table
    /// incrementally have read it (their bookmarks): retention keeps the
    /// partitions later commits wrote, however old, so no row expires
    /// before every reader has seen it. `None`: no reader to wait for.
    /// [`Pipeline::maintain`](crate::Pipeline::maintain) sets it.
    pub read_up_to: Option<u64>,
    /// Whether its whole Delta log must stay (default false): a table whose
    /// readers replay its commits from the first (silver rebuilding from
    /// bronze). Maintenance then sets [`EXPIRED_LOG_CLEANUP`] to `false`
    /// on it, and none of its commits expires log entries.
    pub keep_log: bool,
}

impl MaintenanceTarget {
    /// The table named `name` at `location`, without layouts.
    pub fn new(name: impl Into<String>, location: Url) -> Self {
        Self {
            name: name.into(),
            location,
            layouts: Vec::new(),
            sort_by: Vec::new(),
            writer_properties: None,
            rewrite: true,
            expiry: None,
            read_up_to: None,
            keep_log: false,
        }
    }

    /// The table `id` of the lake laid out as `layout`.
    pub fn table(layout: &LakeLayout, id: &TableId) -> Self {
        Self::new(id.to_string(), layout.table_location(id))
    }

    /// Adds a partition layout.
    pub fn with_layout(mut self, layout: PartitionLayout) -> Self {
        self.layouts.push(layout);
        self
    }

    /// Sorts rewritten files by `columns` in the partitions no layout
    /// names: a sort on the columns queries filter by lets readers skip
    /// files by their statistics.
    pub fn with_sort_by(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sort_by = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the Parquet settings of rewritten files.
    pub fn with_writer_properties(mut self, properties: WriterProperties) -> Self {
        self.writer_properties = Some(properties);
        self
    }

    /// Allows or forbids rewriting its files (a table whose readers follow
    /// the files each commit added, and cannot find its rows otherwise,
    /// must keep them).
    pub fn with_rewrite(mut self, rewrite: bool) -> Self {
        self.rewrite = rewrite;
        self
    }

    /// Ages its rows as `expiry` says, by the policy's `kind` rule.
    pub fn with_expiry(mut self, kind: RetentionKind, expiry: Expiry) -> Self {
        self.expiry = Some((kind, expiry));
        self
    }

    /// Keeps the table's whole Delta log (see [`MaintenanceTarget::keep_log`]).
    pub fn with_keep_log(mut self, keep: bool) -> Self {
        self.keep_log = keep;
        self
    }

    /// Keeps, whatever their age, the partitions that commits after
    /// `version` wrote: a reader has read the table up to `version` only.
    /// Several calls keep the earliest.
    pub fn with_read_up_to(mut self, version: u64) -> Self {
        self.read_up_to = Some(self.read_up_to.map_or(version, |v| v.min(version)));
        self
    }
}

/// What a table's live files hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileStats {
    /// Data files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Rows, deleted ones excluded.
    pub rows: u64,
    /// Files with a deletion vector.
    pub files_with_deletion_vectors: u64,
    /// Rows their deletion vectors delete.
    pub deleted_rows: u64,
}

impl FileStats {
    /// The stats of the live files of `table` (none when it has no version).
    pub fn of(table: &DeltaTable) -> Self {
        let Ok(snapshot) = table.snapshot() else {
            return Self::default();
        };
        let mut stats = Self::default();
        for file in snapshot.log_data().iter() {
            let rows = file.num_records().unwrap_or(0) as u64;
            let deleted = file
                .deletion_vector_descriptor()
                .map_or(0, |dv| dv.cardinality.max(0) as u64);
            stats.files += 1;
            stats.bytes += file.size().max(0) as u64;
            stats.rows += rows.saturating_sub(deleted);
            stats.files_with_deletion_vectors += u64::from(deleted > 0);
            stats.deleted_rows += deleted;
        }
        stats
    }
}

/// What the rewrite step did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RewriteSummary {
    /// Groups of files merged (or rewritten alone).
    pub groups: u64,
    /// Files removed.
    pub files_removed: u64,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Files written (in a dry run: an estimate, from the target size).
    pub files_added: u64,
    /// Their bytes (0 in a dry run).
    pub bytes_added: u64,
    /// Deletion vectors that went away with their files.
    pub deletion_vectors_removed: u64,
    /// Rows rewritten.
    pub rows: u64,
}

/// What [`Maintain`] did to one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// The table.
    pub table: String,
    /// Whether nothing was written or deleted.
    pub dry_run: bool,
    /// Its live files before.
    pub before: FileStats,
    /// Its live files after (in a dry run, as before).
    pub after: FileStats,
    /// The rewrite step.
    pub rewrite: RewriteSummary,
    /// Whether the deletion-vector feature was (or would be) dropped.
    pub dropped_deletion_vectors: bool,
    /// Rows retention removed (or would remove), and the cutoff it applied.
    pub expired_rows: u64,
    /// The instant before which rows expired, when a retention applied.
    pub expired_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether maintenance turned off (or, in a dry run, would turn off)
    /// the expiry of the table's log entries ([`MaintenanceTarget::keep_log`]).
    pub log_cleanup_turned_off: bool,
    /// Partitions old enough to expire that retention kept because a stage
    /// reading the table has not read every row in them yet
    /// ([`MaintenanceTarget::read_up_to`]).
    pub kept_unread_partitions: u64,
    /// Files vacuum deleted (or would delete).
    pub vacuumed_files: u64,
    /// The version a checkpoint was written at, when one was (more than
    /// [`CHECKPOINT_AFTER`] commits since the last).
    pub checkpoint: Option<u64>,
    /// The versions this maintenance committed, in order.
    pub versions: Vec<u64>,
}

/// Maintenance of one table, run when awaited: the table after it and a
/// [`MaintenanceReport`]. A table that does not exist is an error.
#[must_use = "a maintenance does nothing until awaited"]
pub struct Maintain {
    storage: StorageRef,
    target: MaintenanceTarget,
    options: MaintenanceOptions,
}

impl Maintain {
    /// Maintains the lake's table `id` with the default options.
    pub fn new(storage: StorageRef, id: TableId) -> Self {
        let target = MaintenanceTarget::table(storage.layout(), &id);
        Self::target(storage, target)
    }

    /// Maintains `target` (a dead-letter or quarantine table, or a table
    /// with layouts) with the default options.
    pub fn target(storage: StorageRef, target: MaintenanceTarget) -> Self {
        Self {
            storage,
            target,
            options: MaintenanceOptions::default(),
        }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: MaintenanceOptions) -> Self {
        self.options = options;
        self
    }
}

impl IntoFuture for Maintain {
    type Output = Result<(DeltaTable, MaintenanceReport)>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(maintain(self.storage, self.target, self.options))
    }
}

async fn maintain(
    storage: StorageRef,
    target: MaintenanceTarget,
    options: MaintenanceOptions,
) -> Result<(DeltaTable, MaintenanceReport)> {
    let MaintenanceTarget {
        name,
        location,
        layouts,
        sort_by,
        writer_properties,
        rewrite,
        expiry,
        read_up_to,
        keep_log,
    } = target;
    // Every commit here expires log entries as the table says, except on a
    // table whose log must stay whole.
    let properties = || {
        let properties = CommitProperties::default().with_application_transaction(rewrite_fence());
        match keep_log {
            true => properties.with_cleanup_expired_logs(Some(false)),
            false => properties,
        }
    };
    // Partitions no layout names are sorted as the target says.
    let fallback =
        (!sort_by.is_empty()).then(|| PartitionLayout::new("", "").with_sort_by(sort_by));
    let mut table = storage.open_table(&location).await?;
    if table.version().is_none() {
        return Err(LakeError::not_found(format!(
            "table {name} (nothing to maintain)"
        )));
    }
    let before = FileStats::of(&table);
    let mut report = MaintenanceReport {
        table: name.clone(),
        dry_run: options.dry_run,
        before,
        after: before,
        ..MaintenanceReport::default()
    };

    // A log that must stay whole is protected from every writer first.
    if keep_log {
        let snapshot = table.snapshot().map_err(|e| LakeError::delta(&name, e))?;
        let kept = snapshot.metadata().configuration().get(EXPIRED_LOG_CLEANUP);
        if kept.map(String::as_str) != Some("false") {
            report.log_cleanup_turned_off = true;
            if !options.dry_run {
                table = table
                    .set_tbl_properties()
                    .with_properties(HashMap::from([(
                        EXPIRED_LOG_CLEANUP.to_string(),
                        "false".to_string(),
                    )]))
                    .with_commit_properties(
                        CommitProperties::default().with_cleanup_expired_logs(Some(false)),
                    )
                    .await
                    .map_err(|e| LakeError::delta(&name, e))?;
                report.versions.extend(table.version());
            }
        }
    }

    // Expired rows go first: compacting them would be wasted work.
    if let Some((kind, expiry)) = &expiry
        && let Some(days) = options.retention.days(*kind)
    {
        let now = options.now.unwrap_or_else(chrono::Utc::now);
        let cutoff = now - chrono::Duration::days(i64::from(days));
        report.expired_before = Some(cutoff);
        let unread = match (expiry, read_up_to) {
            (Expiry::Partitions, Some(version)) => {
                Some(unread_partitions(&table, version, &name).await?)
            }
            _ => None,
        };
        let expired = expire(
            &table,
            expiry,
            cutoff,
            unread.as_ref(),
            (options.dry_run, properties()),
            &name,
        )
        .await?;
        report.expired_rows = expired.rows;
        report.kept_unread_partitions = expired.kept_unread;
        if let Some(version) = expired.version {
            report.versions.push(version);
            table
                .update_state()
                .await
                .map_err(|e| LakeError::delta(&name, e))?;
        }
    }

    let snapshot = table.snapshot().map_err(|e| LakeError::delta(&name, e))?;
    let drop = rewrite && options.drop_deletion_vectors && has_deletion_vectors(snapshot);
    let files: Vec<LogicalFileView> = snapshot.log_data().iter().collect();
    let infos: Vec<FileInfo> = files
        .iter()
        .map(|file| FileInfo::of(file, &layouts, fallback.as_ref()))
        .collect();
    let groups = match rewrite {
        true => plan(&infos, &options),
        false => Vec::new(),
    };
    report.rewrite = summarise(&infos, &groups, &options);
    report.dropped_deletion_vectors = drop;
    info!(table = %name, groups = groups.len(), drop, dry_run = options.dry_run, "maintenance planned");

    if !options.dry_run && (!groups.is_empty() || drop) {
        let root = storage.object_path(&location)?;
        let file_schema = data_schema(snapshot);
        let mut actions = Vec::new();
        let mut written = RewriteSummary::default();
        for group in &groups {
            let layout = infos[group[0]].layout.clone();
            let members: Vec<&LogicalFileView> = group.iter().map(|&i| &files[i]).collect();
            let partition = members[0].partition_values_map();
            let mut writer = GroupWriter::new(
                &table,
                &partition,
                layout.as_ref(),
                writer_properties.as_ref(),
                &name,
            )?;
            match layout.as_ref().filter(|l| !l.sort_by.is_empty()) {
                // A sort needs the whole group at once.
                Some(_) => {
                    let rows = read_group(&storage, &root, &members, &file_schema, &name).await?;
                    for batch in sorted(rows, layout.as_ref(), &name)? {
                        writer.write(batch).await?;
                    }
                }
                // Otherwise streamed: memory holds a few batches.
                None => {
                    for file in &members {
                        let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
                        let decoding =
                            decode_file(&storage, &root, file, &file_schema, &name, sender).await?;
                        while let Some(batch) = receiver.recv().await {
                            writer.write(batch).await?;
                        }
                        decoding
                            .await
                            .map_err(|e| LakeError::other(format!("reading {name}"), e))??;
                    }
                }
            }
            let adds = writer.finish().await?;
            written.groups += 1;
            for file in &members {
                written.files_removed += 1;
                written.bytes_removed += file.size().max(0) as u64;
                written.deletion_vectors_removed +=
                    u64::from(file.deletion_vector_descriptor().is_some());
                actions.push(Action::Remove(file.remove_action(false)));
            }
            for add in adds {
                written.files_added += 1;
                written.bytes_added += add.size.max(0) as u64;
                actions.push(Action::Add(add));
            }
        }
        written.rows = report.rewrite.rows;
        report.rewrite = written;
        if drop {
            let (protocol, metadata) = without_deletion_vectors(snapshot, &name)?;
            actions.push(Action::Protocol(protocol));
            actions.push(Action::Metadata(metadata));
        }
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: i64::try_from(options.target_file_bytes).unwrap_or(i64::MAX),
        };
        let commit = CommitBuilder::from(properties())
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(|e| LakeError::delta(&name, e))?;
        report.versions.push(commit.version);
        table
            .update_state()
            .await
            .map_err(|e| LakeError::delta(&name, e))?;
        info!(table = %name, version = commit.version, files_removed = written.files_removed, files_added = written.files_added, "rewrite committed");
    }

    if options.vacuum {
        let before_vacuum = table.version();
        let (vacuumed, metrics) = table
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(
                chrono::Duration::from_std(options.vacuum_retention)
                    .map_err(|e| LakeError::config("vacuum_retention", e.to_string()))?,
            )
            .with_enforce_retention_duration(!options.short_retention)
            .with_dry_run(options.dry_run)
            .with_commit_properties(match keep_log {
                true => CommitProperties::default().with_cleanup_expired_logs(Some(false)),
                false => CommitProperties::default(),
            })
            .await
            .map_err(|e| retention_refused(&name, e))?;
        report.vacuumed_files = metrics.files_deleted.len() as u64;
        if let Some(version) = vacuumed.version()
            && Some(version) != before_vacuum
        {
            report.versions.push(version);
        }
        table = vacuumed;
    }
    if !options.dry_run
        && let Some(version) = table.version()
        && version
            >= last_checkpoint(&storage, &location)
                .await?
                .map_or(0, |c| c + CHECKPOINT_AFTER)
        && version >= CHECKPOINT_AFTER
    {
        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(|e| LakeError::delta(&name, e))?;
        report.checkpoint = Some(version);
    }
    if !options.dry_run {
        report.after = FileStats::of(&table);
    }
    Ok((table, report))
}

/// Commits after the last checkpoint past which maintenance writes one: a
/// reader opening the table replays at most this many JSON commits after
/// a checkpoint (deltalake's own writers checkpoint every 100 commits).
pub const CHECKPOINT_AFTER: u64 = 10;

/// The version of the table's last checkpoint, from `_delta_log/_last_checkpoint`.
async fn last_checkpoint(storage: &StorageRef, location: &Url) -> Result<Option<u64>> {
    let path = storage
        .object_path(location)?
        .join("_delta_log")
        .join("_last_checkpoint");
    match storage.object_store().get(&path).await {
        Ok(found) => {
            let bytes = found
                .bytes()
                .await
                .map_err(|e| LakeError::storage(path.to_string(), e))?;
            Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(LakeError::storage(path.to_string(), e)),
    }
}

/// Removes the rows of `table` older than `cutoff` as `expiry` says, in one
/// commit (none in a dry run or when nothing is that old): the rows removed,
/// and the version written.
async fn expire(
    table: &DeltaTable,
    expiry: &Expiry,
    cutoff: chrono::DateTime<chrono::Utc>,
    unread: Option<&Unread>,
    (dry_run, properties): (bool, CommitProperties),
    name: &str,
) -> Result<Expired> {
    let delta = |e| LakeError::delta(name, e);
    match expiry {
        Expiry::Partitions => {
            let snapshot = table.snapshot().map_err(delta)?;
            let first_kept = cutoff.date_naive();
            let mut actions = Vec::new();
            let mut rows = 0u64;
            let mut kept: std::collections::BTreeSet<String> = Default::default();
            for file in snapshot.log_data().iter() {
                let values = file.partition_values_map();
                let partition = hive_path(values.clone().into_iter());
                let part = |key: &str| {
                    values
                        .get(key)
                        .cloned()
                        .flatten()
                        .and_then(|v| v.parse::<u32>().ok())
                };
                let (Some(year), Some(month), Some(day)) =
                    (part("year"), part("month"), part("day"))
                else {
                    return Err(LakeError::Schema {
                        table: name.to_string(),
                        message: format!(
                            "file {} has no year/month/day partition values, so retention cannot date it",
                            file.path()
                        ),
                    });
                };
                let Some(date) = chrono::NaiveDate::from_ymd_opt(year as i32, month, day) else {
                    continue;
                };
                if date < first_kept {
                    if unread.is_some_and(|unread| unread.holds(&partition)) {
                        kept.insert(partition);
                        continue;
                    }
                    rows += (file.num_records().unwrap_or(0) as u64).saturating_sub(
                        file.deletion_vector_descriptor()
                            .map_or(0, |dv| dv.cardinality.max(0) as u64),
                    );
                    actions.push(Action::Remove(file.remove_action(true)));
                }
            }
            let kept_unread = kept.len() as u64;
            if !kept.is_empty() {
                warn!(table = %name, partitions = ?kept, "retention keeps partitions a reader has not read yet");
            }
            if actions.is_empty() || dry_run {
                return Ok(Expired {
                    rows,
                    version: None,
                    kept_unread,
                });
            }
            // The horizon, for silver's rebuild to refuse.
            let metadata = snapshot
                .metadata()
                .clone()
                .add_config_key(TRIMMED_BEFORE.to_string(), first_kept.to_string())
                .map_err(|e| LakeError::other(format!("metadata of {name}"), e))?;
            actions.push(Action::Metadata(metadata));
            let operation = DeltaOperation::Delete {
                predicate: Some(format!("ingestion date before {first_kept}")),
            };
            let commit = CommitBuilder::from(properties)
                .with_actions(actions)
                .build(Some(snapshot), table.log_store(), operation)
                .await
                .map_err(delta)?;
            Ok(Expired {
                rows,
                version: Some(commit.version),
                kept_unread,
            })
        }
        Expiry::Column(column) => {
            use datafusion::prelude::{col, lit};
            let micros = cutoff.timestamp_micros();
            let predicate = col(column.as_str()).lt(lit(
                datafusion::scalar::ScalarValue::TimestampMicrosecond(
                    Some(micros),
                    Some("UTC".into()),
                ),
            ));
            if dry_run {
                let ctx = datafusion::prelude::SessionContext::new();
                let provider = crate::storage::delta_provider(&ctx, table, name).await?;
                let count = ctx
                    .read_table(provider)
                    .and_then(|frame| frame.filter(predicate))
                    .map_err(|e| LakeError::datafusion(name, e))?
                    .count()
                    .await
                    .map_err(|e| LakeError::datafusion(name, e))?;
                return Ok(Expired {
                    rows: count as u64,
                    version: None,
                    kept_unread: 0,
                });
            }
            let before = table.version();
            let (after, metrics) = table
                .clone()
                .delete()
                .with_predicate(predicate)
                .with_commit_properties(properties)
                .await
                .map_err(delta)?;
            Ok(Expired {
                rows: metrics.num_deleted_rows.unwrap_or(0) as u64,
                version: after.version().filter(|v| Some(*v) != before),
                kept_unread: 0,
            })
        }
    }
}

/// What the retention step removed (or would remove).
struct Expired {
    rows: u64,
    /// The version it wrote.
    version: Option<u64>,
    /// Partitions kept for a reader that has not read them.
    kept_unread: u64,
}

/// The partitions the data-changing commits of a table after the version a
/// reader read up to wrote; `All` when one of those commits has left the
/// log, so nothing can be said of it.
enum Unread {
    Partitions(std::collections::BTreeSet<String>),
    All,
}

impl Unread {
    fn holds(&self, partition: &str) -> bool {
        match self {
            Self::Partitions(partitions) => partitions.contains(partition),
            Self::All => true,
        }
    }
}

/// The partitions commits after `read_up_to` added files to.
async fn unread_partitions(table: &DeltaTable, read_up_to: u64, name: &str) -> Result<Unread> {
    let mut partitions = std::collections::BTreeSet::new();
    let latest = table.version().unwrap_or(0);
    for version in read_up_to + 1..=latest {
        let actions = match crate::storage::commit_actions(table, version, name).await {
            Ok(actions) => actions,
            Err(LakeError::NotFound { .. }) => return Ok(Unread::All),
            Err(e) => return Err(e),
        };
        for add in actions
            .iter()
            .filter_map(|action| action.get("add"))
            .filter(|add| crate::storage::changes_data(add))
        {
            partitions.insert(add_partition(add));
        }
    }
    Ok(Unread::Partitions(partitions))
}

/// The partition of an `add` action of [`crate::commit_actions`], as
/// [`hive_path`] names it.
pub fn add_partition(add: &serde_json::Value) -> String {
    let values = add
        .get("partitionValues")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)));
    hive_path(values)
}

/// `column=value/…` in column order: how a partition is named both from the
/// snapshot's files and from the log's `add` actions.
pub fn hive_path(values: impl Iterator<Item = (String, Option<String>)>) -> String {
    let values: BTreeMap<String, Option<String>> = values.collect();
    values
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_deref().unwrap_or("__HIVE_DEFAULT_PARTITION__")
            )
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A vacuum error, with what to do when it is the retention check.
fn retention_refused(name: &str, e: deltalake::DeltaTableError) -> LakeError {
    let text = e.to_string();
    if text.contains("retention") {
        LakeError::config(
            "vacuum_retention",
            format!(
                "{name}: {text}; a shorter retention can delete files a running reader or writer still needs, allow it explicitly (with_short_retention, --allow-short-retention) if no process runs on the table"
            ),
        )
    } else {
        LakeError::delta(name, e)
    }
}

/// What the planner needs to know of a file.
#[derive(Debug, Clone)]
struct FileInfo {
    /// The partition, as its hive path.
    partition: String,
    size: u64,
    rows: u64,
    deleted: u64,
    layout: Option<PartitionLayout>,
}

impl FileInfo {
    fn of(
        file: &LogicalFileView,
        layouts: &[PartitionLayout],
        fallback: Option<&PartitionLayout>,
    ) -> Self {
        let values: BTreeMap<String, Option<String>> =
            file.partition_values_map().into_iter().collect();
        let partition = hive_path(values.clone().into_iter());
        let layout = layouts
            .iter()
            .find(|l| values.get(&l.column).and_then(|v| v.as_deref()) == Some(l.value.as_str()))
            .or(fallback)
            .cloned();
        Self {
            partition,
            size: file.size().max(0) as u64,
            rows: file.num_records().unwrap_or(0) as u64,
            deleted: file
                .deletion_vector_descriptor()
                .map_or(0, |dv| dv.cardinality.max(0) as u64),
            layout,
        }
    }
}

/// The groups of files (indices into `files`) to rewrite, each within one
/// partition: small files packed in log order into groups up to the target
/// (bytes, or rows per file of the layout), files with a large deletion
/// vector with them or alone. A group of one small file without a deletion
/// vector to purge is left out: rewriting it gains nothing.
fn plan(files: &[FileInfo], options: &MaintenanceOptions) -> Vec<Vec<usize>> {
    let mut partitions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        partitions
            .entry(file.partition.as_str())
            .or_default()
            .push(i);
    }
    let mut groups = Vec::new();
    for members in partitions.values() {
        let purge = |f: &FileInfo| {
            f.deleted > 0
                && (options.drop_deletion_vectors
                    || f.deleted as f64 >= options.deletion_vector_share * f.rows.max(1) as f64)
        };
        let limit = |f: &FileInfo| match f.layout.as_ref().and_then(|l| l.max_rows_per_file) {
            Some(rows) => (f.rows.saturating_sub(f.deleted), rows as u64),
            None => (f.size, options.target_file_bytes),
        };
        let small = |f: &FileInfo| {
            let (amount, limit) = limit(f);
            2 * amount < limit
        };
        let mut current: Vec<usize> = Vec::new();
        let mut filled = 0u64;
        let close = |current: &mut Vec<usize>, groups: &mut Vec<Vec<usize>>| {
            let worth = current.len() > 1 || current.iter().any(|&i| purge(&files[i]));
            if worth {
                groups.push(std::mem::take(current));
            } else {
                current.clear();
            }
        };
        for &i in members {
            let file = &files[i];
            if !small(file) {
                if purge(file) {
                    groups.push(vec![i]);
                }
                continue;
            }
            let (amount, limit) = limit(file);
            if !current.is_empty() && filled + amount > limit {
                close(&mut current, &mut groups);
                filled = 0;
            }
            current.push(i);
            filled += amount;
        }
        close(&mut current, &mut groups);
    }
    groups
}

/// What `groups` would do, from the log alone.
fn summarise(
    files: &[FileInfo],
    groups: &[Vec<usize>],
    options: &MaintenanceOptions,
) -> RewriteSummary {
    let mut summary = RewriteSummary::default();
    for group in groups {
        summary.groups += 1;
        let mut bytes = 0u64;
        let mut rows = 0u64;
        for &i in group {
            let file = &files[i];
            summary.files_removed += 1;
            summary.bytes_removed += file.size;
            summary.deletion_vectors_removed += u64::from(file.deleted > 0);
            bytes += file.size;
            rows += file.rows.saturating_sub(file.deleted);
        }
        summary.rows += rows;
        summary.files_added += match files[group[0]]
            .layout
            .as_ref()
            .and_then(|l| l.max_rows_per_file)
        {
            Some(max) => rows.div_ceil(max as u64).max(1),
            None => bytes.div_ceil(options.target_file_bytes).max(1),
        };
    }
    summary
}

/// Whether `snapshot`'s protocol has the deletion-vector feature or its
/// configuration enables them.
fn has_deletion_vectors(snapshot: &deltalake::table::state::DeltaTableState) -> bool {
    let protocol = snapshot.protocol();
    let listed = |features: Option<&[TableFeature]>| {
        features.is_some_and(|f| f.contains(&TableFeature::DeletionVectors))
    };
    listed(protocol.reader_features())
        || listed(protocol.writer_features())
        || snapshot
            .metadata()
            .configuration()
            .contains_key(ENABLE_DELETION_VECTORS)
}

/// The protocol and metadata of `snapshot` without deletion vectors: the
/// feature out of both lists, reader version 1 when no reader feature is
/// left, writer version 2 when no writer feature is left (what deltalake
/// gives a new table without features), and the property unset.
fn without_deletion_vectors(
    snapshot: &deltalake::table::state::DeltaTableState,
    name: &str,
) -> Result<(Protocol, deltalake::kernel::Metadata)> {
    let protocol = snapshot.protocol();
    let keep = |features: Option<&[TableFeature]>| -> Vec<String> {
        features
            .unwrap_or_default()
            .iter()
            .filter(|f| **f != TableFeature::DeletionVectors)
            .map(|f| f.to_string())
            .collect()
    };
    let (reader, writer) = (
        keep(protocol.reader_features()),
        keep(protocol.writer_features()),
    );
    let mut json = serde_json::Map::new();
    if reader.is_empty() {
        json.insert("minReaderVersion".into(), 1.into());
    } else {
        json.insert(
            "minReaderVersion".into(),
            protocol.min_reader_version().into(),
        );
        json.insert("readerFeatures".into(), reader.into());
    }
    if writer.is_empty() {
        json.insert("minWriterVersion".into(), 2.into());
    } else {
        json.insert(
            "minWriterVersion".into(),
            protocol.min_writer_version().into(),
        );
        json.insert("writerFeatures".into(), writer.into());
    }
    let protocol: Protocol = serde_json::from_value(serde_json::Value::Object(json))
        .map_err(|e| LakeError::other(format!("protocol of {name} without deletion vectors"), e))?;
    let metadata = snapshot
        .metadata()
        .clone()
        .remove_config_key(ENABLE_DELETION_VECTORS)
        .map_err(|e| LakeError::other(format!("metadata of {name}"), e))?;
    Ok((protocol, metadata))
}

/// The table's columns that files hold: all but the partition columns.
pub(crate) fn data_schema(snapshot: &deltalake::table::state::DeltaTableState) -> SchemaRef {
    let partitions = snapshot.metadata().partition_columns();
    let schema = snapshot.snapshot().arrow_schema();
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !partitions.contains(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// `batch` (of a file written before the table gained some columns, or with
/// narrower types) in `schema`: columns by name, missing ones null.
fn conform(batch: RecordBatch, schema: &SchemaRef, context: &str) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let fail = |e| LakeError::arrow(context, e);
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            // Strict: a value that does not convert is an error, never a null.
            Some(column) => arrow::compute::cast_with_options(
                column,
                field.data_type(),
                &arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(fail),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options).map_err(fail)
}

/// The rows of `files`, each read with its deletion vector applied, in file
/// order, in `schema` (the table's data columns: partition values are not
/// in the files).
async fn read_group(
    storage: &StorageRef,
    root: &Path,
    files: &[&LogicalFileView],
    schema: &SchemaRef,
    name: &str,
) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for file in files {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
        let decoding = decode_file(storage, root, file, schema, name, sender).await?;
        while let Some(batch) = receiver.recv().await {
            batches.push(batch);
        }
        decoding
            .await
            .map_err(|e| LakeError::other(format!("reading {name}"), e))??;
    }
    Ok(batches)
}

/// Starts decoding `file` (its deletion vector applied, conformed to
/// `schema`) on a blocking thread, which sends its batches to `out` as they
/// come: the channel's bound is all the memory it holds. The task ends early,
/// without error, when `out` is dropped.
pub(crate) async fn decode_file(
    storage: &StorageRef,
    root: &Path,
    file: &LogicalFileView,
    schema: &SchemaRef,
    name: &str,
    out: tokio::sync::mpsc::Sender<RecordBatch>,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let store = storage.object_store();
    let location = Path::from_iter(root.parts().chain(file.object_store_path().parts()));
    let bytes = store
        .get(&location)
        .await
        .map_err(|e| LakeError::storage(location.to_string(), e))?
        .bytes()
        .await
        .map_err(|e| LakeError::storage(location.to_string(), e))?;
    let deleted = match file.deletion_vector_descriptor() {
        Some(dv) => Some(crate::deletion_vectors::read(store.as_ref(), root, &dv, name).await?),
        None => None,
    };
    let context = format!("{name} file {location}");
    let schema = Arc::clone(schema);
    Ok(tokio::task::spawn_blocking(move || -> Result<()> {
        let parquet = |e: parquet::errors::ParquetError| LakeError::other(context.clone(), e);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(parquet)?
            .build()
            .map_err(parquet)?;
        let mut at = 0u64;
        let mut pending = deleted.iter().flat_map(|d| d.iter()).peekable();
        for batch in reader {
            let batch = batch.map_err(|e| LakeError::arrow(context.clone(), e))?;
            let rows = batch.num_rows() as u64;
            let batch = match pending.peek() {
                Some(&row) if row < at + rows => {
                    let mut keep = BooleanBufferBuilder::new(batch.num_rows());
                    keep.append_n(batch.num_rows(), true);
                    while let Some(row) = pending.next_if(|&row| row < at + rows) {
                        keep.set_bit((row - at) as usize, false);
                    }
                    filter_record_batch(&batch, &BooleanArray::new(keep.finish(), None))
                        .map_err(|e| LakeError::arrow(context.clone(), e))?
                }
                _ => batch,
            };
            at += rows;
            if out
                .blocking_send(conform(batch, &schema, &context)?)
                .is_err()
            {
                return Ok(());
            }
        }
        Ok(())
    }))
}

/// `rows` as one batch sorted as `layout` says, or as they are.
fn sorted(
    rows: Vec<RecordBatch>,
    layout: Option<&PartitionLayout>,
    name: &str,
) -> Result<Vec<RecordBatch>> {
    let Some(layout) = layout.filter(|l| !l.sort_by.is_empty()) else {
        return Ok(rows);
    };
    let Some(first) = rows.first() else {
        return Ok(rows);
    };
    let fail = |e| LakeError::arrow(name, e);
    let all = concat_batches(&first.schema(), &rows).map_err(fail)?;
    let columns = layout
        .sort_by
        .iter()
        .map(|column| {
            let values = all
                .column_by_name(column)
                .ok_or_else(|| LakeError::Schema {
                    table: name.to_string(),
                    message: format!("sort column `{column}` is not a column of the table"),
                })?;
            Ok(SortColumn {
                values: Arc::clone(values),
                options: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let order = lexsort_to_indices(&columns, None).map_err(fail)?;
    Ok(vec![
        arrow::compute::take_record_batch(&all, &order).map_err(fail)?,
    ])
}

/// Writes rows into new files of one partition (with `values`, as the log
/// holds them), at most the layout's rows per file; the adds carry
/// `dataChange: false`.
pub(crate) struct GroupWriter<'a> {
    writer: RecordBatchWriter,
    partition: IndexMap<String, Scalar>,
    max_rows: Option<usize>,
    in_file: usize,
    adds: Vec<deltalake::kernel::Add>,
    name: &'a str,
}

impl<'a> GroupWriter<'a> {
    pub(crate) fn new(
        table: &DeltaTable,
        values: &HashMap<String, Option<String>>,
        layout: Option<&PartitionLayout>,
        properties: Option<&WriterProperties>,
        name: &'a str,
    ) -> Result<Self> {
        let delta = |e| LakeError::delta(name, e);
        let snapshot = table.snapshot().map_err(delta)?;
        let schema = snapshot.schema();
        let mut partition = IndexMap::new();
        for column in snapshot.metadata().partition_columns() {
            let field = schema.field(column).ok_or_else(|| LakeError::Schema {
                table: name.to_string(),
                message: format!("partition column `{column}` is not in the schema"),
            })?;
            let KernelType::Primitive(primitive) = field.data_type() else {
                return Err(LakeError::Schema {
                    table: name.to_string(),
                    message: format!("partition column `{column}` is not of a primitive type"),
                });
            };
            let value = match values.get(column).and_then(|v| v.as_deref()) {
                Some(raw) => primitive.parse_scalar(raw).map_err(|e| {
                    LakeError::other(format!("{name} partition value {column}={raw}"), e)
                })?,
                None => Scalar::Null(field.data_type().clone()),
            };
            partition.insert(column.clone(), value);
        }
        let mut writer = RecordBatchWriter::for_table(table).map_err(delta)?;
        if let Some(properties) = properties {
            writer = writer.with_writer_properties(properties.clone());
        }
        Ok(Self {
            writer,
            partition,
            max_rows: layout.and_then(|l| l.max_rows_per_file),
            in_file: 0,
            adds: Vec::new(),
            name,
        })
    }

    pub(crate) async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let name = self.name;
        let delta = |e| LakeError::delta(name, e);
        let mut at = 0;
        while at < batch.num_rows() {
            let room = self
                .max_rows
                .map_or(batch.num_rows() - at, |max| max - self.in_file);
            let len = room.min(batch.num_rows() - at);
            self.writer
                .write_partition(batch.slice(at, len), &self.partition, WriteMode::Default)
                .await
                .map_err(delta)?;
            at += len;
            self.in_file += len;
            if self.max_rows.is_some_and(|max| self.in_file >= max) {
                self.adds.extend(self.writer.flush().await.map_err(delta)?);
                self.in_file = 0;
            }
        }
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> Result<Vec<deltalake::kernel::Add>> {
        let name = self.name;
        let flushed = self
            .writer
            .flush()
            .await
            .map_err(|e| LakeError::delta(name, e))?;
        self.adds.extend(flushed);
        for add in &mut self.adds {
            add.data_change = false;
        }
        Ok(self.adds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(partition: &str, size: u64, rows: u64, deleted: u64) -> FileInfo {
        FileInfo {
            partition: partition.to_string(),
            size,
            rows,
            deleted,
            layout: None,
        }
    }

    #[test]
    fn small_files_are_packed_per_partition_and_a_lone_small_file_stays() {
        let options = MaintenanceOptions::default().with_target_file_bytes(100);
        let files = [
            file("p=1", 10, 1, 0),
            file("p=1", 20, 1, 0),
            file("p=2", 10, 1, 0),
            file("p=1", 90, 1, 0),
            file("p=1", 45, 1, 0),
            file("p=1", 40, 1, 0),
        ];
        // p=1: 10 + 20 + 45 fit (75), 40 would pass 100: a new group of one,
        // which gains nothing; 90 is not small. p=2 has one small file.
        assert_eq!(plan(&files, &options), vec![vec![0, 1, 4]]);
    }

    #[test]
    fn files_with_large_deletion_vectors_are_rewritten_even_alone() {
        let options = MaintenanceOptions::default().with_target_file_bytes(100);
        let files = [
            file("p=1", 90, 100, 30),
            file("p=1", 90, 100, 10),
            file("p=2", 10, 100, 50),
        ];
        assert_eq!(plan(&files, &options), vec![vec![0], vec![2]]);
        let drop = options.with_drop_deletion_vectors(true);
        assert_eq!(plan(&files, &drop), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn a_layout_with_rows_per_file_packs_by_rows() {
        let options = MaintenanceOptions::default().with_target_file_bytes(1);
        let layout = PartitionLayout::new("current", "false").with_max_rows_per_file(100);
        let mut files = vec![
            file("current=false", 1000, 30, 0),
            file("current=false", 1000, 30, 0),
            file("current=false", 1000, 60, 0),
            file("current=false", 1000, 30, 0),
        ];
        for f in &mut files {
            f.layout = Some(layout.clone());
        }
        // 60 rows is not under half of 100; 30 + 30 + 30 fit in 100.
        assert_eq!(plan(&files, &options), vec![vec![0, 1, 3]]);
        let summary = summarise(&files, &plan(&files, &options), &options);
        assert_eq!(
            (summary.files_removed, summary.files_added, summary.rows),
            (3, 1, 90)
        );
    }
}
