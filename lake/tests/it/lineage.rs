//! OpenLineage events: every stage run of a pipeline sends `START` and
//! `COMPLETE` (or `FAIL`) to the file sink under `_metadata/lineage/` and to
//! a real HTTP receiver on loopback, the events name the datasets, versions,
//! row counts and schemas the run reports say, and the OpenLineage
//! project's own model (`openlineage-python`) accepts every event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use lake::config::PipelineConfig;
use lake::lineage::read_events;
use lake::{
    ObjectStorage, RawBatch, RetryPolicy, RunReport, StageOutcome, StorageExt, StorageRef, TableId,
};
use serde_json::{Value, json};

/// An OpenLineage endpoint on loopback that keeps what it is sent and
/// answers with the status it is told.
struct Receiver {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    status: Arc<AtomicU16>,
    posts: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<Vec<Value>>>,
    status: Arc<AtomicU16>,
    posts: Arc<AtomicUsize>,
}

async fn take(State(shared): State<Shared>, Json(event): Json<Value>) -> StatusCode {
    shared.posts.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(shared.status.load(Ordering::SeqCst)).unwrap();
    if status.is_success() {
        shared.events.lock().unwrap().push(event);
    }
    status
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let shared = Shared {
            events: Arc::default(),
            status: Arc::new(AtomicU16::new(status)),
            posts: Arc::default(),
        };
        let app = Router::new()
            .route("/api/v1/lineage", post(take))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            events: shared.events,
            status: shared.status,
            posts: shared.posts,
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn deliveries() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/data/orders"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The reference pipeline over `dir`, its events sent where `lineage` says.
async fn pipeline(dir: &Path, lineage: Value) -> (StorageRef, lake::Pipeline) {
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(dir.to_str().unwrap()).unwrap());
    let mut config = PipelineConfig::reference().unwrap();
    config.lineage = serde_json::from_value(lineage).unwrap();
    let pipeline = config
        .builder_on(Arc::clone(&storage))
        .await
        .unwrap()
        .with_retry(RetryPolicy::new(
            3,
            Duration::from_millis(1),
            Duration::from_millis(1),
        ))
        .build()
        .unwrap();
    (storage, pipeline)
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.join("_metadata/lineage")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs the OpenLineage model check on `files`: its exit status and output.
fn model_check(files: &[PathBuf]) -> (bool, String) {
    let python = std::env::var("LAKE_INTEROP_PYTHON").unwrap_or_else(|_| {
        panic!(
            "the lineage events are checked with openlineage-python and LAKE_INTEROP_PYTHON is \
             not set: run the tests through `bash scripts/test`, which installs it"
        )
    });
    let out = Command::new(python)
        .arg(repo().join("lake/tests/it/openlineage_check.py"))
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The uuid the events of a pipeline run name as their parent run.
fn parent_id(report: &RunReport) -> String {
    let tail = report.run_id.rsplit('-').next().unwrap();
    uuid_text(tail)
}

fn uuid_text(simple: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &simple[0..8],
        &simple[8..12],
        &simple[12..16],
        &simple[16..20],
        &simple[20..32]
    )
}

fn dataset<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no dataset {name} in {list}"))
}

fn version(dataset: &Value) -> u64 {
    dataset["facets"]["version"]["datasetVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_run_sends_start_and_complete_with_versions_counts_and_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(200).await;
    let (storage, pipeline) =
        pipeline(dir.path(), json!({"file": true, "url": receiver.url})).await;
    let root = storage.layout().root().to_string();
    let files = deliveries();
    let mut reports = Vec::new();
    for file in &files {
        reports.push(
            pipeline
                .run_batch(RawBatch::from_file(file).unwrap())
                .await
                .unwrap(),
        );
    }

    let events: Vec<Value> = read_events(&storage)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let stage_runs: usize = reports.iter().map(|r| r.stages.len()).sum();
    assert_eq!(
        stage_runs,
        3 * files.len(),
        "bronze, silver and gold per delivery"
    );
    assert_eq!(
        events.len(),
        2 * stage_runs,
        "a START and a COMPLETE per stage run"
    );
    let key = |e: &Value| {
        (
            e["run"]["runId"].as_str().unwrap().to_string(),
            e["eventType"].as_str().unwrap().to_string(),
        )
    };
    let mut sent: Vec<Value> = receiver.events.lock().unwrap().clone();
    sent.sort_by_key(key);
    let mut written = events.clone();
    written.sort_by_key(key);
    assert_eq!(
        sent, written,
        "the receiver got exactly the events the file sink holds"
    );

    let silver_schema: Vec<String> = storage
        .open_table(
            &storage
                .layout()
                .table_location(&"silver.sales.orders".parse().unwrap()),
        )
        .await
        .unwrap()
        .snapshot()
        .unwrap()
        .snapshot()
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut dead_letters_seen = false;
    for (file, report) in files.iter().zip(&reports) {
        let parent = parent_id(report);
        for stage in &report.stages {
            let of_run: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    e["job"]["name"] == stage.stage.as_str()
                        && e["run"]["facets"]["parent"]["run"]["runId"] == parent.as_str()
                })
                .collect();
            let kinds: Vec<&str> = of_run
                .iter()
                .map(|e| e["eventType"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["START", "COMPLETE"], "stage {}", stage.stage);
            let (start, complete) = (of_run[0], of_run[1]);
            assert_eq!(start["run"]["runId"], complete["run"]["runId"]);
            assert_eq!(complete["job"]["namespace"], root.as_str());
            assert_eq!(
                complete["run"]["facets"]["parent"]["job"]["name"],
                "pipeline"
            );
            let job_type = &complete["job"]["facets"]["jobType"];
            assert_eq!(job_type["processingType"], "BATCH");
            for output in complete["outputs"].as_array().unwrap() {
                assert_eq!(output["namespace"], root.as_str());
            }
            match &stage.outcome {
                StageOutcome::Ingest(r) => {
                    assert_eq!(job_type["jobType"], "INGEST");
                    let input = &complete["inputs"][0];
                    assert_eq!(input["namespace"], "file");
                    assert_eq!(
                        input["name"],
                        std::path::absolute(file).unwrap().to_str().unwrap()
                    );
                    assert_eq!(start["inputs"], complete["inputs"]);
                    let bronze = dataset(&complete["outputs"], "bronze.shop.orders");
                    assert_eq!(Some(version(bronze)), r.table_version);
                    assert_eq!(
                        bronze["outputFacets"]["outputStatistics"]["rowCount"],
                        r.rows_written
                    );
                    let fields = bronze["facets"]["schema"]["fields"].as_array().unwrap();
                    assert!(fields.iter().any(|f| f["name"] == "_raw"), "{bronze}");
                    if r.dead_lettered > 0 {
                        dead_letters_seen = true;
                        let dlq = dataset(&complete["outputs"], "_dlq/bronze/shop/orders");
                        assert_eq!(
                            dlq["outputFacets"]["outputStatistics"]["rowCount"],
                            r.dead_lettered
                        );
                    }
                }
                StageOutcome::Refine(r) => {
                    assert_eq!(job_type["jobType"], "REFINE");
                    assert_eq!(start["inputs"][0]["name"], "bronze.shop.orders");
                    let bronze = dataset(&complete["inputs"], "bronze.shop.orders");
                    assert_eq!(
                        version(bronze),
                        r.source_versions["bronze.shop.orders"].last
                    );
                    assert_eq!(
                        bronze["inputFacets"]["inputStatistics"]["rowCount"],
                        r.rows_read
                    );
                    let silver = dataset(&complete["outputs"], "silver.sales.orders");
                    assert_eq!(version(silver), r.table_versions["silver.sales.orders"]);
                    assert_eq!(
                        silver["outputFacets"]["outputStatistics"]["rowCount"],
                        r.rows_written
                    );
                    let names: Vec<&str> = silver["facets"]["schema"]["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f["name"].as_str().unwrap())
                        .collect();
                    assert_eq!(names, silver_schema);
                    if r.quarantined > 0 {
                        let quarantine = dataset(&complete["outputs"], "_quarantine/sales/orders");
                        assert_eq!(
                            quarantine["outputFacets"]["outputStatistics"]["rowCount"],
                            r.quarantined
                        );
                    }
                }
                StageOutcome::Aggregate(r) => {
                    assert_eq!(job_type["jobType"], "AGGREGATE");
                    let silver = dataset(&complete["inputs"], "silver.sales.orders");
                    assert_eq!(
                        version(silver),
                        r.source_versions["silver.sales.orders"].last
                    );
                    let gold = dataset(&complete["outputs"], "gold.analytics.daily_summary");
                    assert_eq!(Some(version(gold)), r.table_version);
                    assert!(gold["facets"]["schema"]["fields"].as_array().unwrap().len() > 2);
                }
            }
        }
    }
    assert!(
        dead_letters_seen,
        "the reference deliveries hold broken lines"
    );

    let files = event_files(dir.path());
    assert_eq!(files.len(), events.len());
    let (ok, out) = model_check(&files);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("{} events", files.len()));

    // The check can fail: a run without its id, and a misspelt field.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let mut no_run_id = events[1].clone();
    no_run_id["run"].as_object_mut().unwrap().remove("runId");
    let mut misspelt = events[1].clone();
    misspelt["outputs"][0]["outputFacets"]["outputStatistics"]["rowcount"] = json!(1);
    let mut paths = Vec::new();
    for (name, event) in [("no-run-id", no_run_id), ("misspelt", misspelt)] {
        let path = broken.join(format!("{name}.json"));
        std::fs::write(&path, event.to_string()).unwrap();
        paths.push(path);
    }
    let (ok, out) = model_check(&paths);
    assert!(!ok, "{out}");
    assert!(out.contains("no-run-id.json: event.run: Run"), "{out}");
    assert!(out.contains("rowcount: not a field"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stage_sends_fail_with_its_error_and_the_run_stops() {
    assert!(
        std::env::var_os(lake::pii::KEY_ENV).is_none(),
        "this test makes silver fail for want of {}: run it without the variable",
        lake::pii::KEY_ENV
    );
    let dir = tempfile::tempdir().unwrap();
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
    let mut config = PipelineConfig::reference().unwrap();
    config.lineage = serde_json::from_value(json!({"file": true})).unwrap();
    // A column to hash and no key: silver refuses to run.
    config.silver[0]
        .pii
        .insert("customer_id".into(), lake::pii::Pii::Hash);
    let pipeline = config
        .build(Some(dir.path().to_str().unwrap()))
        .await
        .unwrap();
    let error = pipeline
        .run_batch(RawBatch::from_file(&deliveries()[0]).unwrap())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("silver"), "{error}");

    let events: Vec<Value> = read_events(&storage)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["job"]["facets"]["jobType"]["jobType"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["eventType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("INGEST", "START"),
        ("INGEST", "COMPLETE"),
        ("REFINE", "START"),
        ("REFINE", "FAIL"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(kinds, expected, "no gold events: the run stopped at silver");
    let failed = &events[3];
    assert_eq!(failed["run"]["runId"], events[2]["run"]["runId"]);
    let error_facet = &failed["run"]["facets"]["errorMessage"];
    assert_eq!(error_facet["programmingLanguage"], "RUST");
    let message = error_facet["message"].as_str().unwrap();
    assert!(message.contains(lake::pii::KEY_ENV), "{message}");
    assert_eq!(
        message.lines().count(),
        lake::error_lines(&error).len(),
        "one line per cause: {message}"
    );
    let (ok, out) = model_check(&event_files(dir.path()));
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_refuses_events_stops_the_stage_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(400).await;
    let (storage, pipeline) = pipeline(dir.path(), json!({"url": receiver.url})).await;
    let bronze: TableId = "bronze.shop.orders".parse().unwrap();
    let delivery = &deliveries()[0];

    let error = pipeline
        .run_batch(RawBatch::from_file(delivery).unwrap())
        .await
        .unwrap_err();
    let endpoint = format!("{}/api/v1/lineage", receiver.url);
    let text = lake::error_lines(&error).join("\n");
    assert!(text.contains(&format!("lineage sink {endpoint}")), "{text}");
    assert!(
        text.contains("START event") && text.contains("400"),
        "{text}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        receiver.posts.load(Ordering::SeqCst),
        1,
        "a 400 is not retried"
    );
    let table = storage
        .open_table(&storage.layout().table_location(&bronze))
        .await
        .unwrap();
    assert_eq!(table.version(), None, "the stage did not run");

    // A 503 is retried as the pipeline retries stages, then fails the run.
    receiver.status.store(503, Ordering::SeqCst);
    let error = pipeline
        .run_batch(RawBatch::from_file(delivery).unwrap())
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(receiver.posts.load(Ordering::SeqCst), 1 + 3);

    // Once the endpoint takes events, the same delivery goes through.
    receiver.status.store(200, Ordering::SeqCst);
    let report = pipeline
        .run_batch(RawBatch::from_file(delivery).unwrap())
        .await
        .unwrap();
    let runs: BTreeMap<String, usize> =
        receiver
            .events
            .lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut runs, e| {
                *runs
                    .entry(e["run"]["runId"].as_str().unwrap().to_string())
                    .or_default() += 1;
                runs
            });
    assert_eq!(runs.len(), report.stages.len());
    assert!(runs.values().all(|n| *n == 2), "{runs:?}");
}

#[test]
fn lake_run_with_the_service_lake_toml_and_a_lineage_table_writes_the_events() {
    // The repository's lake.toml (its `[service]` table included) plus
    // `[lineage]`, run by the CLI over the reference deliveries.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("lake.toml")).unwrap();
    let config = dir.path().join("lake.toml");
    std::fs::write(&config, format!("{text}\n[lineage]\nfile = true\n")).unwrap();
    let root = dir.path().join("lake");
    let ran = crate::support::lake(
        dir.path(),
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--input",
            repo().join("examples/data/orders").to_str().unwrap(),
            "--lake",
            root.to_str().unwrap(),
            "--json",
        ],
    )
    .expect(0);
    let batches = ran.json()["summary"]["batches"].as_u64().unwrap() as usize;
    assert_eq!(batches, deliveries().len());
    // Bronze, silver and gold per batch, a START and a COMPLETE each.
    assert_eq!(event_files(&root).len(), batches * 3 * 2);
}
