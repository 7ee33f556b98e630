//! [`GlueCatalog`]: the AWS Glue Data Catalog, through aws-sdk-glue.
//!
//! # Mapping
//! - Databases are named from a template. With `{zone}` alone (the
//!   default, `{zone}`), each zone is one database, its tables are named
//!   `{namespace}__{table}` (Athena reads `silver.sales__orders`), and its
//!   namespaces are recorded as `lake.namespace.{name}` parameters of the
//!   zone's database. With `{zone}` and `{namespace}` (`{zone}_{namespace}`),
//!   each namespace is a database (`silver_sales.orders`), and its zone and
//!   name are kept in the database parameters `lake.zone` and
//!   `lake.namespace`. Either way a
//!   listing turns databases back into namespaces from those parameters, and
//!   databases without them are not the lake's and are skipped.
//! - A table is a Glue table of type `EXTERNAL_TABLE`: its data columns and
//!   partition keys with Hive types ([`hive_type`]), its location, the Parquet
//!   SerDe and input/output formats, and its properties as table parameters
//!   (for a Delta table these include `table_type=DELTA` and
//!   `spark.sql.sources.provider=delta`, what Athena, Spark and Trino look
//!   for; the SerDe also carries `path`, as Spark writes it).
//! - What Hive types cannot say exactly (the Arrow schema, its version, the
//!   compatibility mode) lives in parameters starting with `lake.`. Every
//!   `UpdateTable` archives the previous table version, so the schema
//!   history is read back from `GetTableVersions`.
//! - Partitions are Glue partitions, with `numRows`, `numFiles` and
//!   `totalSize` parameters when the writer knows them.
//!
//! # Concurrency
//! `BatchCreatePartition` is idempotent per partition (an
//! `AlreadyExistsException` counts as present). `UpdateTable` is a
//! read-modify-write: it sends the `VersionId` it read, so Glue refuses it
//! with `ConcurrentModificationException` when another writer got there
//! first, and the update is retried from a fresh read. Updates from one
//! `GlueCatalog` value are also serialised in-process, which keeps them safe
//! against emulators that ignore `VersionId` (moto does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_glue::Client;
use aws_sdk_glue::config::{Credentials, Region};
use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, PartitionValueList, SerDeInfo, StorageDescriptor,
    TableInput,
};
use chrono::{DateTime, Utc};
use lake_core::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use lake_core::{
    AddPartitions, Catalog, Ident, LakeError, NamespaceId, Partition, PartitionFilter, PartitionOp,
    PartitionStats, PartitionValue, Properties, Result, SchemaCompatibility, SchemaVersion,
    TableDefinition, TableFormat, TableId, TableUpdate, Zone, quote_literal,
};
use tokio::sync::Mutex;
use url::Url;

use crate::memory::apply_update;

mod catalog;
mod convert;
mod grants;
#[cfg(test)]
mod tests;

pub use convert::hive_type;
use convert::{definition_from_glue, enum_text, schema_created_at, storage_descriptor};
pub use grants::{
    DEFAULT_GRANTS_DATABASE, LakeFormationPermission, LakeFormationReport, SyncLakeFormation,
};

/// Glue takes at most 100 partitions per `BatchCreatePartition`.
const CREATE_CHUNK: usize = 100;
/// ... and at most 25 per `BatchDeletePartition`.
const DELETE_CHUNK: usize = 25;
/// How often an `UpdateTable` that lost a race is retried.
const MAX_ATTEMPTS: u32 = 16;

const P_ZONE: &str = "lake.zone";
const P_NAMESPACE: &str = "lake.namespace";
const P_NAME: &str = "lake.name";
const P_FORMAT: &str = "lake.format";
const P_SCHEMA: &str = "lake.schema";
const P_SCHEMA_VERSION: &str = "lake.schema_version";
const P_SCHEMA_CREATED_AT: &str = "lake.schema_created_at";
const P_COMPATIBILITY: &str = "lake.compatibility";
/// Parameters the catalog owns; they are not table properties.
const RESERVED: [&str; 8] = [
    P_ZONE,
    P_NAMESPACE,
    P_NAME,
    P_FORMAT,
    P_SCHEMA,
    P_SCHEMA_VERSION,
    P_SCHEMA_CREATED_AT,
    P_COMPATIBILITY,
];

const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

/// The default database name template: one database per zone.
pub const DEFAULT_DATABASE_TEMPLATE: &str = "{zone}";

/// Builds a [`GlueCatalog`]: credentials and region come from the usual AWS
/// chain (environment, profile, instance role) unless set here.
#[derive(Debug, Clone)]
pub struct GlueCatalogBuilder {
    endpoint_url: Option<String>,
    region: Option<String>,
    credentials: Option<(String, String)>,
    catalog_id: Option<String>,
    database_template: String,
    grants_database: String,
}

impl Default for GlueCatalogBuilder {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            credentials: None,
            catalog_id: None,
            database_template: DEFAULT_DATABASE_TEMPLATE.to_string(),
            grants_database: grants::DEFAULT_GRANTS_DATABASE.to_string(),
        }
    }
}

impl GlueCatalogBuilder {
    /// Sends requests to this endpoint instead of AWS's (a local `moto_server`,
    /// a VPC endpoint).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The AWS region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials instead of the default chain.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// The Glue catalog id (an AWS account id) when it is not the caller's own.
    pub fn catalog_id(mut self, id: impl Into<String>) -> Self {
        self.catalog_id = Some(id.into());
        self
    }

    /// How databases are named: `{zone}` alone for one database per zone
    /// (the default, `{zone}`; `lake_{zone}` to share an account with other
    /// databases; tables are named `{namespace}__{table}`), or `{zone}` and
    /// `{namespace}` for a database per namespace (`{zone}_{namespace}`).
    pub fn database_template(mut self, template: impl Into<String>) -> Self {
        self.database_template = template.into();
        self
    }

    /// The Glue database the access grants are kept in (default
    /// `lake_grants`; see [`Catalog::grant`]).
    pub fn grants_database(mut self, name: impl Into<String>) -> Self {
        self.grants_database = name.into();
        self
    }

    /// Loads the AWS configuration and builds the catalog, with a Lake
    /// Formation client on the same configuration for
    /// [`GlueCatalog::sync_lake_formation`].
    pub async fn build(self) -> Result<GlueCatalog> {
        check_template(&self.database_template)?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((key, secret)) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                key.clone(),
                secret.clone(),
                None,
                None,
                "lake-catalog",
            ));
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(LakeError::config(
                "region",
                "no AWS region: set AWS_REGION or call GlueCatalogBuilder::region",
            ));
        }
        glue_name("grants database", &self.grants_database)?;
        let mut config = aws_sdk_glue::config::Builder::from(&shared);
        let mut lake_formation = aws_sdk_lakeformation::config::Builder::from(&shared);
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url.clone());
            lake_formation = lake_formation.endpoint_url(url.clone());
        }
        Ok(GlueCatalog {
            client: Client::from_conf(config.build()),
            lake_formation: Some(aws_sdk_lakeformation::Client::from_conf(
                lake_formation.build(),
            )),
            catalog_id: self.catalog_id,
            database_template: self.database_template,
            grants_database: self.grants_database,
            update_lock: Arc::new(Mutex::new(())),
        })
    }
}

fn check_template(template: &str) -> Result<()> {
    if template.contains("{zone}") {
        Ok(())
    } else {
        Err(LakeError::config(
            "database_template",
            format!(
                "{template:?} must contain `{{zone}}` (and `{{namespace}}` for a \
                 database per namespace), so that zones never share a database"
            ),
        ))
    }
}

/// Where a namespace of a one-database-per-zone catalog is recorded: a
/// parameter of the zone's database.
const P_NAMESPACE_RECORD: &str = "lake.namespace.";

/// A [`Catalog`] in the AWS Glue Data Catalog. See the module docs for the mapping.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: Client,
    lake_formation: Option<aws_sdk_lakeformation::Client>,
    catalog_id: Option<String>,
    database_template: String,
    grants_database: String,
    update_lock: Arc<Mutex<()>>,
}

/// Wraps an SDK error, naming the operation and what it was about.
fn glue_error<E>(operation: &str, subject: impl std::fmt::Display, error: E) -> LakeError
where
    E: std::error::Error + Send + Sync + 'static,
{
    LakeError::other(
        "glue catalog",
        format!("{operation} {subject}: {}", DisplayErrorContext(error)),
    )
}

fn missing_table(table: &TableId) -> LakeError {
    LakeError::not_found(format!("table {table}"))
}

/// Glue keeps names in lower case; a name with capitals would come back
/// changed, so it is refused up front.
fn glue_name(kind: &str, name: &str) -> Result<String> {
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(LakeError::config(
            kind,
            format!("{name:?}: Glue stores names in lower case; use a lower-case name"),
        ));
    }
    Ok(name.to_string())
}

impl GlueCatalog {
    /// A builder.
    pub fn builder() -> GlueCatalogBuilder {
        GlueCatalogBuilder::default()
    }

    /// A catalog over a Glue client you configured yourself (without Lake
    /// Formation until [`with_lake_formation_client`](Self::with_lake_formation_client)).
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            lake_formation: None,
            catalog_id: None,
            database_template: DEFAULT_DATABASE_TEMPLATE.to_string(),
            grants_database: grants::DEFAULT_GRANTS_DATABASE.to_string(),
            update_lock: Arc::new(Mutex::new(())),
        }
    }

    /// Uses `client` for [`sync_lake_formation`](Self::sync_lake_formation).
    pub fn with_lake_formation_client(mut self, client: aws_sdk_lakeformation::Client) -> Self {
        self.lake_formation = Some(client);
        self
    }

    /// Whether the template names one database per zone (it has no
    /// `{namespace}`): tables are then named `{namespace}__{table}`.
    fn per_zone(&self) -> bool {
        !self.database_template.contains("{namespace}")
    }

    /// The Glue database that holds `namespace`.
    pub fn database_name(&self, namespace: &NamespaceId) -> Result<String> {
        let name = self
            .database_template
            .replace("{zone}", namespace.zone.as_str())
            .replace("{namespace}", namespace.name.as_str());
        glue_name("namespace", &name)
    }

    /// The Glue name of `table` in its database.
    pub fn table_name(&self, table: &TableId) -> Result<String> {
        if !self.per_zone() {
            return glue_name("table name", table.name.as_str());
        }
        // `__` separates namespace and table, so neither may hold it.
        for part in [table.namespace.as_str(), table.name.as_str()] {
            if part.contains("__") {
                return Err(LakeError::config(
                    "table name",
                    format!(
                        "{part:?}: with one Glue database per zone, names must not contain `__`"
                    ),
                ));
            }
        }
        glue_name(
            "table name",
            &format!("{}__{}", table.namespace, table.name),
        )
    }

    /// Creates a Glue database; `Ok(false)` when it exists already.
    async fn create_glue_database(
        &self,
        name: String,
        parameters: HashMap<String, String>,
    ) -> Result<bool> {
        let input = DatabaseInput::builder()
            .name(name.clone())
            .set_parameters(Some(parameters))
            .build()
            .map_err(|e| glue_error("CreateDatabase", &name, e))?;
        match self
            .client
            .create_database()
            .set_catalog_id(self.catalog_id.clone())
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error("CreateDatabase", &name, e)),
        }
    }

    async fn create_database(&self, namespace: &NamespaceId, properties: Properties) -> Result<()> {
        if self.per_zone() {
            return self.add_namespace_record(namespace, properties).await;
        }
        let mut parameters: HashMap<String, String> = properties.into_iter().collect();
        parameters.insert(P_ZONE.into(), namespace.zone.as_str().into());
        parameters.insert(P_NAMESPACE.into(), namespace.name.as_str().into());
        if self
            .create_glue_database(self.database_name(namespace)?, parameters)
            .await?
        {
            Ok(())
        } else {
            Err(LakeError::AlreadyExists {
                what: format!("namespace {namespace}"),
            })
        }
    }

    /// The parameters of the zone database of `namespace` (per-zone mode),
    /// creating the database when it is missing.
    async fn zone_database(
        &self,
        namespace: &NamespaceId,
    ) -> Result<(String, HashMap<String, String>)> {
        let name = self.database_name(namespace)?;
        let mut zone = HashMap::new();
        zone.insert(P_ZONE.to_string(), namespace.zone.as_str().to_string());
        self.create_glue_database(name.clone(), zone).await?;
        let database = self
            .client
            .get_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(&name)
            .send()
            .await
            .map_err(|e| glue_error("GetDatabase", &name, e))?
            .database
            .ok_or_else(|| LakeError::not_found(format!("Glue database {name}")))?;
        Ok((name, database.parameters.unwrap_or_default()))
    }

    async fn put_database_parameters(
        &self,
        name: &str,
        parameters: HashMap<String, String>,
    ) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(name)
            .set_parameters(Some(parameters))
            .build()
            .map_err(|e| glue_error("UpdateDatabase", name, e))?;
        self.client
            .update_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(name)
            .database_input(input)
            .send()
            .await
            .map_err(|e| glue_error("UpdateDatabase", name, e))?;
        Ok(())
    }

    /// Records `namespace` in its zone's database (per-zone mode).
    async fn add_namespace_record(
        &self,
        namespace: &NamespaceId,
        properties: Properties,
    ) -> Result<()> {
        let _serialised = self.update_lock.lock().await;
        let (name, mut parameters) = self.zone_database(namespace).await?;
        let key = format!("{P_NAMESPACE_RECORD}{}", namespace.name);
        if parameters.contains_key(&key) {
            return Err(LakeError::AlreadyExists {
                what: format!("namespace {namespace}"),
            });
        }
        let value =
            serde_json::to_string(&properties).map_err(|e| LakeError::other("glue catalog", e))?;
        parameters.insert(key, value);
        self.put_database_parameters(&name, parameters).await
    }

    /// Whether `namespace` is recorded (per-zone mode).
    async fn namespace_recorded(&self, namespace: &NamespaceId) -> Result<bool> {
        let (_, parameters) = self.zone_database(namespace).await?;
        Ok(parameters.contains_key(&format!("{P_NAMESPACE_RECORD}{}", namespace.name)))
    }

    /// The Glue table and its `VersionId`, or `NotFound`.
    async fn glue_table(&self, table: &TableId) -> Result<aws_sdk_glue::types::Table> {
        let database = self.database_name(&table.namespace_id())?;
        match self
            .client
            .get_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(database)
            .name(self.table_name(table)?)
            .send()
            .await
        {
            Ok(out) => out.table.ok_or_else(|| missing_table(table)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Err(missing_table(table))
            }
            Err(e) => Err(glue_error("GetTable", table, e)),
        }
    }

    fn table_input(
        &self,
        definition: &TableDefinition,
        created_at: DateTime<Utc>,
    ) -> Result<TableInput> {
        let table = &definition.id;
        let partition_keys: Vec<&str> = definition
            .partition_keys
            .iter()
            .map(Ident::as_str)
            .collect();
        let mut columns = Vec::new();
        let mut keys = Vec::new();
        for field in definition.schema.fields() {
            let mut column = Column::builder()
                .name(glue_name("column", field.name())?)
                .r#type(hive_type(field).map_err(|message| LakeError::Schema {
                    table: table.to_string(),
                    message,
                })?);
            // A personal-data tag, where Athena and Lake Formation users see it.
            if let Some(tag) = field.metadata().get(lake_core::pii::PII_METADATA) {
                column = column
                    .parameters(lake_core::pii::PII_METADATA, tag)
                    .comment(format!("personal data, stored as: {tag}"));
            }
            let column = column
                .build()
                .map_err(|e| glue_error("CreateTable", table, e))?;
            if partition_keys.contains(&field.name().as_str()) {
                keys.push((field.name().clone(), column));
            } else {
                columns.push(column);
            }
        }
        // Partition keys in the table's key order, and every one in the schema.
        let mut ordered = Vec::new();
        for key in &partition_keys {
            let index = keys
                .iter()
                .position(|(name, _)| name == key)
                .ok_or_else(|| LakeError::Schema {
                    table: table.to_string(),
                    message: format!("partition key `{key}` is not a column of the schema"),
                })?;
            ordered.push(keys.remove(index).1);
        }
        let location = definition.location.as_str().to_string();
        let mut parameters: HashMap<String, String> = definition
            .properties
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        parameters.insert(P_ZONE.into(), table.zone.as_str().into());
        parameters.insert(P_NAMESPACE.into(), table.namespace.as_str().into());
        parameters.insert(P_NAME.into(), table.name.as_str().into());
        parameters.insert(P_FORMAT.into(), enum_text(&definition.format));
        parameters.insert(
            P_SCHEMA.into(),
            serde_json::to_string(definition.schema.as_ref())
                .map_err(|e| LakeError::other("glue catalog", e))?,
        );
        parameters.insert(
            P_SCHEMA_VERSION.into(),
            definition.schema_version.to_string(),
        );
        parameters.insert(P_SCHEMA_CREATED_AT.into(), created_at.to_rfc3339());
        parameters.insert(P_COMPATIBILITY.into(), enum_text(&definition.compatibility));
        TableInput::builder()
            .name(self.table_name(table)?)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(parameters))
            .set_partition_keys(Some(ordered))
            .storage_descriptor(
                storage_descriptor(definition.format, &location, true)
                    .set_columns(Some(columns))
                    .build(),
            )
            .build()
            .map_err(|e| glue_error("CreateTable", table, e))
    }

    async fn update_once(
        &self,
        table: &TableId,
        update: &TableUpdate,
    ) -> Result<Option<TableDefinition>> {
        let glue = self.glue_table(table).await?;
        let mut definition = definition_from_glue(table, &glue)?;
        let before = definition.schema_version;
        let mut versions = Vec::new();
        apply_update(&mut definition, &mut versions, update.clone())?;
        let created_at = match versions.last() {
            Some(version) if definition.schema_version != before => version.created_at,
            _ => schema_created_at(&glue)?,
        };
        let input = self.table_input(&definition, created_at)?;
        let database = self.database_name(&table.namespace_id())?;
        match self
            .client
            .update_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(database)
            .table_input(input)
            .set_version_id(glue.version_id().map(str::to_string))
            .send()
            .await
        {
            Ok(_) => Ok(Some(definition)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_concurrent_modification_exception()) =>
            {
                Ok(None)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Err(missing_table(table))
            }
            Err(e) => Err(glue_error("UpdateTable", table, e)),
        }
    }
}
