//! The stage of the reference workload (`SEMANTICS.md`): bronze `orders`
//! events in, SCD2 history out.
//!
//! [`OrdersSilver`] is [`SilverTable`] over [`SilverSpec::orders`], typed
//! by [`ReferenceRules`](crate::reference::ReferenceRules) from each
//! record's original `_raw` text. How a run works is in [`crate::engine`].

use async_trait::async_trait;
use lake_core::{CatalogRef, RefineReport, RefineStage, Result, StageContext, StorageRef, TableId};

pub use crate::reference::{CHANGES_SCHEMA, ORDER_DATE, events_batch, events_batch_in, key_bucket};
use crate::spec::SilverSpec;
pub use crate::spec::{CdcFormat, KEY_BUCKET, Mode};
use crate::stage::{Refine, SilverTable};

/// The silver stage of the reference `orders` workload: [`SilverTable`]
/// over [`SilverSpec::orders`].
#[derive(Debug, Clone)]
pub struct OrdersSilver {
    table: SilverTable,
}

impl OrdersSilver {
    /// Refines `source` (a bronze table of order events) into `target`.
    pub fn new(source: TableId, target: TableId) -> Result<Self> {
        let spec = SilverSpec::orders(source, target)?;
        Ok(Self {
            table: SilverTable::new(spec)?,
        })
    }

    fn with_spec(self, change: impl FnOnce(&mut SilverSpec)) -> Self {
        let mut spec = self.table.spec().clone();
        change(&mut spec);
        Self {
            table: SilverTable::new(spec).expect("the reference spec with another mode or format"),
        }
    }

    /// Keeps only the latest state of each key (see [`Mode::Scd1`]).
    #[must_use]
    pub fn with_mode(self, mode: Mode) -> Self {
        self.with_spec(|spec| spec.mode = mode)
    }

    /// Reads the bronze records as `format` (flat events by default).
    #[must_use]
    pub fn with_cdc_format(self, format: CdcFormat) -> Self {
        self.with_spec(|spec| spec.cdc = format)
    }

    /// Whether runs may write deletion vectors (see
    /// [`SilverSpec::deletion_vectors`]); on by default.
    #[must_use]
    pub fn with_deletion_vectors(self, enabled: bool) -> Self {
        self.with_spec(|spec| spec.deletion_vectors = enabled)
    }

    /// The most bronze rows one commit reads (see
    /// [`SilverSpec::max_rows_per_commit`]).
    #[must_use]
    pub fn with_max_rows_per_commit(self, rows: u64) -> Self {
        self.with_spec(|spec| spec.max_rows_per_commit = rows)
    }

    /// The spec this stage runs.
    pub fn spec(&self) -> &SilverSpec {
        self.table.spec()
    }

    /// A run over every bronze commit after the bookmark, when awaited
    /// (see [`SilverTable::run`]).
    pub fn run(&self, storage: &StorageRef) -> Refine<'_> {
        self.table.run(storage)
    }

    /// A rebuild from every bronze commit, when awaited (see
    /// [`SilverTable::rebuild`]).
    pub fn rebuild(&self, storage: &StorageRef) -> Refine<'_> {
        self.table.rebuild(storage)
    }

    /// Registers the SCD2 and changes tables (idempotent).
    pub async fn register(&self, storage: &StorageRef, catalog: &CatalogRef) -> Result<()> {
        self.table.register(storage, catalog).await
    }
}

#[async_trait]
impl RefineStage for OrdersSilver {
    fn name(&self) -> &str {
        self.table.name()
    }

    fn target(&self) -> &TableId {
        RefineStage::target(&self.table)
    }

    fn sources(&self) -> Vec<TableId> {
        self.table.sources()
    }

    fn bookmarks(&self) -> Vec<(TableId, lake_core::Bookmark)> {
        self.table.bookmarks()
    }

    fn maintenance_targets(
        &self,
        layout: &lake_core::LakeLayout,
    ) -> Vec<lake_core::MaintenanceTarget> {
        self.table.maintenance_targets(layout)
    }

    async fn refine(&self, context: &StageContext) -> Result<RefineReport> {
        self.table.refine(context).await
    }
}
