//! The silver engine: what a run of any [`SilverSpec`] does, with a
//! [`Typer`] for what its records mean. Bronze records in, typed events,
//! quarantine, the event log and SCD2 (or SCD1) history out. Nothing here
//! knows a workload: the reference `orders` rules are one [`Typer`] among
//! others, outside this module.
//!
//! # How a run works
//! 1. The bookmark is the last bronze version processed, stored as the
//!    application transaction `lake-silver:{bronze table}` of the silver
//!    table, so it advances in the same commit as the history.
//! 2. The bronze files added after the bookmark are read (bronze is
//!    append-only, so the commits' `add` actions are exactly the new rows).
//! 3. The rows are typed by the stage's [`Typer`] ([`ColumnMapping`] of
//!    [`SilverSpec::columns`], or a workload's own rules); invalid ones go
//!    to `_quarantine/{domain}/{entity}` with their [`QuarantineReason`]
//!    and lineage, as do rows failing a `drop` expectation.
//! 4. New distinct events are appended to the changes table (the event log).
//! 5. Keys are spread over [`SilverSpec::buckets`] partitions of both silver tables;
//!    each key's history is replanned from the version in force before its
//!    earliest new event, read from silver, and the logged events at or
//!    after that event (the `resume` module); a key whose new events all
//!    follow its bucket's latest logged event reads nothing from the log.
//!    Where that does not apply (see `resume`), the event log of the run's
//!    keys is read whole, through a key filter the Parquet reader applies,
//!    and each key's history is recomputed from all of its events
//!    ([`crate::scd2::plan`], over Arrow columns).
//! 6. The SCD2 table is also partitioned by the current flag, so closed
//!    versions sit in files apart from current ones. A version that ended
//!    before its key's earliest event in the run cannot change, so the
//!    commit that moves the bookmark replaces only the run's keys' rows
//!    that are current or ended later, and rewrites only the files holding
//!    such rows (the `replace` module). Closed rows are written sorted by their
//!    end, in files of at most [`CLOSED_FILE_ROWS`] rows, the ones
//!    that ended before the run's earliest event apart: later runs, whose
//!    late events reach back about as far, find the rows they change in
//!    the newest files and skip the older ones from their statistics.
//!    A current row that changes is marked deleted in a deletion vector,
//!    so the rest of its file is not copied (unless more than half of it
//!    is gone, or its bucket has many small files); a closed row is
//!    rewritten while it is recent, then left alone. A table
//!    created in the older layout (partitioned by bucket only) has its
//!    touched buckets rewritten whole until a
//!    [rebuild](crate::SilverTable::rebuild) moves it to this one.
//!
//! Every step is idempotent per bronze version (the changes and quarantine
//! commits carry their own application transactions), so a run that fails
//! midway is finished by the next one, and re-running changes nothing.

//!
//! The phases are modules: `read` (the slice and its rows), `typing`,
//! `quarantine` (with the expectations), `log`, `plan` and `commit`.
//! CPU-heavy phases (typing by rules, planning, sorting) run where they do
//! not hold up the runtime's other tasks (`cpu`: in place on a multi-thread
//! runtime, on the blocking pool on a current-thread one), and every task a
//! run spawns is owned by it and aborted when the run fails or is dropped.

mod commit;
pub(crate) use commit::maintenance_targets;
mod key_filter;
mod keys;
mod log;
mod pii;
mod plan;
mod quarantine;
mod read;
mod resume;
mod typing;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use lake_core::{
    Bookmark, CatalogExt, CatalogRef, Ident, LakeError, RefineReport, Result, StorageExt,
    StorageRef, TableDefinition, TableId, Touched, ValidatorRef,
};

pub use commit::{CLOSED_FILE_ROWS, CURRENT_FILES_PER_BUCKET, PAGE_ROWS};
pub use keys::key_buckets;
pub(crate) use keys::{Fnv, KeySet};
pub use quarantine::{QUARANTINE_SCHEMA, QuarantineReason};
pub use typing::{ColumnMapping, Typed, Typer, TyperRef};

use crate::spec::{BUCKETS_PROPERTY, DEFAULT_BUCKETS, SilverSpec};
use commit::history::{History, Write, write_history};
use commit::{Commit, conform};
use log::{EventLog, RunKeys};
use read::Slice;

/// The engine of one spec and its typer: runs, rebuilds, registration.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    spec: SilverSpec,
    typer: TyperRef,
    /// The key of `pii = "hash"` columns (else the environment's).
    pii_key: Option<lake_core::pii::PiiKey>,
}

impl Engine {
    /// The engine of `spec`, once [checked](SilverSpec::check) and accepted
    /// by `typer`.
    pub(crate) fn new(spec: SilverSpec, typer: TyperRef) -> Result<Self> {
        spec.check()?;
        typer.check(&spec)?;
        Ok(Self {
            spec,
            typer,
            pii_key: None,
        })
    }

    /// Hashes `pii = "hash"` columns under `key`.
    pub(crate) fn set_pii_key(&mut self, key: lake_core::pii::PiiKey) {
        self.pii_key = Some(key);
    }

    /// The spec.
    pub(crate) fn spec(&self) -> &SilverSpec {
        &self.spec
    }

    /// The columns its typer writes without a dictionary.
    pub(crate) fn plain_columns(&self) -> Vec<String> {
        self.typer
            .plain_columns()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    /// The application id of the bookmark in the silver commits.
    pub(crate) fn app_id(&self) -> String {
        format!("lake-silver:{}", self.spec.source)
    }

    /// The bookmark a run keeps of its source.
    pub(crate) fn bookmark(&self) -> Bookmark {
        Bookmark::new(self.app_id())
    }

    /// Processes bronze's commits after the bookmark in slices of at most
    /// [`SilverSpec::max_rows_per_commit`] rows, one silver commit each; a
    /// rebuild replaces the tables with its first slice and goes on
    /// incrementally. The report adds the slices up.
    pub(crate) async fn process_backlog(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
        rebuild: bool,
    ) -> Result<RefineReport> {
        let (mut report, mut more) = self.process(storage, validators, rebuild).await?;
        while more {
            let (slice, left) = self.process(storage, validators, false).await?;
            report.absorb(slice);
            more = left;
        }
        Ok(report)
    }

    /// One slice of the backlog, phase by phase; whether bronze holds more
    /// after it.
    async fn process(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
        rebuild: bool,
    ) -> Result<(RefineReport, bool)> {
        let spec = &self.spec;
        let target = &spec.target;
        let mut report = RefineReport::empty(target.clone());

        // 1. The bronze versions after the bookmark, and their rows.
        let Some(slice) = Slice::next(storage, spec, &self.app_id(), rebuild).await? else {
            return Ok((report, false));
        };
        let rebuild = slice.rebuild;
        report
            .source_versions
            .insert(spec.source.to_string(), slice.versions());
        let added = slice
            .read(storage, spec, self.typer.bronze_columns())
            .await?;
        report.rows_read = added.rows.num_rows() as u64;

        // 2. Typing and expectations.
        let mut typed = self.typer.type_rows(spec, added.rows.clone()).await?;
        typed.check_accounted(added.rows.num_rows(), self.typer.as_ref())?;
        if pii::tags_any(spec) {
            let key = match &self.pii_key {
                Some(key) => Some(key.clone()),
                None => lake_core::pii::PiiKey::from_env_if_set()?,
            };
            typed.events = pii::protect(spec, typed.events, key.as_ref())?;
        }
        let log = EventLog::open(storage, spec, &typed.events.schema(), rebuild).await?;
        // A column bronze has not typed the same way as before (an
        // undeclared type that changed) converts or fails, never nulls.
        typed.events = conform(typed.events, &log.schema, &log.id)?;
        quarantine::expectations(validators, target, &mut typed, &mut report).await?;
        let Typed {
            events, rejected, ..
        } = typed;
        report.valid = events.num_rows() as u64;
        report.quarantined = rejected.len() as u64;

        // 3. Quarantine. The event log and quarantine commits carry the
        // version read; the SCD2 commit moves the whole bookmark (version
        // and source id).
        let moves = slice.transactions(spec, &self.app_id())?;
        let txn = moves[0].clone();
        let commit = match rebuild {
            true => Commit::Replace,
            false => Commit::AppendOnce,
        };
        quarantine::write(storage, target, &added, rejected, &txn, commit, &mut report).await?;
        drop(added);

        // 4. The logged events of this run's keys, then the new ones.
        let keys = RunKeys::new(spec, &events, &log.id)?;
        let history = History::open(storage, spec, slice.silver, &log.schema, rebuild).await?;
        let kept = history.rows_of_other_keys(spec, &keys);
        let op_column = self.typer.op_column();
        let (all, first_new) = match resume::applies(spec, &history, &log, op_column, rebuild) {
            Some(sequence) => {
                let resumed =
                    resume::resume(spec, sequence, op_column, &history, &log, &keys, &events)
                        .await?;
                report.keys = resumed.keys;
                report.keys_from_log = resumed.keys_from_log;
                (resumed.all, resumed.first_new)
            }
            None => {
                report.keys = keys.set.len() as u64;
                report.keys_from_log = report.keys;
                log.with_history_of(&keys, &events, rebuild).await?
            }
        };

        // 5. Every history of the keys this run's bronze rows touched (not
        // only keys with fresh events: after a run that failed past the
        // event log's commit, the events are logged but the history is not).
        let (plan, planned) = {
            let (spec, op, all, id) = (
                spec.clone(),
                self.typer.op_column().to_string(),
                all.clone(),
                log.id.clone(),
            );
            cpu("planning histories", move || {
                plan::plan_histories(&spec, &op, &all, first_new, &id)
            })
            .await?
        };
        report.duplicates += plan.duplicates;
        report.sequence_conflicts += plan.conflicts;

        // 6. The event log's commit, on its own task, and the commit that
        // moves the bookmark after it. Events are logged as delivered:
        // carrying nulls forward is redone on every plan.
        let log_id = log.id.clone();
        let fresh = plan::take_rows(&all, plan.fresh.iter().map(|&r| Some(r)), &log_id)?;
        let logged = log.append(fresh, &txn, commit);
        // Gold refreshes the values a commit touched. Every version of a
        // key, before this run and after it, takes its values from one of
        // the key's events, so the values of all events of this run's keys
        // (the rows of `all`) cover both the old and the new value of a key
        // whose value moved. A rebuild records nothing, so that gold
        // refreshes everything: the rows it removes may hold values no
        // event of the new log has.
        let touched = match rebuild {
            true => Touched::new(),
            false => plan::touched_values(spec, &all)?,
        };
        let write = Write {
            spec,
            history,
            keys: &keys,
            events: &events,
            plan: &plan,
            planned: &planned,
            kept,
            moves,
            touched: &touched,
            rebuild,
            plain: self.typer.plain_columns(),
        };
        let (version, log_version, rows_written) = write_history(storage, write, logged).await?;
        report.rows_written = rows_written;
        if let Some(v) = log_version {
            report.table_versions.insert(log_id.to_string(), v);
        }
        report.table_versions.insert(target.to_string(), version);
        Ok((report, slice.last < slice.latest))
    }

    /// Registers the SCD2 and changes tables (idempotent), with the schemas
    /// and partition columns they have in storage.
    pub(crate) async fn register(&self, storage: &StorageRef, catalog: &CatalogRef) -> Result<()> {
        let layout = storage.layout();
        let target = &self.spec.target;
        for id in [target.clone(), target.changes_table()?] {
            let location = layout.table_location(&id);
            let table = storage.open_table(&location).await?;
            if table.version().is_none() {
                continue;
            }
            let schema = table_schema(&table, &id)?;
            let partitions = partition_columns(&table, &id)?
                .iter()
                .map(Ident::new)
                .collect::<Result<Vec<_>>>()?;
            let mut definition = TableDefinition::delta(id, location, schema, partitions);
            definition
                .properties
                .insert("lake.source".to_string(), self.spec.source.to_string());
            catalog.ensure_table(definition).await?;
        }
        Ok(())
    }
}

/// The schema of a Delta table as Arrow sees it.
fn table_schema(table: &DeltaTable, id: &TableId) -> Result<SchemaRef> {
    Ok(table
        .snapshot()
        .map_err(|e| LakeError::delta(id.to_string(), e))?
        .snapshot()
        .arrow_schema())
}

/// The columns `names` of `batch`.
fn columns_of(batch: &RecordBatch, names: &[Ident], id: &TableId) -> Result<Vec<ArrayRef>> {
    names
        .iter()
        .map(|name| {
            batch
                .column_by_name(name.as_str())
                .cloned()
                .ok_or_else(|| LakeError::Schema {
                    table: id.to_string(),
                    message: format!("column `{name}` missing"),
                })
        })
        .collect()
}

/// Refuses `table` when it was created with another bucket count than
/// `spec`'s: its keys would hash to other buckets, and a key would get a
/// second current row with nothing to detect it. A table without the
/// property was created before the count was recorded, with
/// [`DEFAULT_BUCKETS`].
fn check_buckets(table: &DeltaTable, id: &TableId, spec: &SilverSpec) -> Result<()> {
    if table.version().is_none() {
        return Ok(());
    }
    let snapshot = table
        .snapshot()
        .map_err(|e| LakeError::delta(id.to_string(), e))?;
    let recorded = snapshot.metadata().configuration().get(BUCKETS_PROPERTY);
    let created_with = match recorded {
        None => DEFAULT_BUCKETS,
        Some(text) => text.parse::<u32>().map_err(|_| LakeError::Schema {
            table: id.to_string(),
            message: format!("table property {BUCKETS_PROPERTY} = {text:?} is not a bucket count"),
        })?,
    };
    if created_with == spec.buckets {
        return Ok(());
    }
    let how = match recorded {
        Some(_) => format!("table property {BUCKETS_PROPERTY} = {created_with}"),
        None => format!("no {BUCKETS_PROPERTY} property: made before it was recorded"),
    };
    Err(LakeError::config(
        "buckets",
        format!(
            "{id} was created with {created_with} key buckets ({how}) but the spec of {} asks \
             for {}: its keys would hash to other buckets; keep buckets = {created_with}, or \
             write a new target table",
            spec.target, spec.buckets
        ),
    ))
}

/// The partition columns `table` was created with.
fn partition_columns(table: &DeltaTable, id: &TableId) -> Result<Vec<String>> {
    Ok(table
        .snapshot()
        .map_err(|e| LakeError::delta(id.to_string(), e))?
        .metadata()
        .partition_columns()
        .to_vec())
}

fn arrow_error(id: &TableId, e: arrow::error::ArrowError) -> LakeError {
    LakeError::arrow(id.to_string(), e)
}

/// The bytes of the object at `location`.
pub(crate) use lake_core::storage::fetch_object as fetch;

/// Runs CPU-heavy `work` (typing, planning histories, sorting) where it
/// does not hold up the embedding service's other tasks.
///
/// On a multi-thread runtime the work stays on this thread, which first
/// hands its other tasks to another worker ([`tokio::task::block_in_place`]):
/// its data stays in this thread's caches and malloc arena. Moving it to the
/// blocking pool instead made the 100 k-key merge of `lake-bench silver`
/// 5 to 10 % slower, which capping glibc's arenas at one took away: each
/// pool thread allocates from an arena of its own, cold. A current-thread
/// runtime cannot hand its tasks away, so there the work goes to the
/// blocking pool.
pub(crate) async fn cpu<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => Owned(tokio::task::spawn_blocking(work))
            .join()
            .await
            .map_err(|e| LakeError::other(what, e))?,
    }
}

/// A spawned task the run owns: dropped (an early `?`, a cancelled run), it
/// is aborted, where tokio's `JoinHandle` would leave it running detached
/// beside a retry. (A blocking task that has started runs to its end; its
/// result is dropped.)
pub(crate) struct Owned<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Owned<T> {
    fn spawn(task: impl Future<Output = T> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }

    async fn join(mut self) -> std::result::Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The cores this process may use (1 when unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` over `items`, one scoped thread per item (none for a single item),
/// results in the items' order; a panic in `f` is resumed here.
pub(crate) fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
