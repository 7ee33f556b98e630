//! A lake in a temporary folder with bronze ingestion and SQL over tables.

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_core::{
    IngestStage, InputFormat, ObjectStorage, RawBatch, RefineReport, StageContext, StorageRef,
    TableId,
};
use lake_silver::OrdersSilver;

pub struct Lake {
    _dir: Option<tempfile::TempDir>,
    pub storage: StorageRef,
}

pub fn bronze() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}

pub fn silver() -> TableId {
    TableId::silver("sales", "orders").unwrap()
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

    /// A lake holding a copy of the lake at `fixture` (under `tests/data/`).
    pub fn copy_of(fixture: &str) -> Self {
        fn copy(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                match entry.file_type().unwrap().is_dir() {
                    true => copy(&entry.path(), &target),
                    false => drop(std::fs::copy(entry.path(), target).unwrap()),
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(fixture);
        copy(&source, dir.path());
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

    fn context(&self) -> StageContext {
        StageContext::new(Arc::clone(&self.storage)).with_run_id("test".to_string())
    }

    pub async fn ingest(&self, batch_id: &str, lines: &[String]) {
        self.ingest_into(&bronze(), batch_id, lines).await;
    }

    pub async fn ingest_into(&self, table: &TableId, batch_id: &str, lines: &[String]) {
        let text = lines.join("\n");
        let batch = RawBatch::from_bytes(batch_id, InputFormat::JsonLines, text).unwrap();
        let report = BronzeWriter::new(table.clone())
            .unwrap()
            .ingest(&self.context(), batch)
            .await
            .unwrap();
        report.reconcile().unwrap();
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

    /// Rows of `sql` over `table` (registered as `t`), cells joined by `|`.
    pub async fn rows(&self, table: &TableId, sql: &str) -> Vec<String> {
        let location = self.storage.layout().table_location(table);
        self.rows_at(&location, sql).await
    }

    pub async fn rows_at(&self, location: &url::Url, sql: &str) -> Vec<String> {
        lake_testing::table_rows(&self.storage, location, sql)
            .await
            .unwrap()
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
