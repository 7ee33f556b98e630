//! What a zone crate needs from storage: the layout, an object store and the
//! options deltalake needs to open tables there.
//!
//! One implementation, [`ObjectStorage`], covers `file://`, `memory://` and
//! (with the `aws` feature) `s3://` by delegating to object_store; nothing
//! here re-implements what object_store does. Tables are opened on the very
//! same store instance, which is what makes `memory://` lakes work and what
//! lets a test wrap the store to inject faults.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::error::{LakeError, Result};
use crate::layout::LakeLayout;

/// A shared object store.
pub type ObjectStoreRef = Arc<dyn ObjectStore>;

/// A shared [`Storage`].
pub type StorageRef = Arc<dyn Storage>;

/// Access to the lake's storage.
///
/// # Contract
/// - [`object_store`](Storage::object_store) is rooted at the store's root
///   (the bucket, the filesystem root, the in-memory store), so the object
///   path of a location URL is the URL's path (see [`StorageExt::object_path`]).
/// - The same instance is returned every time: data written through it is
///   visible to every later read through it, and to deltalake tables opened
///   with [`StorageExt::delta_builder`].
/// - [`storage_options`](Storage::storage_options) are the options the store
///   was built from, handed to deltalake unchanged.
pub trait Storage: Send + Sync + Debug {
    /// The layout of the lake on this storage.
    fn layout(&self) -> &LakeLayout;

    /// The object store, rooted at the store root.
    fn object_store(&self) -> ObjectStoreRef;

    /// Options for deltalake's log store (credentials, endpoint, locking).
    fn storage_options(&self) -> &HashMap<String, String>;
}

/// Conveniences over any [`Storage`].
pub trait StorageExt: Storage {
    /// The object path of `location`, which must lie under the lake root.
    fn object_path(&self, location: &Url) -> Result<Path> {
        let root = self.layout().root();
        let under_root = location.scheme() == root.scheme()
            && location.host_str() == root.host_str()
            && location.path().starts_with(root.path());
        if !under_root {
            return Err(LakeError::config(
                "location",
                format!("{location} is outside the lake root {root}"),
            ));
        }
        Path::from_url_path(location.path())
            .map_err(|e| LakeError::storage(location.as_str(), e.into()))
    }

    /// A deltalake builder for the table at `location`, on this storage's store.
    fn delta_builder(&self, location: &Url) -> Result<DeltaTableBuilder> {
        self.object_path(location)?;
        let builder = DeltaTableBuilder::from_url(location.clone())
            .map_err(|e| LakeError::delta(location.as_str(), e))?
            .with_storage_backend(self.object_store(), location.clone())
            .with_storage_options(self.storage_options().clone());
        Ok(builder)
    }

    /// Opens the Delta table at `location` on this storage: loaded at its
    /// latest version when it exists, uninitialised (`version()` is `None`,
    /// ready for `create` or a first `write`) when it does not.
    fn open_table<'a>(&'a self, location: &'a Url) -> BoxFuture<'a, Result<DeltaTable>>
    where
        Self: Sync,
    {
        Box::pin(async move {
            let mut table = self
                .delta_builder(location)?
                .build()
                .map_err(|e| LakeError::delta(location.as_str(), e))?;
            // Asking the store first gives one answer on every backend; the
            // kernel reports a missing local folder differently from an
            // empty prefix on S3.
            let log = self.object_path(location)?.join("_delta_log");
            let listed = self
                .object_store()
                .list_with_delimiter(Some(&log))
                .await
                .map_err(|e| LakeError::storage(location.as_str(), e))?;
            if listed.objects.is_empty() && listed.common_prefixes.is_empty() {
                return Ok(table);
            }
            match table.load().await {
                Ok(()) | Err(deltalake::DeltaTableError::NotATable(_)) => Ok(table),
                Err(e) => Err(LakeError::delta(location.as_str(), e)),
            }
        })
    }

    /// Opens the Delta table at `location`, creating it empty with `schema`
    /// and `partition_columns` when it does not exist yet.
    ///
    /// Creating first and appending in a second commit is what makes
    /// concurrent first writers safe: appends then always have a snapshot
    /// to be checked against, so Delta's conflict checker sees a competing
    /// application transaction. A creator that loses the race to another
    /// simply opens the winner's table.
    fn ensure_table<'a>(
        &'a self,
        location: &'a Url,
        schema: &'a arrow::datatypes::Schema,
        partition_columns: &'a [&'a str],
    ) -> BoxFuture<'a, Result<DeltaTable>>
    where
        Self: Sync,
    {
        Box::pin(async move {
            let options =
                NewTable::default().with_partition_columns(partition_columns.iter().copied());
            self.ensure_table_with(location, schema, &options).await
        })
    }

    /// [`StorageExt::ensure_table`], created as `options` say if it is
    /// created here. A table that exists keeps its own partitioning and
    /// properties.
    fn ensure_table_with<'a>(
        &'a self,
        location: &'a Url,
        schema: &'a arrow::datatypes::Schema,
        options: &'a NewTable,
    ) -> BoxFuture<'a, Result<DeltaTable>>
    where
        Self: Sync,
    {
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
        Box::pin(async move {
            let table = self.open_table(location).await?;
            if table.version().is_some() {
                return Ok(table);
            }
            let fail = |e| LakeError::delta(location.as_str(), e);
            crate::schema::check_readable(location.as_str(), schema)?;
            let structure: deltalake::kernel::StructType = schema
                .try_into_kernel()
                .map_err(|e| LakeError::delta(location.as_str(), e.into()))?;
            let created = table
                .create()
                .with_columns(structure.fields().cloned())
                .with_partition_columns(options.partition_columns.iter().cloned())
                .with_save_mode(deltalake::protocol::SaveMode::Ignore)
                .with_configuration_property(
                    deltalake::TableProperty::CheckpointInterval,
                    Some(CHECKPOINT_INTERVAL.to_string()),
                )
                .with_configuration(
                    options
                        .properties
                        .iter()
                        .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
                )
                // Properties of the lake's own (`lake.*`) are not Delta's:
                // they are kept in the table's configuration, not checked.
                .with_raise_if_key_not_exists(false)
                // A creator that loses the race for version 0 must not go on
                // to commit its metadata as version 1: deltalake's retry loop
                // would, and every writer that read version 0 would then fail
                // with "metadata changed". Without retries it fails, and
                // opens the winner's table below.
                .with_commit_properties(
                    deltalake::kernel::transaction::CommitProperties::default().with_max_retries(0),
                )
                .await;
            match created {
                Ok(table) => Ok(table),
                Err(e) => {
                    let table = self.open_table(location).await?;
                    if table.version().is_some() {
                        Ok(table)
                    } else {
                        Err(fail(e))
                    }
                }
            }
        })
    }
}

impl<T: Storage + ?Sized> StorageExt for T {}

/// How [`StorageExt::ensure_table_with`] creates a table that does not
/// exist yet.
///
/// An options struct, so that new knobs are not breaking changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTable {
    /// Partition columns, in path order.
    pub partition_columns: Vec<String>,
    /// Delta table properties, such as `delta.enableDeletionVectors` (which
    /// also raises the protocol to the table feature). Properties of the
    /// lake's own (`lake.*`) are kept in the table's configuration too.
    pub properties: BTreeMap<String, String>,
}

impl NewTable {
    /// Partitions the table by `columns`, in path order.
    pub fn with_partition_columns(
        mut self,
        columns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.partition_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the table property `key` to `value`.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }
}

/// Commits between checkpoints of the tables the lake creates.
///
/// Opening a table reads the last checkpoint and every commit after it; on
/// S3 each commit is a GET, and the lake opens tables once or more per
/// batch. Delta's default of 100 made opening bronze on S3 cost up to 100
/// requests; 10 keeps it near 10 at the price of one small Parquet write
/// every ten commits.
pub const CHECKPOINT_INTERVAL: u32 = 10;

/// [`Storage`] over an object_store backend built from a URL.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    layout: LakeLayout,
    store: ObjectStoreRef,
    options: HashMap<String, String>,
}

impl ObjectStorage {
    /// Storage for a lake root given as a URL or a local path, with no options.
    pub fn from_url(root: &str) -> Result<Self> {
        Self::from_url_opts(root, HashMap::<String, String>::new())
    }

    /// Storage for a lake root with object_store options (for S3:
    /// `aws_endpoint`, `aws_region`, `aws_allow_http`, credentials, ...).
    ///
    /// For an `s3://` root the `AWS_*` environment variables are read too
    /// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, ...), under the
    /// options given here.
    pub fn from_url_opts<I, K, V>(root: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let layout = LakeLayout::parse(root)?;
        let url = layout.root().clone();
        // On S3 the usual AWS_* environment variables (credentials, region,
        // endpoint) apply, as for every AWS tool; explicit options win.
        let mut merged: HashMap<String, String> = if url.scheme() == "s3" {
            std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        } else {
            HashMap::new()
        };
        merged.extend(options.into_iter().map(|(k, v)| (k.into(), v.into())));
        let options = merged;
        if url.scheme() == "s3" && !cfg!(feature = "aws") {
            return Err(LakeError::config(
                "root",
                format!("{url} needs the `aws` feature of lake-core"),
            ));
        }
        let (store, _prefix) = object_store::parse_url_opts(&url, options.clone())
            .map_err(|e| LakeError::storage(url.as_str(), e))?;
        Ok(Self {
            layout,
            store: Arc::from(store),
            options,
        })
    }

    /// Storage over a store you built yourself (a wrapper that injects faults,
    /// a store with custom client options). `store` must be rooted at the
    /// store root of `layout`'s URL.
    pub fn with_store(
        layout: LakeLayout,
        store: ObjectStoreRef,
        options: HashMap<String, String>,
    ) -> Self {
        Self {
            layout,
            store,
            options,
        }
    }
}

impl Storage for ObjectStorage {
    fn layout(&self) -> &LakeLayout {
        &self.layout
    }

    fn object_store(&self) -> ObjectStoreRef {
        Arc::clone(&self.store)
    }

    fn storage_options(&self) -> &HashMap<String, String> {
        &self.options
    }
}

/// The version of the last commit of `table` carrying the application
/// transaction `app_id` (the bookmark a stage keeps in its target table),
/// or `None` when there is none. `name` names the table in errors.
pub async fn transaction_version(
    table: &DeltaTable,
    app_id: &str,
    name: &str,
) -> Result<Option<i64>> {
    let state = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
    state
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| LakeError::delta(name, e))
}

/// The actions of commit `version` of `table` (`add`, `remove`,
/// `commitInfo`, …), one JSON object each, as the Delta log holds them.
///
/// Fails with [`LakeError::NotFound`] when the commit file is gone (log
/// retention removed it), so an incremental reader never skips a commit
/// silently. `name` names the table in errors.
pub async fn commit_actions(
    table: &DeltaTable,
    version: u64,
    name: &str,
) -> Result<Vec<serde_json::Value>> {
    let Some(entry) = table
        .log_store()
        .read_commit_entry(version)
        .await
        .map_err(|e| LakeError::delta(name, e))?
    else {
        return Err(LakeError::not_found(format!(
            "commit {version} of {name} (log cleaned up before it was read?)"
        )));
    };
    entry
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| {
            serde_json::from_slice(line)
                .map_err(|e| LakeError::other(format!("commit {version} of {name}"), e))
        })
        .collect()
}

/// The commit metadata key under which an ingestion commit (lake-bronze's,
/// one delivered batch per commit) records the batch: an object with
/// `batch_id`, `source_file` and `fingerprint`, in the commit's
/// `commitInfo`.
pub const BATCH_COMMIT_METADATA: &str = "lake.batch";

/// The id of the batch the commit whose [`commit_actions`] are `actions`
/// ingested, from its [`BATCH_COMMIT_METADATA`]; `None` for a commit that
/// records none (not an ingestion commit, or another writer's).
pub fn commit_batch_id(actions: &[serde_json::Value]) -> Option<&str> {
    actions.iter().find_map(|action| {
        action
            .get("commitInfo")?
            .get(BATCH_COMMIT_METADATA)?
            .get("batch_id")?
            .as_str()
    })
}

/// Whether `file`, the `add` or `remove` object of an action of
/// [`commit_actions`], changes the table's rows: false for the files of a
/// rewrite (`dataChange: false`: a compaction, a purge of deletion vectors),
/// which hold rows the table had already. An incremental reader of a
/// table's commits skips those; the protocol's default is true.
pub fn changes_data(file: &serde_json::Value) -> bool {
    file.get("dataChange")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}

/// The bytes of the object at `location` of `store`; errors name it.
pub async fn fetch_object(
    store: &dyn object_store::ObjectStore,
    location: &object_store::path::Path,
) -> Result<bytes::Bytes> {
    use object_store::ObjectStoreExt;
    let fail = |e| LakeError::storage(location.to_string(), e);
    store
        .get(location)
        .await
        .map_err(fail)?
        .bytes()
        .await
        .map_err(fail)
}

/// A DataFusion provider for `table`, with the table's object store
/// registered in `ctx`: what every SQL reader of a Delta table needs before
/// `register_table`. `name` names the table in errors.
pub async fn delta_provider(
    ctx: &datafusion::prelude::SessionContext,
    table: &DeltaTable,
    name: &str,
) -> Result<std::sync::Arc<dyn datafusion::datasource::TableProvider>> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| LakeError::delta(name, e))?;
    table
        .table_provider()
        .await
        .map_err(|e| LakeError::datafusion(name, e))
}
