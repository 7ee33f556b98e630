//! What a lake costs: per zone and table, what it stores (live data, files
//! only old versions hold, the Delta log), how much of it is small files
//! and deleted rows, an estimated monthly storage bill, and for a SQL query
//! the bytes it scans before and after pruning (what Athena bills).
//!
//! Read from the Delta logs and one listing of each table's folder; no
//! data file is opened.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::TryStreamExt;
use lake_core::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use lake_core::datafusion::datasource::physical_plan::FileScanConfig;
use lake_core::datafusion::datasource::source::DataSourceExec;
use lake_core::datafusion::logical_expr::LogicalPlan;
use lake_core::datafusion::physical_plan::ExecutionPlan;
use lake_core::maintenance::{DEFAULT_TARGET_FILE_BYTES, FileStats, MaintenanceTarget};
use lake_core::object_store::path::Path;
use lake_core::{LakeError, Pipeline, Result, StorageExt, StorageRef, TableId};
use lake_gold::LakeSession;
use serde::Serialize;

/// Bytes in a GB as AWS bills storage and scans (a binary gigabyte).
const GB: f64 = (1u64 << 30) as f64;

/// The prices a [`CostReport`] uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Prices {
    /// Storage, per GB and month.
    pub storage_per_gb_month: f64,
    /// A query engine's scans, per TB read (Athena's price).
    pub scan_per_tb: f64,
    /// Where the prices come from.
    pub source: String,
}

impl Default for Prices {
    /// AWS list prices in us-east-1: S3 Standard at $0.023 per GB-month
    /// (the first 50 TB of a month; unchanged since December 2016) and
    /// Athena at $5 per TB scanned, as listed in December 2026. Other
    /// regions, tiers and discounts differ: pass your own.
    fn default() -> Self {
        Self {
            storage_per_gb_month: 0.023,
            scan_per_tb: 5.0,
            source: "AWS list prices, us-east-1, December 2026: S3 Standard $0.023/GB-month (first 50 TB), Athena $5/TB scanned".to_string(),
        }
    }
}

impl Prices {
    /// Storage at `per_gb_month` and scans at `per_tb`, from `source`.
    pub fn new(per_gb_month: f64, per_tb: f64, source: impl Into<String>) -> Self {
        Self {
            storage_per_gb_month: per_gb_month,
            scan_per_tb: per_tb,
            source: source.into(),
        }
    }

    /// The monthly storage cost of `bytes`.
    pub fn storage(&self, bytes: u64) -> f64 {
        bytes as f64 / GB * self.storage_per_gb_month
    }

    /// The cost of scanning `bytes` once.
    pub fn scan(&self, bytes: u64) -> f64 {
        bytes as f64 / (GB * 1024.0) * self.scan_per_tb
    }
}

/// One table's storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableCost {
    /// The table (`silver.sales.orders`, `bronze.shop.orders (dead letters)`).
    pub table: String,
    /// `bronze`, `silver`, `gold`, `dead letters`, `quarantine` or `_metadata`.
    pub zone: String,
    /// Live data files, their bytes, their rows (deleted rows excluded).
    pub files: u64,
    /// Bytes of the live data files.
    pub bytes: u64,
    /// Rows of the live data files, deleted ones excluded.
    pub rows: u64,
    /// Live files under half of maintenance's target size.
    pub small_files: u64,
    /// `small_files` over `files`.
    pub small_file_share: f64,
    /// Live files with a deletion vector.
    pub deletion_vector_files: u64,
    /// Rows deletion vectors delete, over all rows of live files.
    pub deletion_vector_share: f64,
    /// Bytes of live deletion-vector files.
    pub deletion_vector_bytes: u64,
    /// Files in the table's folder no live version references (held for
    /// time travel and running readers; vacuum deletes them after the
    /// retention), and their bytes.
    pub reclaimable_files: u64,
    /// Bytes of `reclaimable_files`.
    pub reclaimable_bytes: u64,
    /// Bytes of the Delta log (`_delta_log/`).
    pub log_bytes: u64,
    /// Every byte stored under the table's folder.
    pub stored_bytes: u64,
    /// `stored_bytes` at [`Prices::storage_per_gb_month`].
    pub monthly_cost: f64,
}

/// One zone's storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ZoneCost {
    /// The zone, as [`TableCost::zone`].
    pub zone: String,
    /// Tables in it.
    pub tables: u64,
    /// Live data bytes.
    pub bytes: u64,
    /// Reclaimable bytes.
    pub reclaimable_bytes: u64,
    /// Every byte stored.
    pub stored_bytes: u64,
    /// Their monthly cost.
    pub monthly_cost: f64,
}

/// What [`cost`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CostReport {
    /// The lake root.
    pub root: String,
    /// The prices used.
    pub prices: Prices,
    /// Every table that exists, in maintenance order.
    pub tables: Vec<TableCost>,
    /// Per zone, in the order zones first appear.
    pub zones: Vec<ZoneCost>,
    /// Every byte stored in the tables.
    pub stored_bytes: u64,
    /// Their monthly cost.
    pub monthly_cost: f64,
}

/// The storage of every table `pipeline` writes (those
/// [`Pipeline::maintenance_targets`] lists that exist), priced at `prices`.
pub async fn cost(pipeline: &Pipeline, prices: &Prices) -> Result<CostReport> {
    let storage = pipeline.storage();
    let mut tables = Vec::new();
    for target in pipeline.maintenance_targets() {
        if let Some(table) = table_cost(storage, &target, prices).await? {
            tables.push(table);
        }
    }
    let mut zones: Vec<ZoneCost> = Vec::new();
    for table in &tables {
        let at = match zones.iter().position(|z| z.zone == table.zone) {
            Some(at) => at,
            None => {
                zones.push(ZoneCost {
                    zone: table.zone.clone(),
                    ..ZoneCost::default()
                });
                zones.len() - 1
            }
        };
        let zone = &mut zones[at];
        zone.tables += 1;
        zone.bytes += table.bytes;
        zone.reclaimable_bytes += table.reclaimable_bytes;
        zone.stored_bytes += table.stored_bytes;
    }
    for zone in &mut zones {
        zone.monthly_cost = prices.storage(zone.stored_bytes);
    }
    let stored_bytes = tables.iter().map(|t| t.stored_bytes).sum();
    Ok(CostReport {
        root: storage.layout().root().to_string(),
        prices: prices.clone(),
        tables,
        zones,
        stored_bytes,
        monthly_cost: prices.storage(stored_bytes),
    })
}

/// The zone of a maintenance target, from its name.
fn zone_of(name: &str) -> String {
    if name.ends_with("(dead letters)") {
        "dead letters".to_string()
    } else if name.ends_with("(quarantine)") {
        "quarantine".to_string()
    } else {
        name.split('.').next().unwrap_or(name).to_string()
    }
}

async fn table_cost(
    storage: &StorageRef,
    target: &MaintenanceTarget,
    prices: &Prices,
) -> Result<Option<TableCost>> {
    let table = storage.open_table(&target.location).await?;
    let Ok(snapshot) = table.snapshot() else {
        return Ok(None);
    };
    let root = storage.object_path(&target.location)?;
    let stats = FileStats::of(&table);
    let mut live: HashSet<Path> = HashSet::new();
    let mut small_files = 0;
    let mut all_rows = 0u64;
    for file in snapshot.log_data().iter() {
        live.insert(Path::from_iter(
            root.parts().chain(file.object_store_path().parts()),
        ));
        small_files += u64::from(2 * (file.size().max(0) as u64) < DEFAULT_TARGET_FILE_BYTES);
        all_rows += file.num_records().unwrap_or(0) as u64;
        if let Some(dv) = file.deletion_vector_descriptor()
            && let Some(location) = lake_core::deletion_vectors::location(&root, &dv)
        {
            live.insert(location);
        }
    }
    let log = root.clone().join("_delta_log");
    let mut cost = TableCost {
        table: target.name.clone(),
        zone: zone_of(&target.name),
        files: stats.files,
        bytes: stats.bytes,
        rows: stats.rows,
        small_files,
        small_file_share: share(small_files, stats.files),
        deletion_vector_files: stats.files_with_deletion_vectors,
        deletion_vector_share: share(stats.deleted_rows, all_rows),
        ..TableCost::default()
    };
    let store = storage.object_store();
    let mut listing = store.list(Some(&root));
    while let Some(object) = listing
        .try_next()
        .await
        .map_err(|e| LakeError::storage(root.to_string(), e))?
    {
        cost.stored_bytes += object.size;
        if object.location.prefix_matches(&log) {
            cost.log_bytes += object.size;
        } else if live.contains(&object.location) {
            if object
                .location
                .filename()
                .is_some_and(|n| n.starts_with("deletion_vector_"))
            {
                cost.deletion_vector_bytes += object.size;
            }
        } else {
            cost.reclaimable_files += 1;
            cost.reclaimable_bytes += object.size;
        }
    }
    cost.monthly_cost = prices.storage(cost.stored_bytes);
    Ok(Some(cost))
}

fn share(part: u64, whole: u64) -> f64 {
    match whole {
        0 => 0.0,
        _ => part as f64 / whole as f64,
    }
}

/// What a query scans.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueryScan {
    /// The query.
    pub sql: String,
    /// The tables it reads.
    pub tables: Vec<String>,
    /// Live data files of those tables, and their bytes: what a scan
    /// without pruning reads.
    pub files_before_pruning: u64,
    /// Bytes of `files_before_pruning`.
    pub bytes_before_pruning: u64,
    /// Files left after partition pruning and file skipping by statistics,
    /// and their bytes: what the plan reads at most.
    pub files_after_pruning: u64,
    /// Bytes of `files_after_pruning`.
    pub bytes_after_pruning: u64,
    /// `bytes_before_pruning` at [`Prices::scan_per_tb`].
    pub cost_before_pruning: f64,
    /// `bytes_after_pruning` at [`Prices::scan_per_tb`].
    pub cost_after_pruning: f64,
}

/// The bytes `sql` (one query over `session`'s tables) would scan, before
/// and after pruning, planned and not run. Engines that bill by bytes read
/// (Athena) bill about the second figure, less what column projection and
/// page skipping save inside each file.
pub async fn query_scan(
    session: &LakeSession,
    storage: &StorageRef,
    sql: &str,
    prices: &Prices,
) -> Result<QueryScan> {
    let frame = session.sql(sql).await?;
    let mut names = BTreeSet::new();
    frame
        .logical_plan()
        .apply(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                names.insert(scan.table_name.to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| LakeError::datafusion(sql, e))?;
    let (mut files_before, mut bytes_before) = (0, 0);
    let mut tables = Vec::new();
    for name in &names {
        let Ok(id) = name.parse::<TableId>() else {
            continue;
        };
        let table = storage
            .open_table(&storage.layout().table_location(&id))
            .await?;
        let stats = FileStats::of(&table);
        files_before += stats.files;
        bytes_before += stats.bytes;
        tables.push(id.to_string());
    }
    let plan = frame
        .create_physical_plan()
        .await
        .map_err(|e| LakeError::datafusion(sql, e))?;
    let mut scanned = BTreeMap::new();
    scanned_files(plan.as_ref(), &mut scanned);
    let bytes_after: u64 = scanned.values().sum();
    Ok(QueryScan {
        sql: sql.to_string(),
        tables,
        files_before_pruning: files_before,
        bytes_before_pruning: bytes_before,
        files_after_pruning: scanned.len() as u64,
        bytes_after_pruning: bytes_after,
        cost_before_pruning: prices.scan(bytes_before),
        cost_after_pruning: prices.scan(bytes_after),
    })
}

/// The files the scans of `plan` read, with their sizes.
fn scanned_files(plan: &dyn ExecutionPlan, out: &mut BTreeMap<String, u64>) {
    if let Some(source) = plan.downcast_ref::<DataSourceExec>()
        && let Some(config) = source.data_source().downcast_ref::<FileScanConfig>()
    {
        for group in &config.file_groups {
            for file in group.iter() {
                out.insert(file.object_meta.location.to_string(), file.object_meta.size);
            }
        }
    }
    for child in plan.children() {
        scanned_files(child.as_ref(), out);
    }
}
