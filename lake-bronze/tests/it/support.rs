//! Helpers: a lake in a temporary folder and SQL over its tables.

use lake_bronze::BronzeWriter;
use lake_core::{IngestReport, IngestStage, InputFormat, RawBatch, TableId};
use url::Url;

/// The shared fixture, with bronze's own helpers.
pub struct Lake(lake_testing::TestLake);

impl std::ops::Deref for Lake {
    type Target = lake_testing::TestLake;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Lake {
    pub fn new() -> Self {
        Self(lake_testing::TestLake::new())
    }

    /// A lake in a new bucket of the `moto_server` that `scripts/test` starts.
    #[cfg(feature = "aws")]
    pub fn on_s3() -> Self {
        Self(lake_testing::TestLake::on_s3())
    }

    pub async fn ingest(&self, writer: &BronzeWriter, batch_id: &str, text: &str) -> IngestReport {
        let batch =
            RawBatch::from_bytes(batch_id, InputFormat::JsonLines, text.to_string()).unwrap();
        let report = writer.ingest(&self.context(), batch).await.unwrap();
        report.reconcile().unwrap();
        report
    }

    pub fn dead_letter_location(&self, table: &TableId) -> Url {
        self.storage.layout().dead_letter(table)
    }

    /// All values of a query, one string per row (columns joined by `|`).
    pub async fn rows(&self, location: &Url, sql: &str) -> Vec<String> {
        self.rows_at(location, sql).await
    }
}

pub fn orders() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}
