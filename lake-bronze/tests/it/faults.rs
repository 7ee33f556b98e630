//! Writes that fail midway leave every table at its last committed
//! version; a retry completes and the counts still reconcile.

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_core::{
    IngestStage, InputFormat, LakeError, ObjectStorage, RawBatch, StageContext, StorageExt,
};
use lake_testing::{FaultPlan, FaultyStore};

use crate::support::{Lake, orders};

const TEXT: &str = "{\"order_id\":\"a\"}\nbroken\n{\"order_id\":\"b\"}\n";

fn faulty_lake() -> (Lake, Arc<FaultyStore>, StageContext) {
    let lake = Lake::new();
    let store = FaultyStore::new(lake.storage.object_store());
    let storage = ObjectStorage::with_store(
        lake.storage.layout().clone(),
        store.clone(),
        Default::default(),
    );
    let context = StageContext::new(Arc::new(storage)).with_run_id("faults".to_string());
    (lake, store, context)
}

fn batch(id: &str) -> RawBatch {
    RawBatch::from_bytes(id, InputFormat::JsonLines, TEXT).unwrap()
}

async fn versions(lake: &Lake) -> (Option<u64>, Option<u64>) {
    let table = lake
        .storage
        .open_table(&lake.location(&orders()))
        .await
        .unwrap();
    let dlq = lake
        .storage
        .open_table(&lake.dead_letter_location(&orders()))
        .await
        .unwrap();
    (table.version(), dlq.version())
}

#[tokio::test]
async fn a_failed_commit_leaves_the_previous_version_and_a_retry_completes() {
    let (lake, store, context) = faulty_lake();
    let writer = BronzeWriter::new(orders()).unwrap();
    writer.ingest(&context, batch("b1")).await.unwrap();
    // Version 0 of each table is its creation, version 1 the first batch.
    assert_eq!(versions(&lake).await, (Some(1), Some(1)));

    for plan in [FaultPlan::FailCommits, FaultPlan::FailWritesAfter(1)] {
        store.set_plan(plan);
        let err = writer.ingest(&context, batch("b2")).await.unwrap_err();
        assert!(
            matches!(
                err,
                LakeError::Delta { .. }
                    | LakeError::CommitConflict { .. }
                    | LakeError::Storage { .. }
            ),
            "{plan:?}: {err:?}"
        );
        assert!(store.injected() > 0);
        // Readers still see exactly the first batch.
        let table = lake.location(&orders());
        assert_eq!(
            lake.scalar(&table, "SELECT count(*) FROM t").await,
            "2",
            "{plan:?}"
        );
    }
    let (bronze, _) = versions(&lake).await;
    assert_eq!(bronze, Some(1));

    store.set_plan(FaultPlan::Healthy);
    let report = writer.ingest(&context, batch("b2")).await.unwrap();
    report.reconcile().unwrap();
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "4");
    let dlq = lake.dead_letter_location(&orders());
    assert_eq!(lake.scalar(&dlq, "SELECT count(*) FROM t").await, "2");
    let again = writer.ingest(&context, batch("b2")).await.unwrap();
    assert!(again.already_ingested);
}

#[tokio::test]
async fn a_crash_between_the_dead_letter_and_bronze_commits_is_finished_by_a_rerun() {
    let (lake, store, context) = faulty_lake();
    let writer = BronzeWriter::new(orders()).unwrap();
    writer.ingest(&context, batch("b1")).await.unwrap();
    // The dead-letter commit of b2 takes the first two writes (its data
    // file and its log entry); let them through and fail everything after,
    // as a crash right after that commit would.
    store.set_plan(FaultPlan::FailWritesAfter(2));
    writer.ingest(&context, batch("b2")).await.unwrap_err();
    assert_eq!(versions(&lake).await, (Some(1), Some(2)));

    store.set_plan(FaultPlan::Healthy);
    writer.ingest(&context, batch("b2")).await.unwrap();
    // No dead letter was written twice.
    let dlq = lake.dead_letter_location(&orders());
    assert_eq!(
        lake.scalar(&dlq, "SELECT count(*) FROM t WHERE _batch_id = 'b2'")
            .await,
        "1"
    );
    let table = lake.location(&orders());
    assert_eq!(
        lake.scalar(&table, "SELECT count(*) FROM t WHERE _batch_id = 'b2'")
            .await,
        "2"
    );
}

/// An upload cut after a few bytes (a dropped connection mid-PUT) fails the
/// batch, leaves readers on the previous version with nothing partial
/// visible, and a slow but healthy retry completes.
#[tokio::test]
async fn an_upload_cut_midway_leaves_no_partial_data() {
    let (lake, store, context) = faulty_lake();
    let writer = BronzeWriter::new(orders()).unwrap();
    writer.ingest(&context, batch("b1")).await.unwrap();
    let big: String = (0..2_000)
        .map(|i| format!("{{\"order_id\":\"o{i}-{}\"}}\n", "x".repeat(50)))
        .collect();
    let raw = |id: &str| RawBatch::from_bytes(id, InputFormat::JsonLines, big.clone()).unwrap();

    store.set_plan(FaultPlan::CutWritesAfterBytes(4_096));
    let err = writer.ingest(&context, raw("big")).await.unwrap_err();
    assert!(err.is_retryable(), "a cut upload is transient: {err:?}");
    assert!(store.injected() > 0);
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "2");
    assert_eq!(versions(&lake).await.0, Some(1));

    store.set_plan(FaultPlan::Healthy);
    store.set_delay(std::time::Duration::from_millis(2));
    let report = writer.ingest(&context, raw("big")).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(report.rows_written, 2_000);
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "2002");
}
