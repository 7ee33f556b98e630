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
}

impl Default for GlueCatalogBuilder {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            credentials: None,
            catalog_id: None,
            database_template: DEFAULT_DATABASE_TEMPLATE.to_string(),
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

    /// Loads the AWS configuration and builds the catalog.
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
        let mut config = aws_sdk_glue::config::Builder::from(&shared);
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        Ok(GlueCatalog {
            client: Client::from_conf(config.build()),
            catalog_id: self.catalog_id,
            database_template: self.database_template,
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
    catalog_id: Option<String>,
    database_template: String,
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

    /// A catalog over a Glue client you configured yourself.
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            catalog_id: None,
            database_template: DEFAULT_DATABASE_TEMPLATE.to_string(),
            update_lock: Arc::new(Mutex::new(())),
        }
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
            let column = Column::builder()
                .name(glue_name("column", field.name())?)
                .r#type(hive_type(field).map_err(|message| LakeError::Schema {
                    table: table.to_string(),
                    message,
                })?)
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

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn enum_parse<T: serde::de::DeserializeOwned>(table: &TableId, key: &str, text: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| {
        LakeError::config(
            key,
            format!("table {table} has an unreadable Glue parameter {key}={text:?}"),
        )
    })
}

/// The storage descriptor of a table (`table_level`) or of a partition.
fn storage_descriptor(
    format: TableFormat,
    location: &str,
    table_level: bool,
) -> aws_sdk_glue::types::builders::StorageDescriptorBuilder {
    let mut serde = SerDeInfo::builder().serialization_library(PARQUET_SERDE);
    if table_level && format == TableFormat::Delta {
        // Spark's Delta catalog integration reads the location from `path`.
        serde = serde.parameters("path", location);
    }
    StorageDescriptor::builder()
        .location(location)
        .input_format(PARQUET_INPUT)
        .output_format(PARQUET_OUTPUT)
        .serde_info(serde.build())
}

fn parameter<'a>(
    table: &TableId,
    glue: &'a aws_sdk_glue::types::Table,
    key: &str,
) -> Result<&'a str> {
    glue.parameters()
        .and_then(|p| p.get(key))
        .map(String::as_str)
        .ok_or_else(|| {
            LakeError::config(
                key,
                format!(
                    "Glue table {} has no parameter {key}: it was not registered by the lake",
                    table
                ),
            )
        })
}

fn schema_created_at(glue: &aws_sdk_glue::types::Table) -> Result<DateTime<Utc>> {
    Ok(glue
        .parameters()
        .and_then(|p| p.get(P_SCHEMA_CREATED_AT))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now))
}

/// Reads a [`TableDefinition`] back from a Glue table the lake registered.
fn definition_from_glue(
    table: &TableId,
    glue: &aws_sdk_glue::types::Table,
) -> Result<TableDefinition> {
    let schema: Schema = serde_json::from_str(parameter(table, glue, P_SCHEMA)?).map_err(|e| {
        LakeError::config(P_SCHEMA, format!("table {table}: unreadable schema: {e}"))
    })?;
    let schema_version = parameter(table, glue, P_SCHEMA_VERSION)?
        .parse::<u32>()
        .map_err(|e| LakeError::config(P_SCHEMA_VERSION, format!("table {table}: {e}")))?;
    let format = enum_parse(table, P_FORMAT, parameter(table, glue, P_FORMAT)?)?;
    let compatibility: SchemaCompatibility = enum_parse(
        table,
        P_COMPATIBILITY,
        parameter(table, glue, P_COMPATIBILITY)?,
    )?;
    let location = glue
        .storage_descriptor()
        .and_then(|sd| sd.location())
        .ok_or_else(|| {
            LakeError::config("location", format!("Glue table {table} has no location"))
        })?;
    let location = Url::parse(location).map_err(|e| {
        LakeError::config("location", format!("Glue table {table}: {location}: {e}"))
    })?;
    let partition_keys = glue
        .partition_keys()
        .iter()
        .map(|c| Ident::new(c.name()))
        .collect::<Result<Vec<_>>>()?;
    let properties = glue
        .parameters()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(TableDefinition {
        id: table.clone(),
        location,
        format,
        schema: Arc::new(schema),
        partition_keys,
        properties,
        schema_version,
        compatibility,
    })
}

/// The Hive type Glue, Athena and Spark use for an Arrow field; the error
/// names the column and its type.
///
/// Unsigned integers take the next wider signed type (`UInt64` is
/// `decimal(20,0)`), dictionaries their value type, and every timestamp is
/// `timestamp` (Hive has no time zones or units).
pub fn hive_type(field: &Field) -> std::result::Result<String, String> {
    fn of(name: &str, data_type: &DataType) -> std::result::Result<String, String> {
        Ok(match data_type {
            DataType::Boolean => "boolean".into(),
            DataType::Int8 => "tinyint".into(),
            DataType::Int16 | DataType::UInt8 => "smallint".into(),
            DataType::Int32 | DataType::UInt16 => "int".into(),
            DataType::Int64 | DataType::UInt32 => "bigint".into(),
            DataType::UInt64 => "decimal(20,0)".into(),
            DataType::Float16 | DataType::Float32 => "float".into(),
            DataType::Float64 => "double".into(),
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => "binary".into(),
            DataType::Date32 | DataType::Date64 => "date".into(),
            DataType::Timestamp(_, _) => "timestamp".into(),
            DataType::Dictionary(_, value) => of(name, value)?,
            DataType::List(item)
            | DataType::LargeList(item)
            | DataType::ListView(item)
            | DataType::LargeListView(item)
            | DataType::FixedSizeList(item, _) => {
                format!("array<{}>", of(item.name(), item.data_type())?)
            }
            DataType::Struct(fields) => {
                let inner = fields
                    .iter()
                    .map(|f| Ok(format!("{}:{}", f.name(), of(f.name(), f.data_type())?)))
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                format!("struct<{}>", inner.join(","))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => format!(
                    "map<{},{}>",
                    of(kv[0].name(), kv[0].data_type())?,
                    of(kv[1].name(), kv[1].data_type())?
                ),
                other => return Err(format!("column `{name}`: map entries of type {other}")),
            },
            DataType::Time32(_)
            | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => {
                // Hive has no time of day; Athena reads it as text.
                "string".into()
            }
            other => {
                return Err(format!(
                    "column `{name}` has type {other}, which has no Hive type"
                ));
            }
        })
    }
    of(field.name(), field.data_type())
}

/// The Glue expression for the conditions on string-typed keys, or `None`
/// when there are none. Conditions on other keys are left to the client-side
/// check, because the catalog compares partition values as text and Glue
/// would compare a numeric key as a number.
fn glue_expression(definition: &TableDefinition, filter: &PartitionFilter) -> Option<String> {
    let parts: Vec<String> = filter
        .conditions
        .iter()
        .filter(|c| {
            definition
                .schema
                .field_with_name(c.key.as_str())
                .is_ok_and(|f| {
                    matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    )
                })
        })
        .map(|c| {
            let op = match c.op {
                PartitionOp::Eq => "=",
                PartitionOp::NotEq => "<>",
                PartitionOp::Lt => "<",
                PartitionOp::LtEq => "<=",
                PartitionOp::Gt => ">",
                PartitionOp::GtEq => ">=",
            };
            // Keys are validated identifiers; values are quoted literals.
            format!("{} {op} {}", c.key, quote_literal(c.value.as_str()))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

fn partition_from_glue(
    table: &TableId,
    glue: &aws_sdk_glue::types::Partition,
) -> Result<Partition> {
    let values = glue
        .values()
        .iter()
        .map(|v| PartitionValue::new(v.clone()))
        .collect::<Result<Vec<_>>>()?;
    let location = glue
        .storage_descriptor()
        .and_then(|sd| sd.location())
        .ok_or_else(|| {
            LakeError::config(
                "location",
                format!("a partition of {table} has no location"),
            )
        })?;
    let location = Url::parse(location)
        .map_err(|e| LakeError::config("location", format!("{table}: {location}: {e}")))?;
    let stat = |key: &str| {
        glue.parameters()
            .and_then(|p| p.get(key))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stats = match (stat("numRows"), stat("numFiles"), stat("totalSize")) {
        (Some(row_count), Some(file_count), Some(size_bytes)) => Some(PartitionStats {
            row_count,
            file_count,
            size_bytes,
        }),
        _ => None,
    };
    Ok(Partition {
        values,
        location,
        stats,
    })
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn create_namespace(
        &self,
        namespace: &NamespaceId,
        properties: Properties,
    ) -> Result<()> {
        self.create_database(namespace, properties).await
    }

    async fn list_namespaces(&self, zone: Option<Zone>) -> Result<Vec<NamespaceId>> {
        let mut pages = self
            .client
            .get_databases()
            .set_catalog_id(self.catalog_id.clone())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| glue_error("GetDatabases", "", e))?;
            for database in page.database_list() {
                let Some(parameters) = database.parameters() else {
                    continue;
                };
                if self.per_zone() {
                    let Some(z) = parameters.get(P_ZONE) else {
                        continue;
                    };
                    let z: Zone = z.parse()?;
                    if zone.is_some_and(|wanted| wanted != z) {
                        continue;
                    }
                    for key in parameters.keys() {
                        let Some(name) = key.strip_prefix(P_NAMESPACE_RECORD) else {
                            continue;
                        };
                        let namespace = NamespaceId::new(z, name)?;
                        if self.database_name(&namespace)? == database.name() {
                            out.push(namespace);
                        }
                    }
                    continue;
                }
                let (Some(z), Some(name)) = (parameters.get(P_ZONE), parameters.get(P_NAMESPACE))
                else {
                    continue;
                };
                let z: Zone = z.parse()?;
                let namespace = NamespaceId::new(z, name)?;
                // Only databases this catalog's template names: several
                // lakes (or test runs) can share one Glue catalog.
                if zone.is_none_or(|wanted| wanted == z)
                    && self.database_name(&namespace)? == database.name()
                {
                    out.push(namespace);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn drop_namespace(&self, namespace: &NamespaceId) -> Result<()> {
        if !self.list_tables(namespace).await?.is_empty() {
            return Err(LakeError::config(
                "namespace",
                format!("namespace {namespace} still has tables"),
            ));
        }
        if self.per_zone() {
            let _serialised = self.update_lock.lock().await;
            let (name, mut parameters) = self.zone_database(namespace).await?;
            let key = format!("{P_NAMESPACE_RECORD}{}", namespace.name);
            if parameters.remove(&key).is_none() {
                return Err(LakeError::not_found(format!("namespace {namespace}")));
            }
            return self.put_database_parameters(&name, parameters).await;
        }
        match self
            .client
            .delete_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(self.database_name(namespace)?)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Err(LakeError::not_found(format!("namespace {namespace}")))
            }
            Err(e) => Err(glue_error("DeleteDatabase", namespace, e)),
        }
    }

    async fn create_table(&self, definition: TableDefinition) -> Result<TableDefinition> {
        definition.check_partition_keys()?;
        let mut definition = definition;
        definition.schema_version = 1;
        let table = definition.id.clone();
        let input = self.table_input(&definition, Utc::now())?;
        let database = self.database_name(&table.namespace_id())?;
        if self.per_zone() && !self.namespace_recorded(&table.namespace_id()).await? {
            // Creating a table creates its namespace.
            match self
                .add_namespace_record(&table.namespace_id(), Properties::new())
                .await
            {
                Ok(()) | Err(LakeError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for attempt in 0..2 {
            match self
                .client
                .create_table()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&database)
                .table_input(input.clone())
                .send()
                .await
            {
                Ok(_) => return Ok(definition),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) =>
                {
                    return Err(LakeError::AlreadyExists {
                        what: format!("table {table}"),
                    });
                }
                Err(e)
                    if attempt == 0
                        && e.as_service_error()
                            .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    // Creating a table creates its namespace.
                    match self
                        .create_database(&table.namespace_id(), Properties::new())
                        .await
                    {
                        Ok(()) | Err(LakeError::AlreadyExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(glue_error("CreateTable", &table, e)),
            }
        }
        Err(LakeError::not_found(format!(
            "namespace {} (created, then gone again)",
            table.namespace_id()
        )))
    }

    async fn get_table(&self, table: &TableId) -> Result<TableDefinition> {
        let glue = self.glue_table(table).await?;
        definition_from_glue(table, &glue)
    }

    async fn list_tables(&self, namespace: &NamespaceId) -> Result<Vec<TableId>> {
        if self.per_zone() && !self.namespace_recorded(namespace).await? {
            return Err(LakeError::not_found(format!("namespace {namespace}")));
        }
        let mut pages = self
            .client
            .get_tables()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(namespace)?)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Err(LakeError::not_found(format!("namespace {namespace}")));
                }
                Err(e) => return Err(glue_error("GetTables", namespace, e)),
            };
            for table in page.table_list() {
                let parameters = table.parameters();
                // With a database per zone, the zone's other namespaces
                // share the database.
                if self.per_zone()
                    && parameters
                        .and_then(|p| p.get(P_NAMESPACE))
                        .map(String::as_str)
                        != Some(namespace.name.as_str())
                {
                    continue;
                }
                let name = parameters
                    .and_then(|p| p.get(P_NAME))
                    .map(String::as_str)
                    .unwrap_or(table.name());
                out.push(TableId::new(namespace.zone, namespace.name.as_str(), name)?);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn update_table(&self, table: &TableId, update: TableUpdate) -> Result<TableDefinition> {
        let _serialised = self.update_lock.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            if let Some(definition) = self.update_once(table, &update).await? {
                return Ok(definition);
            }
            tracing::debug!(%table, attempt, "Glue UpdateTable lost a race; retrying");
            tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
        }
        Err(LakeError::CommitConflict {
            table: table.to_string(),
            message: format!("Glue table still contended after {MAX_ATTEMPTS} attempts"),
            retryable: true,
        })
    }

    async fn drop_table(&self, table: &TableId) -> Result<()> {
        match self
            .client
            .delete_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(&table.namespace_id())?)
            .name(self.table_name(table)?)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Err(missing_table(table))
            }
            Err(e) => Err(glue_error("DeleteTable", table, e)),
        }
    }

    async fn add_partitions(
        &self,
        table: &TableId,
        partitions: Vec<Partition>,
    ) -> Result<AddPartitions> {
        let definition = self.get_table(table).await?;
        for partition in &partitions {
            partition.check_arity(&definition)?;
        }
        let database = self.database_name(&table.namespace_id())?;
        let mut outcome = AddPartitions::default();
        let mut failures = Vec::new();
        for chunk in partitions.chunks(CREATE_CHUNK) {
            let inputs = chunk
                .iter()
                .map(|p| {
                    let mut input = PartitionInput::builder()
                        .set_values(Some(
                            p.values.iter().map(|v| v.as_str().to_string()).collect(),
                        ))
                        .storage_descriptor(
                            storage_descriptor(definition.format, p.location.as_str(), false)
                                .build(),
                        );
                    if let Some(stats) = &p.stats {
                        input = input
                            .parameters("numRows", stats.row_count.to_string())
                            .parameters("numFiles", stats.file_count.to_string())
                            .parameters("totalSize", stats.size_bytes.to_string());
                    }
                    input.build()
                })
                .collect();
            let out = self
                .client
                .batch_create_partition()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&database)
                .table_name(self.table_name(table)?)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| glue_error("BatchCreatePartition", table, e))?;
            let mut present = 0;
            for error in out.errors() {
                let detail = error.error_detail();
                let code = detail.and_then(|d| d.error_code()).unwrap_or_default();
                if code == "AlreadyExistsException" {
                    present += 1;
                } else {
                    failures.push(format!(
                        "[{}]: {code} {}",
                        error.partition_values().join(", "),
                        detail.and_then(|d| d.error_message()).unwrap_or_default()
                    ));
                }
            }
            outcome.already_present += present;
            outcome.added += chunk.len() - out.errors().len();
        }
        if failures.is_empty() {
            Ok(outcome)
        } else {
            Err(LakeError::other(
                "glue catalog",
                format!(
                    "BatchCreatePartition {table}: {} of {} partitions failed \
                     ({} added, {} already present; adding again is safe): {}",
                    failures.len(),
                    partitions.len(),
                    outcome.added,
                    outcome.already_present,
                    failures.join("; ")
                ),
            ))
        }
    }

    async fn list_partitions(
        &self,
        table: &TableId,
        filter: &PartitionFilter,
    ) -> Result<Vec<Partition>> {
        let definition = self.get_table(table).await?;
        filter.check_keys(&definition.partition_keys)?;
        let mut pages = self
            .client
            .get_partitions()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(&table.namespace_id())?)
            .table_name(self.table_name(table)?)
            .set_expression(glue_expression(&definition, filter))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| glue_error("GetPartitions", table, e))?;
            for glue in page.partitions() {
                let partition = partition_from_glue(table, glue)?;
                // The expression pushed down only the string keys; this
                // check is the filter's meaning for every key.
                if filter.matches(&definition.partition_keys, &partition.values)? {
                    out.push(partition);
                }
            }
        }
        out.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(out)
    }

    async fn drop_partitions(&self, table: &TableId, values: &[Vec<PartitionValue>]) -> Result<()> {
        let database = self.database_name(&table.namespace_id())?;
        for chunk in values.chunks(DELETE_CHUNK) {
            let lists = chunk
                .iter()
                .map(|v| {
                    PartitionValueList::builder()
                        .set_values(Some(v.iter().map(|v| v.as_str().to_string()).collect()))
                        .build()
                        .map_err(|e| glue_error("BatchDeletePartition", table, e))
                })
                .collect::<Result<Vec<_>>>()?;
            let out = self
                .client
                .batch_delete_partition()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&database)
                .table_name(self.table_name(table)?)
                .set_partitions_to_delete(Some(lists))
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception())
                    {
                        missing_table(table)
                    } else {
                        glue_error("BatchDeletePartition", table, e)
                    }
                })?;
            // Absent partitions are ignored, as the trait says.
            let failures: Vec<String> = out
                .errors()
                .iter()
                .filter_map(|e| {
                    let detail = e.error_detail()?;
                    let code = detail.error_code().unwrap_or_default();
                    (code != "EntityNotFoundException").then(|| {
                        format!(
                            "[{}]: {code} {}",
                            e.partition_values().join(", "),
                            detail.error_message().unwrap_or_default()
                        )
                    })
                })
                .collect();
            if !failures.is_empty() {
                return Err(LakeError::other(
                    "glue catalog",
                    format!("BatchDeletePartition {table}: {}", failures.join("; ")),
                ));
            }
        }
        Ok(())
    }

    async fn schema_versions(&self, table: &TableId) -> Result<Vec<SchemaVersion>> {
        let mut pages = self
            .client
            .get_table_versions()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(self.database_name(&table.namespace_id())?)
            .table_name(self.table_name(table)?)
            .into_paginator()
            .send();
        let mut versions: Vec<SchemaVersion> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Err(missing_table(table));
                }
                Err(e) => return Err(glue_error("GetTableVersions", table, e)),
            };
            for version in page.table_versions() {
                let Some(glue) = version.table() else {
                    continue;
                };
                let definition = definition_from_glue(table, glue)?;
                if versions
                    .iter()
                    .all(|v| v.version != definition.schema_version)
                {
                    versions.push(SchemaVersion {
                        version: definition.schema_version,
                        schema: definition.schema,
                        created_at: schema_created_at(glue)?,
                    });
                }
            }
        }
        if versions.is_empty() {
            // An emulator or account that keeps no archive: the current one.
            let glue = self.glue_table(table).await?;
            let definition = definition_from_glue(table, &glue)?;
            versions.push(SchemaVersion {
                version: definition.schema_version,
                schema: definition.schema,
                created_at: schema_created_at(&glue)?,
            });
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, data_type: DataType) -> Field {
        Field::new(name, data_type, true)
    }

    #[test]
    fn hive_types_cover_nested_and_wide_types() {
        use lake_core::arrow::datatypes::Fields;
        let item = Arc::new(field("item", DataType::Int64));
        let nested = DataType::Struct(Fields::from(vec![
            field("city", DataType::Utf8),
            field("tags", DataType::List(item)),
        ]));
        assert_eq!(
            hive_type(&field("address", nested)).unwrap(),
            "struct<city:string,tags:array<bigint>>"
        );
        assert_eq!(
            hive_type(&field("n", DataType::UInt64)).unwrap(),
            "decimal(20,0)"
        );
        assert_eq!(
            hive_type(&field(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            ))
            .unwrap(),
            "timestamp"
        );
        assert_eq!(
            hive_type(&field("amount", DataType::Decimal128(18, 2))).unwrap(),
            "decimal(18,2)"
        );
        let err = hive_type(&field("span", DataType::Duration(TimeUnit::Second))).unwrap_err();
        assert!(err.contains("`span`"), "{err}");
    }

    #[test]
    fn templates_need_the_zone() {
        assert!(check_template("{zone}_{namespace}").is_ok());
        assert!(check_template("lake_{zone}").is_ok());
        assert!(check_template("lake_{namespace}").is_err());
    }
}
