//! The whole medallion flow with one test body on two storage backends:
//! local files with the embedded file catalog, and S3 with the Glue catalog,
//! both served by the `moto_server` that `scripts/test` starts.

use crate::support::workload;
use lake::config::PipelineConfig;
use lake_core::{CatalogExt, InputFormat, PartitionFilter, RawBatch, RunTotals, TableId};

/// What a run left in the lake, in a form two backends can be compared by.
#[derive(Debug, PartialEq)]
struct Outcome {
    totals: RunTotals,
    silver: Vec<String>,
    gold: Vec<String>,
}

/// Runs the reference workload through the pipeline `config` describes on
/// the lake at `lake`, checks what every backend must satisfy, and returns
/// the tables.
async fn medallion_flow(config: PipelineConfig, lake: &str) -> Outcome {
    let batches = workload();
    let pipeline = config.build(Some(lake)).await.unwrap();
    let mut totals = RunTotals::default();
    for (i, text) in batches.iter().enumerate() {
        let id = format!("batch-{:05}", i + 1);
        let raw = RawBatch::from_bytes(&id, InputFormat::JsonLines, text.clone()).unwrap();
        let report = pipeline.run_batch(raw).await.unwrap();
        totals += report.totals();
    }
    let lines: u64 = batches.iter().map(|b| b.lines().count() as u64).sum();
    assert_eq!(totals.input_records, lines, "every line was read");
    assert_eq!(
        totals.input_records,
        totals.bronze_rows + totals.dead_lettered + totals.blank_lines,
        "bronze reconciles: {totals:?}"
    );
    assert!(totals.dead_lettered > 0, "the workload has broken lines");
    assert_eq!(
        totals.bronze_rows,
        totals.valid + totals.quarantined,
        "silver reconciles: {totals:?}"
    );

    // Delivering a batch again adds nothing anywhere.
    let again =
        RawBatch::from_bytes("batch-00001", InputFormat::JsonLines, batches[0].clone()).unwrap();
    let rerun = pipeline.run_batch(again).await.unwrap().totals();
    assert_eq!((rerun.bronze_rows, rerun.valid), (0, 0), "{rerun:?}");

    let storage = config.storage(Some(lake)).unwrap();
    let layout = storage.layout();
    let bronze = TableId::bronze("shop", "orders").unwrap();
    let silver = TableId::silver("sales", "orders").unwrap();
    let gold = TableId::gold("analytics", "daily_summary").unwrap();
    let rows = |table: &TableId, sql: &str| {
        let storage = storage.clone();
        let location = layout.table_location(table);
        let sql = sql.to_string();
        async move {
            lake_testing::table_rows(&storage, &location, &sql)
                .await
                .unwrap()
        }
    };
    let bronze_count = rows(&bronze, "SELECT count(*) FROM t").await;
    assert_eq!(bronze_count, [totals.bronze_rows.to_string()]);
    let silver_rows = rows(
        &silver,
        "SELECT order_id, customer_id, category, region, amount, status, order_date, \
                valid_from, valid_to, is_current \
         FROM t ORDER BY order_id, valid_from",
    )
    .await;
    assert!(!silver_rows.is_empty());
    let gold_rows = rows(
        &gold,
        "SELECT order_date, category, region, total_count, total_value, avg_value, \
                min_value, max_value, stddev_value, unique_users, value_per_user \
         FROM t ORDER BY order_date, category, region",
    )
    .await;
    // Gold counts what silver holds as current, group by group.
    let groups = "order_date, category, region";
    let current = rows(
        &silver,
        &format!(
            "SELECT {groups}, count(*) FROM t WHERE is_current GROUP BY {groups} ORDER BY {groups}"
        ),
    )
    .await;
    let gold_counts = rows(
        &gold,
        &format!("SELECT {groups}, total_count FROM t ORDER BY {groups}"),
    )
    .await;
    assert_eq!(gold_counts, current);

    // The catalog knows every table and bronze's partitions.
    let catalog = config.catalog(&storage).await.unwrap().expect("a catalog");
    for table in [&bronze, &silver, &gold] {
        assert!(
            catalog.table_exists(table).await.unwrap(),
            "{table} is registered"
        );
        assert_eq!(
            catalog.get_table(table).await.unwrap().location,
            layout.table_location(table)
        );
    }
    let partitions = catalog
        .list_partitions(&bronze, &PartitionFilter::all())
        .await
        .unwrap();
    assert!(!partitions.is_empty(), "bronze partitions are registered");

    Outcome {
        totals,
        silver: silver_rows,
        gold: gold_rows,
    }
}

fn local_config() -> PipelineConfig {
    PipelineConfig::reference().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_with_the_file_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = medallion_flow(local_config(), dir.path().to_str().unwrap()).await;
    assert!(outcome.totals.valid > 0);
}

#[cfg(feature = "aws")]
fn s3_glue_config(endpoint: &str) -> PipelineConfig {
    let mut config = PipelineConfig::reference().unwrap();
    config.storage = lake_testing::moto_s3_options(endpoint)
        .into_iter()
        .collect();
    config.catalog = lake::config::CatalogKind::Glue;
    let mut glue = lake::config::GlueConfig::default();
    glue.endpoint_url = Some(endpoint.to_string());
    glue.region = Some("us-east-1".into());
    // One database per zone, as by default, under a name of its own.
    glue.database_template = Some(format!("{}_{{zone}}", lake_testing::unique_name("t")));
    glue.access_key_id = Some("testing".into());
    glue.secret_access_key = Some("testing".into());
    config.glue = Some(glue);
    config
}

/// The same body on S3 and Glue gives exactly the tables it gives on local files.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_with_glue_matches_local_files() {
    let endpoint = lake_testing::moto_endpoint();
    let bucket = lake_testing::moto_bucket(&endpoint);
    let on_s3 = medallion_flow(s3_glue_config(&endpoint), &format!("s3://{bucket}/lake")).await;
    let dir = tempfile::tempdir().unwrap();
    let on_disk = medallion_flow(local_config(), dir.path().to_str().unwrap()).await;
    assert_eq!(on_s3.totals, on_disk.totals);
    assert_eq!(
        on_s3.silver, on_disk.silver,
        "silver is the same on both backends"
    );
    assert_eq!(on_s3.gold.len(), on_disk.gold.len());
    for (s3, disk) in on_s3.gold.iter().zip(&on_disk.gold) {
        assert!(
            crate::support::same_row(s3, disk),
            "gold differs:\n s3:   {s3}\n disk: {disk}"
        );
    }
}
