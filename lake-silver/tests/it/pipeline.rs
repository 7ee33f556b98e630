//! Bronze and silver composed in a Pipeline; catching up after a crash;
//! a silver run that fails midway leaves every table as it was.

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_catalog::MemoryCatalog;
use lake_core::{
    CatalogRef, InputFormat, ObjectStorage, Pipeline, RawBatch, StorageExt, StorageRef, TableId,
};
use lake_silver::OrdersSilver;
use lake_testing::{FaultPlan, FaultyStore};

use crate::support::{Lake, bronze, event, silver};

/// The lake's storage behind a store that fails as told.
fn faulty(lake: &Lake) -> (Arc<FaultyStore>, StorageRef) {
    let store = FaultyStore::new(lake.storage.object_store());
    let storage: StorageRef = Arc::new(ObjectStorage::with_store(
        lake.storage.layout().clone(),
        store.clone(),
        Default::default(),
    ));
    (store, storage)
}

fn batch(id: &str, lines: &[String]) -> RawBatch {
    RawBatch::from_bytes(id, InputFormat::JsonLines, lines.join("\n")).unwrap()
}

fn pipeline(storage: StorageRef, with_silver: bool) -> Pipeline {
    pipeline_with(storage, with_silver, Arc::new(MemoryCatalog::new()))
}

fn pipeline_with(storage: StorageRef, with_silver: bool, catalog: CatalogRef) -> Pipeline {
    let mut builder = Pipeline::builder()
        .with_storage(storage)
        .with_catalog(catalog)
        .with_ingest(Arc::new(BronzeWriter::new(bronze()).unwrap()));
    if with_silver {
        builder = builder.with_refine(Arc::new(OrdersSilver::new(bronze(), silver()).unwrap()));
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn run_batch_then_catch_up_after_a_crash_between_stages() {
    let lake = Lake::new();
    let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
    let full = pipeline_with(Arc::clone(&lake.storage), true, Arc::clone(&catalog));
    let report = full
        .run_batch(batch(
            "b1",
            &[
                event("o1", "placed", "1", "c", "2025-11-04T10:00:00Z"),
                "oops".into(),
            ],
        ))
        .await
        .unwrap();
    let totals = report.totals();
    assert_eq!(
        (
            totals.input_records,
            totals.bronze_rows,
            totals.dead_lettered
        ),
        (2, 1, 1)
    );
    assert_eq!(
        (totals.refine_rows_read, totals.valid, totals.quarantined),
        (1, 1, 0)
    );

    // The process "crashed" after bronze: only the ingest stage ran.
    let bronze_only = pipeline(Arc::clone(&lake.storage), false);
    bronze_only
        .run_batch(batch(
            "b2",
            &[event("o1", "paid", "1", "u", "2025-11-04T11:00:00Z")],
        ))
        .await
        .unwrap();
    assert_eq!(lake.history().await.len(), 1, "silver has not seen b2 yet");

    let caught_up = full.run_pending().await.unwrap();
    assert_eq!(caught_up.totals().refine_rows_read, 1);
    assert_eq!(lake.history().await.len(), 2);
    assert_eq!(
        full.run_pending().await.unwrap().totals().refine_rows_read,
        0
    );
}

#[tokio::test]
async fn a_failed_silver_run_changes_nothing_and_a_rerun_completes() {
    let lake = Lake::new();
    let (store, storage) = faulty(&lake);
    let refine = OrdersSilver::new(bronze(), silver()).unwrap();
    lake.ingest(
        "b1",
        &[event("o1", "placed", "1", "c", "2025-11-04T10:00:00Z")],
    )
    .await;
    refine.run(&storage).await.unwrap();
    let before = lake.history().await;

    lake.ingest(
        "b2",
        &[
            event("o1", "paid", "1", "u", "2025-11-04T11:00:00Z"),
            "{\"order_id\":null}".to_string(),
        ],
    )
    .await;
    // Fail at each write in turn: after the quarantine commit, after the
    // changes commit, at the SCD2 commit.
    for after in [0, 2, 4] {
        store.set_plan(FaultPlan::FailWritesAfter(after));
        assert!(
            refine.run(&storage).await.is_err(),
            "failing after {after} writes"
        );
        assert_eq!(
            lake.history().await,
            before,
            "silver unchanged after {after} writes"
        );
    }
    store.set_plan(FaultPlan::Healthy);
    let report = refine.run(&storage).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(lake.history().await.len(), 2);
    // Neither the event log nor quarantine holds anything twice.
    let changes = silver().changes_table().unwrap();
    let counts = lake
        .rows(
            &changes,
            "SELECT count(*), count(DISTINCT updated_at) FROM t",
        )
        .await;
    assert_eq!(counts, vec!["2|2"]);
    let quarantine = lake
        .rows_at(
            &lake.storage.layout().quarantine(&silver()),
            "SELECT count(*) FROM t",
        )
        .await;
    assert_eq!(quarantine, vec!["1"]);
}

#[tokio::test]
async fn rows_quarantined_by_a_failed_run_are_not_quarantined_again_after_bronze_moved() {
    let lake = Lake::new();
    let (store, storage) = faulty(&lake);
    let refine = OrdersSilver::new(bronze(), silver()).unwrap();
    let quarantine = lake.storage.layout().quarantine(&silver());
    let invalid = |n: u32| format!("{{\"order_id\":null,\"n\":{n}}}");
    lake.ingest(
        "b0",
        &[
            event("o1", "placed", "1", "c", "2025-11-04T10:00:00Z"),
            invalid(0),
        ],
    )
    .await;
    refine.run(&storage).await.unwrap();
    lake.ingest(
        "b1",
        &[
            event("o1", "paid", "1", "u", "2025-11-04T11:00:00Z"),
            invalid(1),
        ],
    )
    .await;
    // The quarantine commit lands (its file and its commit), then the run
    // fails.
    store.set_plan(FaultPlan::FailWritesAfter(2));
    assert!(refine.run(&storage).await.is_err());
    store.set_plan(FaultPlan::Healthy);
    let count = "SELECT count(*) FROM t";
    assert_eq!(lake.rows_at(&quarantine, count).await, vec!["2"]);
    assert_eq!(lake.history().await.len(), 1);

    // Bronze moves on before the retry.
    lake.ingest(
        "b2",
        &[
            event("o1", "sent", "1", "u", "2025-11-04T12:00:00Z"),
            invalid(2),
        ],
    )
    .await;
    let report = refine.run(&storage).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.rows_read, report.quarantined), (4, 2));
    let held = lake
        .rows_at(&quarantine, "SELECT _raw FROM t ORDER BY _bronze_version")
        .await;
    assert_eq!(held, vec![invalid(0), invalid(1), invalid(2)]);
    let versions = "SELECT count(DISTINCT _bronze_version) FROM t";
    assert_eq!(lake.rows_at(&quarantine, versions).await, vec!["3"]);
    assert_eq!(lake.history().await.len(), 3);
}

#[tokio::test]
async fn a_backlog_is_processed_in_bounded_commits_with_the_same_result() {
    let lake = Lake::new();
    for b in 0..5u32 {
        let lines: Vec<String> = (0..10u32)
            .map(|i| {
                let at = format!("2025-11-04T{:02}:{:02}:00Z", 10 + b, i);
                event(
                    &format!("o{}", (b * 3 + i) % 12),
                    "placed",
                    &i.to_string(),
                    "u",
                    &at,
                )
            })
            .collect();
        lake.ingest(&format!("b{b}"), &lines).await;
    }
    let sliced = OrdersSilver::new(bronze(), silver())
        .unwrap()
        .with_max_rows_per_commit(15);
    let report = sliced.run(&lake.storage).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(report.rows_read, 50);
    let range = report.source_versions[&bronze().to_string()];
    let bronze_table = lake
        .storage
        .open_table(&lake.storage.layout().table_location(&bronze()))
        .await
        .unwrap();
    assert_eq!(
        (range.first, range.last),
        (0, bronze_table.version().unwrap())
    );
    // One batch of 10 rows per commit: five SCD2 commits, after creation.
    let silver_table = lake
        .storage
        .open_table(&lake.storage.layout().table_location(&silver()))
        .await
        .unwrap();
    assert!(
        silver_table.version().unwrap() >= 5,
        "{:?}",
        silver_table.version()
    );

    let whole = TableId::silver("sales", "orders_whole").unwrap();
    OrdersSilver::new(bronze(), whole.clone())
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap();
    let columns = "SELECT order_id, amount, valid_from, valid_to, is_current FROM t \
                   ORDER BY order_id, valid_from";
    assert_eq!(
        lake.rows(&silver(), columns).await,
        lake.rows(&whole, columns).await
    );
}
