//! A lake in a temporary folder with bronze ingestion and SQL over tables.

use lake_bronze::BronzeWriter;
use lake_core::{RefineReport, TableId};
use lake_silver::OrdersSilver;

/// The shared fixture, with silver's own helpers for the reference workload.
pub struct Lake(lake_testing::TestLake);

impl std::ops::Deref for Lake {
    type Target = lake_testing::TestLake;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

pub fn bronze() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}

pub fn silver() -> TableId {
    TableId::silver("sales", "orders").unwrap()
}

impl Lake {
    pub fn new() -> Self {
        Self(lake_testing::TestLake::new())
    }

    /// A lake holding a copy of the lake at `fixture` (under `tests/data/`).
    pub fn copy_of(fixture: &str) -> Self {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(fixture);
        Self(lake_testing::TestLake::copy_of(&source))
    }

    /// A lake in a new bucket of the `moto_server` that `scripts/test` starts.
    #[cfg(feature = "aws")]
    pub fn on_s3() -> Self {
        Self(lake_testing::TestLake::on_s3())
    }

    pub async fn ingest(&self, batch_id: &str, lines: &[String]) {
        self.ingest_into(&bronze(), batch_id, lines).await;
    }

    pub async fn ingest_into(&self, table: &TableId, batch_id: &str, lines: &[String]) {
        let writer = BronzeWriter::new(table.clone()).unwrap();
        self.ingest_lines(&writer, batch_id, lines).await.unwrap();
    }

    pub async fn refine(&self) -> RefineReport {
        let report = OrdersSilver::new(bronze(), silver())
            .unwrap()
            .run(&self.storage)
            .await
            .unwrap();
        report.reconcile().unwrap();
        report
    }

    /// The whole SCD2 table, in a stable order.
    pub async fn history(&self) -> Vec<String> {
        self.rows(
            &silver(),
            "SELECT order_id, customer_id, category, region, amount, status, order_date, metadata, \
             valid_from, valid_to, is_current FROM t ORDER BY order_id, valid_from",
        )
        .await
    }
}

/// An instant on 2025-11-04, as the events of these tests write it.
pub fn t(hour: u32, minute: u32) -> String {
    format!("2025-11-04T{hour:02}:{minute:02}:00Z")
}

/// One event line of the reference workload.
pub fn event(order: &str, status: &str, amount: &str, op: &str, at: &str) -> String {
    lake_testing::events::order_event(order)
        .raw("amount", amount)
        .text("status", status)
        .text("op", op)
        .text("updated_at", at)
        .raw("metadata", "{\"b\":1,\"a\":2}")
        .line()
}
