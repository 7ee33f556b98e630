//! [`MemoryCatalog`]: the catalog in a `RwLock`, for tests and for services
//! that own their lake alone.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::Utc;
use lake_core::access::select_grants;
use lake_core::{
    AddPartitions, Catalog, Grant, LakeError, NamespaceId, Partition, PartitionFilter,
    PartitionValue, Principal, Properties, Result, SchemaVersion, TableDefinition, TableId,
    TableUpdate, Zone, check_compatibility,
};
use tokio::sync::RwLock;

#[derive(Debug)]
struct TableEntry {
    definition: TableDefinition,
    versions: Vec<SchemaVersion>,
    partitions: BTreeMap<Vec<PartitionValue>, Partition>,
}

#[derive(Debug, Default)]
struct State {
    namespaces: BTreeMap<NamespaceId, Properties>,
    tables: BTreeMap<TableId, TableEntry>,
    grants: BTreeSet<Grant>,
}

/// A catalog held in memory; everything is lost when it is dropped.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    state: RwLock<State>,
}

impl MemoryCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }
}

fn missing_table(table: &TableId) -> LakeError {
    LakeError::not_found(format!("table {table}"))
}

/// Applies `update` to `entry`, recording a schema version when the schema changes.
pub(crate) fn apply_update(
    definition: &mut TableDefinition,
    versions: &mut Vec<SchemaVersion>,
    update: TableUpdate,
) -> Result<()> {
    if let Some(compatibility) = update.compatibility {
        definition.compatibility = compatibility;
    }
    if let Some(properties) = update.properties {
        definition.properties.extend(properties);
    }
    if let Some(schema) = update.schema
        && schema != definition.schema
    {
        check_compatibility(
            &definition.id.to_string(),
            &definition.schema,
            &schema,
            definition.compatibility,
        )?;
        definition.schema_version += 1;
        definition.schema = schema.clone();
        versions.push(SchemaVersion::new(
            definition.schema_version,
            schema,
            Utc::now(),
        ));
    }
    Ok(())
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn create_namespace(
        &self,
        namespace: &NamespaceId,
        properties: Properties,
    ) -> Result<()> {
        let mut state = self.state.write().await;
        if state.namespaces.contains_key(namespace) {
            return Err(LakeError::AlreadyExists {
                what: format!("namespace {namespace}"),
            });
        }
        state.namespaces.insert(namespace.clone(), properties);
        Ok(())
    }

    async fn list_namespaces(&self, zone: Option<Zone>) -> Result<Vec<NamespaceId>> {
        let state = self.state.read().await;
        Ok(state
            .namespaces
            .keys()
            .filter(|n| zone.is_none_or(|z| n.zone == z))
            .cloned()
            .collect())
    }

    async fn drop_namespace(&self, namespace: &NamespaceId) -> Result<()> {
        let mut state = self.state.write().await;
        if !state.namespaces.contains_key(namespace) {
            return Err(LakeError::not_found(format!("namespace {namespace}")));
        }
        if state.tables.keys().any(|t| t.namespace_id() == *namespace) {
            return Err(LakeError::config(
                "namespace",
                format!("namespace {namespace} still has tables"),
            ));
        }
        state.namespaces.remove(namespace);
        Ok(())
    }

    async fn create_table(&self, definition: TableDefinition) -> Result<TableDefinition> {
        definition.check_partition_keys()?;
        let mut state = self.state.write().await;
        if state.tables.contains_key(&definition.id) {
            return Err(LakeError::AlreadyExists {
                what: format!("table {}", definition.id),
            });
        }
        state
            .namespaces
            .entry(definition.id.namespace_id())
            .or_default();
        let mut definition = definition;
        definition.schema_version = 1;
        let versions = vec![SchemaVersion::new(1, definition.schema.clone(), Utc::now())];
        state.tables.insert(
            definition.id.clone(),
            TableEntry {
                definition: definition.clone(),
                versions,
                partitions: BTreeMap::new(),
            },
        );
        Ok(definition)
    }

    async fn get_table(&self, table: &TableId) -> Result<TableDefinition> {
        let state = self.state.read().await;
        state
            .tables
            .get(table)
            .map(|e| e.definition.clone())
            .ok_or_else(|| missing_table(table))
    }

    async fn list_tables(&self, namespace: &NamespaceId) -> Result<Vec<TableId>> {
        let state = self.state.read().await;
        if !state.namespaces.contains_key(namespace) {
            return Err(LakeError::not_found(format!("namespace {namespace}")));
        }
        Ok(state
            .tables
            .keys()
            .filter(|t| t.namespace_id() == *namespace)
            .cloned()
            .collect())
    }

    async fn update_table(&self, table: &TableId, update: TableUpdate) -> Result<TableDefinition> {
        let mut state = self.state.write().await;
        let entry = state
            .tables
            .get_mut(table)
            .ok_or_else(|| missing_table(table))?;
        let mut definition = entry.definition.clone();
        let mut versions = entry.versions.clone();
        apply_update(&mut definition, &mut versions, update)?;
        entry.definition = definition.clone();
        entry.versions = versions;
        Ok(definition)
    }

    async fn drop_table(&self, table: &TableId) -> Result<()> {
        let mut state = self.state.write().await;
        state
            .tables
            .remove(table)
            .map(|_| ())
            .ok_or_else(|| missing_table(table))
    }

    async fn add_partitions(
        &self,
        table: &TableId,
        partitions: Vec<Partition>,
    ) -> Result<AddPartitions> {
        let mut state = self.state.write().await;
        let entry = state
            .tables
            .get_mut(table)
            .ok_or_else(|| missing_table(table))?;
        let mut outcome = AddPartitions::default();
        for partition in partitions {
            partition.check_arity(&entry.definition)?;
            if entry.partitions.contains_key(&partition.values) {
                outcome.already_present += 1;
            } else {
                entry.partitions.insert(partition.values.clone(), partition);
                outcome.added += 1;
            }
        }
        Ok(outcome)
    }

    async fn list_partitions(
        &self,
        table: &TableId,
        filter: &PartitionFilter,
    ) -> Result<Vec<Partition>> {
        let state = self.state.read().await;
        let entry = state
            .tables
            .get(table)
            .ok_or_else(|| missing_table(table))?;
        filter.check_keys(&entry.definition.partition_keys)?;
        let mut out = Vec::new();
        for partition in entry.partitions.values() {
            if filter.matches(&entry.definition.partition_keys, &partition.values)? {
                out.push(partition.clone());
            }
        }
        Ok(out)
    }

    async fn drop_partitions(&self, table: &TableId, values: &[Vec<PartitionValue>]) -> Result<()> {
        let mut state = self.state.write().await;
        let entry = state
            .tables
            .get_mut(table)
            .ok_or_else(|| missing_table(table))?;
        for value in values {
            entry.partitions.remove(value);
        }
        Ok(())
    }

    async fn schema_versions(&self, table: &TableId) -> Result<Vec<SchemaVersion>> {
        let state = self.state.read().await;
        state
            .tables
            .get(table)
            .map(|e| e.versions.clone())
            .ok_or_else(|| missing_table(table))
    }

    async fn grant(&self, grant: &Grant) -> Result<bool> {
        Ok(self.state.write().await.grants.insert(grant.clone()))
    }

    async fn revoke(&self, grant: &Grant) -> Result<bool> {
        Ok(self.state.write().await.grants.remove(grant))
    }

    async fn list_grants(&self, principal: Option<&Principal>) -> Result<Vec<Grant>> {
        let state = self.state.read().await;
        Ok(select_grants(state.grants.iter().cloned(), principal))
    }
}
