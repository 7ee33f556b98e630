//! The catalog the lake registers its tables in: namespaces, tables,
//! partitions, schema versions and the access grants on them
//! ([`crate::access`]).
//!
//! Implementations (memory, the embedded file catalog, AWS Glue) live in
//! `lake-catalog`; zone crates only ever see [`CatalogRef`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::access::{Access, Grant, Principal};
use crate::error::{LakeError, Result};
use crate::ident::{Ident, NamespaceId, PartitionValue, TableId, Zone};

/// A shared catalog.
pub type CatalogRef = Arc<dyn Catalog>;

/// Free-form string properties of a namespace or table.
pub type Properties = BTreeMap<String, String>;

/// The storage format of a table's data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TableFormat {
    /// A Delta Lake table (every table the lake writes).
    Delta,
    /// Plain Parquet files.
    Parquet,
    /// Avro files.
    Avro,
    /// ORC files.
    Orc,
    /// CSV files.
    Csv,
    /// Newline-delimited JSON files.
    Json,
}

/// Which schema changes a table accepts, as the Glue Schema Registry defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaCompatibility {
    /// Any change is accepted.
    None,
    /// Readers of the new schema can read data written with the previous one
    /// (add nullable columns, widen types).
    #[default]
    Backward,
    /// Readers of the previous schema can read data written with the new one.
    Forward,
    /// Both backward and forward.
    Full,
}

/// Everything the catalog knows about one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableDefinition {
    /// The table.
    pub id: TableId,
    /// Where the table's data lives.
    pub location: Url,
    /// The format of its data files.
    pub format: TableFormat,
    /// The current schema, partition columns included.
    pub schema: SchemaRef,
    /// Partition columns, in path order.
    pub partition_keys: Vec<Ident>,
    /// Properties (table parameters in Glue and Hive).
    #[serde(default)]
    pub properties: Properties,
    /// The version of `schema`: 1 at creation, one more for every accepted change.
    #[serde(default = "first_schema_version")]
    pub schema_version: u32,
    /// Which schema changes are accepted.
    #[serde(default)]
    pub compatibility: SchemaCompatibility,
}

fn first_schema_version() -> u32 {
    1
}

/// The table parameters engines look for to read a Delta table through a
/// Hive-style catalog: Athena reads `table_type`, Spark and Trino read
/// `spark.sql.sources.provider`, and Hive treats the data as external.
pub const DELTA_ENGINE_PROPERTIES: [(&str, &str); 3] = [
    ("table_type", "DELTA"),
    ("spark.sql.sources.provider", "delta"),
    ("EXTERNAL", "TRUE"),
];

impl TableDefinition {
    /// A table definition at schema version 1, with no properties and the
    /// default compatibility; [`TableDefinition::delta`] adds the
    /// properties engines need to read a Delta table.
    pub fn new(
        id: TableId,
        location: Url,
        format: TableFormat,
        schema: SchemaRef,
        partition_keys: Vec<Ident>,
    ) -> Self {
        Self {
            id,
            location,
            format,
            schema,
            partition_keys,
            properties: Properties::new(),
            schema_version: 1,
            compatibility: SchemaCompatibility::default(),
        }
    }

    /// Sets the properties (replacing those there).
    pub fn with_properties(mut self, properties: Properties) -> Self {
        self.properties = properties;
        self
    }

    /// Sets the schema version.
    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    /// Sets the compatibility mode.
    pub fn with_compatibility(mut self, compatibility: SchemaCompatibility) -> Self {
        self.compatibility = compatibility;
        self
    }

    /// A Delta table definition at schema version 1, with the
    /// [`DELTA_ENGINE_PROPERTIES`] that let Athena, Spark and Trino read it.
    pub fn delta(
        id: TableId,
        location: Url,
        schema: SchemaRef,
        partition_keys: Vec<Ident>,
    ) -> Self {
        Self::new(id, location, TableFormat::Delta, schema, partition_keys).with_properties(
            DELTA_ENGINE_PROPERTIES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl TableDefinition {
    /// Checks that every partition key is a column of the schema; catalogs
    /// call it before registering a table.
    pub fn check_partition_keys(&self) -> Result<()> {
        match self
            .partition_keys
            .iter()
            .find(|k| self.schema.field_with_name(k.as_str()).is_err())
        {
            Some(key) => Err(LakeError::Schema {
                table: self.id.to_string(),
                message: format!("partition key `{key}` is not a column of the schema"),
            }),
            None => Ok(()),
        }
    }
}

/// One recorded version of a table's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SchemaVersion {
    /// 1 for the schema the table was created with, then one more per change.
    pub version: u32,
    /// The schema.
    pub schema: SchemaRef,
    /// When the version was recorded.
    pub created_at: DateTime<Utc>,
}

impl SchemaVersion {
    /// Version `version` of a schema, recorded at `created_at`.
    pub fn new(version: u32, schema: SchemaRef, created_at: DateTime<Utc>) -> Self {
        Self {
            version,
            schema,
            created_at,
        }
    }
}

/// A change to a table; fields left `None` keep their value.
///
/// An options struct, so that new knobs are not breaking changes.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TableUpdate {
    /// A new schema, checked against the table's compatibility mode.
    pub schema: Option<SchemaRef>,
    /// Properties to set (merged over the existing ones).
    pub properties: Option<Properties>,
    /// A new compatibility mode.
    pub compatibility: Option<SchemaCompatibility>,
}

impl TableUpdate {
    /// An update that changes the schema.
    pub fn schema(schema: SchemaRef) -> Self {
        Self {
            schema: Some(schema),
            ..Self::default()
        }
    }

    /// An update that sets properties.
    pub fn properties(properties: Properties) -> Self {
        Self {
            properties: Some(properties),
            ..Self::default()
        }
    }

    /// Also changes the compatibility mode.
    pub fn with_compatibility(mut self, compatibility: SchemaCompatibility) -> Self {
        self.compatibility = Some(compatibility);
        self
    }
}

/// Statistics of one partition, when the writer knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartitionStats {
    /// Rows in the partition.
    pub row_count: u64,
    /// Data files in the partition.
    pub file_count: u64,
    /// Bytes of data files in the partition.
    pub size_bytes: u64,
}

impl PartitionStats {
    /// `row_count` rows in `file_count` files of `size_bytes` bytes.
    pub fn new(row_count: u64, file_count: u64, size_bytes: u64) -> Self {
        Self {
            row_count,
            file_count,
            size_bytes,
        }
    }
}

/// One partition of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Partition {
    /// One value per partition key, in the table's key order.
    pub values: Vec<PartitionValue>,
    /// Where the partition's files live.
    pub location: Url,
    /// Statistics, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<PartitionStats>,
}

impl Partition {
    /// The partition with `values` (one per partition key) at `location`,
    /// without statistics.
    pub fn new(values: Vec<PartitionValue>, location: Url) -> Self {
        Self {
            values,
            location,
            stats: None,
        }
    }

    /// Sets the statistics.
    pub fn with_stats(mut self, stats: Option<PartitionStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Checks that the partition gives one value per partition key of `table`.
    pub fn check_arity(&self, table: &TableDefinition) -> Result<()> {
        if self.values.len() == table.partition_keys.len() {
            Ok(())
        } else {
            Err(LakeError::config(
                "partition",
                format!(
                    "{} has {} partition keys, a partition gave {} values",
                    table.id,
                    table.partition_keys.len(),
                    self.values.len()
                ),
            ))
        }
    }
}

/// How adding partitions went: adding one that exists is a success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AddPartitions {
    /// Partitions that were new.
    pub added: usize,
    /// Partitions that were already registered.
    pub already_present: usize,
}

/// A comparison in a [`PartitionFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionOp {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// One condition on a partition key: `key op value`.
///
/// Values compare as text, which orders zero-padded numbers and ISO dates
/// correctly (`month=09` < `month=11`), and is what Glue does for string keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartitionCondition {
    /// The partition key.
    pub key: Ident,
    /// The comparison.
    pub op: PartitionOp,
    /// The value compared with.
    pub value: PartitionValue,
}

/// A conjunction of conditions on partition keys; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartitionFilter {
    /// Every condition must hold.
    pub conditions: Vec<PartitionCondition>,
}

impl PartitionFilter {
    /// The filter that matches every partition.
    pub fn all() -> Self {
        Self::default()
    }

    /// Adds the condition `key op value`.
    pub fn and(mut self, key: Ident, op: PartitionOp, value: PartitionValue) -> Self {
        self.conditions.push(PartitionCondition { key, op, value });
        self
    }

    /// Checks that every condition names one of `keys`; the error names the
    /// first that does not. Catalogs call it before listing, so a bad filter
    /// fails even on a table without partitions.
    pub fn check_keys(&self, keys: &[Ident]) -> Result<()> {
        match self.conditions.iter().find(|c| !keys.contains(&c.key)) {
            Some(condition) => Err(LakeError::config(
                "partition filter",
                format!("`{}` is not a partition key", condition.key),
            )),
            None => Ok(()),
        }
    }

    /// Whether a partition with `values` (in `keys` order) passes the filter.
    ///
    /// A condition on a key the table does not have is an error naming it.
    pub fn matches(&self, keys: &[Ident], values: &[PartitionValue]) -> Result<bool> {
        for condition in &self.conditions {
            let index = keys
                .iter()
                .position(|k| *k == condition.key)
                .ok_or_else(|| {
                    LakeError::config(
                        "partition filter",
                        format!("`{}` is not a partition key", condition.key),
                    )
                })?;
            let Some(value) = values.get(index) else {
                return Ok(false);
            };
            let ordering = value.as_str().cmp(condition.value.as_str());
            let pass = match condition.op {
                PartitionOp::Eq => ordering.is_eq(),
                PartitionOp::NotEq => ordering.is_ne(),
                PartitionOp::Lt => ordering.is_lt(),
                PartitionOp::LtEq => ordering.is_le(),
                PartitionOp::Gt => ordering.is_gt(),
                PartitionOp::GtEq => ordering.is_ge(),
            };
            if !pass {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A catalog of namespaces, tables, partitions and schema versions.
///
/// # Contract
/// Implementations must pass the conformance suite in `lake-catalog`; in short:
/// - Namespaces and tables are created once: a second create is
///   [`LakeError::AlreadyExists`]; reading or dropping what is absent is
///   [`LakeError::NotFound`]. Creating a table creates its namespace if needed.
/// - [`update_table`](Catalog::update_table) with a schema records a new
///   schema version when the schema differs, and refuses a change the table's
///   [`SchemaCompatibility`] forbids with [`LakeError::Schema`] naming the column.
/// - [`add_partitions`](Catalog::add_partitions) is idempotent: adding a
///   partition that exists counts as `already_present`, never as an error,
///   and concurrent adds from several tasks lose nothing.
/// - Listings are complete however many entries there are (implementations
///   page internally).
/// - [`grant`](Catalog::grant) is idempotent (`Ok(false)` for a grant held
///   already) and concurrent grants from several processes lose nothing;
///   [`revoke`](Catalog::revoke) of a grant not held is `Ok(false)`;
///   [`list_grants`](Catalog::list_grants) returns them sorted, each once.
///   Grants may name tables and namespaces that do not exist (yet).
#[async_trait]
pub trait Catalog: Send + Sync + Debug {
    /// Creates a namespace (database).
    async fn create_namespace(&self, namespace: &NamespaceId, properties: Properties)
    -> Result<()>;

    /// Lists namespaces, of one zone or of all.
    async fn list_namespaces(&self, zone: Option<Zone>) -> Result<Vec<NamespaceId>>;

    /// Drops an empty namespace.
    async fn drop_namespace(&self, namespace: &NamespaceId) -> Result<()>;

    /// Registers a table; its `schema_version` is recorded as version 1.
    async fn create_table(&self, definition: TableDefinition) -> Result<TableDefinition>;

    /// Reads a table's definition.
    async fn get_table(&self, table: &TableId) -> Result<TableDefinition>;

    /// Lists the tables of a namespace.
    async fn list_tables(&self, namespace: &NamespaceId) -> Result<Vec<TableId>>;

    /// Changes a table's schema, properties or compatibility mode.
    async fn update_table(&self, table: &TableId, update: TableUpdate) -> Result<TableDefinition>;

    /// Removes a table and its partitions from the catalog (the data stays).
    async fn drop_table(&self, table: &TableId) -> Result<()>;

    /// Registers partitions, idempotently.
    async fn add_partitions(
        &self,
        table: &TableId,
        partitions: Vec<Partition>,
    ) -> Result<AddPartitions>;

    /// Lists the partitions that pass `filter`.
    async fn list_partitions(
        &self,
        table: &TableId,
        filter: &PartitionFilter,
    ) -> Result<Vec<Partition>>;

    /// Removes partitions by their values; absent ones are ignored.
    async fn drop_partitions(&self, table: &TableId, values: &[Vec<PartitionValue>]) -> Result<()>;

    /// Every recorded schema version of a table, oldest first.
    async fn schema_versions(&self, table: &TableId) -> Result<Vec<SchemaVersion>>;

    /// Records a grant; `Ok(false)` when the catalog held it already.
    async fn grant(&self, grant: &Grant) -> Result<bool>;

    /// Removes a grant; `Ok(false)` when the catalog did not hold it.
    async fn revoke(&self, grant: &Grant) -> Result<bool>;

    /// The grants `principal` holds (every grant when `None`), sorted.
    async fn list_grants(&self, principal: Option<&Principal>) -> Result<Vec<Grant>>;
}

/// Conveniences over any [`Catalog`].
#[async_trait]
pub trait CatalogExt: Catalog {
    /// Whether the table is registered.
    async fn table_exists(&self, table: &TableId) -> Result<bool> {
        match self.get_table(table).await {
            Ok(_) => Ok(true),
            Err(LakeError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What `principal` may do: its grants, read now.
    async fn access(&self, principal: &Principal) -> Result<Access> {
        let grants = self.list_grants(Some(principal)).await?;
        Ok(Access::new(principal.clone(), grants))
    }

    /// Creates the namespace unless it exists.
    async fn ensure_namespace(&self, namespace: &NamespaceId) -> Result<()> {
        match self.create_namespace(namespace, Properties::new()).await {
            Ok(()) | Err(LakeError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Registers the table, or brings its schema up to date when it exists:
    /// what a writer calls after every commit.
    async fn ensure_table(&self, definition: TableDefinition) -> Result<TableDefinition> {
        let table = definition.id.clone();
        let schema = Arc::clone(&definition.schema);
        match self.create_table(definition).await {
            Ok(created) => Ok(created),
            Err(LakeError::AlreadyExists { .. }) => {
                let current = self.get_table(&table).await?;
                if current.schema == schema {
                    Ok(current)
                } else {
                    self.update_table(&table, TableUpdate::schema(schema)).await
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl<T: Catalog + ?Sized> CatalogExt for T {}
