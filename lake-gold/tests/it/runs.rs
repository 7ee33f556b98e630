//! Run records: lineage from gold back to the delivered batches.

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_core::{Ident, InputFormat, Pipeline, RUNS, RawBatch, TableId};
use lake_silver::OrdersSilver;

use crate::support::{Lake, bronze, event, silver};

fn at(minute: u32) -> String {
    format!("2025-12-01T10:{minute:02}:00Z")
}

#[tokio::test]
async fn run_records_answer_which_batches_produced_a_version() {
    let lake = Lake::new();
    let pipeline = Pipeline::builder()
        .with_storage(Arc::clone(&lake.storage))
        .with_ingest(Arc::new(BronzeWriter::new(bronze()).unwrap()))
        .with_refine(Arc::new(OrdersSilver::new(bronze(), silver()).unwrap()))
        .with_aggregate(Arc::new(lake.gold.clone()))
        .build()
        .unwrap();
    let deliver = |id: &str, lines: Vec<String>| {
        RawBatch::from_bytes(id, InputFormat::JsonLines, lines.join("\n")).unwrap()
    };
    pipeline
        .run_batch(deliver(
            "b1",
            vec![event(
                "o1",
                Some("c1"),
                "books",
                Some("1"),
                "2025-11-01",
                "c",
                &at(1),
            )],
        ))
        .await
        .unwrap();
    // Two batches land in bronze before silver runs (another service
    // ingests), then one catch-up run refines both.
    let ingest_only = Pipeline::builder()
        .with_storage(Arc::clone(&lake.storage))
        .with_ingest(Arc::new(BronzeWriter::new(bronze()).unwrap()))
        .build()
        .unwrap();
    for (id, minute) in [("b2", 2), ("b3", 3)] {
        ingest_only
            .run_batch(deliver(
                id,
                vec![event(
                    "o2",
                    Some("c2"),
                    "toys",
                    Some("2"),
                    "2025-11-02",
                    "u",
                    &at(minute),
                )],
            ))
            .await
            .unwrap();
    }
    let catch_up = pipeline.run_pending().await.unwrap();
    let silver_version = catch_up.stages[0].outcome.clone();
    let lake_core::StageOutcome::Refine(refined) = silver_version else {
        panic!("the first pending stage refines");
    };
    let silver_version = refined.table_versions[&silver().to_string()];

    // A run that fails before any stage is recorded as failed, with its error.
    let stray = deliver("b4", vec![]).with_target(TableId::bronze("shop", "returns").unwrap());
    assert!(pipeline.run_batch(stray).await.is_err());

    let runs = lake.storage.layout().metadata(&Ident::new(RUNS).unwrap());
    let rows = |sql: String| {
        let storage = Arc::clone(&lake.storage);
        let runs = runs.clone();
        async move {
            lake_testing::table_rows(&storage, &runs, &sql)
                .await
                .unwrap()
        }
    };
    let batches = rows(format!(
        "SELECT i.batch_id FROM t s JOIN t i \
           ON i.target = s.source AND i.target_version BETWEEN s.source_first AND s.source_last \
         WHERE s.target = 'silver.sales.orders' AND s.target_version = {silver_version} \
         ORDER BY i.batch_id"
    ))
    .await;
    assert_eq!(batches, ["b2", "b3"], "the catch-up run refined b2 and b3");
    let gold_sources = rows(
        "SELECT source, source_first, source_last, status FROM t \
         WHERE kind = 'aggregate' ORDER BY started_at"
            .to_string(),
    )
    .await;
    assert_eq!(
        gold_sources,
        [
            "silver.sales.orders|0|1|succeeded",
            &format!("silver.sales.orders|2|{silver_version}|succeeded"),
        ]
    );
    let failed =
        rows("SELECT batch_id, stage, error FROM t WHERE status = 'failed'".to_string()).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("b4||"), "{failed:?}");
    assert!(failed[0].contains("bronze.shop.returns"), "{failed:?}");
}
