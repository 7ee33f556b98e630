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
//! A session opened [`for_principal`](LakeSession::for_principal) binds the
//! same way, and sees only the tables the principal may read (the grants
//! of [`lake_core::access`], read when the session is opened): listings
//! hold only those, and a query, time travel or registration that names
//! another table fails with [`LakeError::AccessDenied`] naming principal and
//! table, whether that table exists or not.
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
    Access, CatalogExt, CatalogRef, Ident, LakeError, NamespaceId, Principal, Privilege, Result,
    StorageExt, StorageRef, TableId, Zone,
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
    /// The principal's grants, for a session opened for one.
    access: Option<Arc<Access>>,
}

impl std::fmt::Debug for LakeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSession")
            .field("session_id", &self.ctx.session_id())
            .field("storage", &self.storage)
            .field("principal", &self.access.as_ref().map(|a| a.principal()))
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
        Self {
            ctx,
            storage,
            access: None,
        }
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
        Self::bound(storage, catalog, None).await
    }

    /// A session like [`over_catalog`](Self::over_catalog)'s for
    /// `principal`: it lists and reads only the tables the principal's
    /// grants in `catalog` let it read, and refuses the others with
    /// [`LakeError::AccessDenied`]. The grants are read once, now.
    pub async fn for_principal(
        storage: StorageRef,
        catalog: &CatalogRef,
        principal: &Principal,
    ) -> Result<Self> {
        let access = Arc::new(catalog.access(principal).await?);
        Self::bound(storage, catalog, Some(access)).await
    }

    async fn bound(
        storage: StorageRef,
        catalog: &CatalogRef,
        access: Option<Arc<Access>>,
    ) -> Result<Self> {
        let ctx = crate::refresh::session();
        let runtime = ctx.runtime_env();
        for zone in [Zone::Bronze, Zone::Silver, Zone::Gold] {
            let provider = LakeCatalogProvider::load(
                zone,
                Arc::clone(catalog),
                Arc::clone(&storage),
                Arc::clone(&runtime),
            )
            .await?
            .with_access(access.clone());
            ctx.register_catalog(zone.as_str(), Arc::new(provider));
        }
        Ok(Self {
            ctx,
            storage,
            access,
        })
    }

    /// The principal's grants, for a session opened for one.
    pub fn access(&self) -> Option<&Access> {
        self.access.as_deref()
    }

    /// `Ok` unless the session is a principal's that may not read `id`.
    fn check_read(&self, id: &TableId) -> Result<()> {
        match &self.access {
            Some(access) => access.check(Privilege::Read, id),
            None => Ok(()),
        }
    }

    /// Adds the table `id` at its layout location, at its latest version.
    pub async fn register(&self, id: &TableId) -> Result<()> {
        self.check_read(id)?;
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
            .map_err(session_error)
    }

    /// The table `id` as of `version` (time travel), as a DataFrame.
    pub async fn table_at(&self, id: &TableId, version: TimeTravel) -> Result<DataFrame> {
        self.check_read(id)?;
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
        self.check_read(id)?;
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

/// A DataFusion error of the session as a lake error: a refusal by the
/// catalog provider comes back as the [`LakeError::AccessDenied`] it is,
/// not wrapped in a planning error.
fn session_error(error: DataFusionError) -> LakeError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(LakeError::AccessDenied {
            principal,
            action,
            table,
        }) = current.downcast_ref::<LakeError>()
        {
            return LakeError::AccessDenied {
                principal: principal.clone(),
                action,
                table: table.clone(),
            };
        }
        cause = current.source();
    }
    LakeError::datafusion("sql session", error)
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
    /// When set, only the tables these grants let the principal read.
    access: Option<Arc<Access>>,
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
            access: None,
        })
    }

    /// Lists and opens only the tables `access` lets its principal read,
    /// and refuses the others with [`LakeError::AccessDenied`]; `None`
    /// checks nothing.
    pub fn with_access(mut self, access: Option<Arc<Access>>) -> Self {
        if let Some(access) = &access {
            let zone = self.zone;
            for (namespace, names) in &mut self.listing {
                names.retain(|name| {
                    TableId::new(zone, namespace, name)
                        .is_ok_and(|id| access.allows(Privilege::Read, &id))
                });
            }
            self.listing.retain(|_, names| !names.is_empty());
        }
        self.access = access;
        self
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
            access: self.access.clone(),
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
    access: Option<Arc<Access>>,
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
        if let Some(access) = &self.access {
            access.check(Privilege::Read, &id).map_err(external)?;
        }
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
