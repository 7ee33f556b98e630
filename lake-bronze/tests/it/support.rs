//! Helpers: a lake in a temporary folder and SQL over its tables.

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_core::{
    IngestReport, IngestStage, InputFormat, ObjectStorage, RawBatch, StageContext, StorageRef,
    TableId,
};
use url::Url;

pub struct Lake {
    pub _dir: Option<tempfile::TempDir>,
    pub storage: StorageRef,
}

impl Lake {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
        Self {
            _dir: Some(dir),
            storage,
        }
    }

    /// A lake in a new bucket of the `moto_server` that `scripts/test` starts.
    #[cfg(feature = "aws")]
    pub fn on_s3() -> Self {
        Self {
            _dir: None,
            storage: Arc::new(lake_testing::moto_storage()),
        }
    }

    pub fn context(&self) -> StageContext {
        StageContext::new(Arc::clone(&self.storage)).with_run_id("test".to_string())
    }

    pub async fn ingest(&self, writer: &BronzeWriter, batch_id: &str, text: &str) -> IngestReport {
        let batch =
            RawBatch::from_bytes(batch_id, InputFormat::JsonLines, text.to_string()).unwrap();
        let report = writer.ingest(&self.context(), batch).await.unwrap();
        report.reconcile().unwrap();
        report
    }

    pub fn location(&self, table: &TableId) -> Url {
        self.storage.layout().table_location(table)
    }

    pub fn dead_letter_location(&self, table: &TableId) -> Url {
        self.storage.layout().dead_letter(table)
    }

    /// The single value of a one-row, one-column query, as text.
    pub async fn scalar(&self, location: &Url, sql: &str) -> String {
        let rows = self.rows(location, sql).await;
        assert!(!rows.is_empty(), "no table or no rows at {location}");
        rows[0].clone()
    }

    /// All values of a query, one string per row (columns joined by `|`).
    pub async fn rows(&self, location: &Url, sql: &str) -> Vec<String> {
        lake_testing::table_rows(&self.storage, location, sql)
            .await
            .unwrap()
    }
}

pub fn orders() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}
