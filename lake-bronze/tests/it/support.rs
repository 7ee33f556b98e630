//! Helpers: a lake in a temporary folder and SQL over its tables.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use lake_bronze::BronzeWriter;
use lake_core::{
    IngestReport, IngestStage, InputFormat, ObjectStorage, RawBatch, StageContext, StorageExt,
    StorageRef, TableId,
};
use url::Url;

pub struct Lake {
    pub _dir: tempfile::TempDir,
    pub storage: StorageRef,
}

impl Lake {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
        Self { _dir: dir, storage }
    }

    pub fn context(&self) -> StageContext {
        StageContext {
            storage: Arc::clone(&self.storage),
            catalog: None,
            validators: Vec::new(),
            run_id: "test".to_string(),
        }
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

    /// Runs `sql` over the Delta table at `location`, registered as `t`.
    pub async fn query(&self, location: &Url, sql: &str) -> Vec<RecordBatch> {
        let table = self.storage.open_table(location).await.unwrap();
        assert!(table.version().is_some(), "no table at {location}");
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    /// The single value of a one-row, one-column query, as text.
    pub async fn scalar(&self, location: &Url, sql: &str) -> String {
        let batches = self.query(location, sql).await;
        let batch = batches.iter().find(|b| b.num_rows() > 0).expect("no rows");
        arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap()
    }

    /// All values of a query, one string per row (columns joined by `|`).
    pub async fn rows(&self, location: &Url, sql: &str) -> Vec<String> {
        let mut out = Vec::new();
        for batch in self.query(location, sql).await {
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, row).unwrap())
                    .collect();
                out.push(cells.join("|"));
            }
        }
        out
    }
}

pub fn orders() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}
