//! [`FileCatalog`]: the embedded default catalog, as JSON documents under
//! `{root}/_catalog/` in the lake's own object store.
//!
//! # Layout and concurrency
//! ```text
//! _catalog/namespaces/{zone}.{name}.json              created once
//! _catalog/tables/{zone}.{ns}.{name}/v/{n:010}.json   table document, version n
//! _catalog/tables/{zone}.{ns}.{name}/p/{hex}.json     one document per partition
//! _catalog/grants/{key}.json                          one document per grant
//! ```
//! Every write is a create-if-absent put, the one conditional write that
//! local files, memory and S3 all support (object_store's `PutMode::Update`
//! is not available on local files). A table changes by writing version
//! n + 1 of its document: two writers racing for the same version find that
//! one of them already exists, and the loser re-reads and tries again, the
//! way Delta's own log works. So several services can share one catalog on
//! S3 with no server. Partition documents are named by the hex of their
//! values, so adding one twice is `AlreadyExists`, which counts as present.
//! Grants likewise are named by [`Grant::key`]: granting twice finds the
//! first, and revoking deletes the one document.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use lake_core::access::select_grants;
use lake_core::object_store::path::Path;
use lake_core::object_store::{self, ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use lake_core::{
    AddPartitions, Catalog, Grant, Ident, LakeError, NamespaceId, ObjectStoreRef, Partition,
    PartitionFilter, PartitionValue, Principal, Properties, Result, SchemaVersion, StorageExt,
    StorageRef, TableDefinition, TableId, TableUpdate, Zone,
};
use serde::{Deserialize, Serialize};

use crate::memory::apply_update;

/// How often a table update that lost a race is retried.
const MAX_ATTEMPTS: usize = 32;

/// The error when a table's document kept changing under every attempt.
fn contended(table: &TableId) -> LakeError {
    LakeError::CommitConflict {
        table: table.to_string(),
        message: format!("catalog document still contended after {MAX_ATTEMPTS} attempts"),
        retryable: true,
    }
}

/// One version of a table's document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableDocument {
    /// `None` once the table was dropped (a later create starts again).
    definition: Option<TableDefinition>,
    versions: Vec<SchemaVersion>,
}

/// The embedded catalog: JSON documents in the lake's object store.
#[derive(Debug, Clone)]
pub struct FileCatalog {
    store: ObjectStoreRef,
    root: Path,
}

impl FileCatalog {
    /// A catalog under `{root}/_catalog/` of `storage`.
    pub fn new(storage: &StorageRef) -> Result<Self> {
        let root = storage.object_path(&storage.layout().catalog_root())?;
        Ok(Self {
            store: storage.object_store(),
            root,
        })
    }

    fn namespace_path(&self, namespace: &NamespaceId) -> Path {
        self.root
            .clone()
            .join("namespaces")
            .join(format!("{}.{}.json", namespace.zone, namespace.name))
    }

    fn table_root(&self, table: &TableId) -> Path {
        self.root.clone().join("tables").join(table.to_string())
    }

    fn version_path(&self, table: &TableId, version: u64) -> Path {
        self.table_root(table)
            .join("v")
            .join(format!("{version:010}.json"))
    }

    fn grant_path(&self, grant: &Grant) -> Path {
        self.root
            .clone()
            .join("grants")
            .join(format!("{}.json", grant.key()))
    }

    fn partition_path(&self, table: &TableId, values: &[PartitionValue]) -> Path {
        let mut name = String::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                name.push_str("00");
            }
            for byte in value.as_str().bytes() {
                let _ = write!(name, "{byte:02x}");
            }
        }
        self.table_root(table)
            .join("p")
            .join(format!("{name}.json"))
    }

    async fn create(&self, path: &Path, bytes: Vec<u8>) -> object_store::Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(path, PutPayload::from(Bytes::from(bytes)), options)
            .await
            .map(|_| ())
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> Result<T> {
        let bytes = self
            .store
            .get(path)
            .await
            .map_err(|e| LakeError::storage(path.to_string(), e))?
            .bytes()
            .await
            .map_err(|e| LakeError::storage(path.to_string(), e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LakeError::other(format!("catalog document {path}"), e))
    }

    /// The latest version number and document of a table, if it ever existed.
    async fn latest(&self, table: &TableId) -> Result<Option<(u64, TableDocument)>> {
        let prefix = self.table_root(table).join("v");
        let listed = self.list_all(&prefix).await?;
        let latest = listed
            .iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                name.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .max();
        match latest {
            None => Ok(None),
            Some(version) => {
                let document = self.read_json(&self.version_path(table, version)).await?;
                Ok(Some((version, document)))
            }
        }
    }

    /// Writes `document` as version `version`; `Ok(false)` when another writer got there first.
    async fn write_version(
        &self,
        table: &TableId,
        version: u64,
        document: &TableDocument,
    ) -> Result<bool> {
        let path = self.version_path(table, version);
        let bytes =
            serde_json::to_vec(document).map_err(|e| LakeError::other("catalog document", e))?;
        match self.create(&path, bytes).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(LakeError::storage(path.to_string(), e)),
        }
    }

    /// Every object under `prefix` (object_store pages through the listing).
    async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| LakeError::storage(prefix.to_string(), e))
    }

    async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        let listed = self.list_all(prefix).await?;
        for meta in listed {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(LakeError::storage(meta.location.to_string(), e)),
            }
        }
        Ok(())
    }

    async fn live(&self, table: &TableId) -> Result<(u64, TableDefinition, Vec<SchemaVersion>)> {
        match self.latest(table).await? {
            Some((
                version,
                TableDocument {
                    definition: Some(definition),
                    versions,
                },
            )) => Ok((version, definition, versions)),
            _ => Err(LakeError::not_found(format!("table {table}"))),
        }
    }
}

#[async_trait]
impl Catalog for FileCatalog {
    async fn create_namespace(
        &self,
        namespace: &NamespaceId,
        properties: Properties,
    ) -> Result<()> {
        let path = self.namespace_path(namespace);
        let bytes =
            serde_json::to_vec(&properties).map_err(|e| LakeError::other("catalog document", e))?;
        match self.create(&path, bytes).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(LakeError::AlreadyExists {
                what: format!("namespace {namespace}"),
            }),
            Err(e) => Err(LakeError::storage(path.to_string(), e)),
        }
    }

    async fn list_namespaces(&self, zone: Option<Zone>) -> Result<Vec<NamespaceId>> {
        let prefix = self.root.clone().join("namespaces");
        let listed = self.list_all(&prefix).await?;
        let mut out: Vec<NamespaceId> = listed
            .iter()
            .filter_map(|meta| {
                meta.location
                    .filename()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .filter(|n: &NamespaceId| zone.is_none_or(|z| n.zone == z))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn drop_namespace(&self, namespace: &NamespaceId) -> Result<()> {
        let path = self.namespace_path(namespace);
        // Deleting an absent object succeeds on S3 and in memory: ask first.
        match self.store.head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(LakeError::not_found(format!("namespace {namespace}")));
            }
            Err(e) => return Err(LakeError::storage(path.to_string(), e)),
        }
        if !self.list_tables(namespace).await?.is_empty() {
            return Err(LakeError::config(
                "namespace",
                format!("namespace {namespace} still has tables"),
            ));
        }
        self.store
            .delete(&path)
            .await
            .map_err(|e| LakeError::storage(path.to_string(), e))
    }

    async fn create_table(&self, definition: TableDefinition) -> Result<TableDefinition> {
        definition.check_partition_keys()?;
        let table = definition.id.clone();
        match self
            .create_namespace(&table.namespace_id(), Properties::new())
            .await
        {
            Ok(()) | Err(LakeError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        for _ in 0..MAX_ATTEMPTS {
            let next = match self.latest(&table).await? {
                Some((
                    _,
                    TableDocument {
                        definition: Some(_),
                        ..
                    },
                )) => {
                    return Err(LakeError::AlreadyExists {
                        what: format!("table {table}"),
                    });
                }
                Some((version, _)) => version + 1,
                None => 1,
            };
            let mut definition = definition.clone();
            definition.schema_version = 1;
            let document = TableDocument {
                versions: vec![SchemaVersion::new(1, definition.schema.clone(), Utc::now())],
                definition: Some(definition.clone()),
            };
            if self.write_version(&table, next, &document).await? {
                return Ok(definition);
            }
        }
        Err(contended(&table))
    }

    async fn get_table(&self, table: &TableId) -> Result<TableDefinition> {
        Ok(self.live(table).await?.1)
    }

    async fn list_tables(&self, namespace: &NamespaceId) -> Result<Vec<TableId>> {
        let prefix = self.root.clone().join("tables");
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| LakeError::storage(prefix.to_string(), e))?;
        let mut out = Vec::new();
        for dir in listed.common_prefixes {
            let Some(id) = dir.filename().and_then(|n| n.parse::<TableId>().ok()) else {
                continue;
            };
            if id.namespace_id() == *namespace && self.live(&id).await.is_ok() {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn update_table(&self, table: &TableId, update: TableUpdate) -> Result<TableDefinition> {
        for _ in 0..MAX_ATTEMPTS {
            let (version, mut definition, mut versions) = self.live(table).await?;
            apply_update(&mut definition, &mut versions, update.clone())?;
            let document = TableDocument {
                definition: Some(definition.clone()),
                versions,
            };
            if self.write_version(table, version + 1, &document).await? {
                return Ok(definition);
            }
        }
        Err(contended(table))
    }

    async fn drop_table(&self, table: &TableId) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            let (version, _, _) = self.live(table).await?;
            self.delete_prefix(&self.table_root(table).join("p"))
                .await?;
            let tombstone = TableDocument {
                definition: None,
                versions: Vec::new(),
            };
            if self.write_version(table, version + 1, &tombstone).await? {
                return Ok(());
            }
        }
        Err(contended(table))
    }

    async fn add_partitions(
        &self,
        table: &TableId,
        partitions: Vec<Partition>,
    ) -> Result<AddPartitions> {
        let (_, definition, _) = self.live(table).await?;
        let mut outcome = AddPartitions::default();
        for partition in partitions {
            partition.check_arity(&definition)?;
            let path = self.partition_path(table, &partition.values);
            let bytes = serde_json::to_vec(&partition)
                .map_err(|e| LakeError::other("catalog document", e))?;
            match self.create(&path, bytes).await {
                Ok(()) => outcome.added += 1,
                Err(object_store::Error::AlreadyExists { .. }) => outcome.already_present += 1,
                Err(e) => return Err(LakeError::storage(path.to_string(), e)),
            }
        }
        Ok(outcome)
    }

    async fn list_partitions(
        &self,
        table: &TableId,
        filter: &PartitionFilter,
    ) -> Result<Vec<Partition>> {
        let (_, definition, _) = self.live(table).await?;
        let keys: Vec<Ident> = definition.partition_keys.clone();
        filter.check_keys(&keys)?;
        let prefix = self.table_root(table).join("p");
        let listed = self.list_all(&prefix).await?;
        let documents: Vec<Result<Partition>> = futures::stream::iter(listed)
            .map(|meta| async move { self.read_json::<Partition>(&meta.location).await })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut out: BTreeMap<Vec<PartitionValue>, Partition> = BTreeMap::new();
        for partition in documents {
            let partition = partition?;
            if filter.matches(&keys, &partition.values)? {
                out.insert(partition.values.clone(), partition);
            }
        }
        Ok(out.into_values().collect())
    }

    async fn drop_partitions(&self, table: &TableId, values: &[Vec<PartitionValue>]) -> Result<()> {
        self.live(table).await?;
        for value in values {
            let path = self.partition_path(table, value);
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(LakeError::storage(path.to_string(), e)),
            }
        }
        Ok(())
    }

    async fn schema_versions(&self, table: &TableId) -> Result<Vec<SchemaVersion>> {
        Ok(self.live(table).await?.2)
    }

    async fn grant(&self, grant: &Grant) -> Result<bool> {
        let path = self.grant_path(grant);
        let bytes =
            serde_json::to_vec(grant).map_err(|e| LakeError::other("catalog document", e))?;
        match self.create(&path, bytes).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(LakeError::storage(path.to_string(), e)),
        }
    }

    async fn revoke(&self, grant: &Grant) -> Result<bool> {
        let path = self.grant_path(grant);
        // Deleting an absent object succeeds on S3 and in memory: ask first.
        match self.store.head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(LakeError::storage(path.to_string(), e)),
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(LakeError::storage(path.to_string(), e)),
        }
    }

    async fn list_grants(&self, principal: Option<&Principal>) -> Result<Vec<Grant>> {
        let listed = self.list_all(&self.root.clone().join("grants")).await?;
        let documents: Vec<Result<Option<Grant>>> = futures::stream::iter(listed)
            .map(|meta| async move {
                let path = &meta.location;
                let got = match self.store.get(path).await {
                    Ok(got) => got,
                    // Revoked between the listing and the read.
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(LakeError::storage(path.to_string(), e)),
                };
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| LakeError::storage(path.to_string(), e))?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| LakeError::other(format!("catalog document {path}"), e))
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let grants = documents.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(select_grants(grants.into_iter().flatten(), principal))
    }
}
