//! Two silver runs racing on one table: one commits; the other fails with a
//! retryable commit conflict (Delta's application-transaction check), and
//! running it again finishes the job. The history is the one a lone run writes.

use std::sync::Arc;

use lake_core::LakeError;
use lake_silver::OrdersSilver;

use crate::support::{Lake, bronze, event, silver};

fn t(minute: u32) -> String {
    format!("2025-11-04T10:{minute:02}:00Z")
}

fn batch(first: u32) -> Vec<String> {
    (first..first + 20)
        .map(|i| {
            let order = format!("o{}", i % 7);
            let op = if i < 7 { "c" } else { "u" };
            event(&order, &format!("s{i}"), &i.to_string(), op, &t(i))
        })
        .collect()
}

async fn racing_runs_keep_the_history(lake: Lake) {
    lake.ingest("b1", &batch(0)).await;
    lake.ingest("b2", &batch(20)).await;
    let stage = Arc::new(OrdersSilver::new(bronze(), silver()).unwrap());
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let stage = Arc::clone(&stage);
            let storage = Arc::clone(&lake.storage);
            tokio::spawn(async move { stage.run(&storage).await })
        })
        .collect();
    let mut committed = 0;
    for run in runs {
        match run.await.unwrap() {
            Ok(report) => {
                report.reconcile().unwrap();
                committed += 1;
            }
            Err(e) => {
                eprintln!("the losing run: {e}");
                assert!(
                    e.is_retryable() && matches!(e, LakeError::CommitConflict { .. }),
                    "the loser fails with a retryable conflict naming the table: {e:?}"
                );
                assert!(e.to_string().contains("silver.sales.orders"), "{e}");
            }
        }
    }
    assert!(committed >= 1, "one of the racing runs commits");
    // Running again (what a retry does) is a no-op or finishes the work.
    lake.refine().await;
    let raced = lake.history().await;

    let alone = Lake::new();
    alone.ingest("b1", &batch(0)).await;
    alone.ingest("b2", &batch(20)).await;
    alone.refine().await;
    assert_eq!(raced, alone.history().await);
    let changes = silver().changes_table().unwrap();
    let count = "SELECT (SELECT count(*) FROM t) AS events, \
                        (SELECT count(*) FROM (SELECT DISTINCT order_id, updated_at FROM t)) AS distinct_events";
    assert_eq!(
        lake.rows(&changes, count).await,
        ["40|40"],
        "every event is in the log exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_runs_keep_the_history_on_local_files() {
    for _ in 0..3 {
        racing_runs_keep_the_history(Lake::new()).await;
    }
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_runs_keep_the_history_on_s3() {
    racing_runs_keep_the_history(Lake::on_s3()).await;
}
