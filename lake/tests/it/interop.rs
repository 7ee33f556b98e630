//! Other engines read the lake's tables: after a pipeline run over the
//! reference deliveries, DuckDB (`delta` extension), deltalake Python
//! (`QueryBuilder`), Polars and Spark SQL through Sail each return exactly
//! the rows the lake's own reader returns, for every zone's tables, with
//! silver's deletion vectors, in the compatibility mode without them, and
//! after maintenance dropped them from a table that had them.
//!
//! The engines are Python packages pinned in `scripts/interop-requirements.txt`;
//! `scripts/test` installs them in a virtual environment it caches and
//! points `LAKE_INTEROP_PYTHON` at its interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lake::config::{PipelineConfig, SilverConfig};
use lake::datafusion::prelude::SessionContext;
use lake::maintenance::FileStats;
use lake::parquet::arrow::ArrowWriter;
use lake::silver::SilverSpec;
use lake::{
    Maintain, MaintenanceOptions, ObjectStorage, RawBatch, StorageExt, StorageRef, TableId,
};

const PYTHON_VAR: &str = "LAKE_INTEROP_PYTHON";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn python() -> String {
    std::env::var(PYTHON_VAR).unwrap_or_else(|_| {
        panic!(
            "this test reads the tables with DuckDB, deltalake, Polars and Sail, and {PYTHON_VAR} \
             is not set: run it through `bash scripts/test`, which installs them in a virtual \
             environment, or set {PYTHON_VAR} to a Python that has scripts/interop-requirements.txt"
        )
    })
}

/// Runs the reference deliveries through the reference pipeline into `dir`,
/// silver with or without deletion vectors.
async fn lake_at(dir: &Path, deletion_vectors: bool) -> StorageRef {
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(dir.to_str().unwrap()).unwrap());
    let mut config = PipelineConfig::reference().unwrap();
    let spec = SilverSpec::orders(
        TableId::bronze("shop", "orders").unwrap(),
        TableId::silver("sales", "orders").unwrap(),
    )
    .unwrap()
    .with_deletion_vectors(deletion_vectors);
    config.silver = vec![SilverConfig::spec(spec)];
    let pipeline = config
        .builder_on(Arc::clone(&storage))
        .await
        .unwrap()
        .build()
        .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/data/orders"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        pipeline
            .run_batch(RawBatch::from_file(&file).unwrap())
            .await
            .unwrap();
    }
    for (id, text) in more_deliveries() {
        pipeline
            .run_batch(RawBatch::from_bytes(&id, lake::InputFormat::JsonLines, text).unwrap())
            .await
            .unwrap();
    }
    storage
}

/// Beyond the sample deliveries (messy lines, late events, a delete):
/// 4,000 orders created, then a batch that changes one in twenty, deletes
/// a few, sends late events and one event silver must quarantine. Changing
/// a small share of each bucket's current rows is what makes silver write
/// deletion vectors rather than rewrite its files.
fn more_deliveries() -> Vec<(String, String)> {
    let event = |key: usize, op: &str, minute: usize, amount: usize| {
        format!(
            "{{\"order_id\":\"n{key:05}\",\"customer_id\":\"c{:03}\",\"category\":\"{}\",\"region\":\"{}\",\"amount\":{amount}.25,\"status\":\"placed\",\"order_date\":\"2025-11-{:02}\",\"op\":\"{op}\",\"updated_at\":\"2025-11-20T{:02}:{:02}:00Z\"}}\n",
            key % 300,
            ["books", "garden", "toys", "music"][key % 4],
            ["eu", "us", "apac"][key % 3],
            1 + key % 28,
            minute / 60,
            minute % 60,
        )
    };
    let creates: String = (0..4_000).map(|k| event(k, "c", 600, k % 500)).collect();
    let mut changes: String = (0..4_000)
        .step_by(20)
        .map(|k| event(k, if k % 400 == 0 { "d" } else { "u" }, 700, 900))
        .collect();
    // Late: before the change above, after the create.
    changes.extend((10..4_000).step_by(200).map(|k| event(k, "u", 650, 7)));
    changes.push_str("{\"order_id\":null,\"op\":\"c\",\"updated_at\":\"2025-11-20T12:00:00Z\"}\n");
    vec![
        ("more-creates".to_string(), creates),
        ("more-changes".to_string(), changes),
    ]
}

/// Every table of every zone the run wrote: (name, location).
fn tables(storage: &StorageRef) -> Vec<(&'static str, url::Url)> {
    let layout = storage.layout();
    let bronze = TableId::bronze("shop", "orders").unwrap();
    let silver = TableId::silver("sales", "orders").unwrap();
    vec![
        ("bronze", layout.table_location(&bronze)),
        ("dead_letters", layout.dead_letter(&bronze)),
        ("silver", layout.table_location(&silver)),
        (
            "silver_changes",
            layout.table_location(&silver.changes_table().unwrap()),
        ),
        ("quarantine", layout.quarantine(&silver)),
        (
            "gold",
            layout.table_location(&TableId::gold("analytics", "daily_summary").unwrap()),
        ),
    ]
}

/// Writes the rows the lake's own reader returns for `location` to `file`.
async fn expected_rows(storage: &StorageRef, location: &url::Url, file: &Path) {
    let table = storage.open_table(location).await.unwrap();
    assert!(table.version().is_some(), "{location} was not written");
    let ctx = SessionContext::new();
    let provider = lake::delta_provider(&ctx, &table, location.as_str())
        .await
        .unwrap();
    let frame = ctx.read_table(provider).unwrap();
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(file).unwrap(), schema, None).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
}

/// Whether any commit of the table at `dir` added a file with a deletion vector.
fn has_deletion_vectors(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .any(|p| {
            std::fs::read_to_string(&p).unwrap().lines().any(|line| {
                let action: serde_json::Value = serde_json::from_str(line).unwrap();
                action["add"]["deletionVector"].is_object()
            })
        })
}

/// Runs `command` to its end, its output in files under `dir`, killing it
/// past `limit`: a test never hangs.
fn run_bounded(command: &mut Command, dir: &Path, limit: Duration) -> (bool, String, String) {
    let (out, err) = (dir.join("engines.out"), dir.join("engines.err"));
    let mut child = command
        .env("PYTHONWARNINGS", "ignore")
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&out), read(&err));
    match status {
        Some(status) => (status.success(), stdout, stderr),
        None => panic!("the engines did not finish in {limit:?}:\n{stdout}\n{stderr}"),
    }
}

/// How silver's deletion vectors stand when the engines read the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vectors {
    /// Silver writes them (the default).
    Written,
    /// Silver was created without them (`deletion_vectors = false`).
    Never,
    /// Silver wrote them, then maintenance dropped them and the feature.
    Dropped,
}

async fn read_by_every_engine(vectors: Vectors) {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let storage = lake_at(&dir.path().join("lake"), vectors != Vectors::Never).await;
    let silver = TableId::silver("sales", "orders").unwrap();
    if vectors == Vectors::Dropped {
        let before = storage
            .open_table(&storage.layout().table_location(&silver))
            .await
            .unwrap();
        assert!(FileStats::of(&before).files_with_deletion_vectors > 0);
        let (after, report) = Maintain::new(Arc::clone(&storage), silver.clone())
            .with_options(
                MaintenanceOptions::default()
                    .with_drop_deletion_vectors(true)
                    .with_vacuum(false),
            )
            .await
            .unwrap();
        assert!(report.dropped_deletion_vectors, "{report:?}");
        assert_eq!(report.after.files_with_deletion_vectors, 0, "{report:?}");
        assert_eq!(report.after.rows, report.before.rows, "{report:?}");
        let protocol = after.snapshot().unwrap().protocol().clone();
        assert_eq!(protocol.min_reader_version(), 1, "{protocol:?}");
    }
    let expected = dir.path().join("expected");
    std::fs::create_dir_all(&expected).unwrap();
    let mut args = vec![
        repo().join("scripts/interop.py").display().to_string(),
        expected.display().to_string(),
    ];
    for (name, location) in tables(&storage) {
        expected_rows(
            &storage,
            &location,
            &expected.join(format!("{name}.parquet")),
        )
        .await;
        let path = location.to_file_path().unwrap();
        if name == "silver" {
            assert_eq!(
                has_deletion_vectors(&path),
                vectors != Vectors::Never,
                "{}",
                path.display()
            );
        }
        args.extend([path.display().to_string(), name.to_string()]);
    }
    let (success, stdout, stderr) = run_bounded(
        Command::new(&python).args(&args),
        dir.path(),
        Duration::from_secs(600),
    );
    assert!(success, "{stdout}\n{stderr}");
    let verdicts: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for engine in ["duckdb", "deltalake", "polars", "sail"] {
        for (name, _) in tables(&storage) {
            assert_eq!(verdicts[engine][name], "ok", "{engine} {name}: {stdout}");
        }
    }
    // deltalake's `to_pyarrow_table()` does not apply deletion vectors: it
    // must refuse silver while it has them, and read every table once it
    // has none.
    for (name, _) in tables(&storage) {
        let verdict = verdicts["deltalake_pyarrow"][name]
            .as_str()
            .unwrap_or_default();
        if vectors == Vectors::Written && name == "silver" {
            assert!(verdict.starts_with("read failed"), "{verdict}: {stdout}");
        } else {
            assert_eq!(verdict, "ok", "deltalake_pyarrow {name}: {stdout}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_engine_reads_every_table_with_deletion_vectors_as_the_lake_does() {
    read_by_every_engine(Vectors::Written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_engine_reads_every_table_in_compatibility_mode_as_the_lake_does() {
    read_by_every_engine(Vectors::Never).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_maintenance_drops_deletion_vectors_every_engine_reads_silver_as_the_lake_does() {
    read_by_every_engine(Vectors::Dropped).await;
}
