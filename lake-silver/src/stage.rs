//! The silver stage: a [`SilverSpec`], the [`Typer`](crate::Typer) its
//! [`typing`](SilverSpec::typing) names, and the engine that runs them.
//!
//! This is where a spec's `typing` meets its implementation: the engine
//! knows only the [`Typer`](crate::Typer) trait, and the reference rules are one
//! implementation of it ([`ReferenceRules`]), as a team's own typer can
//! be ([`SilverTable::with_typer`]).

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use lake_core::{
    Bookmark, CatalogRef, LakeLayout, MaintenanceTarget, RefineReport, RefineStage, Result,
    StageContext, StorageRef, TableId, ValidatorRef,
};

use crate::engine::{ColumnMapping, Engine, TyperRef};
use crate::reference::ReferenceRules;
use crate::spec::{SilverSpec, Typing};

/// The silver stage of one [`SilverSpec`]; see [`crate::engine`] for what
/// a run does.
#[derive(Debug, Clone)]
pub struct SilverTable {
    engine: Engine,
    /// `silver {entity}`: the stage's name in reports.
    name: String,
}

impl SilverTable {
    /// The stage of `spec`, once [checked](SilverSpec::check), typed as its
    /// [`typing`](SilverSpec::typing) says: [`ColumnMapping`] or
    /// [`ReferenceRules`].
    pub fn new(spec: SilverSpec) -> Result<Self> {
        let typer: TyperRef = match spec.typing {
            Typing::Columns => Arc::new(ColumnMapping),
            Typing::Orders => Arc::new(ReferenceRules),
        };
        Self::with_typer(spec, typer)
    }

    /// The stage of `spec` typed by a [`Typer`](crate::Typer) of the caller's, whatever
    /// the spec's `typing` says; the typer may refuse the spec.
    pub fn with_typer(spec: SilverSpec, typer: TyperRef) -> Result<Self> {
        let name = format!("silver {}", spec.target.name);
        Ok(Self {
            engine: Engine::new(spec, typer)?,
            name,
        })
    }

    /// Hashes the spec's `pii = "hash"` columns under `key` (by default,
    /// the key in `LAKE_PII_KEY`; see [`lake_core::pii`]).
    #[must_use]
    pub fn with_pii_key(mut self, key: lake_core::pii::PiiKey) -> Self {
        self.engine.set_pii_key(key);
        self
    }

    /// The spec.
    pub fn spec(&self) -> &SilverSpec {
        self.engine.spec()
    }

    /// A run over every bronze commit after the bookmark, when awaited
    /// (see [`Refine`]).
    pub fn run(&self, storage: &StorageRef) -> Refine<'_> {
        Refine {
            engine: &self.engine,
            storage: Arc::clone(storage),
            validators: Vec::new(),
            rebuild: false,
        }
    }

    /// A rebuild, when awaited: recomputes the silver table, its event log
    /// and its quarantine from every bronze commit, replacing what they
    /// held: after a change of the spec (a new column, another cast,
    /// another tracked list), or to repair. The schemas follow the spec;
    /// the bookmark ends at bronze's latest version, so the next
    /// [`run`](Self::run) is incremental again.
    ///
    /// The three tables are replaced in three commits (event log,
    /// quarantine, then silver with the bookmark). A rebuild that fails
    /// midway leaves silver as it was; rerun it, or run incrementally,
    /// which then plans from the rebuilt event log. Gold, seeing the
    /// rewrite without recorded values, refreshes fully. Every event is
    /// held in memory at once: size the machine for the whole event log.
    pub fn rebuild(&self, storage: &StorageRef) -> Refine<'_> {
        Refine {
            rebuild: true,
            ..self.run(storage)
        }
    }

    /// Registers the SCD2 and changes tables (idempotent), with the schemas
    /// and partition columns they have in storage.
    pub async fn register(&self, storage: &StorageRef, catalog: &CatalogRef) -> Result<()> {
        self.engine.register(storage, catalog).await
    }
}

/// A run (or rebuild) of a silver stage, which does nothing until awaited,
/// like deltalake's operation builders; it resolves to the run's report.
///
/// ```no_run
/// # async fn example(stage: lake_silver::SilverTable, storage: lake_core::StorageRef,
/// #     validators: Vec<lake_core::ValidatorRef>) -> lake_core::Result<()> {
/// let report = stage.run(&storage).with_validators(&validators).await?;
/// println!("{} valid, {} quarantined", report.valid, report.quarantined);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a silver run does nothing until awaited"]
pub struct Refine<'a> {
    engine: &'a Engine,
    storage: StorageRef,
    validators: Vec<ValidatorRef>,
    rebuild: bool,
}

impl Refine<'_> {
    /// Checks the typed events with `validators` first: rows failing a
    /// `drop` rule go to quarantine with the rule names as the reason, a
    /// failed `fail` rule aborts before anything is committed, `warn`
    /// results are reported.
    pub fn with_validators(mut self, validators: &[ValidatorRef]) -> Self {
        self.validators = validators.to_vec();
        self
    }
}

impl<'a> IntoFuture for Refine<'a> {
    type Output = Result<RefineReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.engine
                .process_backlog(&self.storage, &self.validators, self.rebuild)
                .await
        })
    }
}

#[async_trait]
impl RefineStage for SilverTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> &TableId {
        &self.spec().target
    }

    fn sources(&self) -> Vec<TableId> {
        vec![self.spec().source.clone()]
    }

    fn bookmarks(&self) -> Vec<(TableId, Bookmark)> {
        vec![(self.spec().source.clone(), self.engine.bookmark())]
    }

    fn maintenance_targets(&self, layout: &LakeLayout) -> Vec<MaintenanceTarget> {
        crate::engine::maintenance_targets(self.spec(), &self.engine.plain_columns(), layout)
    }

    async fn refine(&self, context: &StageContext) -> Result<RefineReport> {
        let report = self
            .run(&context.storage)
            .with_validators(&context.validators)
            .await?;
        if let Some(catalog) = &context.catalog
            && !report.table_versions.is_empty()
        {
            self.register(&context.storage, catalog).await?;
        }
        Ok(report)
    }

    async fn rebuild(&self, context: &StageContext) -> Result<RefineReport> {
        let report = SilverTable::rebuild(self, &context.storage)
            .with_validators(&context.validators)
            .await?;
        if let Some(catalog) = &context.catalog {
            self.register(&context.storage, catalog).await?;
        }
        Ok(report)
    }
}
