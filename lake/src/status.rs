//! The state of a lake: every table with its version, size and last
//! commit, and how far each stage's bookmark is behind its source.
//!
//! Read from the tables' Delta logs (sizes and row counts are the `add`
//! statistics of the current snapshot, less the rows deletion vectors
//! remove), so a status costs one log read per table and never a scan.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lake_core::deltalake::DeltaTable;
use lake_core::{Bookmark, BookmarkState, Pipeline, Result, StorageExt, TableId, Zone};
use serde::Serialize;
use url::Url;

/// What [`status`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LakeStatus {
    /// The lake root.
    pub root: String,
    /// Every table, by zone then name; dead-letter and quarantine tables after their table.
    pub tables: Vec<TableStatus>,
    /// Every bookmark of every stage.
    pub stages: Vec<StageStatus>,
}

/// One table's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableStatus {
    /// The table's name (`silver.sales.orders`), or the table a dead-letter
    /// or quarantine store belongs to, suffixed (`bronze.shop.orders (dead letters)`).
    pub table: String,
    /// `bronze`, `silver`, `gold`, `dead letters` or `quarantine`.
    pub zone: String,
    /// Where it is.
    pub location: String,
    /// Its latest version; `None` when it was never written.
    pub version: Option<u64>,
    /// Data files in the current snapshot.
    pub files: u64,
    /// Rows in the current snapshot.
    pub rows: u64,
    /// Bytes of the data files in the current snapshot.
    pub bytes: u64,
    /// When the latest version was committed.
    pub last_commit: Option<DateTime<Utc>>,
}

/// How far one stage has read one of its sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StageStatus {
    /// The stage.
    pub stage: String,
    /// The table it writes.
    pub target: String,
    /// The table it reads.
    pub source: String,
    /// The source's latest version.
    pub source_version: Option<u64>,
    /// The last source version the stage has processed.
    pub read_up_to: Option<u64>,
    /// Source versions not processed yet.
    pub versions_behind: u64,
    /// `up to date`, `N versions behind`, `never run`, or why the stage
    /// will rebuild (its source was created again).
    pub state: String,
}

/// The status of every table `pipeline` knows (its stages' tables and
/// every table its catalog lists), with each stage's bookmark.
pub async fn status(pipeline: &Pipeline) -> Result<LakeStatus> {
    let storage = pipeline.storage();
    let layout = storage.layout();
    let mut ids = BTreeSet::new();
    for stage in pipeline.ingest_stages() {
        ids.insert(stage.target().clone());
    }
    for stage in pipeline.refine_stages() {
        ids.insert(stage.target().clone());
        ids.extend(stage.sources());
    }
    for stage in pipeline.aggregate_stages() {
        ids.insert(stage.target().clone());
        ids.extend(stage.sources());
    }
    if let Some(catalog) = pipeline.catalog() {
        for zone in [Zone::Bronze, Zone::Silver, Zone::Gold] {
            for namespace in catalog.list_namespaces(Some(zone)).await? {
                ids.extend(catalog.list_tables(&namespace).await?);
            }
        }
    }
    let mut tables = Vec::new();
    let zone_order = |id: &TableId| match id.zone {
        Zone::Bronze => 0,
        Zone::Silver => 1,
        Zone::Gold => 2,
    };
    let mut ordered: Vec<TableId> = ids.into_iter().collect();
    ordered.sort_by_key(|id| (zone_order(id), id.to_string()));
    for id in &ordered {
        let location = layout.table_location(id);
        tables.push(table_status(storage, &id.to_string(), id.zone.as_str(), &location).await?);
        let (store, kind) = match id.zone {
            Zone::Bronze => (layout.dead_letter(id), "dead letters"),
            Zone::Silver => (layout.quarantine(id), "quarantine"),
            Zone::Gold => continue,
        };
        let side = table_status(storage, &format!("{id} ({kind})"), kind, &store).await?;
        if side.version.is_some() {
            tables.push(side);
        }
    }
    let mut stages = Vec::new();
    let refine = pipeline
        .refine_stages()
        .iter()
        .map(|s| (s.name().to_string(), s.target().clone(), s.bookmarks()));
    let aggregate = pipeline
        .aggregate_stages()
        .iter()
        .map(|s| (s.name().to_string(), s.target().clone(), s.bookmarks()));
    for (stage, target, bookmarks) in refine.chain(aggregate) {
        for (source, bookmark) in bookmarks {
            stages.push(stage_status(pipeline, &stage, &target, &source, &bookmark).await?);
        }
    }
    Ok(LakeStatus {
        root: layout.root().to_string(),
        tables,
        stages,
    })
}

async fn table_status(
    storage: &lake_core::StorageRef,
    name: &str,
    zone: &str,
    location: &Url,
) -> Result<TableStatus> {
    let table = storage.open_table(location).await?;
    let mut status = TableStatus {
        table: name.to_string(),
        zone: zone.to_string(),
        location: location.to_string(),
        version: table.version(),
        files: 0,
        rows: 0,
        bytes: 0,
        last_commit: None,
    };
    if status.version.is_none() {
        return Ok(status);
    }
    let stats = lake_core::maintenance::FileStats::of(&table);
    (status.files, status.bytes, status.rows) = (stats.files, stats.bytes, stats.rows);
    status.last_commit = last_commit(&table).await;
    Ok(status)
}

/// The commit time of the latest version (its `commitInfo` timestamp).
async fn last_commit(table: &DeltaTable) -> Option<DateTime<Utc>> {
    let mut history = table.history(Some(1));
    let info = history.next().await?.ok()?;
    DateTime::from_timestamp_millis(info.in_commit_timestamp.or(info.timestamp)?)
}

async fn stage_status(
    pipeline: &Pipeline,
    stage: &str,
    target: &TableId,
    source: &TableId,
    bookmark: &Bookmark,
) -> Result<StageStatus> {
    let storage = pipeline.storage();
    let layout = storage.layout();
    let source_table = storage.open_table(&layout.table_location(source)).await?;
    let target_table = storage.open_table(&layout.table_location(target)).await?;
    let source_version = source_table.version();
    let mut status = StageStatus {
        stage: stage.to_string(),
        target: target.to_string(),
        source: source.to_string(),
        source_version,
        read_up_to: None,
        versions_behind: 0,
        state: String::new(),
    };
    let Some(latest) = source_version else {
        status.state = "source not created yet".to_string();
        return Ok(status);
    };
    let state = bookmark
        .read(
            &target_table,
            &target.to_string(),
            &source_table,
            &source.to_string(),
        )
        .await?;
    match state {
        BookmarkState::At(read) => {
            status.read_up_to = Some(read);
            status.versions_behind = latest.saturating_sub(read);
            status.state = match status.versions_behind {
                0 => "up to date".to_string(),
                1 => "1 version behind".to_string(),
                n => format!("{n} versions behind"),
            };
        }
        BookmarkState::Replaced { reason } => {
            status.versions_behind = latest + 1;
            status.state = format!("will rebuild: {reason}");
        }
        _ => {
            status.versions_behind = latest + 1;
            status.state = "never run".to_string();
        }
    }
    Ok(status)
}
