//! SQL across the lake: a DataFusion session over the catalog.
//!
//! Every zone is a DataFusion catalog and every namespace a schema, so a
//! table is named as it is everywhere else in the lake:
//! `SELECT … FROM gold.analytics.daily_summary WHERE order_date >= '2025-11-01'`.
//! Tables are Delta tables read through deltalake's provider, which prunes
//! partitions and skips files on their statistics; the session also
//! evaluates filters inside the Parquet scan.
//!
//! Two ways to bind the session to the catalog:
//! - [`LakeSession::over_catalog`] installs [`LakeCatalogProvider`]s, a
//!   DataFusion `CatalogProvider` over any [`Catalog`]: every query looks
//!   its tables up in the catalog when it is planned (DataFusion's table
//!   lookup is async), so tables registered after the session was made, or
//!   moved to a new version, are read as they are now. Only the listings
//!   (`SHOW TABLES`, `information_schema`), which DataFusion asks for
//!   synchronously, are a snapshot taken when the session was made.
//! - [`LakeSession::from_catalog`] opens every table once, up front, and
//!   keeps reading those versions (the bridge iceberg-rust's DataFusion
//!   integration uses): repeatable reads, at the price of staleness.
//!
//! [`Catalog`]: lake_core::Catalog

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::collect;
use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::DeltaTable;
use lake_core::{
    CatalogRef, Ident, LakeError, NamespaceId, Result, StorageExt, StorageRef, TableId, Zone,
};

use crate::refresh::ScanMetrics;

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeTravel {
    /// The latest version.
    #[default]
    Latest,
    /// A table version.
    Version(u64),
    /// The version current at this instant.
    Timestamp(DateTime<Utc>),
}

/// What [`LakeSession::sql`] allows: queries only.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A DataFusion session over the lake's tables.
#[derive(Clone)]
pub struct LakeSession {
    ctx: SessionContext,
    storage: StorageRef,
}

impl std::fmt::Debug for LakeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSession")
            .field("session_id", &self.ctx.session_id())
            .field("storage", &self.storage)
            .finish()
    }
}

impl LakeSession {
    /// A session with no tables yet; add them with [`register`](Self::register).
    pub fn new(storage: StorageRef) -> Self {
        let ctx = crate::refresh::session();
        for zone in [Zone::Bronze, Zone::Silver, Zone::Gold] {
            ctx.register_catalog(zone.as_str(), Arc::new(MemoryCatalogProvider::new()));
        }
        Self { ctx, storage }
    }

    /// A session over every table `catalog` lists in the bronze, silver and
    /// gold zones, at their latest versions.
    pub async fn from_catalog(storage: StorageRef, catalog: &CatalogRef) -> Result<Self> {
        let session = Self::new(storage);
        for zone in [Zone::Bronze, Zone::Silver, Zone::Gold] {
            for namespace in catalog.list_namespaces(Some(zone)).await? {
                for table in catalog.list_tables(&namespace).await? {
                    let definition = catalog.get_table(&table).await?;
                    let delta = session
                        .open(&definition.location, &table, TimeTravel::Latest)
                        .await?;
                    session.add(&table, &delta).await?;
                }
            }
        }
        Ok(session)
    }

    /// A session whose zones are [`LakeCatalogProvider`]s over `catalog`:
    /// tables are looked up in the catalog, at their latest version, when
    /// each query is planned.
    pub async fn over_catalog(storage: StorageRef, catalog: &CatalogRef) -> Result<Self> {
        let ctx = crate::refresh::session();
        let runtime = ctx.runtime_env();
        for zone in [Zone::Bronze, Zone::Silver, Zone::Gold] {
            let provider = LakeCatalogProvider::load(
                zone,
                Arc::clone(catalog),
                Arc::clone(&storage),
                Arc::clone(&runtime),
            )
            .await?;
            ctx.register_catalog(zone.as_str(), Arc::new(provider));
        }
        Ok(Self { ctx, storage })
    }

    /// Adds the table `id` at its layout location, at its latest version.
    pub async fn register(&self, id: &TableId) -> Result<()> {
        let location = self.storage.layout().table_location(id);
        let table = self.open(&location, id, TimeTravel::Latest).await?;
        self.add(id, &table).await
    }

    /// Runs a read-only SQL query; tables are named `zone.namespace.table`.
    ///
    /// DDL (`CREATE`, `DROP`), DML (`INSERT`, `COPY ... TO`) and
    /// statements (`SET`) are refused: a session over the lake's tables
    /// reads them. [`sql_with_options`](Self::sql_with_options) opts in.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.sql_with_options(sql, read_only()).await
    }

    /// Runs a SQL query under `options` (DataFusion's [`SQLOptions`]:
    /// which of DDL, DML and statements are allowed).
    pub async fn sql_with_options(&self, sql: &str, options: SQLOptions) -> Result<DataFrame> {
        self.ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| LakeError::datafusion("sql session", e))
    }

    /// The table `id` as of `version` (time travel), as a DataFrame.
    pub async fn table_at(&self, id: &TableId, version: TimeTravel) -> Result<DataFrame> {
        let location = self.storage.layout().table_location(id);
        let table = self.open(&location, id, version).await?;
        let provider = provider(&self.ctx, &table, id).await?;
        self.ctx
            .read_table(provider)
            .map_err(|e| LakeError::datafusion(id.to_string(), e))
    }

    /// Registers the table `id` as of `version` under the plain name
    /// `alias`, so SQL can join it with other versions or tables.
    pub async fn register_at(&self, alias: &str, id: &TableId, version: TimeTravel) -> Result<()> {
        let location = self.storage.layout().table_location(id);
        let table = self.open(&location, id, version).await?;
        let provider = provider(&self.ctx, &table, id).await?;
        self.ctx
            .register_table(alias, provider)
            .map_err(|e| LakeError::datafusion(id.to_string(), e))?;
        Ok(())
    }

    /// Runs `frame` and returns its rows with what its scans read, so a
    /// caller can check that a filter pruned partitions or skipped files.
    pub async fn collect_with_metrics(
        &self,
        frame: DataFrame,
    ) -> Result<(Vec<RecordBatch>, ScanMetrics)> {
        let plan = frame
            .create_physical_plan()
            .await
            .map_err(|e| LakeError::datafusion("sql session", e))?;
        let batches = collect(Arc::clone(&plan), self.ctx.task_ctx())
            .await
            .map_err(|e| LakeError::datafusion("sql session", e))?;
        Ok((batches, ScanMetrics::of(plan.as_ref())))
    }

    /// The DataFusion context, for anything this type does not wrap.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    async fn open(&self, location: &url::Url, id: &TableId, at: TimeTravel) -> Result<DeltaTable> {
        let name = id.to_string();
        let builder = self.storage.delta_builder(location)?;
        let builder = match at {
            TimeTravel::Latest => builder,
            TimeTravel::Version(version) => builder.with_version(version),
            TimeTravel::Timestamp(instant) => builder.with_timestamp(instant),
        };
        let table = builder
            .load()
            .await
            .map_err(|e| LakeError::delta(&name, e))?;
        Ok(table)
    }

    async fn add(&self, id: &TableId, table: &DeltaTable) -> Result<()> {
        let name = id.to_string();
        let provider = provider(&self.ctx, table, id).await?;
        let catalog = self
            .ctx
            .catalog(id.zone.as_str())
            .ok_or_else(|| LakeError::not_found(format!("catalog {}", id.zone.as_str())))?;
        let namespace = id.namespace.as_str();
        let schema = match catalog.schema(namespace) {
            Some(schema) => schema,
            None => {
                let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog
                    .register_schema(namespace, Arc::clone(&schema))
                    .map_err(|e| LakeError::datafusion(&name, e))?;
                schema
            }
        };
        // Replacing keeps `register` usable to move a table to its latest version.
        schema
            .deregister_table(id.name.as_str())
            .map_err(|e| LakeError::datafusion(&name, e))?;
        schema
            .register_table(id.name.as_str().to_string(), provider)
            .map_err(|e| LakeError::datafusion(&name, e))?;
        Ok(())
    }
}

async fn provider(
    ctx: &SessionContext,
    table: &DeltaTable,
    id: &TableId,
) -> Result<Arc<dyn TableProvider>> {
    lake_core::delta_provider(ctx, table, &id.to_string()).await
}

/// A DataFusion catalog over one zone of any lake [`Catalog`](lake_core::Catalog):
/// its schemas are the zone's namespaces, its tables the namespaces' tables.
///
/// Table lookups go to the catalog each time a query is planned, and open
/// the Delta table at the location the catalog records, at its latest
/// version. Schema and table names listed synchronously (for
/// `information_schema`) come from a snapshot taken by [`load`](Self::load).
#[derive(Debug)]
pub struct LakeCatalogProvider {
    zone: Zone,
    catalog: CatalogRef,
    storage: StorageRef,
    runtime: Arc<RuntimeEnv>,
    /// Namespace → table names, when loaded.
    listing: std::collections::BTreeMap<String, Vec<String>>,
}

impl LakeCatalogProvider {
    /// A provider for `zone`, with a snapshot of its namespaces and tables
    /// for listings. Delta tables' object stores are registered in `runtime`.
    pub async fn load(
        zone: Zone,
        catalog: CatalogRef,
        storage: StorageRef,
        runtime: Arc<RuntimeEnv>,
    ) -> Result<Self> {
        let mut listing = std::collections::BTreeMap::new();
        for namespace in catalog.list_namespaces(Some(zone)).await? {
            let tables = catalog.list_tables(&namespace).await?;
            listing.insert(
                namespace.name.to_string(),
                tables.iter().map(|t| t.name.to_string()).collect(),
            );
        }
        Ok(Self {
            zone,
            catalog,
            storage,
            runtime,
            listing,
        })
    }
}

impl CatalogProvider for LakeCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        self.listing.keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        // Any valid namespace: whether it holds the table is the catalog's
        // answer at lookup time.
        let namespace = NamespaceId::new(self.zone, name).ok()?;
        Some(Arc::new(LakeSchemaProvider {
            names: self.listing.get(name).cloned().unwrap_or_default(),
            namespace,
            catalog: Arc::clone(&self.catalog),
            storage: Arc::clone(&self.storage),
            runtime: Arc::clone(&self.runtime),
        }))
    }
}

/// One namespace of a [`LakeCatalogProvider`].
#[derive(Debug)]
struct LakeSchemaProvider {
    namespace: NamespaceId,
    names: Vec<String>,
    catalog: CatalogRef,
    storage: StorageRef,
    runtime: Arc<RuntimeEnv>,
}

#[async_trait]
impl SchemaProvider for LakeSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    async fn table(
        &self,
        name: &str,
    ) -> std::result::Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        // A name that is not an identifier names no table (and reaches no path).
        let Ok(name) = Ident::new(name) else {
            return Ok(None);
        };
        let id = TableId {
            zone: self.namespace.zone,
            namespace: self.namespace.name.clone(),
            name,
        };
        let external = |e: LakeError| DataFusionError::External(Box::new(e));
        let definition = match self.catalog.get_table(&id).await {
            Ok(definition) => definition,
            Err(LakeError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(external(e)),
        };
        let table = self
            .storage
            .delta_builder(&definition.location)
            .map_err(external)?
            .load()
            .await
            .map_err(|e| external(LakeError::delta(id.to_string(), e)))?;
        // Registers the table's object store in the session's runtime.
        let state = SessionStateBuilder::new()
            .with_runtime_env(Arc::clone(&self.runtime))
            .build();
        table
            .update_datafusion_session(&state)
            .map_err(|e| external(LakeError::delta(id.to_string(), e)))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| external(LakeError::datafusion(id.to_string(), e)))?;
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}
