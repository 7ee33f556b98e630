//! The [`Pipeline`]: storage, catalog, validators and stages composed into
//! one runnable unit.
//!
//! A run goes ingest → refine → aggregate. Every stage report is checked
//! with its `reconcile` method before the next stage starts, so a run that
//! would lose or double-count a record stops with
//! [`LakeError::Reconciliation`] instead of reporting success.
//!
//! A stage that fails with a retryable error ([`LakeError::is_retryable`]:
//! a commit conflict, a transient storage failure) is run again after a
//! backoff, as the [`RetryPolicy`] says. Every stage is idempotent (its
//! bookmark advances in the commit that writes its data), so running one
//! again finishes what the failed attempt left, and never doubles it.
//!
//! A pipeline built [`with_principal`](PipelineBuilder::with_principal)
//! runs as that principal: before each stage runs, its grants in the
//! catalog ([`crate::access`]) must let it read the stage's sources and
//! write its target, or the run stops with [`LakeError::AccessDenied`]
//! (inside the stage's error) and nothing of that stage is written.
//! Erasure and maintenance check write on every table they would change
//! before they change any.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::{Instrument, info, info_span, warn};

use crate::access::{Access, Principal, Privilege};
use crate::catalog::{CatalogExt, CatalogRef};
use crate::error::{LakeError, Result};
use crate::ident::{TableId, Zone};
use crate::lineage::{LineageOptions, LineageSinkRef, StageEvents, StageKind};
use crate::maintenance::{
    Expiry, Maintain, MaintenanceOptions, MaintenanceReport, MaintenanceTarget, RetentionKind,
};
use crate::report::{RunReport, StageOutcome, StageRun};
use crate::stage::{
    AggregateReport, AggregateStageRef, IngestStageRef, RawBatch, RefineReport, RefineStageRef,
    StageContext,
};
use crate::storage::{StorageExt, StorageRef};
use crate::validate::ValidatorRef;

/// A runnable medallion pipeline; build one with [`Pipeline::builder`].
#[derive(Debug, Clone)]
pub struct Pipeline {
    storage: StorageRef,
    catalog: Option<CatalogRef>,
    validators: BTreeMap<TableId, Vec<ValidatorRef>>,
    ingest: Vec<IngestStageRef>,
    refine: Vec<RefineStageRef>,
    aggregate: Vec<AggregateStageRef>,
    record_runs: bool,
    retry: RetryPolicy,
    /// Sort columns of rewritten files, by table.
    sort_by: BTreeMap<TableId, Vec<String>>,
    /// Where the OpenLineage events of every stage run go.
    lineage: Vec<LineageSinkRef>,
    lineage_options: LineageOptions,
    /// Who the pipeline runs as, when its grants are checked.
    principal: Option<Principal>,
}

/// How a [`Pipeline`] retries a stage that failed with a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles after each attempt.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 100 ms, 200 ms, 400 ms and 800 ms (with jitter).
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts in all, waiting `initial_backoff` after the
    /// first failure, doubling up to `max_backoff`.
    pub fn new(max_attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            max_attempts,
            initial_backoff,
            max_backoff,
        }
    }

    /// No retries: a failure is returned at once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt `attempt` (1-based): doubling from
    /// `initial_backoff`, capped at `max_backoff`, then between half and all
    /// of that, so writers that collided do not collide again in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = doubled.min(self.max_backoff);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        capped / 2 + capped / 2 * jitter / 1000
    }

    /// Runs `attempt` until it succeeds, fails with an error `retryable`
    /// refuses, or the attempts are used up, waiting [`backoff`](Self::backoff)
    /// between attempts; `on_retry` hears of each failure that is retried
    /// (attempt number, error, wait), for logging.
    pub async fn run<T, E, F>(
        &self,
        retryable: impl Fn(&E) -> bool,
        on_retry: impl Fn(u32, &E, Duration),
        mut attempt: impl FnMut() -> F,
    ) -> std::result::Result<T, E>
    where
        F: Future<Output = std::result::Result<T, E>>,
    {
        let mut number = 1;
        loop {
            match attempt().await {
                Err(e) if retryable(&e) && number < self.max_attempts => {
                    let wait = self.backoff(number);
                    on_retry(number, &e, wait);
                    tokio::time::sleep(wait).await;
                    number += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

impl Pipeline {
    /// Starts building a pipeline.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The pipeline's storage.
    pub fn storage(&self) -> &StorageRef {
        &self.storage
    }

    /// The pipeline's catalog, if any.
    pub fn catalog(&self) -> Option<&CatalogRef> {
        self.catalog.as_ref()
    }

    /// The ingest stages, one per bronze table.
    pub fn ingest_stages(&self) -> &[IngestStageRef] {
        &self.ingest
    }

    /// The refine stages, in the order they run.
    pub fn refine_stages(&self) -> &[RefineStageRef] {
        &self.refine
    }

    /// The aggregate stages, in the order they run.
    pub fn aggregate_stages(&self) -> &[AggregateStageRef] {
        &self.aggregate
    }

    /// Maintenance of every table the pipeline writes (bronze and its dead
    /// letters, silver with its layouts, its event log and quarantine, gold,
    /// and the run and quality records), each as [`crate::maintenance`]
    /// says; tables not created yet are left out. Run it beside the
    /// pipeline: a race with a stage's commit fails one of the two, never
    /// both silently (see [`crate::maintenance#racing-a-pipeline-run`]).
    pub fn maintain(&self) -> MaintainLake<'_> {
        MaintainLake {
            pipeline: self,
            options: MaintenanceOptions::default(),
        }
    }

    /// An erasure of `subject` from every table of the pipeline, when
    /// awaited: its rows leave bronze, the dead letters and the run
    /// records, silver is rebuilt and gold refreshed from what is left,
    /// and the files and log entries that held it are purged (see
    /// [`crate::erasure`]).
    pub fn erase(&self, subject: crate::erasure::Subject) -> EraseLake<'_> {
        EraseLake {
            pipeline: self,
            subject,
            key: None,
            requested_by: None,
            dry_run: false,
            sources: None,
        }
    }

    /// Every table [`maintain`](Self::maintain) looks after, in stage order,
    /// each once.
    pub fn maintenance_targets(&self) -> Vec<MaintenanceTarget> {
        let layout = self.storage.layout();
        let mut targets: Vec<MaintenanceTarget> = Vec::new();
        let stages = self
            .ingest
            .iter()
            .flat_map(|s| s.maintenance_targets(layout))
            .chain(
                self.refine
                    .iter()
                    .flat_map(|s| s.maintenance_targets(layout)),
            )
            .chain(
                self.aggregate
                    .iter()
                    .flat_map(|s| s.maintenance_targets(layout)),
            );
        for mut target in stages {
            if let Some((_, columns)) = self
                .sort_by
                .iter()
                .find(|(table, _)| layout.table_location(table) == target.location)
            {
                target = target.with_sort_by(columns.clone());
            }
            if !targets.iter().any(|t| t.location == target.location) {
                targets.push(target);
            }
        }
        for (name, at) in [
            (crate::runs::RUNS, "finished_at"),
            (crate::runs::QUALITY, "recorded_at"),
        ] {
            if let Ok(ident) = crate::ident::Ident::new(name) {
                targets.push(
                    MaintenanceTarget::new(format!("_metadata.{name}"), layout.metadata(&ident))
                        .with_expiry(RetentionKind::Records, Expiry::Column(at.to_string())),
                );
            }
        }
        targets
    }

    /// For each table a stage reads incrementally, the earliest version
    /// its readers' bookmarks have read up to (tables no stage has read
    /// yet, or whose bookmark says they were created again, are left out).
    async fn read_up_to(&self) -> Result<HashMap<url::Url, u64>> {
        let layout = self.storage.layout();
        let stages = self
            .refine
            .iter()
            .map(|s| (s.target().clone(), s.bookmarks()))
            .chain(
                self.aggregate
                    .iter()
                    .map(|s| (s.target().clone(), s.bookmarks())),
            );
        let mut read: HashMap<url::Url, u64> = HashMap::new();
        for (target, bookmarks) in stages {
            let target_table = self
                .storage
                .open_table(&layout.table_location(&target))
                .await?;
            for (source, bookmark) in bookmarks {
                let location = layout.table_location(&source);
                let source_table = self.storage.open_table(&location).await?;
                if source_table.version().is_none() {
                    continue;
                }
                let state = bookmark
                    .read(
                        &target_table,
                        &target.to_string(),
                        &source_table,
                        &source.to_string(),
                    )
                    .await?;
                if let crate::bookmark::BookmarkState::At(version) = state {
                    read.entry(location)
                        .and_modify(|v| *v = (*v).min(version))
                        .or_insert(version);
                }
            }
        }
        Ok(read)
    }

    /// The principal the pipeline runs as, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The grants of the principal the pipeline runs as, read now; `None`
    /// when it runs as nobody (nothing is checked).
    async fn access(&self) -> Result<Option<Access>> {
        match (&self.principal, &self.catalog) {
            (Some(principal), Some(catalog)) => Ok(Some(catalog.access(principal).await?)),
            _ => Ok(None),
        }
    }

    /// Checks that `access` may write every one of `tables`, before any is changed.
    pub(crate) fn check_writes<'t>(
        access: Option<&Access>,
        operation: &str,
        tables: impl IntoIterator<Item = &'t TableId>,
    ) -> Result<()> {
        let Some(access) = access else {
            return Ok(());
        };
        for table in tables {
            access
                .check(Privilege::Write, table)
                .map_err(|e| stage_error(operation, e))?;
        }
        Ok(())
    }

    /// Ingests one delivered batch, then refines and aggregates what it changed.
    ///
    /// The run is recorded in `_metadata/runs` (see [`crate::runs`]),
    /// failed or not, unless the builder turned run records off.
    pub async fn run_batch(&self, batch: RawBatch) -> Result<RunReport> {
        let run = RunState::start();
        let batch_id = batch.batch_id.clone();
        let mut stages = Vec::new();
        let result = self.run_stages(&run.run_id, batch, &mut stages).await;
        self.finish(run, Some(&batch_id), stages, result).await
    }

    /// Ingests one delivered batch into bronze, and only that: a later
    /// [`run_pending`](Self::run_pending) refines and aggregates it.
    ///
    /// This is the shape of an ingestion service: every connection ingests
    /// its own batch at once, and one loop keeps silver and gold fresh, so
    /// requests do not queue behind a silver run. The run is recorded as
    /// [`run_batch`](Self::run_batch)'s is.
    pub async fn ingest(&self, batch: RawBatch) -> Result<RunReport> {
        let run = RunState::start();
        let batch_id = batch.batch_id.clone();
        let mut stages = Vec::new();
        let result = async {
            let access = self.access().await?;
            self.ingest_one(&run.run_id, batch, &mut stages, access.as_ref())
                .await
        }
        .await;
        self.finish(run, Some(&batch_id), stages, result).await
    }

    /// Refines and aggregates everything not yet processed (after a restart,
    /// or when another service ingests). Bookmarks make this exactly-once.
    pub async fn run_pending(&self) -> Result<RunReport> {
        let run = RunState::start();
        let mut stages = Vec::new();
        let result = async {
            let access = self.access().await?;
            self.run_downstream(&run.run_id, &mut stages, access.as_ref())
                .await
        }
        .await;
        self.finish(run, None, stages, result).await
    }

    async fn run_stages(
        &self,
        run_id: &str,
        batch: RawBatch,
        stages: &mut Vec<StageRun>,
    ) -> Result<()> {
        // The grants are read once per run.
        let access = self.access().await?;
        self.ingest_one(run_id, batch, stages, access.as_ref())
            .await?;
        self.run_downstream(run_id, stages, access.as_ref()).await
    }

    async fn ingest_one(
        &self,
        run_id: &str,
        batch: RawBatch,
        stages: &mut Vec<StageRun>,
        access: Option<&Access>,
    ) -> Result<()> {
        let stage = self.ingest_stage_for(&batch)?;
        check_stage(access, stage.name(), &[], stage.target())?;
        let context = self.context(stage.target(), run_id);
        let events = self.stage_events(
            run_id,
            StageKind::Ingest,
            stage.name(),
            vec![crate::lineage::batch_dataset(&batch)],
            stage.target(),
        );
        self.lineage_start(events.as_ref()).await?;
        let span = info_span!("ingest", stage = stage.name(), table = %stage.target(), batch = %batch.batch_id);
        let started = Instant::now();
        let report = if batch.is_replayable() {
            // Each attempt ingests a copy. The original sits behind a mutex
            // only because a batch is `Send` but not `Sync` (a stream
            // payload is not), and a reference held across the retries'
            // awaits would make this future, and every service request
            // that awaits it, not `Send`.
            let original = std::sync::Mutex::new(batch);
            let context = &context;
            self.retrying(stage.name(), || {
                let attempt = original
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .try_clone();
                let span = span.clone();
                async move {
                    let attempt = attempt.ok_or_else(|| {
                        LakeError::config("batch", "a replayable batch could not be copied")
                    })?;
                    stage.ingest(context, attempt).instrument(span).await
                }
            })
            .await
        } else {
            // A stream is read once: its ingestion cannot be retried here.
            stage.ingest(&context, batch).instrument(span).await
        }
        .map_err(|e| stage_error(stage.name(), e))
        .inspect(|report| {
            info!(
                stage = stage.name(),
                rows = report.rows_written,
                dead_lettered = report.dead_lettered,
                "ingested"
            )
        })
        .map(StageOutcome::Ingest);
        self.finish_stage(events, stages, stage.name(), started, report)
            .await
    }

    /// Events of a stage run, when the pipeline has lineage sinks.
    fn stage_events(
        &self,
        run_id: &str,
        kind: StageKind,
        name: &str,
        inputs: Vec<openlineage_client::Dataset>,
        target: &TableId,
    ) -> Option<StageEvents> {
        (!self.lineage.is_empty()).then(|| {
            StageEvents::new(
                &self.lineage_options,
                self.storage.layout().root(),
                run_id,
                kind,
                name,
                inputs,
                target,
            )
        })
    }

    /// Sends `START`; a sink that refuses it stops the stage before it runs.
    async fn lineage_start(&self, events: Option<&StageEvents>) -> Result<()> {
        match events {
            Some(events) => self.emit(&events.start()).await,
            None => Ok(()),
        }
    }

    /// Records the stage's outcome (checked by its `reconcile`) and sends
    /// `COMPLETE` or `FAIL`.
    async fn finish_stage(
        &self,
        events: Option<StageEvents>,
        stages: &mut Vec<StageRun>,
        name: &str,
        started: Instant,
        outcome: Result<StageOutcome>,
    ) -> Result<()> {
        let recorded = outcome.and_then(|outcome| push_checked(stages, name, started, outcome));
        let Some(events) = events else {
            return recorded;
        };
        match recorded {
            Ok(()) => {
                let outcome = &stages.last().expect("the stage was just recorded").outcome;
                let event = events
                    .complete(outcome, &self.storage, self.catalog.as_ref())
                    .await?;
                self.emit(&event).await
            }
            Err(error) => {
                if let Err(lost) = self.emit(&events.fail(&error)).await {
                    warn!(stage = name, error = %lost, "the FAIL lineage event of the failed stage was not sent");
                }
                Err(error)
            }
        }
    }

    /// Sends `event` to every lineage sink, retrying as stages are retried.
    async fn emit(&self, event: &openlineage_client::RunEvent) -> Result<()> {
        for sink in &self.lineage {
            self.retrying("lineage", || sink.emit(event)).await?;
        }
        Ok(())
    }

    /// Records the run and returns its report, or its error.
    ///
    /// When the run succeeded but its record cannot be written, the run
    /// fails with that error: the data is committed, and running again is
    /// a no-op that writes the record.
    async fn finish(
        &self,
        run: RunState,
        batch_id: Option<&str>,
        stages: Vec<StageRun>,
        result: Result<()>,
    ) -> Result<RunReport> {
        let report = run.finish(stages);
        if self.record_runs {
            let error = result.as_ref().err();
            let recorded = self
                .retrying("run record", || {
                    crate::runs::record_run(&self.storage, &report, batch_id, error)
                })
                .await;
            if let (Ok(()), Err(e)) = (&result, recorded) {
                return Err(e);
            }
        }
        result.map(|()| report)
    }

    async fn run_downstream(
        &self,
        run_id: &str,
        stages: &mut Vec<StageRun>,
        access: Option<&Access>,
    ) -> Result<()> {
        let root = self.storage.layout().root().clone();
        let datasets = |sources: Vec<TableId>| {
            sources
                .iter()
                .map(|source| crate::lineage::table_dataset(&root, source))
                .collect()
        };
        for stage in &self.refine {
            check_stage(access, stage.name(), &stage.sources(), stage.target())?;
            let context = self.context(stage.target(), run_id);
            let events = self.stage_events(
                run_id,
                StageKind::Refine,
                stage.name(),
                datasets(stage.sources()),
                stage.target(),
            );
            self.lineage_start(events.as_ref()).await?;
            let span = info_span!("refine", stage = stage.name(), table = %stage.target());
            let started = Instant::now();
            let report = self
                .retrying(stage.name(), || {
                    stage.refine(&context).instrument(span.clone())
                })
                .await
                .map_err(|e| stage_error(stage.name(), e))
                .inspect(|report| {
                    info!(
                        stage = stage.name(),
                        read = report.rows_read,
                        quarantined = report.quarantined,
                        "refined"
                    )
                })
                .map(StageOutcome::Refine);
            self.finish_stage(events, stages, stage.name(), started, report)
                .await?;
        }
        for stage in &self.aggregate {
            check_stage(access, stage.name(), &stage.sources(), stage.target())?;
            let context = self.context(stage.target(), run_id);
            let events = self.stage_events(
                run_id,
                StageKind::Aggregate,
                stage.name(),
                datasets(stage.sources()),
                stage.target(),
            );
            self.lineage_start(events.as_ref()).await?;
            let span = info_span!("aggregate", stage = stage.name(), table = %stage.target());
            let started = Instant::now();
            let report = self
                .retrying(stage.name(), || {
                    stage.aggregate(&context).instrument(span.clone())
                })
                .await
                .map_err(|e| stage_error(stage.name(), e))
                .inspect(|report| {
                    info!(
                        stage = stage.name(),
                        partitions = report.partitions_refreshed,
                        "aggregated"
                    )
                })
                .map(StageOutcome::Aggregate);
            self.finish_stage(events, stages, stage.name(), started, report)
                .await?;
        }
        Ok(())
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not
    /// retryable, or the policy's attempts are used up.
    async fn retrying<T, F>(&self, stage: &str, attempt: impl FnMut() -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.retry
            .run(
                LakeError::is_retryable,
                |number, e, wait| {
                    warn!(stage, attempt = number, error = %e, ?wait, "retryable failure, trying again");
                },
                attempt,
            )
            .await
    }

    fn ingest_stage_for(&self, batch: &RawBatch) -> Result<&IngestStageRef> {
        match (&batch.target, self.ingest.as_slice()) {
            (_, []) => Err(LakeError::config(
                "ingest",
                "this pipeline has no ingest stage: use run_pending, or add one with with_ingest",
            )),
            (None, [only]) => Ok(only),
            (None, _) => Err(LakeError::config(
                "target",
                format!(
                    "batch {} names no target and the pipeline has {} ingest stages: call RawBatch::with_target",
                    batch.batch_id,
                    self.ingest.len()
                ),
            )),
            (Some(target), stages) => {
                stages.iter().find(|s| s.target() == target).ok_or_else(|| {
                    LakeError::config(
                        "target",
                        format!(
                            "batch {} is for {target}, which no ingest stage writes",
                            batch.batch_id
                        ),
                    )
                })
            }
        }
    }

    pub(crate) fn context(&self, target: &TableId, run_id: &str) -> StageContext {
        let context = StageContext::new(Arc::clone(&self.storage))
            .with_validators(self.validators.get(target).cloned().unwrap_or_default())
            .with_run_id(run_id);
        match &self.catalog {
            Some(catalog) => context.with_catalog(Arc::clone(catalog)),
            None => context,
        }
    }
}

struct RunState {
    run_id: String,
    started_at: chrono::DateTime<Utc>,
}

impl RunState {
    fn start() -> Self {
        let started_at = Utc::now();
        Self {
            run_id: format!(
                "{}-{}",
                started_at.format("%Y%m%dT%H%M%S%.6fZ"),
                uuid::Uuid::new_v4().simple()
            ),
            started_at,
        }
    }

    fn finish(self, stages: Vec<StageRun>) -> RunReport {
        RunReport {
            run_id: self.run_id,
            started_at: self.started_at,
            finished_at: Utc::now(),
            stages,
        }
    }
}

/// Checks, when the pipeline runs as a principal, that `access` may read
/// a stage's `sources` and write its `target`.
fn check_stage(
    access: Option<&Access>,
    stage: &str,
    sources: &[TableId],
    target: &TableId,
) -> Result<()> {
    let Some(access) = access else {
        return Ok(());
    };
    let reads = sources.iter().map(|t| (Privilege::Read, t));
    for (privilege, table) in reads.chain([(Privilege::Write, target)]) {
        access
            .check(privilege, table)
            .map_err(|e| stage_error(stage, e))?;
    }
    Ok(())
}

fn stage_error(stage: &str, source: LakeError) -> LakeError {
    LakeError::Stage {
        stage: stage.to_string(),
        source: Box::new(source),
    }
}

fn push_checked(
    stages: &mut Vec<StageRun>,
    name: &str,
    started: Instant,
    outcome: StageOutcome,
) -> Result<()> {
    let run = StageRun {
        stage: name.to_string(),
        seconds: started.elapsed().as_secs_f64(),
        outcome,
    };
    run.reconcile()?;
    stages.push(run);
    Ok(())
}

/// Builds a [`Pipeline`]; every check happens in [`build`](PipelineBuilder::build).
#[derive(Debug, Default)]
#[must_use]
pub struct PipelineBuilder {
    storage: Option<StorageRef>,
    catalog: Option<CatalogRef>,
    validators: Vec<(TableId, ValidatorRef)>,
    ingest: Vec<IngestStageRef>,
    refine: Vec<RefineStageRef>,
    aggregate: Vec<AggregateStageRef>,
    without_run_records: bool,
    retry: Option<RetryPolicy>,
    sort_by: Vec<(TableId, Vec<String>)>,
    lineage: Vec<LineageSinkRef>,
    lineage_options: LineageOptions,
    principal: Option<Principal>,
}

impl PipelineBuilder {
    /// Turns off the run records in `_metadata/runs` (on by default).
    pub fn without_run_records(mut self) -> Self {
        self.without_run_records = true;
        self
    }

    /// How stages that fail with a retryable error are retried
    /// ([`RetryPolicy::default`] unless set; [`RetryPolicy::none`] turns it off).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Sends the OpenLineage events of every stage run to `sink` too
    /// (none by default); see [`crate::lineage`].
    pub fn with_lineage(mut self, sink: LineageSinkRef) -> Self {
        self.lineage.push(sink);
        self
    }

    /// How the lineage events name jobs ([`LineageOptions`]).
    pub fn with_lineage_options(mut self, options: LineageOptions) -> Self {
        self.lineage_options = options;
        self
    }

    /// Runs as `principal`: every stage, erasure and maintenance checks
    /// the principal's grants in the catalog first (see [`crate::access`]).
    /// Needs a catalog. Without a principal nothing is checked.
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// Sets the storage (required).
    pub fn with_storage(mut self, storage: StorageRef) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Sets the catalog that stages register their tables and partitions in.
    pub fn with_catalog(mut self, catalog: CatalogRef) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Adds a validator for the silver table `table` (written by a refine stage).
    pub fn with_validator(mut self, table: TableId, validator: ValidatorRef) -> Self {
        self.validators.push((table, validator));
        self
    }

    /// Adds an ingest stage.
    pub fn with_ingest(mut self, stage: IngestStageRef) -> Self {
        self.ingest.push(stage);
        self
    }

    /// Sorts the rows of `table`'s files by `columns` when maintenance
    /// rewrites them (see [`MaintenanceTarget::with_sort_by`]): the columns
    /// its readers filter by, so they skip files by their statistics.
    /// For a bronze or gold table a stage writes; silver tables are laid out
    /// by their runs (their spec's `cluster_by` sorts current rows).
    pub fn with_maintenance_sort(
        mut self,
        table: TableId,
        columns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.sort_by
            .push((table, columns.into_iter().map(Into::into).collect()));
        self
    }

    /// Adds a refine stage; refine stages run in the order added.
    pub fn with_refine(mut self, stage: RefineStageRef) -> Self {
        self.refine.push(stage);
        self
    }

    /// Adds an aggregate stage; aggregate stages run in the order added.
    pub fn with_aggregate(mut self, stage: AggregateStageRef) -> Self {
        self.aggregate.push(stage);
        self
    }

    /// Checks the composition and builds the pipeline.
    ///
    /// Refused: no storage; no stage; a stage writing outside its zone
    /// (ingest → bronze, refine → silver, aggregate → gold); two stages with
    /// one name or one target; a stage reading its own target or a zone it
    /// may not read; a stage reading a table that a later stage writes; a
    /// validator for a table no refine stage writes; a maintenance sort for a
    /// table no ingest or aggregate stage writes, or without columns.
    pub fn build(self) -> Result<Pipeline> {
        let storage = self.storage.ok_or_else(|| {
            LakeError::config("storage", "a pipeline needs storage: call with_storage")
        })?;
        if let (Some(principal), None) = (&self.principal, &self.catalog) {
            return Err(LakeError::config(
                "principal",
                format!(
                    "the pipeline runs as {principal}, whose grants are kept in a catalog: call with_catalog"
                ),
            ));
        }
        if self.ingest.is_empty() && self.refine.is_empty() && self.aggregate.is_empty() {
            return Err(LakeError::config(
                "stages",
                "a pipeline needs at least one stage: call with_ingest, with_refine or with_aggregate",
            ));
        }

        let mut names = BTreeSet::new();
        let mut targets = BTreeSet::new();
        // Tables written by the stages that run before the one being checked.
        let mut written_before = BTreeSet::new();
        let all_targets: BTreeSet<TableId> = self
            .ingest
            .iter()
            .map(|s| s.target().clone())
            .chain(self.refine.iter().map(|s| s.target().clone()))
            .chain(self.aggregate.iter().map(|s| s.target().clone()))
            .collect();

        let stages = self
            .ingest
            .iter()
            .map(|s| {
                (
                    s.name(),
                    s.target().clone(),
                    Vec::new(),
                    Zone::Bronze,
                    &[][..],
                )
            })
            .chain(self.refine.iter().map(|s| {
                (
                    s.name(),
                    s.target().clone(),
                    s.sources(),
                    Zone::Silver,
                    &[Zone::Bronze, Zone::Silver][..],
                )
            }))
            .chain(self.aggregate.iter().map(|s| {
                (
                    s.name(),
                    s.target().clone(),
                    s.sources(),
                    Zone::Gold,
                    &[Zone::Silver, Zone::Gold][..],
                )
            }));
        for (name, target, sources, zone, readable) in stages {
            if !names.insert(name.to_string()) {
                return Err(LakeError::config(
                    format!("stage `{name}`"),
                    "two stages have this name",
                ));
            }
            if target.zone != zone {
                return Err(LakeError::config(
                    format!("stage `{name}`"),
                    format!("writes {target}, but a stage of this kind must write the {zone} zone"),
                ));
            }
            if !targets.insert(target.clone()) {
                return Err(LakeError::config(
                    format!("stage `{name}`"),
                    format!("writes {target}, which another stage writes too"),
                ));
            }
            for source in &sources {
                if *source == target {
                    return Err(LakeError::config(
                        format!("stage `{name}`"),
                        format!("reads its own target {source}"),
                    ));
                }
                if !readable.contains(&source.zone) {
                    return Err(LakeError::config(
                        format!("stage `{name}`"),
                        format!(
                            "reads {source}, but a stage writing {zone} may not read the {} zone",
                            source.zone
                        ),
                    ));
                }
                if all_targets.contains(source) && !written_before.contains(source) {
                    return Err(LakeError::config(
                        format!("stage `{name}`"),
                        format!(
                            "reads {source}, which a later stage writes: add the stage writing it first"
                        ),
                    ));
                }
            }
            written_before.insert(target);
        }

        let refine_targets: BTreeSet<&TableId> = self.refine.iter().map(|s| s.target()).collect();
        let mut validators: BTreeMap<TableId, Vec<ValidatorRef>> = BTreeMap::new();
        for (table, validator) in self.validators {
            if !refine_targets.contains(&table) {
                return Err(LakeError::config(
                    "validators",
                    format!(
                        "validator `{}` is for {table}, which no refine stage writes",
                        validator.name()
                    ),
                ));
            }
            validators.entry(table).or_default().push(validator);
        }
        let mut sort_by = BTreeMap::new();
        for (table, columns) in self.sort_by {
            let field = format!("maintenance.sort_by.\"{table}\"");
            if table.zone == Zone::Silver {
                return Err(LakeError::config(
                    field,
                    "silver tables are laid out by their runs (closed versions by their end, current rows by the spec's cluster_by): set cluster_by in the silver spec instead",
                ));
            }
            if !all_targets.contains(&table) {
                return Err(LakeError::config(
                    field,
                    format!("{table} is not a table a stage of this pipeline writes"),
                ));
            }
            if columns.is_empty() || columns.iter().any(|c| c.trim().is_empty()) {
                return Err(LakeError::config(
                    field,
                    "name at least one column, none empty",
                ));
            }
            sort_by.insert(table, columns);
        }

        Ok(Pipeline {
            storage,
            catalog: self.catalog,
            validators,
            ingest: self.ingest,
            refine: self.refine,
            aggregate: self.aggregate,
            record_runs: !self.without_run_records,
            retry: self.retry.unwrap_or_default(),
            sort_by,
            lineage: self.lineage,
            lineage_options: self.lineage_options,
            principal: self.principal,
        })
    }
}

/// Maintenance of every table of a [`Pipeline`], run when awaited: a report
/// per table that exists, in [`Pipeline::maintenance_targets`] order. A
/// table whose maintenance a racing commit refused is maintained again, as
/// the pipeline's [`RetryPolicy`] retries stages; the first table that
/// still fails stops it (the tables before keep their commits).
#[must_use = "a maintenance does nothing until awaited"]
pub struct MaintainLake<'a> {
    pipeline: &'a Pipeline,
    options: MaintenanceOptions,
}

impl MaintainLake<'_> {
    /// Sets the options every table is maintained with.
    pub fn with_options(mut self, options: MaintenanceOptions) -> Self {
        self.options = options;
        self
    }
}

impl<'a> std::future::IntoFuture for MaintainLake<'a> {
    type Output = Result<Vec<MaintenanceReport>>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let storage = self.pipeline.storage();
            let pipeline = self.pipeline;
            Pipeline::check_writes(
                pipeline.access().await?.as_ref(),
                "maintain",
                pipeline
                    .ingest
                    .iter()
                    .map(|s| s.target())
                    .chain(pipeline.refine.iter().map(|s| s.target()))
                    .chain(pipeline.aggregate.iter().map(|s| s.target())),
            )?;
            let mut reports = Vec::new();
            let mut targets = self.pipeline.maintenance_targets();
            // Retention by partition waits for the stages reading the table.
            let trims = |t: &MaintenanceTarget| matches!(&t.expiry, Some((kind, Expiry::Partitions)) if self.options.retention.days(*kind).is_some());
            if targets.iter().any(trims) {
                let read = self.pipeline.read_up_to().await?;
                for target in targets.iter_mut().filter(|t| trims(t)) {
                    if let Some(&version) = read.get(&target.location) {
                        *target = target.clone().with_read_up_to(version);
                    }
                }
            }
            for target in targets {
                let exists = storage
                    .open_table(&target.location)
                    .await?
                    .version()
                    .is_some();
                if !exists {
                    continue;
                }
                let name = target.name.clone();
                // A stage's commit that won a race refuses maintenance's
                // (retryable): planned again on the new version, it goes on.
                let (_, report) = self
                    .pipeline
                    .retry
                    .run(
                        LakeError::is_retryable,
                        |number, e, wait| {
                            warn!(table = %name, attempt = number, error = %e, ?wait, "maintenance refused, trying again");
                        },
                        || {
                            Maintain::target(Arc::clone(storage), target.clone())
                                .with_options(self.options.clone())
                                .into_future()
                        },
                    )
                    .await
                    .map_err(|e| LakeError::Stage {
                        stage: format!("maintain {name}"),
                        source: Box::new(e),
                    })?;
                reports.push(report);
            }
            Ok(reports)
        })
    }
}

/// What [`Pipeline::erase`] did, or would do in a
/// dry run.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ErasureReport {
    /// The erasure's id (in its commits and its record).
    pub id: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Who asked, as the caller said.
    pub requested_by: Option<String>,
    /// When it started.
    pub started_at: chrono::DateTime<Utc>,
    /// When it ended.
    pub finished_at: chrono::DateTime<Utc>,
    /// The subject's column.
    pub column: String,
    /// The subject's values as HMAC-SHA256 under the erasure key (hex).
    pub subject_hashes: Vec<String>,
    /// The tables that held records, with the rows removed from each.
    pub erased: Vec<crate::erasure::TableErasure>,
    /// The refine stages rebuilt, with their reports.
    pub rebuilt: Vec<RefineReport>,
    /// The aggregate stages refreshed, with their reports.
    pub refreshed: Vec<AggregateReport>,
    /// What the purge deleted and rewrote, per table.
    pub purged: Vec<crate::erasure::Purge>,
    /// Lineage events under `_metadata/lineage/` rewritten without the
    /// subject (the error message of a failed stage can quote a value).
    #[serde(default)]
    pub lineage_events_rewritten: u64,
    /// Where the record is, relative to the lake root.
    pub record: Option<String>,
}

impl ErasureReport {
    /// Rows removed from the tables that hold records.
    pub fn rows_erased(&self) -> u64 {
        self.erased.iter().map(|t| t.rows).sum()
    }
}

/// An erasure of a [`Subject`](crate::erasure::Subject) from every table of a [`Pipeline`],
/// run when awaited (see [`crate::erasure`]).
#[must_use = "an erasure does nothing until awaited"]
pub struct EraseLake<'a> {
    pub(crate) pipeline: &'a Pipeline,
    pub(crate) subject: crate::erasure::Subject,
    pub(crate) key: Option<crate::pii::PiiKey>,
    pub(crate) requested_by: Option<String>,
    pub(crate) dry_run: bool,
    pub(crate) sources: Option<Vec<crate::TableId>>,
}

impl EraseLake<'_> {
    /// Hashes the subject in the record with `key` (default:
    /// [`PiiKey::from_env`](crate::pii::PiiKey::from_env)).
    pub fn with_key(mut self, key: crate::pii::PiiKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Records who asked (a ticket, a person, a system).
    pub fn with_requested_by(mut self, who: impl Into<String>) -> Self {
        self.requested_by = Some(who.into());
        self
    }

    /// Only counts the rows that would go; writes nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Erases only from these bronze tables (and their dead letters), and
    /// rebuilds only the silver stages that read them: for a subject known
    /// to one source of a pipeline that has several. Each must be a table
    /// an ingest stage of the pipeline writes. Default: every source.
    pub fn with_sources(mut self, tables: impl IntoIterator<Item = crate::TableId>) -> Self {
        self.sources = Some(tables.into_iter().collect());
        self
    }
}

/// The run and quality records, searched in every text column.
fn metadata_targets(layout: &crate::LakeLayout) -> Result<Vec<crate::erasure::ErasureTarget>> {
    [crate::runs::RUNS, crate::runs::QUALITY]
        .into_iter()
        .map(|name| {
            let ident = crate::ident::Ident::new(name)?;
            Ok(crate::erasure::ErasureTarget::new(MaintenanceTarget::new(
                format!("_metadata.{name}"),
                layout.metadata(&ident),
            )))
        })
        .collect()
}

impl<'a> std::future::IntoFuture for EraseLake<'a> {
    type Output = Result<ErasureReport>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let key = match self.key {
                Some(key) => key,
                None => crate::pii::PiiKey::from_env()?,
            };
            let started_at = Utc::now();
            let id = uuid::Uuid::new_v4().to_string();
            let mut report = ErasureReport {
                id: id.clone(),
                dry_run: self.dry_run,
                requested_by: self.requested_by,
                started_at,
                finished_at: started_at,
                column: self.subject.column.clone(),
                subject_hashes: self.subject.values.iter().map(|v| key.hash(v)).collect(),
                erased: Vec::new(),
                rebuilt: Vec::new(),
                refreshed: Vec::new(),
                purged: Vec::new(),
                lineage_events_rewritten: 0,
                record: None,
            };
            let pipeline = self.pipeline;
            let storage = pipeline.storage();
            let layout = storage.layout();
            let bronze: Vec<crate::TableId> = pipeline
                .ingest_stages()
                .iter()
                .map(|s| s.target().clone())
                .collect();
            if let Some(unknown) = self.sources.iter().flatten().find(|t| !bronze.contains(t)) {
                let known: Vec<String> = bronze.iter().map(ToString::to_string).collect();
                return Err(LakeError::config(
                    "erase.sources",
                    format!(
                        "{unknown} is not a table an ingest stage of the pipeline writes (those are: {})",
                        known.join(", ")
                    ),
                ));
            }
            let chosen =
                |table: &crate::TableId| self.sources.as_ref().is_none_or(|s| s.contains(table));
            // What is erased from, and what is purged after.
            let mut targets = Vec::new();
            let mut purged: Vec<MaintenanceTarget> = Vec::new();
            for stage in pipeline
                .ingest_stages()
                .iter()
                .filter(|s| chosen(s.target()))
            {
                let Some(tables) = stage.erasure_targets(layout) else {
                    return Err(LakeError::config(
                        stage.name(),
                        "the stage does not say which of its tables hold records, so a subject cannot be erased from them",
                    ));
                };
                targets.extend(tables);
                purged.extend(stage.maintenance_targets(layout));
            }
            targets.extend(metadata_targets(layout)?);
            let rebuilt: Vec<_> = pipeline
                .refine_stages()
                .iter()
                .filter(|s| s.sources().iter().any(|t| bronze.contains(t) && chosen(t)))
                .collect();
            for stage in &rebuilt {
                purged.extend(stage.maintenance_targets(layout));
            }
            Pipeline::check_writes(
                pipeline.access().await?.as_ref(),
                "erase",
                pipeline
                    .ingest_stages()
                    .iter()
                    .map(|s| s.target())
                    .filter(|t| chosen(t))
                    .chain(rebuilt.iter().map(|s| s.target()))
                    .chain(pipeline.aggregate_stages().iter().map(|s| s.target())),
            )?;
            for stage in pipeline.aggregate_stages() {
                purged.extend(stage.maintenance_targets(layout));
            }
            purged.extend(targets.iter().map(|t| t.table.clone()));
            let mut seen = std::collections::HashSet::new();
            purged.retain(|t| seen.insert(t.location.clone()));
            for target in targets {
                let erased =
                    crate::erasure::erase_rows(storage, &target, &self.subject, &id, self.dry_run)
                        .await
                        .map_err(|e| {
                            stage_error(&format!("erase from {}", target.table.name), e)
                        })?;
                report.erased.push(erased);
            }
            if self.dry_run {
                report.finished_at = Utc::now();
                return Ok(report);
            }
            for stage in rebuilt {
                let context = pipeline.context(stage.target(), &id);
                let rebuilt = stage
                    .rebuild(&context)
                    .await
                    .map_err(|e| stage_error(&format!("erase: {}", stage.name()), e))?;
                report.rebuilt.push(rebuilt);
            }
            for stage in pipeline.aggregate_stages() {
                let context = pipeline.context(stage.target(), &id);
                let refreshed = stage
                    .aggregate(&context)
                    .await
                    .map_err(|e| stage_error(&format!("erase: {}", stage.name()), e))?;
                report.refreshed.push(refreshed);
            }
            for target in purged {
                let purged = crate::erasure::purge(storage, &target, &self.subject)
                    .await
                    .map_err(|e| stage_error(&format!("erase from {}", target.name), e))?;
                report.purged.push(purged);
            }
            let lineage = storage
                .layout()
                .metadata_root()
                .join(&format!("{}/", crate::lineage::LINEAGE))
                .map_err(|e| LakeError::config("lake root", e.to_string()))?;
            report.lineage_events_rewritten =
                crate::erasure::scrub_documents(storage, &lineage, &self.subject)
                    .await
                    .map_err(|e| stage_error("erase from lineage events", e))?;
            report.finished_at = Utc::now();
            let file = format!(
                "{}-{id}.json",
                report.started_at.format("%Y%m%dT%H%M%S%.3fZ")
            );
            let root = storage.object_path(&storage.layout().metadata_root())?;
            let path = root.join(crate::erasure::ERASURES).join(file.as_str());
            report.record = Some(format!("_metadata/{}/{file}", crate::erasure::ERASURES));
            let json = serde_json::to_vec_pretty(&report)
                .map_err(|e| LakeError::other("erasure record", e))?;
            object_store::ObjectStoreExt::put(
                storage.object_store().as_ref(),
                &path,
                object_store::PutPayload::from(json),
            )
            .await
            .map_err(|e| LakeError::storage(path.to_string(), e))?;
            Ok(report)
        })
    }
}
