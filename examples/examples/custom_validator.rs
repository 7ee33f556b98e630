//! A custom expectation in the pipeline: a `Validator` of your own.
//!
//! The rule here: an order from region `eu` must not exceed 1,000. Rows
//! that break it are dropped from silver and kept in
//! `_quarantine/sales/orders` with the rule's name as the reason, and the
//! run report counts them; nothing is lost.
//!
//! Usage: `cargo run -p lake-examples --example custom_validator [LAKE_DIR]`

use std::sync::Arc;

use async_trait::async_trait;
use lake_bronze::BronzeWriter;
use lake_core::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use lake_core::arrow::datatypes::Float64Type;
use lake_core::{
    Action, InputFormat, LakeError, ObjectStorage, Pipeline, RawBatch, Result, RuleResult,
    StorageRef, TableId, Validation, Validator,
};
use lake_silver::OrdersSilver;

/// `amount <= 1000` for orders of region `eu`; rows that fail are dropped.
#[derive(Debug)]
struct EuAmountCap;

#[async_trait]
impl Validator for EuAmountCap {
    fn name(&self) -> &str {
        "eu_amount_cap"
    }

    async fn validate(&self, batch: &RecordBatch) -> Result<Validation> {
        let missing = |column: &str| LakeError::Schema {
            table: "silver.sales.orders".to_string(),
            message: format!("rule eu_amount_cap needs column `{column}`"),
        };
        let region = batch
            .column_by_name("region")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| missing("region"))?;
        let amount = batch
            .column_by_name("amount")
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| missing("amount"))?;
        // Vectorised would be arrow's `eq` and `gt` kernels; a loop reads
        // more plainly in an example. Null in means "not applicable".
        let failed: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                (region.is_valid(i) && amount.is_valid(i))
                    .then(|| region.value(i) == "eu" && amount.value(i) > 1000.0)
            })
            .collect();
        Ok(Validation::new(vec![RuleResult::from_mask(
            "eu_amount_cap",
            Action::Drop,
            failed,
        )]))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "lake-demo-validator".to_string());
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(&root)?);
    let bronze = TableId::bronze("shop", "orders")?;
    let silver = TableId::silver("sales", "orders")?;
    let pipeline = Pipeline::builder()
        .with_storage(Arc::clone(&storage))
        .with_ingest(Arc::new(BronzeWriter::new(bronze.clone())?))
        .with_refine(Arc::new(OrdersSilver::new(bronze, silver.clone())?))
        .with_validator(silver.clone(), Arc::new(EuAmountCap))
        .build()?;

    let lines = [
        (1, "eu", "250.00"),
        (2, "eu", "4999.99"),
        (3, "us", "4999.99"),
        (4, "eu", "null"),
    ]
    .map(|(n, region, amount)| {
        format!(
            "{{\"order_id\":\"o{n}\",\"customer_id\":\"c{n}\",\"region\":\"{region}\",\
             \"amount\":{amount},\"order_date\":\"2025-11-04\",\"op\":\"c\",\
             \"updated_at\":\"2025-11-04T10:00:0{n}Z\"}}"
        )
    })
    .join("\n");
    let batch = RawBatch::from_bytes("validator-demo-1", InputFormat::JsonLines, lines)?;
    let report = pipeline.run_batch(batch).await?;
    print!("{report}");
    let totals = report.totals();
    println!(
        "{} valid, {} quarantined (lake under {})",
        totals.valid,
        totals.quarantined,
        storage.layout().root()
    );
    Ok(())
}
