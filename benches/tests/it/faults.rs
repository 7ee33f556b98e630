//! The whole pipeline (bronze, silver, gold, the file catalog and run
//! records) while 5 % of all storage requests fail.
//!
//! Every batch is first delivered to a pipeline with no retries at all,
//! which almost always gives up: readers must then see every batch whole or
//! not at all. It is then delivered to a pipeline whose requests are retried
//! ([`RetryingStore`], what object_store's HTTP client does for S3) and
//! whose stages are retried with bounded backoff ([`RetryPolicy`]), which
//! completes it. At the end the tables equal those of a healthy run and the
//! counts reconcile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lake::config::PipelineConfig;
use lake_core::{
    InputFormat, ObjectStorage, RawBatch, RetryPolicy, RetryingStore, Storage, StorageRef, TableId,
};
use lake_testing::{FaultPlan, FaultyStore, table_rows};

use crate::support::{same_row, workload};

async fn rows(storage: &StorageRef, table: &TableId, sql: &str) -> Vec<String> {
    let location = storage.layout().table_location(table);
    table_rows(storage, &location, sql).await.unwrap()
}

async fn bronze_by_batch(storage: &StorageRef) -> BTreeMap<String, String> {
    let bronze = TableId::bronze("shop", "orders").unwrap();
    rows(
        storage,
        &bronze,
        "SELECT _batch_id, count(*) FROM t GROUP BY _batch_id",
    )
    .await
    .into_iter()
    .map(|r| {
        let (batch, count) = r.split_once('|').unwrap();
        (batch.to_string(), count.to_string())
    })
    .collect()
}

const SILVER: &str = "SELECT order_id, customer_id, category, region, amount, status, order_date, \
                      valid_from, valid_to, is_current FROM t ORDER BY order_id, valid_from";
const GOLD: &str = "SELECT order_date, category, region, total_count, total_value, avg_value, \
                    min_value, max_value, stddev_value, unique_users, value_per_user \
                    FROM t ORDER BY order_date, category, region";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_finishes_under_a_5_percent_failure_rate() {
    let batches = workload();
    let config = PipelineConfig::reference().unwrap();
    let silver = TableId::silver("sales", "orders").unwrap();
    let gold = TableId::gold("analytics", "daily_summary").unwrap();

    // The healthy run the faulty one must end up equal to.
    let healthy_dir = tempfile::tempdir().unwrap();
    let healthy_root = healthy_dir.path().to_str().unwrap();
    let healthy = config.build(Some(healthy_root)).await.unwrap();
    for (i, text) in batches.iter().enumerate() {
        let id = format!("batch-{:05}", i + 1);
        let raw = RawBatch::from_bytes(&id, InputFormat::JsonLines, text.clone()).unwrap();
        healthy.run_batch(raw).await.unwrap();
    }
    let healthy_storage = config.storage(Some(healthy_root)).unwrap();
    let expected_bronze = bronze_by_batch(&healthy_storage).await;

    let dir = tempfile::tempdir().unwrap();
    let clean = ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap();
    let store = FaultyStore::new(clean.object_store());
    let faulty: StorageRef = Arc::new(ObjectStorage::with_store(
        clean.layout().clone(),
        store.clone(),
        Default::default(),
    ));
    let retrying: StorageRef = Arc::new(ObjectStorage::with_store(
        clean.layout().clone(),
        Arc::new(RetryingStore::new(
            store.clone(),
            RetryPolicy::new(3, Duration::from_millis(2), Duration::from_millis(20)),
        )),
        Default::default(),
    ));
    let reader: StorageRef = Arc::new(clean);
    let bare = config
        .builder_on(faulty)
        .await
        .unwrap()
        .with_retry(RetryPolicy::none())
        .build()
        .unwrap();
    let resilient = config
        .builder_on(retrying)
        .await
        .unwrap()
        .with_retry(RetryPolicy::new(
            5,
            Duration::from_millis(5),
            Duration::from_millis(100),
        ))
        .build()
        .unwrap();
    store.set_plan(FaultPlan::FailFraction {
        fraction: 0.05,
        seed: 20261127,
    });
    let deliver = |i: usize| {
        let id = format!("batch-{:05}", i + 1);
        RawBatch::from_bytes(&id, InputFormat::JsonLines, batches[i].clone()).unwrap()
    };
    let mut gave_up = 0;
    let mut retried_runs = 0;
    for i in 0..batches.len() {
        if let Err(e) = bare.run_batch(deliver(i)).await {
            gave_up += 1;
            assert!(e.is_retryable(), "an injected fault is transient: {e}");
            // Readers see each batch whole or not at all.
            for (batch, count) in bronze_by_batch(&reader).await {
                assert_eq!(
                    Some(&count),
                    expected_bronze.get(&batch),
                    "bronze holds part of {batch} after: {e}"
                );
            }
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            match resilient.run_batch(deliver(i)).await {
                Ok(report) => {
                    for stage in &report.stages {
                        stage.reconcile().unwrap();
                    }
                    break;
                }
                Err(e) => {
                    retried_runs += 1;
                    assert!(attempts < 3, "retries do not carry batch {i} through: {e}");
                }
            }
        }
    }
    store.set_plan(FaultPlan::Healthy);
    assert!(
        store.injected() > 20,
        "faults were injected: {}",
        store.injected()
    );
    assert!(
        gave_up > 0,
        "without retries the pipeline gave up at least once"
    );
    eprintln!(
        "{} faults injected; without retries the pipeline gave up on {gave_up} of {} batches; \
         with them, {retried_runs} runs failed and were delivered again",
        store.injected(),
        batches.len()
    );

    assert_eq!(bronze_by_batch(&reader).await, expected_bronze);
    assert_eq!(
        rows(&reader, &silver, SILVER).await,
        rows(&healthy_storage, &silver, SILVER).await
    );
    let (got, want) = (
        rows(&reader, &gold, GOLD).await,
        rows(&healthy_storage, &gold, GOLD).await,
    );
    assert_eq!(got.len(), want.len());
    for (got, want) in got.iter().zip(&want) {
        assert!(same_row(got, want), "gold differs:\n {got}\n {want}");
    }
    // Nothing lost: every line is a bronze row, a dead letter or blank.
    let bronze = TableId::bronze("shop", "orders").unwrap();
    let lines: usize = batches.iter().map(|b| b.lines().count()).sum();
    let blank: usize = batches
        .iter()
        .map(|b| b.lines().filter(|l| l.trim().is_empty()).count())
        .sum();
    let kept: usize = rows(&reader, &bronze, "SELECT count(*) FROM t").await[0]
        .parse()
        .unwrap();
    let dead = reader.layout().dead_letter(&bronze);
    let dead: usize = table_rows(&reader, &dead, "SELECT count(*) FROM t")
        .await
        .unwrap()[0]
        .parse()
        .unwrap();
    assert_eq!(kept + dead + blank, lines);
}
