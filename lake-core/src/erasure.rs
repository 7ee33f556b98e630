//! Erasure of a data subject (a GDPR or CCPA erasure request) from every
//! table of a lake, and the record that it happened.
//!
//! ```no_run
//! # async fn example(pipeline: lake_core::Pipeline) -> lake_core::Result<()> {
//! use lake_core::erasure::Subject;
//! use lake_core::pii::PiiKey;
//!
//! let subject = Subject::new("customer_id", ["C-1042"])?;
//! let report = pipeline
//!     .erase(subject)
//!     .with_key(PiiKey::from_env()?)
//!     .with_requested_by("privacy ticket 7731")
//!     .await?;
//! println!("{} rows erased", report.rows_erased());
//! # Ok(())
//! # }
//! ```
//!
//! # What a subject's rows are
//! A [`Subject`] is a column and one or more values. A row of a table that
//! holds records is the subject's when the column, as text, equals a value,
//! or when one of the table's text columns (bronze's `_raw`, every string
//! column of the dead letters and of the run records) names a value as a
//! whole token: the value, with no letter, digit or `_` right before or
//! after it (`C-10` is not named in `C-104`). So a record that mentions the
//! subject anywhere, in a nested object or in a line that never parsed,
//! goes with the subject's own.
//!
//! # Steps ([`Pipeline::erase`](crate::Pipeline::erase))
//! 1. **Tables that hold records** (each ingest stage's
//!    [`erasure_targets`](crate::IngestStage::erasure_targets): bronze and
//!    its dead letters; then the run and quality records): the files with
//!    the subject's rows are rewritten without them, in one commit per table
//!    ([`erase_rows`]). The commit removes the old files (`dataChange:
//!    true`) and adds the rewritten ones with `dataChange: false`, so
//!    incremental readers do not read their rows again, and it records how
//!    many rows of each delivered batch went (`lake.erasure` in its
//!    `commitInfo`), so that silver, finding a batch's rows by its id after
//!    its files moved, expects that many fewer.
//! 2. **Tables computed from them** are recomputed: every refine stage
//!    [rebuilds](crate::RefineStage::rebuild) (silver, its event log and its
//!    quarantine, from the erased bronze), then every aggregate stage
//!    refreshes (a rebuild records no touched values, so gold recomputes in
//!    full). The result is, by construction, the tables the pipeline builds
//!    from its input without the subject's records: SCD2 validity of the
//!    other rows included.
//! 3. **Purge** ([`purge`]), on every table of the pipeline: vacuum with no
//!    retention (the removed files, and files of failed writers, are
//!    deleted at once), a checkpoint of the latest version, every older
//!    checkpoint deleted, and each JSON commit that names the subject
//!    rewritten: the subject's values leave the `minValues`/`maxValues`
//!    statistics of `add` and `remove` actions (the row counts stay: silver
//!    needs them) and any string of a `commitInfo` that names it becomes
//!    `[erased]`. A commit that names it anywhere else (a partition value
//!    in a path, a table property) stops the erasure with an error naming
//!    the table and the commit.
//! 4. **The record**, a JSON file under `_metadata/erasures/`: when, who
//!    asked ([`EraseLake::with_requested_by`](crate::EraseLake::with_requested_by)), every table with the rows
//!    erased and the versions written, and the subject as keyed hashes
//!    (HMAC-SHA256 under the [`PiiKey`](crate::pii::PiiKey) of [`crate::pii`], which pseudonymises
//!    silver's tagged columns too; never stored in the lake), so an
//!    auditor holding the key can check a value against it.
//!
//! # What erasure cannot reach
//! - Time travel: versions before the erasure are gone (their files are
//!   deleted); readers that opened the table before it may fail.
//! - Copies outside the lake (exports, other engines' caches, backups,
//!   S3 object versions of a bucket with versioning on) and logs of the
//!   embedding service.
//! - A value spelled otherwise in raw text (JSON escapes such as
//!   `"C\u002d1042"`): the parsed column still matches it in bronze, not
//!   in a dead letter that never parsed.
//!
//! Run an erasure when no pipeline run writes to the lake: the vacuum
//! without retention deletes the files of a write that has not committed
//! yet, and that write then fails.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, LogicalFileView};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use serde_json::Value;
use tracing::info;
use url::Url;

use crate::error::{LakeError, Result};
use crate::maintenance::{GroupWriter, MaintenanceTarget, data_schema, decode_file, rewrite_fence};
use crate::storage::{StorageExt, StorageRef};

/// The `commitInfo` entry of an erasure's commits: the erasure's id, the
/// rows it removed and, for a table that counts them, how many of each
/// delivered batch.
pub const ERASURE_COMMIT_METADATA: &str = "lake.erasure";

/// The folder of the erasure records, under `_metadata/`.
pub const ERASURES: &str = "erasures";

/// What replaces a string of a `commitInfo` that names the subject.
pub const ERASED: &str = "[erased]";

/// A data subject: a column and the values that identify the subject in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subject {
    /// The column (as bronze and the source name it: `customer_id`).
    pub column: String,
    /// The values.
    pub values: Vec<String>,
}

impl Subject {
    /// The subject whose `column` holds one of `values`. Refused: no
    /// value, and a value that is empty or only whitespace (it would name
    /// every row).
    pub fn new(
        column: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self> {
        let column = column.into();
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        if column.trim().is_empty() {
            return Err(LakeError::config("erase", "the subject's column is empty"));
        }
        if values.is_empty() {
            return Err(LakeError::config(
                "erase",
                format!("no value of {column} names the subject"),
            ));
        }
        if let Some(bad) = values.iter().find(|v| v.trim().is_empty()) {
            return Err(LakeError::config(
                "erase",
                format!("the value {bad:?} of {column} would name every row"),
            ));
        }
        Ok(Self { column, values })
    }

    /// Whether `text` names one of the values as a whole token.
    pub fn named_in(&self, text: &[u8]) -> bool {
        self.values.iter().any(|v| names(text, v.as_bytes()))
    }

    /// The rows of `batch` that are the subject's: the column equal to a
    /// value, or a text column naming one.
    fn rows(&self, batch: &RecordBatch, text: &TextColumns, context: &str) -> Result<BooleanArray> {
        let n = batch.num_rows();
        let mut hits = BooleanBufferBuilder::new(n);
        hits.append_n(n, false);
        if let Some(column) = batch.column_by_name(&self.column)
            && arrow::compute::can_cast_types(column.data_type(), &DataType::Utf8)
        {
            let as_text = arrow::compute::cast(column, &DataType::Utf8)
                .map_err(|e| LakeError::arrow(context, e))?;
            for (row, value) in as_text.as_string::<i32>().iter().enumerate() {
                if value.is_some_and(|v| self.values.iter().any(|s| s == v)) {
                    hits.set_bit(row, true);
                }
            }
        }
        let schema = batch.schema();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if !text.includes(field.name()) {
                continue;
            }
            let mut check = |row: usize, bytes: Option<&[u8]>| {
                if bytes.is_some_and(|b| self.named_in(b)) {
                    hits.set_bit(row, true);
                }
            };
            match column.data_type() {
                DataType::Utf8 => column
                    .as_string::<i32>()
                    .iter()
                    .enumerate()
                    .for_each(|(r, v)| check(r, v.map(str::as_bytes))),
                DataType::LargeUtf8 => column
                    .as_string::<i64>()
                    .iter()
                    .enumerate()
                    .for_each(|(r, v)| check(r, v.map(str::as_bytes))),
                DataType::Utf8View => column
                    .as_string_view()
                    .iter()
                    .enumerate()
                    .for_each(|(r, v)| check(r, v.map(str::as_bytes))),
                DataType::Binary => column
                    .as_binary::<i32>()
                    .iter()
                    .enumerate()
                    .for_each(|(r, v)| check(r, v)),
                DataType::LargeBinary => column
                    .as_binary::<i64>()
                    .iter()
                    .enumerate()
                    .for_each(|(r, v)| check(r, v)),
                _ => {}
            }
        }
        Ok(BooleanArray::new(hits.finish(), None))
    }
}

/// Whether `text` holds `value` with no word character (ASCII letter,
/// digit, `_`) right before or after it, where the value itself starts or
/// ends with one.
fn names(text: &[u8], value: &[u8]) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let (Some(first), Some(last)) = (value.first(), value.last()) else {
        return false;
    };
    memchr::memmem::find_iter(text, value).any(|at| {
        let before = at.checked_sub(1).map(|i| &text[i]);
        let after = text.get(at + value.len());
        let joined_before = word(first) && before.is_some_and(word);
        let joined_after = word(last) && after.is_some_and(word);
        !(joined_before || joined_after)
    })
}

/// Which string columns of a table may name a subject in their text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextColumns {
    /// These columns (bronze: `_raw`).
    Only(Vec<String>),
    /// Every string or binary column (dead letters, run records).
    Every,
}

impl TextColumns {
    fn includes(&self, column: &str) -> bool {
        match self {
            Self::Only(columns) => columns.iter().any(|c| c == column),
            Self::Every => true,
        }
    }
}

/// A table that holds records, whose rows an erasure removes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ErasureTarget {
    /// The table: its name, location, the Parquet settings of rewritten
    /// files and whether its log must stay whole.
    pub table: MaintenanceTarget,
    /// The columns whose text may name the subject.
    pub text: TextColumns,
    /// The column whose values the erased rows are counted by in the
    /// commit (bronze: `_batch_id`, so that silver finds a batch's rows).
    pub count_by: Option<String>,
}

impl ErasureTarget {
    /// The table of `target`, searched in every string column.
    pub fn new(table: MaintenanceTarget) -> Self {
        Self {
            table,
            text: TextColumns::Every,
            count_by: None,
        }
    }

    /// Searches only `columns` for the subject's values in text.
    pub fn with_text_columns(
        mut self,
        columns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.text = TextColumns::Only(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Counts the erased rows by the values of `column` in the commit.
    pub fn with_count_by(mut self, column: impl Into<String>) -> Self {
        self.count_by = Some(column.into());
        self
    }
}

/// What an erasure did to one table that holds records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TableErasure {
    /// The table.
    pub table: String,
    /// Rows removed (to be removed, in a dry run).
    pub rows: u64,
    /// Files rewritten without them.
    pub files_rewritten: u64,
    /// The version its commit wrote (none: nothing to remove, or a dry run).
    pub version: Option<u64>,
}

/// Removes the subject's rows from the table of `target` in one commit
/// (see [the module docs](self)); counts them only in a dry run.
pub async fn erase_rows(
    storage: &StorageRef,
    target: &ErasureTarget,
    subject: &Subject,
    erasure: &str,
    dry_run: bool,
) -> Result<TableErasure> {
    let name = target.table.name.clone();
    let delta = |e| LakeError::delta(&name, e);
    let mut report = TableErasure {
        table: name.clone(),
        ..TableErasure::default()
    };
    let table = storage.open_table(&target.table.location).await?;
    if table.version().is_none() {
        return Ok(report);
    }
    let snapshot = table.snapshot().map_err(delta)?;
    if snapshot
        .log_data()
        .iter()
        .any(|f| f.deletion_vector_descriptor().is_some())
    {
        // Only tables written here without deletion vectors hold records;
        // silver, which has them, is rebuilt instead.
        return Err(LakeError::other(
            format!("erasure from {name}"),
            "the table has deletion vectors; rows are erased by rewriting files of tables without them",
        ));
    }
    let root = storage.object_path(&target.table.location)?;
    let schema = data_schema(snapshot);
    let files: Vec<LogicalFileView> = snapshot.log_data().iter().collect();

    // Which files hold the subject's rows, and how many.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut holding = Vec::new();
    for file in &files {
        let mut found = 0u64;
        let context = format!("{name} file {}", file.path());
        each_batch(storage, &root, file, &schema, &name, |batch| {
            let hits = subject.rows(&batch, &target.text, &context)?;
            let n = hits.true_count() as u64;
            if n > 0 {
                found += n;
                if let Some(column) = &target.count_by {
                    count_by(&batch, &hits, column, &mut counts, &context)?;
                }
            }
            Ok(())
        })
        .await?;
        if found > 0 {
            report.rows += found;
            holding.push(file);
        }
    }
    report.files_rewritten = holding.len() as u64;
    if dry_run || holding.is_empty() {
        return Ok(report);
    }

    // Each of them rewritten without those rows.
    let mut actions = Vec::new();
    for file in holding {
        let partition = file.partition_values_map();
        let mut writer = GroupWriter::new(
            &table,
            &partition,
            None,
            target.table.writer_properties.as_ref(),
            &name,
        )?;
        let context = format!("{name} file {}", file.path());
        // Streamed: memory holds a few batches and the file being written.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
        let decoding = decode_file(storage, &root, file, &schema, &name, sender).await?;
        while let Some(batch) = receiver.recv().await {
            let hits = subject.rows(&batch, &target.text, &context)?;
            let keep = arrow::compute::not(&hits).map_err(|e| LakeError::arrow(&context, e))?;
            let rest =
                filter_record_batch(&batch, &keep).map_err(|e| LakeError::arrow(&context, e))?;
            if rest.num_rows() > 0 {
                writer.write(rest).await?;
            }
        }
        decoding
            .await
            .map_err(|e| LakeError::other(format!("reading {name}"), e))??;
        actions.push(Action::Remove(file.remove_action(true)));
        actions.extend(writer.finish().await?.into_iter().map(Action::Add));
    }
    let mut metadata = serde_json::json!({ "id": erasure, "rows": report.rows });
    if let Some(column) = &target.count_by {
        metadata["count_by"] = Value::from(column.as_str());
        metadata["erased"] = serde_json::to_value(&counts).unwrap_or_default();
    }
    let mut properties = CommitProperties::default()
        .with_application_transaction(rewrite_fence())
        .with_metadata([(ERASURE_COMMIT_METADATA.to_string(), metadata)]);
    if target.table.keep_log {
        properties = properties.with_cleanup_expired_logs(Some(false));
    }
    // No predicate: it would write the subject's values into the log.
    let commit = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Delete { predicate: None },
        )
        .await
        .map_err(delta)?;
    report.version = Some(commit.version);
    info!(table = %name, rows = report.rows, files = report.files_rewritten, version = commit.version, "subject erased");
    Ok(report)
}

/// Calls `f` with each batch of `file` (its deletion vector applied, in
/// the table's data schema), decoded on a blocking thread.
async fn each_batch(
    storage: &StorageRef,
    root: &Path,
    file: &LogicalFileView,
    schema: &arrow::datatypes::SchemaRef,
    name: &str,
    mut f: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
    let decoding = decode_file(storage, root, file, schema, name, sender).await?;
    while let Some(batch) = receiver.recv().await {
        f(batch)?;
    }
    decoding
        .await
        .map_err(|e| LakeError::other(format!("reading {name}"), e))?
}

/// Adds the `hits` of `batch` to `counts` by the value of `column`.
fn count_by(
    batch: &RecordBatch,
    hits: &BooleanArray,
    column: &str,
    counts: &mut BTreeMap<String, u64>,
    context: &str,
) -> Result<()> {
    let Some(values) = batch.column_by_name(column) else {
        return Err(LakeError::other(
            context,
            format!("no column `{column}` to count the erased rows by"),
        ));
    };
    let values =
        arrow::compute::cast(values, &DataType::Utf8).map_err(|e| LakeError::arrow(context, e))?;
    let values = values.as_string::<i32>();
    for (row, hit) in hits.iter().enumerate() {
        if hit == Some(true) {
            *counts
                .entry(
                    if values.is_valid(row) {
                        values.value(row)
                    } else {
                        ""
                    }
                    .to_string(),
                )
                .or_default() += 1;
        }
    }
    Ok(())
}

/// The rows of each batch (by `count_by` value) that erasures committed
/// to `table` after `version` removed, from their commits' `commitInfo`.
pub async fn erased_after(
    table: &DeltaTable,
    version: u64,
    name: &str,
) -> Result<BTreeMap<String, u64>> {
    let mut erased: BTreeMap<String, u64> = BTreeMap::new();
    let Some(latest) = table.version() else {
        return Ok(erased);
    };
    for v in version + 1..=latest {
        let actions = crate::storage::commit_actions(table, v, name).await?;
        for action in &actions {
            let Some(counts) = action
                .get("commitInfo")
                .and_then(|info| info.get(ERASURE_COMMIT_METADATA))
                .and_then(|e| e.get("erased"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (batch, n) in counts {
                *erased.entry(batch.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    Ok(erased)
}

/// What a purge did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Purge {
    /// The table.
    pub table: String,
    /// Files deleted by the vacuum.
    pub files_deleted: u64,
    /// JSON commits rewritten without the subject.
    pub log_entries_rewritten: u64,
    /// Checkpoints older than the new one, deleted.
    pub checkpoints_deleted: u64,
    /// The version of the checkpoint written.
    pub checkpoint: Option<u64>,
}

/// Deletes at once every file of the table of `target` that no longer
/// belongs to its latest version, and removes `subject` from its Delta
/// log (see [the module docs](self)).
pub async fn purge(
    storage: &StorageRef,
    target: &MaintenanceTarget,
    subject: &Subject,
) -> Result<Purge> {
    let name = target.name.clone();
    let delta = |e| LakeError::delta(&name, e);
    let mut report = Purge {
        table: name.clone(),
        ..Purge::default()
    };
    let table = storage.open_table(&target.location).await?;
    if table.version().is_none() {
        return Ok(report);
    }
    let keep_log = || match target.keep_log {
        true => CommitProperties::default().with_cleanup_expired_logs(Some(false)),
        false => CommitProperties::default(),
    };
    let (table, metrics) = table
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_retention_period(chrono::Duration::zero())
        .with_enforce_retention_duration(false)
        .with_commit_properties(keep_log())
        .await
        .map_err(delta)?;
    report.files_deleted = metrics.files_deleted.len() as u64;
    let latest = table.version().unwrap_or(0);
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(delta)?;
    report.checkpoint = Some(latest);

    let store = storage.object_store();
    let log = storage.object_path(&target.location)?.join("_delta_log");
    let entries: Vec<_> = store
        .list(Some(&log))
        .try_collect()
        .await
        .map_err(|e| LakeError::storage(log.to_string(), e))?;
    for entry in entries {
        let path = entry.location;
        let file = path.filename().unwrap_or_default().to_string();
        let version = file.get(..20).and_then(|v| v.parse::<u64>().ok());
        if file.contains(".checkpoint") && version.is_some_and(|v| v < latest) {
            store
                .delete(&path)
                .await
                .map_err(|e| LakeError::storage(path.to_string(), e))?;
            report.checkpoints_deleted += 1;
            continue;
        }
        let bytes = crate::storage::fetch_object(store.as_ref(), &path).await?;
        if !subject.named_in(&bytes) {
            continue;
        }
        if !(file.ends_with(".json") && version.is_some()) {
            return Err(LakeError::other(
                format!("erasure from {name}"),
                format!("{path} names the subject and is not a commit that can be rewritten"),
            ));
        }
        let scrubbed = scrub(&bytes, subject).map_err(|kind| {
            LakeError::other(
                format!("erasure from {name}"),
                format!(
                    "commit {path} names the subject in a {kind} action, which cannot be rewritten without it (a partition value or a table property?)"
                ),
            )
        })?;
        store
            .put(&path, PutPayload::from(scrubbed))
            .await
            .map_err(|e| LakeError::storage(path.to_string(), e))?;
        report.log_entries_rewritten += 1;
    }
    info!(table = %name, files = report.files_deleted, log_entries = report.log_entries_rewritten, "purged");
    Ok(report)
}

/// Rewrites every JSON document under `folder` that names `subject`, each
/// string naming it replaced by [`ERASED`]; returns how many it rewrote.
/// For the records the lake keeps beside its tables (lineage events).
pub async fn scrub_documents(storage: &StorageRef, folder: &Url, subject: &Subject) -> Result<u64> {
    let store = storage.object_store();
    let prefix = storage.object_path(folder)?;
    let files: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| LakeError::storage(folder.as_str(), e))?;
    let mut rewritten = 0;
    for file in files {
        let path = file.location;
        let bytes = crate::storage::fetch_object(store.as_ref(), &path).await?;
        if !subject.named_in(&bytes) {
            continue;
        }
        let refused =
            |why: &str| LakeError::other("erasure", format!("{path} names the subject and {why}"));
        let mut document: Value =
            serde_json::from_slice(&bytes).map_err(|_| refused("is not a JSON document"))?;
        erase_strings(&mut document, subject);
        let text = serde_json::to_vec(&document).map_err(|e| LakeError::other("erasure", e))?;
        if subject.named_in(&text) {
            return Err(refused("names it in a key, which cannot be rewritten"));
        }
        store
            .put(&path, PutPayload::from(text))
            .await
            .map_err(|e| LakeError::storage(path.to_string(), e))?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// The commit `bytes` (one action per line) without `subject`: statistics
/// of files lose the values that name it, strings of `commitInfo` that name
/// it become [`ERASED`]. The kind of the first action that still names it
/// is the error.
fn scrub(bytes: &[u8], subject: &Subject) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        if !subject.named_in(line) {
            out.extend_from_slice(line);
            out.push(b'\n');
            continue;
        }
        let mut action: Value =
            serde_json::from_slice(line).map_err(|_| "unreadable".to_string())?;
        let kind = action
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        if let Some(object) = action.as_object_mut() {
            for (kind, body) in object.iter_mut() {
                match kind.as_str() {
                    "add" | "remove" | "cdc" => scrub_file(body, subject),
                    "commitInfo" => erase_strings(body, subject),
                    _ => {}
                }
            }
        }
        let text = serde_json::to_vec(&action).map_err(|_| kind.clone())?;
        if subject.named_in(&text) {
            return Err(kind);
        }
        out.extend_from_slice(&text);
        out.push(b'\n');
    }
    Ok(out)
}

/// The `stats` and `tags` of a file action without the values that name
/// the subject.
fn scrub_file(file: &mut Value, subject: &Subject) {
    if let Some(stats) = file.get("stats").and_then(Value::as_str)
        && let Ok(mut parsed) = serde_json::from_str::<Value>(stats)
    {
        for bound in ["minValues", "maxValues"] {
            if let Some(values) = parsed.get_mut(bound) {
                drop_naming(values, subject);
            }
        }
        file["stats"] = Value::from(parsed.to_string());
    }
    if let Some(tags) = file.get_mut("tags") {
        drop_naming(tags, subject);
    }
}

/// Removes from the object `value` (and the objects in it) every entry
/// whose value names the subject.
fn drop_naming(value: &mut Value, subject: &Subject) {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| match v {
            Value::Object(_) => true,
            other => !subject.named_in(other.to_string().as_bytes()),
        });
        for v in object.values_mut() {
            drop_naming(v, subject);
        }
    }
}

/// Replaces every string in `value` that names the subject by [`ERASED`].
fn erase_strings(value: &mut Value, subject: &Subject) {
    match value {
        Value::String(s) if subject.named_in(s.as_bytes()) => *s = ERASED.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|v| erase_strings(v, subject)),
        Value::Object(object) => object.values_mut().for_each(|v| erase_strings(v, subject)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(values: &[&str]) -> Subject {
        Subject::new("customer_id", values.iter().copied()).unwrap()
    }

    #[test]
    fn a_value_is_named_only_as_a_whole_token() {
        let s = subject(&["C-10"]);
        assert!(s.named_in(br#"{"customer_id":"C-10"}"#));
        assert!(s.named_in(b"C-10"));
        assert!(s.named_in(b"by C-10, again"));
        assert!(!s.named_in(br#"{"customer_id":"C-104"}"#));
        assert!(!s.named_in(b"XC-10"));
        assert!(!s.named_in(b"C-10_b"));
        assert!(s.named_in(b"C-104 and C-10"));
        // A value that starts or ends with a non-word character has no
        // boundary to respect on that side.
        assert!(subject(&["-7"]).named_in(b"x-7"));
    }

    #[test]
    fn subjects_that_would_name_every_row_are_refused() {
        assert!(Subject::new("customer_id", [""]).is_err());
        assert!(Subject::new("customer_id", ["  "]).is_err());
        assert!(Subject::new("customer_id", Vec::<String>::new()).is_err());
        assert!(Subject::new(" ", ["C-1"]).is_err());
    }

    #[test]
    fn scrubbing_a_commit_keeps_counts_and_erases_the_subject() {
        let s = subject(&["C-10"]);
        let add = serde_json::json!({"add": {"path": "a.parquet", "dataChange": true,
            "stats": serde_json::json!({"numRecords": 3,
                "minValues": {"customer_id": "C-10", "meta": {"by": "C-10", "n": 1}},
                "maxValues": {"customer_id": "C-9"}, "nullCount": {"customer_id": 0}}).to_string()}});
        let info = serde_json::json!({"commitInfo": {"operation": "WRITE",
            "lake.batch": {"batch_id": "b1", "source_file": "from C-10.jsonl"}}});
        let other =
            serde_json::json!({"add": {"path": "b.parquet", "stats": "{\"numRecords\":1}"}});
        let text = format!("{add}\n{info}\n{other}\n");
        let out = scrub(text.as_bytes(), &s).unwrap();
        assert!(!s.named_in(&out));
        let lines: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let stats: Value =
            serde_json::from_str(lines[0]["add"]["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["maxValues"]["customer_id"], "C-9");
        assert_eq!(stats["minValues"]["meta"]["n"], 1);
        assert!(stats["minValues"].get("customer_id").is_none());
        assert_eq!(lines[1]["commitInfo"]["lake.batch"]["source_file"], ERASED);
        assert_eq!(lines[1]["commitInfo"]["lake.batch"]["batch_id"], "b1");
        assert_eq!(lines[2], other);
        // A path that names the subject cannot be rewritten.
        let partition = r#"{"add":{"path":"customer_id=C-10/a.parquet"}}"#;
        assert_eq!(scrub(partition.as_bytes(), &s).unwrap_err(), "add");
    }

    #[tokio::test]
    async fn lineage_events_naming_the_subject_are_rewritten_and_others_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage: StorageRef = std::sync::Arc::new(
            crate::storage::ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap(),
        );
        let day = dir.path().join("_metadata/lineage/2026-12-04");
        std::fs::create_dir_all(&day).unwrap();
        let failed = r#"{"run":{"facets":{"errorMessage":{"message":"cannot cast \"C-10\" (row 4)","programmingLanguage":"RUST"}}},"job":{"name":"silver orders"}}"#;
        let other = r#"{"run":{"facets":{"errorMessage":{"message":"cannot cast \"C-104\""}}}}"#;
        std::fs::write(day.join("a.json"), failed).unwrap();
        std::fs::write(day.join("b.json"), other).unwrap();
        let folder = storage.layout().metadata_root().join("lineage/").unwrap();
        let s = subject(&["C-10"]);

        assert_eq!(scrub_documents(&storage, &folder, &s).await.unwrap(), 1);
        let a: Value = serde_json::from_slice(&std::fs::read(day.join("a.json")).unwrap()).unwrap();
        assert_eq!(a["run"]["facets"]["errorMessage"]["message"], ERASED);
        assert_eq!(a["job"]["name"], "silver orders");
        assert_eq!(std::fs::read_to_string(day.join("b.json")).unwrap(), other);

        // A document naming it in a key cannot be rewritten: an error, not a skip.
        std::fs::write(day.join("c.json"), r#"{"C-10":1}"#).unwrap();
        let error = scrub_documents(&storage, &folder, &s).await.unwrap_err();
        assert!(error.to_string().contains("c.json"), "{error}");
    }
}
