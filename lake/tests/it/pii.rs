//! Personal data through the CLI: `pii = { customer_id = "hash" }` in
//! `lake.toml`, the key in `LAKE_PII_KEY` of the `lake` process.

use std::path::Path;

use lake::config::PipelineConfig;
use lake::pii::{KEY_ENV, PII_METADATA, PiiKey};
use lake::{InputFormat, RawBatch, StorageExt, TableId};
use lake_testing::table_rows;

use crate::maintain::{deliveries, pipeline_at};
use crate::support::lake_with_env;

const KEY: &str = "a key for the pii test, kept out of the lake";

const CONFIG: &str = r#"
lake = "lake"
catalog = "file"

[[bronze]]
table = "bronze.shop.orders"

[[silver]]
stage = "orders"
source = "bronze.shop.orders"
target = "silver.sales.orders"
pii = { customer_id = "hash" }

[[gold]]
daily_summary = { source = "silver.sales.orders", target = "gold.analytics.daily_summary" }
"#;

const GOLD: &str = "SELECT order_date, category, region, total_count, total_value, unique_users, \
     round(value_per_user, 9) FROM t ORDER BY order_date, category, region";

async fn rows(root: &Path, table: &str, sql: &str) -> Vec<String> {
    let (storage, _) = pipeline_at(root).await;
    let id: TableId = table.parse().unwrap();
    table_rows(&storage, &storage.layout().table_location(&id), sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashed_customer_id_keeps_gold_exact_and_the_table_and_catalog_record_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let deliveries = deliveries(5);
    for (id, text) in &deliveries {
        std::fs::write(input.join(format!("{id}.jsonl")), text).unwrap();
    }
    std::fs::write(dir.path().join("lake.toml"), CONFIG).unwrap();
    let env = [(KEY_ENV.to_string(), KEY.to_string())];
    lake_with_env(
        dir.path(),
        &env,
        &["run", "--config", "lake.toml", "--input", "in"],
    )
    .expect(0);

    // The same deliveries into a lake that stores the ids as they are.
    let plain = tempfile::tempdir().unwrap();
    let (_, pipeline) = pipeline_at(plain.path()).await;
    for (id, text) in &deliveries {
        let batch = RawBatch::from_bytes(id, InputFormat::JsonLines, text.clone()).unwrap();
        pipeline.run_batch(batch).await.unwrap();
    }
    let lake = dir.path().join("lake");
    // Gold counts distinct customers on the pseudonyms: the same figures.
    let gold = rows(&lake, "gold.analytics.daily_summary", GOLD).await;
    assert!(!gold.is_empty());
    assert_eq!(
        gold,
        rows(plain.path(), "gold.analytics.daily_summary", GOLD).await
    );
    // Silver holds each id's keyed hash, and no id.
    let versions = "SELECT order_id, customer_id, valid_from FROM t ORDER BY order_id, valid_from";
    let key = PiiKey::new(KEY.as_bytes().to_vec()).unwrap();
    let want: Vec<String> = rows(plain.path(), "silver.sales.orders", versions)
        .await
        .into_iter()
        .map(|row| {
            let cells: Vec<&str> = row.split('|').collect();
            format!("{}|{}|{}", cells[0], key.hash(cells[1]), cells[2])
        })
        .collect();
    assert_eq!(rows(&lake, "silver.sales.orders", versions).await, want);

    // The tag is on the column, in the Delta schema and in the catalog.
    let config = PipelineConfig::from_file(dir.path().join("lake.toml")).unwrap();
    let storage = config.storage(Some(lake.to_str().unwrap())).unwrap();
    let silver: TableId = "silver.sales.orders".parse().unwrap();
    let table = storage
        .open_table(&storage.layout().table_location(&silver))
        .await
        .unwrap();
    let schema = table.snapshot().unwrap().snapshot().arrow_schema();
    let tag = |schema: &lake::arrow::datatypes::Schema| {
        schema
            .field_with_name("customer_id")
            .unwrap()
            .metadata()
            .get(PII_METADATA)
            .cloned()
    };
    assert_eq!(tag(&schema).as_deref(), Some("hash"));
    let catalog = config.catalog(&storage).await.unwrap().unwrap();
    let registered = catalog.get_table(&silver).await.unwrap();
    assert_eq!(tag(&registered.schema).as_deref(), Some("hash"));

    // Without the key, the run stops with a readable error naming it.
    let second = tempfile::tempdir().unwrap();
    std::fs::create_dir(second.path().join("in")).unwrap();
    std::fs::write(second.path().join("in/a.jsonl"), &deliveries[0].1).unwrap();
    std::fs::write(second.path().join("lake.toml"), CONFIG).unwrap();
    let ran = lake_with_env(
        second.path(),
        &[],
        &["run", "--config", "lake.toml", "--input", "in"],
    );
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    ran.readable_error(KEY_ENV);
}
