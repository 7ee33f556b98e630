//! A pipeline described in TOML, with the same meaning as the Rust builder.
//!
//! ```toml
//! lake = "./lake"                # the root; `--lake` on the command line overrides it
//! catalog = "file"               # "file" (default), "memory", "glue" or "none"
//!
//! [storage]                      # object_store options of the root, for S3:
//! aws_region = "eu-west-1"       # aws_endpoint, aws_allow_http, credentials, ...
//!                                # (AWS_* environment variables are read too)
//!
//! [glue]                         # with catalog = "glue" (feature `glue`)
//! region = "eu-west-1"
//! database_template = "lake_{zone}_{namespace}"
//!
//! [[bronze]]
//! table = "bronze.shop.orders"
//! inputs = ["orders/", "*.jsonl"]  # which inputs `lake run` sends here (see below)
//! options = { schema_policy = "evolve" }
//!
//! [[silver]]
//! stage = "orders"               # the reference workload's SCD2 stage
//! source = "bronze.shop.orders"
//! target = "silver.sales.orders"
//! mode = "scd2"                  # or "scd1": the latest state of each key only
//!
//! [[silver]]                     # or any declarative spec (lake_silver::spec)
//! [silver.spec]
//! source = "bronze.crm.customers"
//! target = "silver.crm.customers"
//! keys = ["customer_id"]
//! sequence_by = "updated_at"
//! columns = [{ name = "customer_id", type = "int64" }, { name = "updated_at", type = "timestamp" }]
//!
//! [[gold]]
//! daily_summary = { source = "silver.sales.orders", target = "gold.analytics.daily_summary" }
//!
//! [[gold]]                       # or any aggregation spec
//! [gold.spec]
//! target = "gold.analytics.by_region"
//! source = "silver.sales.orders"
//! group_by = ["order_date", "region"]
//! partition_by = "order_date"
//! metrics = [{ name = "orders", fn = "count" }]
//!
//! [[expectations]]
//! table = "silver.sales.orders"
//! suite = { name = "orders", expectation = [{ expect = "not_null", column = "customer_id", action = "warn" }] }
//! ```
//!
//! Every error names the field: serde's for the shape, ours for the rest.
//!
//! # Routing inputs
//! `lake run --input PATH…` sends each input file to the first `[[bronze]]`
//! entry whose `inputs` matches it ([`PipelineConfig::route`]). A pattern
//! with a glob character (`*`, `?`, `[`) is a glob: without a `/` it is
//! matched against the file name, with one against the whole location as
//! given (`data/crm/*.csv`, `s3://bucket/crm/*.csv`). A pattern without one
//! is a prefix of the location (`data/orders/`, `s3://bucket/orders/`). An
//! entry without `inputs` takes every input when it is the only bronze
//! table, and none otherwise. An input no entry takes is an error naming
//! it, never a silent skip.

use std::collections::BTreeMap;
use std::sync::Arc;

use lake_bronze::{BronzeOptions, BronzeWriter};
use lake_catalog::{FileCatalog, MemoryCatalog};
use lake_core::{
    CatalogRef, LakeError, ObjectStorage, Pipeline, PipelineBuilder, Result, StorageRef, TableId,
};
use lake_gold::{AggregationSpec, GoldAggregation, daily_summary};
use lake_quality::Suite;
use lake_silver::{Mode, SilverSpec, SilverTable};
use serde::{Deserialize, Serialize};

/// Which catalog the pipeline registers its tables in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// The embedded file catalog under `{root}/_catalog/`.
    #[default]
    File,
    /// An in-memory catalog (lost at exit).
    Memory,
    /// The AWS Glue Data Catalog, configured by the `[glue]` table (needs
    /// the `glue` feature).
    Glue,
    /// No catalog.
    None,
}

/// Where the Glue catalog is; unset fields come from the AWS environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GlueConfig {
    /// An endpoint other than AWS's (a local `moto_server`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The region (else `AWS_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// How databases are named (default `{zone}`: one per zone; see
    /// `GlueCatalogBuilder::database_template`).
    #[serde(default)]
    pub database_template: Option<String>,
    /// The catalog id, when not the caller's account.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// Static credentials, for local emulators; in production leave both
    /// out and let the AWS credential chain (environment, profile, role) work.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret of `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// The Glue database the access grants are kept in (default `lake_grants`).
    #[serde(default)]
    pub grants_database: Option<String>,
}

/// A bronze table and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BronzeConfig {
    /// The table, `bronze.{source}.{table}`.
    pub table: TableId,
    /// Which inputs `lake run` routes to this table: globs or prefixes
    /// (see [the module docs](self#routing-inputs)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Its options (schema policy, compression, file sizes, CSV).
    #[serde(default)]
    pub options: BronzeOptions,
}

impl BronzeConfig {
    /// The table `table` with default options, taking no inputs by pattern.
    pub fn new(table: TableId) -> Self {
        Self {
            table,
            inputs: Vec::new(),
            options: BronzeOptions::default(),
        }
    }

    /// Routes inputs matching `patterns` here (globs or prefixes).
    pub fn with_inputs(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.inputs = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the table's options.
    pub fn with_options(mut self, options: BronzeOptions) -> Self {
        self.options = options;
        self
    }

    /// Whether `location` (a path or URL, as given) is one of this table's inputs.
    fn takes(&self, location: &str, i: usize) -> Result<bool> {
        let name = location
            .trim_end_matches('/')
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(location);
        for pattern in &self.inputs {
            if pattern.contains(['*', '?', '[']) {
                let glob = glob::Pattern::new(pattern).map_err(|e| {
                    LakeError::config(format!("bronze[{i}].inputs"), format!("{pattern:?}: {e}"))
                })?;
                let subject = if pattern.contains('/') {
                    location
                } else {
                    name
                };
                if glob.matches(subject) {
                    return Ok(true);
                }
            } else if location.starts_with(pattern.as_str()) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The silver stages available from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilverStage {
    /// The reference workload's `orders` stage (`SEMANTICS.md`).
    Orders,
}

/// A silver stage: the reference `orders` stage (`stage`, `source`,
/// `target`, `mode`), or any declarative spec (`spec`, see
/// [`lake_silver::spec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SilverConfig {
    /// Which ready-made stage.
    #[serde(default)]
    pub stage: Option<SilverStage>,
    /// The bronze table read by `stage`.
    #[serde(default)]
    pub source: Option<TableId>,
    /// The silver table written by `stage`.
    #[serde(default)]
    pub target: Option<TableId>,
    /// SCD2 (every version, the default) or SCD1 (latest state only), for `stage`.
    #[serde(default)]
    pub mode: Mode,
    /// A declarative silver spec, instead of `stage`.
    #[serde(default)]
    pub spec: Option<SilverSpec>,
    /// Personal data of `stage`'s columns (`pii = { customer_id = "hash" }`;
    /// see [`lake_core::pii`]); a `spec` tags its own columns.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pii: BTreeMap<String, lake_core::pii::Pii>,
}

impl SilverConfig {
    /// The reference `orders` stage from `source` to `target`, in SCD2 mode.
    pub fn orders(source: TableId, target: TableId) -> Self {
        Self {
            stage: Some(SilverStage::Orders),
            source: Some(source),
            target: Some(target),
            mode: Mode::Scd2,
            spec: None,
            pii: BTreeMap::new(),
        }
    }

    /// A stage declared by `spec`.
    pub fn spec(spec: SilverSpec) -> Self {
        Self {
            stage: None,
            source: None,
            target: None,
            mode: Mode::default(),
            spec: Some(spec),
            pii: BTreeMap::new(),
        }
    }

    /// Sets the mode of the `orders` stage.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The stage this entry describes; `i` names it in errors. Without
    /// `deletion_vectors` (the lake-wide setting), the table is created
    /// without them whatever the spec says.
    fn stage(&self, i: usize, deletion_vectors: bool) -> Result<SilverTable> {
        let field = |name: &str| format!("silver[{i}].{name}");
        let spec = match (&self.stage, &self.spec) {
            (Some(SilverStage::Orders), None) => {
                let (Some(source), Some(target)) = (&self.source, &self.target) else {
                    return Err(LakeError::config(
                        field("source"),
                        "the `orders` stage needs `source` and `target`",
                    ));
                };
                let mut spec =
                    SilverSpec::orders(source.clone(), target.clone())?.with_mode(self.mode);
                for (name, tag) in &self.pii {
                    let Some(column) = spec.columns.iter_mut().find(|c| c.name.as_str() == name)
                    else {
                        return Err(LakeError::config(
                            field("pii"),
                            format!("`{name}` is not a column of the `orders` stage"),
                        ));
                    };
                    column.pii = Some(*tag);
                }
                spec
            }
            (None, Some(spec)) => {
                if !self.pii.is_empty() {
                    return Err(LakeError::config(
                        field("pii"),
                        "with `spec`, tag the spec's columns (`pii = \"hash\"` in [[columns]])",
                    ));
                }
                if self.source.is_some() || self.target.is_some() {
                    return Err(LakeError::config(
                        field("source"),
                        "with `spec`, set `source` and `target` inside the spec",
                    ));
                }
                spec.clone()
            }
            _ => {
                return Err(LakeError::config(
                    format!("silver[{i}]"),
                    "set exactly one of `stage` and `spec`",
                ));
            }
        };
        let spec = match deletion_vectors {
            true => spec,
            false => spec.with_deletion_vectors(false),
        };
        SilverTable::new(spec).map_err(|e| match e {
            LakeError::Config {
                field: name,
                message,
            } => LakeError::config(field(&format!("spec.{name}")), message),
            other => other,
        })
    }
}

/// Source and target of a ready-made gold spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Tables {
    /// The table read.
    pub source: TableId,
    /// The table written.
    pub target: TableId,
}

impl Tables {
    /// Reads `source`, writes `target`.
    pub fn new(source: TableId, target: TableId) -> Self {
        Self { source, target }
    }
}

/// A gold table: the reference daily summary, or any spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GoldConfig {
    /// The daily summary of `SEMANTICS.md` from `source` into `target`.
    #[serde(default)]
    pub daily_summary: Option<Tables>,
    /// Any aggregation spec.
    #[serde(default)]
    pub spec: Option<AggregationSpec>,
}

impl GoldConfig {
    /// The reference daily summary over `tables`.
    pub fn daily_summary(tables: Tables) -> Self {
        Self {
            daily_summary: Some(tables),
            spec: None,
        }
    }

    /// A table declared by `spec`.
    pub fn spec(spec: AggregationSpec) -> Self {
        Self {
            daily_summary: None,
            spec: Some(spec),
        }
    }
}

/// Expectations checked on a silver table's typed rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExpectationsConfig {
    /// The silver table.
    pub table: TableId,
    /// The suite.
    pub suite: Suite,
}

impl ExpectationsConfig {
    /// `suite`, checked on `table`'s rows.
    pub fn new(table: TableId, suite: Suite) -> Self {
        Self { table, suite }
    }
}

/// A whole pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// The lake root (a path or URL).
    #[serde(default)]
    pub lake: Option<String>,
    /// The catalog.
    #[serde(default)]
    pub catalog: CatalogKind,
    /// object_store options of the lake root (for S3: `aws_region`,
    /// `aws_endpoint`, `aws_allow_http`, credentials).
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
    /// The Glue catalog, when `catalog = "glue"`.
    #[serde(default)]
    pub glue: Option<GlueConfig>,
    /// Bronze tables, one ingest stage each.
    #[serde(default)]
    pub bronze: Vec<BronzeConfig>,
    /// Silver stages, run in order.
    #[serde(default)]
    pub silver: Vec<SilverConfig>,
    /// Gold tables, refreshed in order.
    #[serde(default)]
    pub gold: Vec<GoldConfig>,
    /// Expectations per silver table.
    #[serde(default)]
    pub expectations: Vec<ExpectationsConfig>,
    /// Whether runs are recorded in `_metadata/runs` (default true).
    #[serde(default = "yes")]
    pub run_records: bool,
    /// Whether silver tables are created with deletion vectors (default
    /// true). `false` is the lake-wide compatibility mode: every silver
    /// table this configuration creates is Delta reader version 1, for
    /// readers without deletion-vector support (Redshift Spectrum, Presto,
    /// deltalake's `to_pyarrow_table()`); a spec's own
    /// `deletion_vectors = false` does the same for one table. An existing
    /// table keeps its vectors until `lake maintain --drop-deletion-vectors`.
    #[serde(default = "yes")]
    pub deletion_vectors: bool,
    /// How long `lake maintain` keeps bronze partitions, dead letters,
    /// quarantined records and run records (`[retention]`, days each;
    /// forever by default).
    #[serde(default)]
    pub retention: lake_core::maintenance::RetentionPolicy,
    /// S3 lifecycle rules for an `s3://` lake (`[lifecycle]`; see
    /// [`crate::lifecycle`]); `lake lifecycle` prints and applies them.
    #[serde(default)]
    pub lifecycle: crate::lifecycle::LifecycleConfig,
    /// How `lake maintain` lays out rewritten files (`[maintenance]`).
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
    /// Where the OpenLineage events of every stage run go (`[lineage]`).
    #[serde(default)]
    pub lineage: LineageConfig,
    /// The `[service]` table of the ingestion service that shares this
    /// file (`lake-examples`' `ingest_service`): kept, not read by the
    /// pipeline or the CLI, so `lake run --config lake.toml` runs the
    /// service's pipeline over files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<toml::Table>,
    /// Who the pipeline runs as: its stages, `lake sql`, `lake erase` and
    /// `lake maintain` check this principal's grants in the catalog
    /// (see [`lake_core::access`]); `--principal` or `LAKE_PRINCIPAL`
    /// override it. Unset, nothing is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<lake_core::Principal>,
}

/// Where the OpenLineage events of every stage run go (see
/// [`lake_core::lineage`]).
///
/// ```toml
/// [lineage]
/// file = true                        # one JSON file per event under _metadata/lineage/
/// url = "http://localhost:5000"      # an OpenLineage endpoint (Marquez)
/// ```
///
/// Without `url`, the `OPENLINEAGE_URL` variable names the endpoint, as
/// for every OpenLineage client (with `OPENLINEAGE_ENDPOINT`); the bearer
/// token is always `OPENLINEAGE_API_KEY`, never the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LineageConfig {
    /// Writes every event under `_metadata/lineage/` (default false).
    #[serde(default)]
    pub file: bool,
    /// The base URL of an OpenLineage HTTP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// The path under `url` events are posted to (default `api/v1/lineage`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The namespace of the jobs (default: the lake root).
    #[serde(default)]
    pub namespace: Option<String>,
}

impl LineageConfig {
    /// The sinks this configuration names, with `OPENLINEAGE_URL` when it
    /// names no URL.
    pub fn sinks(&self, storage: &StorageRef) -> Result<Vec<lake_core::LineageSinkRef>> {
        use lake_core::{FileLineageSink, HttpLineageSink};
        let mut sinks: Vec<lake_core::LineageSinkRef> = Vec::new();
        if self.file {
            sinks.push(Arc::new(FileLineageSink::new(Arc::clone(storage))));
        }
        let http = match &self.url {
            Some(url) => {
                let base = url::Url::parse(url).map_err(|e| {
                    LakeError::config("lineage.url", format!("{url:?} is not a URL: {e}"))
                })?;
                let mut sink = HttpLineageSink::new(base.clone());
                if let Some(endpoint) = &self.endpoint {
                    sink = sink.with_endpoint(&base, endpoint);
                }
                if let Ok(key) = std::env::var("OPENLINEAGE_API_KEY") {
                    sink = sink.with_api_key(key);
                }
                Some(sink)
            }
            None => HttpLineageSink::from_env()?,
        };
        if let Some(sink) = http {
            sinks.push(Arc::new(sink));
        }
        Ok(sinks)
    }
}

/// How maintenance lays out the files it rewrites.
///
/// ```toml
/// [maintenance.sort_by]
/// "gold.analytics.daily_summary" = ["category", "region"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MaintenanceConfig {
    /// Columns to sort a bronze or gold table's rewritten files by, per
    /// table (the columns its queries filter on, so readers skip files by
    /// their statistics). Bronze is sorted by batch unless named here;
    /// silver tables are laid out by their runs (`cluster_by` in the spec).
    #[serde(default)]
    pub sort_by: BTreeMap<String, Vec<String>>,
}

fn yes() -> bool {
    true
}

impl PipelineConfig {
    /// The reference workload: `bronze.shop.orders` → `silver.sales.orders`
    /// → `gold.analytics.daily_summary`, with the file catalog.
    pub fn reference() -> Result<Self> {
        let bronze = TableId::bronze("shop", "orders")?;
        let silver = TableId::silver("sales", "orders")?;
        Ok(Self {
            lake: None,
            catalog: CatalogKind::File,
            storage: BTreeMap::new(),
            glue: None,
            bronze: vec![BronzeConfig::new(bronze.clone())],
            silver: vec![SilverConfig::orders(bronze, silver.clone())],
            gold: vec![GoldConfig::daily_summary(Tables::new(
                silver,
                TableId::gold("analytics", "daily_summary")?,
            ))],
            expectations: Vec::new(),
            run_records: true,
            deletion_vectors: true,
            retention: Default::default(),
            lifecycle: Default::default(),
            maintenance: Default::default(),
            lineage: Default::default(),
            service: None,
            principal: None,
        })
    }

    /// Reads a configuration; an unknown or malformed field is an error naming it.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| LakeError::config("pipeline config", e.to_string()))
    }

    /// Reads the configuration file at `path`; errors name the file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            LakeError::config("config", format!("cannot read {}: {e}", path.display()))
        })?;
        toml::from_str(&text).map_err(|e| {
            LakeError::config(
                format!("config {}", path.display()),
                e.to_string().trim_end().replace('\n', " "),
            )
        })
    }

    /// The bronze table an input at `location` (a path or URL, as given)
    /// goes to (see [the module docs](self#routing-inputs)).
    pub fn route(&self, location: &str) -> Result<&TableId> {
        if let [only] = self.bronze.as_slice()
            && only.inputs.is_empty()
        {
            return Ok(&only.table);
        }
        for (i, bronze) in self.bronze.iter().enumerate() {
            if bronze.takes(location, i)? {
                return Ok(&bronze.table);
            }
        }
        let routes: Vec<String> = self
            .bronze
            .iter()
            .map(|b| format!("{} takes {:?}", b.table, b.inputs))
            .collect();
        Err(LakeError::config(
            "bronze.inputs",
            match routes.is_empty() {
                true => format!("input {location}: the configuration has no [[bronze]] table"),
                false => format!(
                    "input {location} matches no [[bronze]] entry's inputs ({})",
                    routes.join("; ")
                ),
            },
        ))
    }

    /// The storage of the lake at `lake` (or the configured root), with the
    /// `[storage]` options.
    pub fn storage(&self, lake: Option<&str>) -> Result<StorageRef> {
        let root = lake
            .or(self.lake.as_deref())
            .ok_or_else(|| LakeError::config("lake", "no lake root: set `lake` or pass --lake"))?;
        Ok(Arc::new(ObjectStorage::from_url_opts(
            root,
            self.storage.iter().map(|(k, v)| (k.clone(), v.clone())),
        )?))
    }

    /// The configured catalog over `storage`, or `None` for `catalog = "none"`.
    pub async fn catalog(&self, storage: &StorageRef) -> Result<Option<CatalogRef>> {
        if self.glue.is_some() && self.catalog != CatalogKind::Glue {
            return Err(LakeError::config(
                "glue",
                "a [glue] table needs catalog = \"glue\"",
            ));
        }
        Ok(match self.catalog {
            CatalogKind::File => Some(Arc::new(FileCatalog::new(storage)?)),
            CatalogKind::Memory => Some(Arc::new(MemoryCatalog::new())),
            CatalogKind::Glue => Some(glue_catalog(self.glue.clone().unwrap_or_default()).await?),
            CatalogKind::None => None,
        })
    }

    /// Builds the pipeline on the lake at `lake` (or the configured root).
    pub async fn build(&self, lake: Option<&str>) -> Result<Pipeline> {
        self.builder_on(self.storage(lake)?).await?.build()
    }

    /// The pipeline's builder over `storage` you made yourself (a store with
    /// custom client options, or one that injects faults), for settings the
    /// file does not hold, such as the retry policy.
    pub async fn builder_on(&self, storage: StorageRef) -> Result<PipelineBuilder> {
        let catalog = self.catalog(&storage).await?;
        let mut builder = Pipeline::builder().with_storage(Arc::clone(&storage));
        if let Some(catalog) = catalog {
            builder = builder.with_catalog(catalog);
        }
        for bronze in &self.bronze {
            builder = builder.with_ingest(Arc::new(
                BronzeWriter::new(bronze.table.clone())?.with_options(bronze.options.clone()),
            ));
        }
        for (i, silver) in self.silver.iter().enumerate() {
            builder = builder.with_refine(Arc::new(silver.stage(i, self.deletion_vectors)?));
        }
        for (i, gold) in self.gold.iter().enumerate() {
            let spec = match (&gold.daily_summary, &gold.spec) {
                (Some(tables), None) => {
                    daily_summary(tables.source.clone(), tables.target.clone())?
                }
                (None, Some(spec)) => spec.clone(),
                _ => {
                    return Err(LakeError::config(
                        format!("gold[{i}]"),
                        "set exactly one of `daily_summary` and `spec`",
                    ));
                }
            };
            let aggregation = GoldAggregation::new(spec).map_err(|e| match e {
                LakeError::Config { field, message } => {
                    LakeError::config(format!("gold[{i}].spec.{field}"), message)
                }
                other => other,
            })?;
            builder = builder.with_aggregate(Arc::new(aggregation));
        }
        for (i, expectations) in self.expectations.iter().enumerate() {
            let suite = expectations.suite.clone().check().map_err(|e| match e {
                LakeError::Config { field, message } => {
                    LakeError::config(format!("expectations[{i}].suite.{field}"), message)
                }
                other => other,
            })?;
            let suite = suite.with_storage(Arc::clone(&storage))?;
            builder = builder.with_validator(expectations.table.clone(), Arc::new(suite));
        }
        for (table, columns) in &self.maintenance.sort_by {
            let id: TableId = table.parse().map_err(|e: LakeError| {
                LakeError::config(format!("maintenance.sort_by.\"{table}\""), e.to_string())
            })?;
            builder = builder.with_maintenance_sort(id, columns.clone());
        }
        if !self.run_records {
            builder = builder.without_run_records();
        }
        if let Some(principal) = &self.principal {
            builder = builder.with_principal(principal.clone());
        }
        for sink in self.lineage.sinks(&storage)? {
            builder = builder.with_lineage(sink);
        }
        if let Some(namespace) = &self.lineage.namespace {
            builder = builder.with_lineage_options(
                lake_core::LineageOptions::default().with_job_namespace(namespace),
            );
        }
        Ok(builder)
    }
}

#[cfg(feature = "glue")]
async fn glue_catalog(config: GlueConfig) -> Result<CatalogRef> {
    Ok(Arc::new(glue_catalog_of(config).await?))
}

impl PipelineConfig {
    /// The configured Glue catalog itself (for what only Glue does, such as
    /// the Lake Formation sync); an error unless `catalog = "glue"`.
    #[cfg(feature = "glue")]
    pub async fn glue_catalog(&self) -> Result<lake_catalog::GlueCatalog> {
        if self.catalog != CatalogKind::Glue {
            return Err(LakeError::config(
                "catalog",
                "this needs the Glue catalog: set catalog = \"glue\" and a [glue] table",
            ));
        }
        glue_catalog_of(self.glue.clone().unwrap_or_default()).await
    }
}

#[cfg(feature = "glue")]
async fn glue_catalog_of(config: GlueConfig) -> Result<lake_catalog::GlueCatalog> {
    let mut builder = lake_catalog::GlueCatalog::builder();
    if let Some(name) = config.grants_database {
        builder = builder.grants_database(name);
    }
    if let Some(url) = config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    if let Some(region) = config.region {
        builder = builder.region(region);
    }
    if let Some(template) = config.database_template {
        builder = builder.database_template(template);
    }
    if let Some(id) = config.catalog_id {
        builder = builder.catalog_id(id);
    }
    match (config.access_key_id, config.secret_access_key) {
        (Some(key), Some(secret)) => builder = builder.credentials(key, secret),
        (None, None) => {}
        _ => {
            return Err(LakeError::config(
                "glue.access_key_id",
                "set both access_key_id and secret_access_key, or neither",
            ));
        }
    }
    builder.build().await.map_err(|e| match e {
        LakeError::Config { field, message } => LakeError::config(format!("glue.{field}"), message),
        other => other,
    })
}

#[cfg(not(feature = "glue"))]
async fn glue_catalog(_config: GlueConfig) -> Result<CatalogRef> {
    Err(LakeError::config(
        "catalog",
        "catalog = \"glue\" needs the `glue` feature of the lake crate \
         (cargo install lake --features aws,glue)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        catalog = "memory"

        [[bronze]]
        table = "bronze.shop.orders"
        options = { schema_policy = "evolve", compression = "zstd" }

        [[silver]]
        stage = "orders"
        source = "bronze.shop.orders"
        target = "silver.sales.orders"

        [[silver]]
        [silver.spec]
        source = "bronze.crm.customers"
        target = "silver.crm.customers"
        keys = ["customer_id"]
        sequence_by = "updated_at"
        mode = "scd1"
        columns = [{ name = "customer_id", type = "int64" }, { name = "updated_at", type = "timestamp" }]

        [[gold]]
        daily_summary = { source = "silver.sales.orders", target = "gold.analytics.daily_summary" }

        [[gold]]
        [gold.spec]
        target = "gold.analytics.by_region"
        source = "silver.sales.orders"
        group_by = ["order_date", "region"]
        partition_by = "order_date"
        metrics = [{ name = "orders", fn = "count" }]

        [[expectations]]
        table = "silver.sales.orders"
        suite = { name = "orders", expectation = [{ expect = "not_null", column = "customer_id", action = "warn" }] }

        [maintenance.sort_by]
        "gold.analytics.by_region" = ["region"]
    "#;

    fn error(text: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let built = PipelineConfig::from_toml(text).and_then(|c| {
            runtime.block_on(async { c.build(Some("memory:///")).await.map(|_| ()) })
        });
        match built {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn a_full_config_builds_and_means_what_the_reference_builder_means() {
        let config = PipelineConfig::from_toml(FULL).unwrap();
        assert_eq!(config.gold.len(), 2);
        let customers = config.silver[1].stage(1, true).unwrap();
        assert_eq!(customers.spec().mode, Mode::Scd1);
        assert_eq!(customers.spec().keys[0].as_str(), "customer_id");
        // `mode` reaches the reference stage too.
        let scd1 = "[[silver]]\nstage = \"orders\"\nsource = \"bronze.a.b\"\ntarget = \"silver.a.b\"\nmode = \"scd1\"";
        let scd1 = PipelineConfig::from_toml(scd1).unwrap();
        assert_eq!(
            scd1.silver[0].stage(0, true).unwrap().spec().mode,
            Mode::Scd1
        );
        config.build(Some("memory:///")).await.unwrap();
        let reference = PipelineConfig::reference().unwrap();
        let text = toml::to_string(&reference).unwrap();
        assert_eq!(PipelineConfig::from_toml(&text).unwrap(), reference);
        reference.build(Some("memory:///")).await.unwrap();
    }

    #[test]
    fn deletion_vectors_off_for_the_lake_reaches_every_silver_stage() {
        let text = "deletion_vectors = false\n[[silver]]\nstage = \"orders\"\nsource = \"bronze.a.b\"\ntarget = \"silver.a.b\"";
        let config = PipelineConfig::from_toml(text).unwrap();
        assert!(!config.deletion_vectors);
        let stage = config.silver[0].stage(0, config.deletion_vectors).unwrap();
        assert!(!stage.spec().deletion_vectors);
        let default =
            PipelineConfig::from_toml(&text.replace("deletion_vectors = false\n", "")).unwrap();
        assert!(default.deletion_vectors);
        assert!(
            default.silver[0]
                .stage(0, true)
                .unwrap()
                .spec()
                .deletion_vectors
        );
    }

    #[test]
    fn a_bad_config_names_the_field() {
        let e = error("catalogue = \"file\"");
        assert!(e.contains("catalogue"), "{e}");
        let e = error("[glue]\nregion = \"eu-west-1\"");
        assert!(
            e.contains("glue"),
            "a [glue] table without catalog = glue: {e}"
        );
        let e = error("[storage]\naws_region = \"eu-west-1\"\n[glue]\nregon = \"x\"");
        assert!(e.contains("regon"), "{e}");
        let e = error(
            "[[silver]]\nstage = \"customers\"\nsource = \"bronze.a.b\"\ntarget = \"silver.a.b\"",
        );
        assert!(e.contains("customers"), "{e}");
        let spec = "[[silver]]\n[silver.spec]\nsource = \"bronze.a.b\"\ntarget = \"silver.a.b\"\nkeys = [\"k\"]\nsequence_by = \"s\"\ncolumns = [{ name = \"s\" }]";
        let e = error(spec);
        assert!(e.contains("silver[0].spec.keys"), "{e}");
        let e = error(&spec.replace("[silver.spec]", "stage = \"orders\"\n[silver.spec]"));
        assert!(e.contains("exactly one of `stage` and `spec`"), "{e}");
        let e = error("[[silver]]\nstage = \"orders\"\nsource = \"bronze.a.b\"");
        assert!(e.contains("silver[0].source"), "{e}");
        let e = error("[[bronze]]\ntable = \"bronze.shop.../etc\"");
        assert!(e.contains("bronze.shop.../etc") || e.contains("../"), "{e}");
        let e = error(
            "[[bronze]]\ntable = \"bronze.shop.orders\"\noptions = { schema_policy = \"loose\" }",
        );
        assert!(e.contains("loose"), "{e}");
        let e = error("[[gold]]\n");
        assert!(e.contains("gold[0]"), "{e}");
        let e = error(
            "[[gold]]\n[gold.spec]\ntarget = \"gold.a.b\"\nsource = \"silver.a.b\"\ngroup_by = [\"d\"]\npartition_by = \"x\"\nmetrics = [{ name = \"n\", fn = \"count\" }]",
        );
        assert!(e.contains("gold[0].spec.partition_by"), "{e}");
        let e = error(
            "[[expectations]]\ntable = \"silver.sales.orders\"\nsuite = { name = \"s\", expectation = [{ expect = \"not_null\", column = \"c\", mostly = 2.0 }] }",
        );
        assert!(e.contains("expectations[0].suite"), "{e}");
        let reference = "[[bronze]]\ntable = \"bronze.shop.orders\"\n[[silver]]\nstage = \"orders\"\nsource = \"bronze.shop.orders\"\ntarget = \"silver.sales.orders\"\n[maintenance.sort_by]\n";
        let e = error(&format!(
            "{reference}\"silver.sales.orders\" = [\"region\"]"
        ));
        assert!(
            e.contains("maintenance.sort_by.\"silver.sales.orders\"") && e.contains("cluster_by"),
            "{e}"
        );
        let e = error(&format!("{reference}\"gold.a.b\" = [\"region\"]"));
        assert!(
            e.contains("not a table a stage of this pipeline writes"),
            "{e}"
        );
        let e = error(&format!("{reference}\"bronze.shop.orders\" = []"));
        assert!(e.contains("at least one column"), "{e}");
        let e = error(&format!("{reference}\"orders\" = [\"x\"]"));
        assert!(e.contains("maintenance.sort_by.\"orders\""), "{e}");
        let e = PipelineConfig::from_toml("")
            .unwrap()
            .storage(None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lake"), "{e}");
    }
}
