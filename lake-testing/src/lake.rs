//! [`TestLake`]: the lake fixture the crates' tests share: a lake in a
//! temporary folder (or a fresh bucket of the test `moto_server`), a stage
//! context over it, and SQL over its tables as rows of text.
//!
//! It knows no zone crate (they depend on this one for their tests), so it
//! ingests through any [`IngestStage`] it is handed.

use std::path::Path;
use std::sync::Arc;

use lake_core::{
    IngestReport, IngestStage, InputFormat, ObjectStorage, RawBatch, Result, StageContext,
    StorageRef, TableId,
};
use url::Url;

/// A lake for one test; the folder is removed when it is dropped.
#[derive(Debug)]
pub struct TestLake {
    _dir: Option<tempfile::TempDir>,
    /// The lake's storage.
    pub storage: StorageRef,
}

impl Default for TestLake {
    fn default() -> Self {
        Self::new()
    }
}

impl TestLake {
    /// An empty lake in a new temporary folder.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        Self::in_folder(dir)
    }

    /// A lake holding a copy of the lake in `fixture` (a folder of
    /// committed test data), so a test may write to it.
    pub fn copy_of(fixture: &Path) -> Self {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("a folder in the temporary folder");
            let entries = std::fs::read_dir(from)
                .unwrap_or_else(|e| panic!("reading the fixture {}: {e}", from.display()));
            for entry in entries {
                let entry = entry.expect("a fixture entry");
                let target = to.join(entry.file_name());
                if entry.file_type().expect("a file type").is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), &target).expect("a copied fixture file");
                }
            }
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        copy(fixture, dir.path());
        Self::in_folder(dir)
    }

    /// A lake in a new bucket of the `moto_server` that `scripts/test`
    /// starts (see [`crate::moto_storage`]).
    pub fn on_s3() -> Self {
        Self {
            _dir: None,
            storage: Arc::new(crate::moto_storage()),
        }
    }

    fn in_folder(dir: tempfile::TempDir) -> Self {
        let root = dir.path().to_str().expect("a UTF-8 temporary path");
        let storage = Arc::new(ObjectStorage::from_url(root).expect("a lake on local files"));
        Self {
            _dir: Some(dir),
            storage,
        }
    }

    /// A stage context over the lake, with the run id `test`.
    pub fn context(&self) -> StageContext {
        StageContext::new(Arc::clone(&self.storage)).with_run_id("test".to_string())
    }

    /// Where `table` lives.
    pub fn location(&self, table: &TableId) -> Url {
        self.storage.layout().table_location(table)
    }

    /// Ingests `lines` (JSON lines, joined by LF) as batch `batch_id`
    /// through `stage`, and checks that the report reconciles.
    pub async fn ingest_lines(
        &self,
        stage: &dyn IngestStage,
        batch_id: &str,
        lines: &[String],
    ) -> Result<IngestReport> {
        let batch = RawBatch::from_bytes(batch_id, InputFormat::JsonLines, lines.join("\n"))?;
        let report = stage.ingest(&self.context(), batch).await?;
        report.reconcile()?;
        Ok(report)
    }

    /// Rows of `sql` over `table` (registered as `t`), cells joined by `|`.
    pub async fn rows(&self, table: &TableId, sql: &str) -> Vec<String> {
        self.rows_at(&self.location(table), sql).await
    }

    /// Rows of `sql` over the Delta table at `location` (as `t`).
    pub async fn rows_at(&self, location: &Url, sql: &str) -> Vec<String> {
        crate::table_rows(&self.storage, location, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql} over {location}: {e}"))
    }

    /// The single value of a one-row, one-column query, as text.
    pub async fn scalar(&self, location: &Url, sql: &str) -> String {
        let rows = self.rows_at(location, sql).await;
        assert!(!rows.is_empty(), "no table or no rows at {location}");
        rows[0].clone()
    }
}
