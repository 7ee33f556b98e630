//! The rewrite fence on real Delta tables: a commit that replaces files,
//! built on a snapshot from before a compaction, is refused; and the
//! compaction itself keeps rows, partitions and sort order.

use std::sync::Arc;

use lake_core::arrow::array::{Int64Array, RecordBatch, StringArray};
use lake_core::arrow::datatypes::{DataType, Field, Schema};
use lake_core::arrow::util::display::array_value_to_string;
use lake_core::deltalake::DeltaTable;
use lake_core::deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use lake_core::deltalake::kernel::{Action, Transaction};
use lake_core::deltalake::protocol::{DeltaOperation, SaveMode};
use lake_core::maintenance::{FileStats, PartitionLayout, rewrite_fence};
use lake_core::{
    LakeError, Maintain, MaintenanceOptions, MaintenanceTarget, NewTable, ObjectStorage,
    StorageExt, StorageRef, TableId,
};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("part", DataType::Utf8, false),
    ]))
}

/// A table partitioned by `part` with `files` appends of `rows` rows each
/// into part `a`, ids descending across appends.
async fn table(storage: &StorageRef, id: &TableId, files: i64, rows: i64) -> DeltaTable {
    let location = storage.layout().table_location(id);
    let mut table = storage
        .ensure_table_with(
            &location,
            &schema(),
            &NewTable::default().with_partition_columns(["part"]),
        )
        .await
        .unwrap();
    for file in 0..files {
        let ids: Vec<i64> = (0..rows).map(|r| 1_000 - file * rows - r).collect();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(vec!["a"; rows as usize])),
            ],
        )
        .unwrap();
        table = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_partition_columns(["part"])
            .await
            .unwrap();
    }
    table
}

/// Every row of the table as `id/part`, sorted.
async fn ids(storage: &StorageRef, id: &TableId) -> Vec<String> {
    use lake_core::datafusion::prelude::SessionContext;
    let location = storage.layout().table_location(id);
    let table = storage.open_table(&location).await.unwrap();
    let ctx = SessionContext::new();
    let provider = lake_core::delta_provider(&ctx, &table, "t").await.unwrap();
    ctx.register_table("t", provider).unwrap();
    let batches = ctx
        .sql("SELECT id, part FROM t ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for batch in batches {
        let text =
            |column: usize, row: usize| array_value_to_string(batch.column(column), row).unwrap();
        for row in 0..batch.num_rows() {
            out.push(format!("{}/{}", text(0, row), text(1, row)));
        }
    }
    out
}

/// A commit on `stale` (a table as a writer read it before the compaction)
/// that replaces its first file, as silver's and gold's commits do: with a
/// read `predicate` (an incremental run) or without (a rebuild, a full
/// refresh), and `extra` transactions.
async fn replace_first_file(
    stale: &DeltaTable,
    predicate: Option<&str>,
    extra: Vec<Transaction>,
) -> lake_core::Result<u64> {
    let snapshot = stale.snapshot().unwrap();
    let first = snapshot.log_data().iter().next().unwrap();
    let actions = vec![Action::Remove(first.remove_action(true))];
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec!["part".to_string()]),
        predicate: predicate.map(str::to_string),
    };
    let commit =
        CommitBuilder::from(CommitProperties::default().with_application_transactions(extra))
            .with_actions(actions)
            .build(Some(snapshot), stale.log_store(), operation)
            .await
            .map_err(|e| LakeError::delta("t", e))?;
    Ok(commit.version)
}

#[tokio::test]
async fn a_replace_after_a_compaction_it_did_not_see_is_refused_when_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
    let id = TableId::bronze("t", "fenced").unwrap();
    let stale = table(&storage, &id, 4, 10).await;
    let before = ids(&storage, &id).await;
    let (_, report) = Maintain::new(Arc::clone(&storage), id.clone())
        .with_options(MaintenanceOptions::default().with_vacuum(false))
        .await
        .unwrap();
    assert_eq!(
        (report.rewrite.files_removed, report.rewrite.files_added),
        (4, 1),
        "{report:#?}"
    );
    assert_eq!(ids(&storage, &id).await, before);

    // Read through a predicate, deltalake sees the compaction's new file
    // (ConcurrentAppend); with the fence too. Either way: refused,
    // retryable, every row kept.
    for extra in [Vec::new(), vec![rewrite_fence()]] {
        let error = replace_first_file(&stale, Some("part = 'a'"), extra)
            .await
            .unwrap_err();
        assert!(matches!(error, LakeError::CommitConflict { .. }), "{error}");
        assert!(error.is_retryable(), "{error}");
    }
    // Read whole, without a predicate (a rebuild, a full gold refresh):
    // only the fence refuses it.
    let error = replace_first_file(&stale, None, vec![rewrite_fence()])
        .await
        .unwrap_err();
    assert!(matches!(error, LakeError::CommitConflict { .. }), "{error}");
    assert_eq!(ids(&storage, &id).await, before);

    // Unfenced, deltalake 1.1 lets it through (its conflict checker ignores
    // removes with dataChange false and checks added files only against a
    // read predicate): the writer removed a file the compaction had
    // removed already, and the rows it meant to replace stay in the
    // compacted file. Why every replacing commit carries the fence. When
    // this starts failing, deltalake refuses such commits itself and the
    // fence is a second guard.
    replace_first_file(&stale, None, Vec::new()).await.unwrap();
    assert_eq!(
        ids(&storage, &id).await,
        before,
        "the rows the writer replaced are still there"
    );
}

#[tokio::test]
async fn compaction_keeps_rows_and_partitions_and_sorts_as_the_layout_says() {
    let dir = tempfile::tempdir().unwrap();
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
    let id = TableId::bronze("t", "sorted").unwrap();
    table(&storage, &id, 5, 4).await;
    let before = ids(&storage, &id).await;
    let target = MaintenanceTarget::table(storage.layout(), &id).with_layout(
        PartitionLayout::new("part", "a")
            .with_sort_by(["id"])
            .with_max_rows_per_file(10),
    );
    let (table, report) = Maintain::target(Arc::clone(&storage), target)
        .with_options(MaintenanceOptions::default().with_vacuum(false))
        .await
        .unwrap();
    // Files of 4 rows, at most 10 per file: two pairs merge, the fifth file
    // alone would gain nothing and stays.
    assert_eq!(
        (report.rewrite.files_removed, report.rewrite.files_added),
        (4, 2),
        "{report:#?}"
    );
    assert_eq!(FileStats::of(&table).rows, 20);
    assert_eq!(ids(&storage, &id).await, before);
    let root = storage.layout().table_location(&id).to_file_path().unwrap();
    let mut merged = 0;
    for file in table.snapshot().unwrap().log_data().iter() {
        assert_eq!(
            file.partition_values_map()
                .get("part")
                .cloned()
                .flatten()
                .as_deref(),
            Some("a")
        );
        let bytes = std::fs::read(root.join(file.path().as_ref())).unwrap();
        let reader =
            lake_core::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(bytes),
            )
            .unwrap()
            .build()
            .unwrap();
        let mut values = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            values.extend(column.values().iter().copied());
        }
        if values.len() == 8 {
            merged += 1;
            assert!(
                values.windows(2).all(|w| w[0] <= w[1]),
                "not sorted by id: {values:?}"
            );
        }
    }
    assert_eq!(merged, 2);
    // A commit of the compaction is not a data change: incremental readers skip it.
    let version = report.versions[0];
    let actions = lake_core::commit_actions(&table, version, "t")
        .await
        .unwrap();
    let files: Vec<_> = actions
        .iter()
        .filter_map(|a| a.get("add").or_else(|| a.get("remove")))
        .collect();
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|f| !lake_core::changes_data(f)),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.pointer("/txn/appId").and_then(|v| v.as_str())
                == Some(lake_core::maintenance::REWRITE_FENCE)),
        "the compaction carries the fence: {actions:?}"
    );
}
