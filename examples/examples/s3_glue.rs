//! The same pipeline as the quickstart, on S3 with the AWS Glue catalog:
//! only the root URL and the catalog change.
//!
//! Usage (a bucket you own, credentials and region from the usual AWS
//! environment):
//! ```sh
//! AWS_REGION=eu-west-1 cargo run -p lake-examples --features aws --example s3_glue -- s3://my-bucket/lake
//! ```
//! Against a local `moto_server -p 5055` instead of AWS:
//! ```sh
//! AWS_ENDPOINT=http://127.0.0.1:5055 AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
//! AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!   cargo run -p lake-examples --features aws --example s3_glue -- s3://demo/lake
//! ```
//! (the bucket must exist; with moto: `aws --endpoint-url http://127.0.0.1:5055 s3 mb s3://demo`).

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_catalog::GlueCatalog;
use lake_core::{
    CatalogRef, InputFormat, ObjectStorage, Pipeline, RawBatch, RetryPolicy, StorageRef, TableId,
};
use lake_gold::{GoldAggregation, LakeSession, daily_summary};
use lake_silver::OrdersSilver;

#[tokio::main]
async fn main() -> lake_core::Result<()> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "s3://demo/lake".to_string());
    // S3: credentials, region and endpoint come from the AWS_* environment.
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(&root)?);
    // Glue: one database per zone (`bronze`, `silver`, `gold`); AWS_ENDPOINT
    // points it at a local emulator as it does S3.
    let mut glue = GlueCatalog::builder();
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT") {
        glue = glue.endpoint_url(endpoint);
    }
    let catalog: CatalogRef = Arc::new(glue.build().await?);

    let orders = TableId::bronze("shop", "orders")?;
    let silver = TableId::silver("sales", "orders")?;
    let gold = TableId::gold("analytics", "daily_summary")?;
    let pipeline = Pipeline::builder()
        .with_storage(Arc::clone(&storage))
        .with_catalog(Arc::clone(&catalog))
        .with_ingest(Arc::new(BronzeWriter::new(orders.clone())?))
        .with_refine(Arc::new(OrdersSilver::new(orders, silver.clone())?))
        .with_aggregate(Arc::new(GoldAggregation::new(daily_summary(
            silver, gold,
        )?)?))
        // Transient failures that outlast the S3 client's own retries.
        .with_retry(RetryPolicy::default())
        .build()?;

    let lines = [
        r#"{"order_id":"o1","customer_id":"c1","category":"books","region":"eu","amount":12.5,"status":"placed","order_date":"2025-11-04","op":"c","updated_at":"2025-11-04T10:00:00Z"}"#,
        r#"{"order_id":"o1","customer_id":"c1","category":"books","region":"eu","amount":12.5,"status":"paid","order_date":"2025-11-04","op":"u","updated_at":"2025-11-04T11:00:00Z"}"#,
        r#"{"order_id":"o2","customer_id":"c2","category":"toys","region":"us","amount":"7.00","status":"placed","order_date":"2025-11-05","op":"c","updated_at":"2025-11-05T09:00:00Z"}"#,
        "not json at all",
    ];
    let batch = RawBatch::from_bytes("s3-demo-1", InputFormat::JsonLines, lines.join("\n"))?;
    let report = pipeline.run_batch(batch).await?;
    println!("{report}");

    let session = LakeSession::over_catalog(storage, &catalog).await?;
    let rows = session
        .sql("SELECT order_date, category, total_count, total_value FROM gold.analytics.daily_summary ORDER BY order_date")
        .await?
        .collect()
        .await
        .map_err(|e| lake_core::LakeError::datafusion("daily summary", e))?;
    println!(
        "{}",
        lake_core::arrow::util::pretty::pretty_format_batches(&rows)
            .map_err(|e| lake_core::LakeError::arrow("printing", e))?
    );
    Ok(())
}
