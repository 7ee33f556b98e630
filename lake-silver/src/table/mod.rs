//! The silver stage any [`SilverSpec`] describes: bronze records in,
//! typed events, quarantine, the event log and SCD2 (or SCD1) history out.
//!
//! # How a run works
//! 1. The bookmark is the last bronze version processed, stored as the
//!    application transaction `lake-silver:{bronze table}` of the silver
//!    table, so it advances in the same commit as the history.
//! 2. The bronze files added after the bookmark are read (bronze is
//!    append-only, so the commits' `add` actions are exactly the new rows).
//! 3. The rows are typed ([`SilverSpec::columns`], or the reference rules
//!    over `_raw`); invalid ones go to `_quarantine/{domain}/{entity}` with
//!    the reason and their lineage, as do rows failing a `drop`
//!    expectation.
//! 4. New distinct events are appended to the changes table (the event log).
//! 5. Keys are spread over [`SilverSpec::buckets`] partitions of both silver tables;
//!    the event log of the run's keys is read from their buckets through a
//!    key filter the Parquet reader applies. Each key's history is
//!    recomputed from all of its events ([`crate::scd2::plan`], over Arrow
//!    columns).
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
//!    [rebuild](SilverTable::rebuild) moves it to this one.
//!
//! Every step is idempotent per bronze version (the changes and quarantine
//! commits carry their own application transactions), so a run that fails
//! midway is finished by the next one, and re-running changes nothing.

mod bronze;
mod deletion;
mod key_filter;
mod replace;
mod typing;
mod write;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    StructArray, TimestampMicrosecondArray, UInt32Array, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use datafusion::common::Column;
use datafusion::prelude::Expr;
use deltalake::DeltaTable;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use lake_core::object_store::path::Path as ObjectPath;
use lake_core::object_store::{ObjectStore, ObjectStoreExt};
use lake_core::{
    Action, Bookmark, BookmarkState, CatalogExt, CatalogRef, ExpectationSummary, Ident, LakeError,
    RefineReport, RefineStage, Result, StageContext, StorageExt, StorageRef, TableDefinition,
    TableId, Touched, Validation, ValidatorRef, VersionRange, transaction_version,
};
use tracing::warn;

pub use replace::{CLOSED_FILE_ROWS, CURRENT_FILES_PER_BUCKET};
pub use write::PAGE_ROWS;

use crate::orders::{Mode, QUARANTINE_SCHEMA};
use crate::scd2::{self, EventColumns, Op, Plan, VersionRows};
use crate::spec::{BUCKETS_PROPERTY, DEFAULT_BUCKETS, KEY_BUCKET, SilverSpec, Typing};
use bronze::{LINEAGE, read_added_rows};
use replace::{ChangedRows, Changes, replace_changed};
use typing::Typed;
use write::{
    Commit, Replacement, commit_batch, conform, replace_buckets, scan_buckets, sorted_for_readers,
};

/// The silver stage of one [`SilverSpec`].
#[derive(Debug, Clone)]
pub struct SilverTable {
    spec: SilverSpec,
    /// `silver {entity}`: the stage's name in reports.
    name: String,
}

impl SilverTable {
    /// The stage of `spec`, once [checked](SilverSpec::check).
    pub fn new(spec: SilverSpec) -> Result<Self> {
        spec.check()?;
        let name = format!("silver {}", spec.target.name);
        Ok(Self { spec, name })
    }

    /// The spec.
    pub fn spec(&self) -> &SilverSpec {
        &self.spec
    }

    fn target(&self) -> &TableId {
        &self.spec.target
    }

    fn app_id(&self) -> String {
        format!("lake-silver:{}", self.spec.source)
    }

    /// Processes every bronze commit after the bookmark.
    pub async fn run(&self, storage: &StorageRef) -> Result<RefineReport> {
        self.run_with(storage, &[]).await
    }

    /// Like [`run`](Self::run), checking the typed events with `validators`
    /// first: rows failing a `drop` rule go to quarantine with the rule
    /// names as the reason, a failed `fail` rule aborts before anything is
    /// committed, `warn` results are reported.
    pub async fn run_with(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
    ) -> Result<RefineReport> {
        self.process_backlog(storage, validators, false).await
    }

    /// Recomputes the silver table, its event log and its quarantine from
    /// every bronze commit, replacing what they held: after a change of
    /// the spec (a new column, another cast, another tracked list), or to
    /// repair. The schemas follow the spec; the bookmark ends at bronze's
    /// latest version, so the next [`run`](Self::run) is incremental again.
    ///
    /// The three tables are replaced in three commits (event log,
    /// quarantine, then silver with the bookmark). A rebuild that fails
    /// midway leaves silver as it was; rerun it, or run incrementally,
    /// which then plans from the rebuilt event log. Gold, seeing the
    /// rewrite without recorded values, refreshes fully. Every event is
    /// held in memory at once: size the machine for the whole event log.
    pub async fn rebuild(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
    ) -> Result<RefineReport> {
        self.process_backlog(storage, validators, true).await
    }

    /// Processes bronze's commits after the bookmark in slices of at most
    /// [`SilverSpec::max_rows_per_commit`] rows, one silver commit each; a
    /// rebuild replaces the tables with its first slice and goes on
    /// incrementally. The report adds the slices up.
    async fn process_backlog(
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

    /// One slice of the backlog; whether bronze holds more after it.
    async fn process(
        &self,
        storage: &StorageRef,
        validators: &[ValidatorRef],
        rebuild: bool,
    ) -> Result<(RefineReport, bool)> {
        let spec = &self.spec;
        let target = self.target();
        let mut report = RefineReport::empty(target.clone());
        let layout = storage.layout();
        let bronze_table = storage
            .open_table(&layout.table_location(&spec.source))
            .await?;
        let Some(latest) = bronze_table.version() else {
            return Ok((report, false));
        };
        let silver_location = layout.table_location(target);
        let silver = storage.open_table(&silver_location).await?;
        check_buckets(&silver, target, spec)?;
        let source_name = spec.source.to_string();
        let bookmark = Bookmark::new(self.app_id());
        let state = match rebuild {
            true => BookmarkState::Unset,
            false => {
                let target_name = target.to_string();
                bookmark
                    .read(&silver, &target_name, &bronze_table, &source_name)
                    .await?
            }
        };
        // A bronze table created again holds other rows than the ones the
        // history came from: everything is recomputed from it.
        let (bookmark, rebuild) = match state {
            BookmarkState::At(read) => (Some(read), false),
            BookmarkState::Replaced { reason } => {
                warn!(table = %target, %reason, "source replaced: rebuilding");
                (None, true)
            }
            _ => (None, rebuild),
        };
        if bookmark.is_some_and(|b| b >= latest) {
            return Ok((report, false));
        }
        let first = bookmark.map_or(0, |b| b + 1);
        // This slice ends where the next commit would pass the row bound.
        let bronze_version = slice_end(
            &bronze_table,
            &source_name,
            (first, latest),
            spec.max_rows_per_commit,
        )
        .await?;
        report.source_versions.insert(
            spec.source.to_string(),
            VersionRange {
                first,
                last: bronze_version,
            },
        );

        // 2. The rows bronze added after the bookmark.
        let projection = match spec.typing {
            Typing::Orders => Some(&LINEAGE[..]),
            Typing::Columns => None,
        };
        let added = read_added_rows(
            storage,
            &bronze_table,
            &spec.source,
            (first, bronze_version),
            projection,
        )
        .await?;
        let bronze = &added.rows;
        report.rows_read = bronze.num_rows() as u64;

        // 3. Typing, expectations and quarantine.
        let Typed {
            events: mut typed,
            rows: mut lineage,
            mut rejected,
        } = match spec.typing {
            Typing::Orders => {
                let (bronze, cdc, buckets) = (bronze.clone(), spec.cdc, spec.buckets);
                cpu("typing", move || typing::type_orders(&bronze, cdc, buckets)).await?
            }
            Typing::Columns => typing::type_columns(spec, bronze).await?,
        };
        let changes_id = target.changes_table()?;
        let bucket_count = spec.buckets.to_string();
        let changes = storage
            .ensure_table_with(
                &layout.table_location(&changes_id),
                &typed.schema(),
                &[KEY_BUCKET],
                &[(BUCKETS_PROPERTY, &bucket_count)],
            )
            .await?;
        check_buckets(&changes, &changes_id, spec)?;
        let changes_schema = if rebuild {
            typed.schema()
        } else {
            table_schema(&changes, &changes_id)?
        };
        // A column bronze has not typed the same way as before (an
        // undeclared type that changed) converts or fails, never nulls.
        typed = conform(typed, &changes_schema, &changes_id)?;
        if !validators.is_empty() && typed.num_rows() > 0 {
            let mut validation = Validation::default();
            for validator in validators {
                validation.extend(validator.validate(&typed).await?);
            }
            // Before any commit: a failed `fail` rule leaves every table as it was.
            validation.check_fatal(&target.to_string())?;
            report
                .expectations
                .extend(validation.rules.iter().map(ExpectationSummary::from));
            let dropped = validation.drop_mask(typed.num_rows());
            for (i, &row) in lineage.iter().enumerate() {
                if dropped.value(i) {
                    let rules: Vec<&str> = validation
                        .reasons(i)
                        .into_iter()
                        .filter(|rule| {
                            validation
                                .rules
                                .iter()
                                .any(|r| r.rule == *rule && r.action == Action::Drop)
                        })
                        .collect();
                    rejected.push((row, format!("expectation: {}", rules.join(", "))));
                }
            }
            let kept = arrow::compute::not(&dropped).map_err(|e| arrow_error(target, e))?;
            typed = arrow::compute::filter_record_batch(&typed, &kept)
                .map_err(|e| arrow_error(target, e))?;
            lineage = lineage
                .into_iter()
                .zip(kept.values().iter())
                .filter_map(|(row, keep)| keep.then_some(row))
                .collect();
        }
        drop(lineage);
        report.valid = typed.num_rows() as u64;
        report.quarantined = rejected.len() as u64;
        // The event log and quarantine commits carry the version read; the
        // SCD2 commit moves the whole bookmark (version and source id).
        let moves = Bookmark::new(self.app_id()).transactions(
            &bronze_table,
            &source_name,
            bronze_version,
        )?;
        let txn = moves[0].clone();
        let commit = if rebuild {
            Commit::Replace
        } else {
            Commit::AppendOnce
        };
        let location = layout.quarantine(target);
        let quarantine = if rebuild || !rejected.is_empty() {
            Some(storage.open_table(&location).await?)
        } else {
            None
        };
        // A rebuild also empties a quarantine that no row goes to any more.
        if let Some(quarantine) = quarantine
            && (!rejected.is_empty() || quarantine.version().is_some())
        {
            // Rows of bronze versions a failed earlier run quarantined
            // already are not quarantined twice: the quarantine's own
            // transaction says up to which version it holds them.
            let held = match (commit, quarantine.version()) {
                (Commit::AppendOnce, Some(_)) => {
                    transaction_version(&quarantine, &txn.app_id, location.as_ref()).await?
                }
                _ => None,
            };
            let versions: Vec<u64> = added.row_versions().collect();
            if let Some(held) = held {
                rejected.retain(|(row, _)| versions[*row as usize] as i64 > held);
            }
            let batch = quarantine_batch(bronze, &rejected, &versions)?;
            let quarantine = match quarantine.version() {
                Some(_) => quarantine,
                None => {
                    storage
                        .ensure_table(&location, &QUARANTINE_SCHEMA, &[])
                        .await?
                }
            };
            if let Some(v) = commit_batch(quarantine, &[], batch, &txn, target, commit).await? {
                report
                    .table_versions
                    .insert(format!("quarantine of {target}"), v);
            }
        }
        drop(added);

        // 4. The event log: the logged events of this run's keys, then the
        // new ones, as one batch whose rows the SCD2 plan refers to.
        let keys = columns_of(&typed, &spec.keys, &changes_id)?;
        let buckets: BTreeSet<i32> = typed
            .column_by_name(KEY_BUCKET)
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
            .ok_or_else(|| LakeError::Schema {
                table: changes_id.to_string(),
                message: format!("column `{KEY_BUCKET}` missing"),
            })?
            .values()
            .iter()
            .copied()
            .collect();
        let silver_schema = silver_schema(spec, &changes_schema)?;
        // Opened once, at the bookmark; created here on the first run.
        let layout_columns = silver_partitions(spec);
        let silver = match silver.version() {
            Some(_) => silver,
            None => {
                let columns: Vec<&str> = layout_columns.iter().map(String::as_str).collect();
                let mut properties = vec![(BUCKETS_PROPERTY, bucket_count.as_str())];
                if deletion_vectors(spec, &silver_schema) {
                    properties.push((deletion::ENABLE_DELETION_VECTORS, "true"));
                }
                let created = storage
                    .ensure_table_with(&silver_location, &silver_schema, &columns, &properties)
                    .await?;
                // Another process may have created it first, with its own spec.
                check_buckets(&created, target, spec)?;
                created
            }
        };
        // Closed versions apart from current ones (see `silver_partitions`);
        // a rebuild writes that layout whatever the table had.
        let partitions = if rebuild {
            layout_columns.clone()
        } else {
            partition_columns(&silver, target)?
        };
        let closed_apart = partitions == layout_columns;
        // One key set for both scans below.
        let key_set = Arc::new(KeySet::new(&keys).map_err(|e| arrow_error(&changes_id, e))?);
        // In the older layout (closed and current rows in the same files),
        // every row of the buckets is rewritten, so the rows of other keys
        // are read, at the same time as the log, on another task: the two
        // scans are independent and each keeps about one core busy.
        let kept = (!closed_apart).then(|| {
            Owned::spawn(read_rows_of_other_keys(
                silver.clone(),
                target.clone(),
                buckets.clone(),
                Arc::clone(&silver_schema),
                spec.keys.clone(),
                Arc::clone(&key_set),
            ))
        });
        let mut all = Vec::new();
        let logged = if rebuild {
            BTreeSet::new()
        } else {
            buckets.clone()
        };
        // The rows of this run's keys, as a scan filter.
        let of_these_keys = || {
            key_filter::key_in_set(
                Arc::clone(&key_set),
                keys.iter().map(|k| k.data_type().clone()).collect(),
                spec.keys
                    .iter()
                    .map(|k| Expr::Column(Column::from_name(k.as_str())))
                    .collect(),
            )
        };
        all.extend(
            scan_buckets(
                &changes,
                &changes_id,
                &logged,
                &changes_schema,
                Some(of_these_keys()),
            )
            .await?,
        );
        let first_new = all.iter().map(RecordBatch::num_rows).sum();
        all.push(typed.clone());
        let all = arrow::compute::concat_batches(&changes_schema, &all)
            .map_err(|e| arrow_error(&changes_id, e))?;

        // 5. Every history of the keys this run's bronze rows touched (not
        // only keys with fresh events: after a run that failed past the
        // changes commit, the events are in the log already but the history
        // is not).
        let (plan, planned) = {
            let (spec, all, id) = (spec.clone(), all.clone(), changes_id.clone());
            cpu("planning histories", move || {
                plan_histories(&spec, &all, first_new, &id)
            })
            .await?
        };
        report.duplicates += plan.duplicates;
        report.sequence_conflicts += plan.conflicts;
        // As delivered: carrying nulls forward is redone on every plan.
        let fresh = take_rows(&all, plan.fresh.iter().map(|&r| Some(r)), &changes_id)?;
        // The event log is written on its own task while the SCD2 rows are
        // prepared; its commit lands before the SCD2 commit, which waits
        // for it (see `replace`), so a failure between the two leaves
        // events logged whose history the next run writes. A run that
        // fails before waiting drops the task's set, which stops it: no
        // log commit is left running beside a retry. The table opened to
        // read the log is used: no second log replay.
        let mut logging = tokio::task::JoinSet::new();
        if rebuild || fresh.num_rows() > 0 {
            let (txn, changes_id) = (txn.clone(), changes_id.clone());
            logging.spawn(async move {
                commit_batch(changes, &[KEY_BUCKET], fresh, &txn, &changes_id, commit).await
            });
        }
        let logged = {
            let changes_id = changes_id.clone();
            async move {
                match logging.join_next().await {
                    Some(done) => done.map_err(|e| {
                        LakeError::other(format!("writing the event log {changes_id}"), e)
                    })?,
                    None => Ok(None),
                }
            }
        };

        // Copy the rows of the other keys of their buckets as they are, and
        // replace those partitions in the commit that moves the bookmark. A
        // key's history depends only on its own events, so the copied rows
        // are exactly what recomputing them would give.
        // Gold refreshes the values a commit touched. Every version of a
        // key, before this run and after it, takes its values from one of
        // the key's events, so the values of all events of this run's keys
        // (the rows of `all`) cover both the old and the new value of a key
        // whose value moved.
        // A rebuild records nothing, so that gold refreshes everything: the
        // rows it removes may hold values no event of the new log has.
        let touched = if rebuild {
            Touched::new()
        } else {
            touched_values(spec, &all)?
        };
        let versions: Vec<&VersionRows> = plan
            .versions
            .iter()
            .filter(|v| spec.mode == Mode::Scd2 || v.closer.is_none())
            .collect();
        report.rows_written = versions.len() as u64;
        let new_rows = silver_rows(spec, &planned, &versions, &silver_schema, target)?;
        let changes = match (&kept, rebuild) {
            (None, false) => changes_of_run(spec, &typed, &keys, &key_set, target)?,
            _ => None,
        };
        let log_version;
        let version = match (kept, changes) {
            // Only the rows this run's events can change are replaced, and
            // only the files holding them are rewritten (see `replace`).
            (None, Some(changes)) => {
                let new_rows = changes.select(&new_rows, target)?;
                let target = ChangedRows {
                    silver: &silver,
                    id: target,
                    schema: &silver_schema,
                    partitions: &partitions,
                    buckets: &buckets,
                    changes: Arc::new(changes),
                    cluster_by: spec.cluster_by.as_ref().map(Ident::as_str),
                    valid_from: spec.validity.from.as_str(),
                    plain: plain_columns(spec, &silver_schema),
                };
                let (version, log) =
                    replace_changed(storage, target, new_rows, moves, &touched, logged).await?;
                log_version = log;
                version
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
                    None => (vec![new_rows], Some(of_these_keys())),
                };
                let (cluster_by, valid_from) =
                    (spec.cluster_by.clone(), spec.validity.from.clone());
                let rows = cpu("sorting rows", move || {
                    sorted_for_readers(
                        rows,
                        cluster_by.as_ref().map(Ident::as_str),
                        valid_from.as_str(),
                    )
                })
                .await?;
                log_version = logged.await?;
                let replacement = Replacement {
                    silver: &silver,
                    id: target,
                    schema: &silver_schema,
                    partitions: &partitions,
                    buckets: (!rebuild).then_some(&buckets),
                    only: replaced,
                    plain: plain_columns(spec, &silver_schema),
                };
                replace_buckets(replacement, rows, moves, &touched).await?
            }
        };
        if let Some(v) = log_version {
            report.table_versions.insert(changes_id.to_string(), v);
        }
        report.table_versions.insert(target.to_string(), version);
        Ok((report, bronze_version < latest))
    }

    /// Registers the SCD2 and changes tables (idempotent), with the schemas
    /// and partition columns they have in storage.
    pub async fn register(&self, storage: &StorageRef, catalog: &CatalogRef) -> Result<()> {
        let layout = storage.layout();
        let changes = self.target().changes_table()?;
        for id in [self.target().clone(), changes] {
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

#[async_trait]
impl RefineStage for SilverTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> &TableId {
        &self.spec.target
    }

    fn sources(&self) -> Vec<TableId> {
        vec![self.spec.source.clone()]
    }

    fn bookmarks(&self) -> Vec<(TableId, Bookmark)> {
        vec![(self.spec.source.clone(), Bookmark::new(self.app_id()))]
    }

    async fn refine(&self, context: &StageContext) -> Result<RefineReport> {
        let report = self.run_with(&context.storage, &context.validators).await?;
        if let Some(catalog) = &context.catalog
            && !report.table_versions.is_empty()
        {
            self.register(&context.storage, catalog).await?;
        }
        Ok(report)
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
fn plain_columns(spec: &SilverSpec, schema: &SchemaRef) -> Vec<String> {
    let mut plain: Vec<String> = spec.keys.iter().map(Ident::to_string).collect();
    plain.extend([spec.validity.from.to_string(), spec.validity.to.to_string()]);
    for field in schema.fields() {
        if matches!(field.data_type(), DataType::Float64 | DataType::Float32) {
            plain.push(field.name().clone());
        }
    }
    if spec.typing == Typing::Orders {
        // Canonical JSON of free-form attributes: nearly unique per row.
        plain.push("metadata".to_string());
    }
    plain
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

/// A set of keys. A single text key (the common case, and every run reads
/// all rows of the buckets it replaces through here) is looked up by its
/// string in a table of row numbers into the key column; other keys are
/// compared column by column in Arrow's row format.
pub(crate) enum KeySet {
    Text {
        keys: StringArray,
        table: HashTable<u32>,
        hasher: RandomState,
    },
    Rows {
        converter: RowConverter,
        /// Each key's first row.
        keys: HashMap<Box<[u8]>, u32>,
    },
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, len) = match self {
            Self::Text { table, .. } => ("text", table.len()),
            Self::Rows { keys, .. } => ("rows", keys.len()),
        };
        f.debug_struct("KeySet")
            .field("kind", &kind)
            .field("keys", &len)
            .finish()
    }
}

impl KeySet {
    fn new(keys: &[ArrayRef]) -> Result<Self, arrow::error::ArrowError> {
        if let [key] = keys
            && let Some(text) = key.as_string_opt::<i32>()
        {
            let hasher = RandomState::default();
            let mut table = HashTable::with_capacity(text.len());
            for (i, key) in text.iter().enumerate() {
                let Some(key) = key else { continue };
                let hash = hasher.hash_one(key);
                let same = |j: &u32| text.value(*j as usize) == key;
                if table.find(hash, same).is_none() {
                    table.insert_unique(hash, i as u32, |j: &u32| {
                        hasher.hash_one(text.value(*j as usize))
                    });
                }
            }
            return Ok(Self::Text {
                keys: text.clone(),
                table,
                hasher,
            });
        }
        let converter = RowConverter::new(
            keys.iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(keys)?;
        let mut first = HashMap::with_capacity(rows.num_rows());
        for (i, row) in rows.iter().enumerate() {
            first.entry(row.data().into()).or_insert(i as u32);
        }
        Ok(Self::Rows {
            converter,
            keys: first,
        })
    }

    /// Which rows of `columns` hold a key of the set.
    fn mask(&self, columns: &[ArrayRef]) -> Result<BooleanArray, arrow::error::ArrowError> {
        Ok(self
            .positions(columns)?
            .iter()
            .map(|p| Some(p.is_some()))
            .collect())
    }

    /// For each row of `columns`, the row its key has in the arrays the
    /// set was built from (its first), or `None` when it is not in the set.
    fn positions(
        &self,
        columns: &[ArrayRef],
    ) -> Result<Vec<Option<u32>>, arrow::error::ArrowError> {
        match self {
            Self::Text {
                keys,
                table,
                hasher,
            } => {
                let [column] = columns else {
                    return Err(arrow::error::ArrowError::InvalidArgumentError(
                        "one key column expected".to_string(),
                    ));
                };
                let column = column.as_string_opt::<i32>().ok_or_else(|| {
                    arrow::error::ArrowError::InvalidArgumentError(
                        "a text key column expected".to_string(),
                    )
                })?;
                Ok(column
                    .iter()
                    .map(|key| {
                        let key = key?;
                        table
                            .find(hasher.hash_one(key), |j: &u32| {
                                keys.value(*j as usize) == key
                            })
                            .copied()
                    })
                    .collect())
            }
            Self::Rows { converter, keys } => {
                let rows = converter.convert_columns(columns)?;
                Ok(rows.iter().map(|r| keys.get(r.data()).copied()).collect())
            }
        }
    }
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

/// The bucket of each key: FNV-1a over the UTF-8 text of its columns
/// (stable across processes and versions, unlike the standard library's
/// hasher). A compound key's columns are separated by a byte that UTF-8
/// never holds, so ("a", "bc") and ("ab", "c") are hashed apart; a single
/// text key hashes exactly as [`crate::orders::key_bucket`].
pub fn key_buckets(keys: &[ArrayRef], buckets: u32) -> Result<Int32Array> {
    let texts = keys
        .iter()
        .map(|k| {
            arrow::compute::cast(k, &DataType::Utf8).map_err(|e| LakeError::arrow("key bucket", e))
        })
        .collect::<Result<Vec<_>>>()?;
    let texts: Vec<&StringArray> = texts.iter().map(|t| t.as_string::<i32>()).collect();
    let n = keys.first().map_or(0, |k| k.len());
    Ok((0..n)
        .map(|i| {
            let mut hash = Fnv::new();
            for (c, text) in texts.iter().enumerate() {
                if c > 0 {
                    hash.write(&[0xff]);
                }
                hash.write(text.value(i).as_bytes());
            }
            hash.bucket(buckets)
        })
        .collect())
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

/// 64-bit FNV-1a.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn bucket(&self, buckets: u32) -> i32 {
        (self.0 % u64::from(buckets.max(1))) as i32
    }
}

/// The values of the spec's `touched` columns among `events`, as Delta
/// writes partition values.
fn touched_values(spec: &SilverSpec, events: &RecordBatch) -> Result<Touched> {
    let mut touched = Touched::new();
    for name in &spec.touched {
        touched.track(name.as_str());
        let Some(column) = events.column_by_name(name.as_str()) else {
            continue;
        };
        // Distinct values first (a few hundred dates among many events),
        // then only those written as text.
        let fail = |e| arrow_error(&spec.target, e);
        let converter =
            RowConverter::new(vec![SortField::new(column.data_type().clone())]).map_err(fail)?;
        let rows = converter
            .convert_columns(std::slice::from_ref(column))
            .map_err(fail)?;
        let mut seen = HashSet::new();
        let firsts: UInt32Array = (0..rows.num_rows())
            .filter(|&i| seen.insert(rows.row(i).data()))
            .map(|i| i as u32)
            .collect();
        let distinct = arrow::compute::take(column, &firsts, None).map_err(fail)?;
        let text = arrow::compute::cast(&distinct, &DataType::Utf8).map_err(fail)?;
        for value in text.as_string::<i32>() {
            touched.insert(name.as_str(), value.map(str::to_string));
        }
    }
    Ok(touched)
}

fn arrow_error(id: &TableId, e: arrow::error::ArrowError) -> LakeError {
    LakeError::arrow(id.to_string(), e)
}

/// The SCD2 plan of every key in `events` (a batch in the changes table's
/// layout whose rows from `first_new` on are this run's), and the events
/// the versions' values come from: `events` itself, or with
/// `ignore_null_updates` the events with their nulls carried forward.
fn plan_histories(
    spec: &SilverSpec,
    events: &RecordBatch,
    first_new: usize,
    id: &TableId,
) -> Result<(Plan, RecordBatch)> {
    let column = |name: &str| {
        events
            .column_by_name(name)
            .ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("column `{name}` missing"),
            })
    };
    let op_column = spec.op_column();
    let ops = column(op_column)?
        .as_string_opt::<i32>()
        .ok_or_else(|| LakeError::Schema {
            table: id.to_string(),
            message: format!("column `{op_column}` is not text"),
        })?
        .iter()
        .map(|op| {
            op.and_then(Op::parse).ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("op {op:?} in the event log"),
            })
        })
        .collect::<Result<Vec<Op>>>()?;
    let sequence_columns = columns_of(events, &spec.sequence_by, id)?;
    let sequence = sequence_values(&sequence_columns).map_err(|e| arrow_error(id, e))?;
    let values = |names: Vec<&Ident>| -> Result<Vec<ArrayRef>> {
        names
            .into_iter()
            .map(|name| column(name.as_str()).map(scd2::columnar::normalize_zero))
            .collect()
    };
    let tracked = values(spec.tracked())?;
    let untracked = values(spec.untracked())?;
    let keys = columns_of(events, &spec.keys, id)?;
    let mut columns = EventColumns {
        keys: &keys,
        sequence: &sequence,
        ops: &ops,
        tracked: &tracked,
        untracked: &untracked,
        first_new,
    };
    if !spec.ignore_null_updates {
        let plan = scd2::plan(&columns).map_err(|e| arrow_error(id, e))?;
        return Ok((plan, events.clone()));
    }
    let (filled_tracked, filled_untracked) =
        scd2::columnar::carry_forward(&columns).map_err(|e| arrow_error(id, e))?;
    columns.tracked = &filled_tracked;
    columns.untracked = &filled_untracked;
    let plan = scd2::plan(&columns).map_err(|e| arrow_error(id, e))?;
    // The filled columns replace the delivered ones by name.
    let names: Vec<&Ident> = spec.tracked().into_iter().chain(spec.untracked()).collect();
    let filled: Vec<&ArrayRef> = filled_tracked.iter().chain(&filled_untracked).collect();
    let schema = events.schema();
    let planned: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(events.columns())
        .map(|(field, column)| {
            names
                .iter()
                .position(|n| n.as_str() == field.name())
                .map_or_else(|| Arc::clone(column), |i| Arc::clone(filled[i]))
        })
        .collect();
    let planned = RecordBatch::try_new(schema, planned).map_err(|e| arrow_error(id, e))?;
    Ok((plan, planned))
}

/// Whether values of `data_type` cast to `Int64` keep their order:
/// integers, dates and timestamps.
pub(crate) fn orders_as_integer(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
        )
}

/// The sequence of each event as integers ordered as the sequence is: the
/// column itself when it is an integer, a date or a timestamp, else ranks
/// (see [`scd2::columnar::sequence_ranks`]).
fn sequence_values(columns: &[ArrayRef]) -> Result<Vec<i64>, arrow::error::ArrowError> {
    if let [column] = columns
        && orders_as_integer(column.data_type())
    {
        let cast = arrow::compute::cast(column, &DataType::Int64)?;
        return Ok(cast
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec());
    }
    scd2::columnar::sequence_ranks(columns)
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

/// The partition columns `table` was created with.
fn partition_columns(table: &DeltaTable, id: &TableId) -> Result<Vec<String>> {
    Ok(table
        .snapshot()
        .map_err(|e| LakeError::delta(id.to_string(), e))?
        .metadata()
        .partition_columns()
        .to_vec())
}

/// The rows this run's events can change ([`Changes`]), when versions can
/// be told settled: an SCD2 table with one integer, date or timestamp
/// sequence column.
fn changes_of_run(
    spec: &SilverSpec,
    events: &RecordBatch,
    keys: &[ArrayRef],
    key_set: &Arc<KeySet>,
    id: &TableId,
) -> Result<Option<Changes>> {
    if spec.mode != Mode::Scd2 || events.num_rows() == 0 {
        return Ok(None);
    }
    let sequence = sequence_column(spec, events, id)?;
    if !orders_as_integer(sequence.data_type()) {
        return Ok(None);
    }
    Changes::new(
        Arc::clone(key_set),
        spec.keys.iter().map(Ident::to_string).collect(),
        spec.validity.to.to_string(),
        keys,
        &sequence,
    )
    .map_err(|e| arrow_error(id, e))
}

/// The rows of `batch` at `rows` (a null index gives a null row).
fn take_rows(
    batch: &RecordBatch,
    rows: impl IntoIterator<Item = Option<u32>>,
    id: &TableId,
) -> Result<RecordBatch> {
    let indices: UInt32Array = rows.into_iter().collect();
    arrow::compute::take_record_batch(batch, &indices).map_err(|e| arrow_error(id, e))
}

/// The silver rows of `versions`, gathered from the events that opened,
/// closed and last updated them: keys and tracked values from the opener,
/// untracked values from the latest event, the validity columns from the
/// sequence of the opener and the closer.
fn silver_rows(
    spec: &SilverSpec,
    events: &RecordBatch,
    versions: &[&VersionRows],
    schema: &SchemaRef,
    id: &TableId,
) -> Result<RecordBatch> {
    let openers = take_rows(events, versions.iter().map(|v| Some(v.opener)), id)?;
    let untracked = spec.untracked();
    let latest = if untracked.is_empty() {
        None
    } else {
        Some(take_rows(
            events,
            versions.iter().map(|v| Some(v.latest)),
            id,
        )?)
    };
    let closers: UInt32Array = versions.iter().map(|v| v.closer).collect();
    let sequence = sequence_column(spec, events, id)?;
    let valid_from = arrow::compute::take(
        &sequence,
        &UInt32Array::from_iter_values(versions.iter().map(|v| v.opener)),
        None,
    )
    .map_err(|e| arrow_error(id, e))?;
    let valid_to =
        arrow::compute::take(&sequence, &closers, None).map_err(|e| arrow_error(id, e))?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let column = if name == spec.validity.from.as_str() {
            Arc::clone(&valid_from)
        } else if name == spec.validity.to.as_str() {
            Arc::clone(&valid_to)
        } else if name == spec.validity.current.as_str() {
            Arc::new(
                closers
                    .iter()
                    .map(|c| Some(c.is_none()))
                    .collect::<BooleanArray>(),
            )
        } else {
            let from = match &latest {
                Some(latest) if untracked.iter().any(|u| u.as_str() == name) => latest,
                _ => &openers,
            };
            Arc::clone(from.column_by_name(name).ok_or_else(|| LakeError::Schema {
                table: id.to_string(),
                message: format!("column `{name}` missing from the event log"),
            })?)
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| arrow_error(id, e))
}

/// The sequence as one column: the sequence column, or a struct of them.
fn sequence_column(spec: &SilverSpec, events: &RecordBatch, id: &TableId) -> Result<ArrayRef> {
    let columns = columns_of(events, &spec.sequence_by, id)?;
    if let [one] = columns.as_slice() {
        return Ok(Arc::clone(one));
    }
    let fields: Vec<Field> = spec
        .sequence_by
        .iter()
        .zip(&columns)
        .map(|(name, c)| Field::new(name.as_str(), c.data_type().clone(), true))
        .collect();
    Ok(Arc::new(
        StructArray::try_new(fields.into(), columns, None).map_err(|e| arrow_error(id, e))?,
    ))
}

/// The last bronze version of the slice that starts at `first`: the versions
/// up to `latest` whose added rows (as their commits' statistics count
/// them) stay within `limit`, and at least `first`.
async fn slice_end(
    bronze: &DeltaTable,
    name: &str,
    (first, latest): (u64, u64),
    limit: u64,
) -> Result<u64> {
    let mut rows = 0u64;
    for version in first..=latest {
        let added: u64 = lake_core::commit_actions(bronze, version, name)
            .await?
            .iter()
            .filter_map(|action| action.pointer("/add/stats").and_then(|s| s.as_str()))
            .filter_map(|stats| serde_json::from_str::<serde_json::Value>(stats).ok())
            .filter_map(|stats| stats.get("numRecords").and_then(|n| n.as_u64()))
            .sum();
        if version > first && rows + added > limit {
            return Ok(version - 1);
        }
        rows += added;
    }
    Ok(latest)
}

/// The quarantined rows: reason, lineage, bronze version and time, for the
/// `rejected` rows of `bronze`, each with the bronze version that added it
/// (`versions`, by row).
fn quarantine_batch(
    bronze: &RecordBatch,
    rejected: &[(u32, String)],
    versions: &[u64],
) -> Result<RecordBatch> {
    let fail = |e| LakeError::arrow("quarantine batch", e);
    let rows = UInt32Array::from_iter_values(rejected.iter().map(|(row, _)| *row));
    let lineage = |name: &str, data_type: &DataType| -> Result<ArrayRef> {
        match bronze.column_by_name(name) {
            Some(column) => {
                let taken = arrow::compute::take(column, &rows, None).map_err(fail)?;
                arrow::compute::cast(&taken, data_type).map_err(fail)
            }
            None => Ok(new_null_array(data_type, rejected.len())),
        }
    };
    let now = Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rejected
                .iter()
                .map(|(_, reason)| Some(reason.as_str()))
                .collect::<StringArray>(),
        ),
        lineage("_raw", &DataType::Utf8)?,
        lineage("_batch_id", &DataType::Utf8)?,
        lineage("_source_file", &DataType::Utf8)?,
        lineage("_source_line", &DataType::Int64)?,
        Arc::new(Int64Array::from_iter_values(
            rejected
                .iter()
                .map(|(row, _)| versions[*row as usize] as i64),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![now; rejected.len()]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(Arc::clone(&QUARANTINE_SCHEMA), columns).map_err(fail)
}

/// The bytes of the object at `location`.
async fn fetch(store: &dyn ObjectStore, location: &ObjectPath) -> Result<Bytes> {
    let fail = |e| LakeError::storage(location.to_string(), e);
    store
        .get(location)
        .await
        .map_err(fail)?
        .bytes()
        .await
        .map_err(fail)
}

/// Runs CPU-heavy `work` (typing, planning histories, sorting) on tokio's
/// blocking pool, so a run does not hold an async worker thread that the
/// embedding service's other tasks need; on a current-thread runtime too.
async fn cpu<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    Owned(tokio::task::spawn_blocking(work))
        .join()
        .await
        .map_err(|e| LakeError::other(what, e))?
}

/// A spawned task the run owns: dropped (an early `?`, a cancelled run), it
/// is aborted, where tokio's `JoinHandle` would leave it running detached
/// beside a retry. (A blocking task that has started runs to its end; its
/// result is dropped.)
struct Owned<T>(tokio::task::JoinHandle<T>);

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
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` over `items`, one scoped thread per item (none for a single item),
/// results in the items' order; a panic in `f` is resumed here.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
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
