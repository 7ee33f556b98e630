//! `ingest_service`: a real server on loopback, posted to with reqwest (and
//! a raw socket for a client that goes away), then its tables compared
//! with a batch run over the same deliveries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lake::config::PipelineConfig;
use lake::{ObjectStorage, RawBatch, StorageRef, TableId};
use lake_examples::ingest_service::load::differing_tables;
use lake_examples::ingest_service::{IngestService, ServiceConfig, read_config};
use lake_testing::table_rows;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const JSON_LINES: &str = "application/x-ndjson";

fn deliveries() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/orders");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{}", dir.display());
    files
}

fn storage(dir: &Path) -> StorageRef {
    Arc::new(ObjectStorage::from_url(dir.to_str().unwrap()).unwrap())
}

async fn pipeline(storage: &StorageRef) -> lake::Pipeline {
    PipelineConfig::reference()
        .unwrap()
        .builder_on(Arc::clone(storage))
        .await
        .unwrap()
        .build()
        .unwrap()
}

/// A service serving on a free loopback port until [`Running::stop`].
struct Running {
    url: String,
    storage: StorageRef,
    stop: oneshot::Sender<()>,
    task: JoinHandle<lake::Result<()>>,
}

async fn start(dir: &Path, config: ServiceConfig) -> Running {
    let storage = storage(dir);
    let service = IngestService::new(pipeline(&storage).await, config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(service.serve(listener, async {
        let _ = stopped.await;
    }));
    Running {
        url,
        storage,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the service stops within a minute")
            .unwrap()
            .unwrap();
    }

    async fn post(
        &self,
        key: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        self.post_to("shop", "orders", key, content_type, body)
            .await
    }

    async fn post_to(
        &self,
        source: &str,
        table: &str,
        key: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/tables/{source}/{table}/batches", self.url))
            .header("content-type", content_type)
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

async fn rows(storage: &StorageRef, table: &str, sql: &str) -> Vec<String> {
    let id: TableId = table.parse().unwrap();
    let location = storage.layout().table_location(&id);
    table_rows(storage, &location, sql).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_batches_give_the_tables_of_a_batch_run_and_retries_add_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(
        dir.path(),
        ServiceConfig::default().with_refresh_interval_seconds(0.2),
    )
    .await;
    let files = deliveries();
    let mut written = 0;
    for (i, file) in files.iter().enumerate() {
        let key = format!("orders-{i}");
        let body = std::fs::read(file).unwrap();
        let (status, report) = service.post(Some(&key), JSON_LINES, body).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["batch_id"], key.as_str());
        assert_eq!(report["already_ingested"], false);
        assert!(report["table_version"].is_u64(), "{report}");
        let input = report["input_records"].as_u64().unwrap();
        let accounted = report["rows_written"].as_u64().unwrap()
            + report["dead_lettered"].as_u64().unwrap()
            + report["blank_lines"].as_u64().unwrap();
        assert_eq!(input, accounted, "{report}");
        written += report["rows_written"].as_u64().unwrap();
    }
    // A retry with the same key and bytes: the first report, nothing added.
    let (status, report) = service
        .post(
            Some("orders-0"),
            JSON_LINES,
            std::fs::read(&files[0]).unwrap(),
        )
        .await;
    assert_eq!(
        (status, &report["already_ingested"]),
        (200, &Value::Bool(true))
    );
    // The same key with other bytes is refused, naming the batch.
    let (status, report) = service
        .post(
            Some("orders-0"),
            JSON_LINES,
            std::fs::read(&files[1]).unwrap(),
        )
        .await;
    assert_eq!(status, 409, "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("orders-0"),
        "{report}"
    );

    // The loop refreshes on its own: silver catches up without a stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = service.get("/v1/status").await;
        assert_eq!(status, 200, "{text}");
        let status: Value = serde_json::from_str(&text).unwrap();
        let stages = status["stages"].as_array().unwrap();
        if !stages.is_empty() && stages.iter().all(|s| s["versions_behind"] == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "silver and gold never caught up: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = Arc::clone(&service.storage);
    service.stop().await;
    assert_eq!(
        rows(&served, "bronze.shop.orders", "SELECT count(*) FROM t").await,
        [written.to_string()]
    );

    let other = tempfile::tempdir().unwrap();
    let batch = storage(other.path());
    let pipeline = pipeline(&batch).await;
    for file in &files {
        pipeline
            .run_batch(RawBatch::from_file(file).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(
        differing_tables(&served, &batch).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_a_reason_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(
        dir.path(),
        ServiceConfig::default()
            .with_body_limit_bytes(1_000)
            .with_refresh_after_batch(false),
    )
    .await;
    let line = "{\"order_id\":\"o1\",\"op\":\"c\",\"updated_at\":\"2025-11-01T10:00:00Z\"}\n";

    let (status, report) = service.post(None, JSON_LINES, line).await;
    assert_eq!(status, 400, "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    let (status, report) = service
        .post_to("shop", "nothing", Some("k"), JSON_LINES, line)
        .await;
    assert_eq!(status, 404, "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("bronze.shop.nothing")
    );
    let (status, report) = service.post(Some("k"), "application/xml", line).await;
    assert_eq!(status, 415, "{report}");
    // Over the limit, declared or streamed (no length): nothing lands.
    let (status, report) = service.post(Some("big"), JSON_LINES, line.repeat(20)).await;
    assert_eq!(status, 413, "{report}");
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..20).map(|_| Ok(line.to_string())).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, report) = service.post(Some("big"), JSON_LINES, streamed).await;
    assert_eq!(status, 413, "{report}");
    // A Parquet body that is not Parquet.
    let (status, report) = service
        .post(Some("p"), "application/vnd.apache.parquet", "not parquet")
        .await;
    assert_eq!(status, 400, "{report}");
    // A good one still goes in.
    let (status, report) = service.post(Some("ok"), JSON_LINES, line).await;
    assert_eq!(status, 200, "{report}");

    let (status, text) = service.get("/healthz").await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    let (status, metrics) = service.get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "lake_service_batches_total{table=\"bronze.shop.orders\",outcome=\"ingested\"} 1",
        "lake_service_rows_total{table=\"bronze.shop.orders\"} 1",
        "lake_service_request_seconds_count{route=\"ingest\",status=\"413\"} 2",
        "lake_service_request_seconds_count{route=\"ingest\",status=\"404\"} 1",
        "lake_service_batches_total{table=\"unknown\",outcome=\"refused\"} 1",
    ] {
        assert!(metrics.contains(expected), "{expected} not in:\n{metrics}");
    }
    let storage = Arc::clone(&service.storage);
    service.stop().await;
    assert_eq!(
        rows(
            &storage,
            "bronze.shop.orders",
            "SELECT _batch_id, count(*) FROM t GROUP BY _batch_id"
        )
        .await,
        ["ok|1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_body_leaves_nothing_and_can_post_again() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), ServiceConfig::default()).await;
    let body = std::fs::read(&deliveries()[0]).unwrap();
    let address = service.url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/tables/shop/orders/batches HTTP/1.1\r\nhost: {address}\r\n\
         content-type: {JSON_LINES}\r\nidempotency-key: gone\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body[..body.len() / 2]).await.unwrap();
    socket.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Nothing of the half body is there, and the whole one goes in.
    let (status, report) = service.post(Some("gone"), JSON_LINES, body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["already_ingested"], false, "{report}");
    let rows_written = report["rows_written"].as_u64().unwrap();
    let storage = Arc::clone(&service.storage);
    service.stop().await;
    assert_eq!(
        rows(&storage, "bronze.shop.orders", "SELECT count(*) FROM t").await,
        [rows_written.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_refines_it() {
    let dir = tempfile::tempdir().unwrap();
    // No refresh but the one at shutdown.
    let service = start(
        dir.path(),
        ServiceConfig::default()
            .with_refresh_interval_seconds(3600.0)
            .with_refresh_after_batch(false),
    )
    .await;
    let body = std::fs::read(&deliveries()[0]).unwrap();
    let (half, rest) = body.split_at(body.len() / 2);
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    send.send(Ok(half.to_vec())).await.unwrap();
    let streamed = reqwest::Body::wrap_stream(tokio_stream(receive));
    let url = format!("{}/v1/tables/shop/orders/batches", service.url);
    let posting = tokio::spawn(
        reqwest::Client::new()
            .post(url)
            .header("content-type", JSON_LINES)
            .header("idempotency-key", "in-flight")
            .body(streamed)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let storage = Arc::clone(&service.storage);
    let stopping = tokio::spawn(service.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stopping.is_finished(), "stopped with a request in flight");
    send.send(Ok(rest.to_vec())).await.unwrap();
    drop(send);
    let response = posting.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    stopping.await.unwrap();
    // The batch was refined on the way out.
    let silver = rows(&storage, "silver.sales.orders", "SELECT count(*) FROM t").await;
    assert_ne!(silver, ["0"]);
}

/// An mpsc receiver as a stream (without tokio-stream).
fn tokio_stream<T: Send + 'static>(
    mut receive: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receive.poll_recv(cx))
}

#[test]
fn the_service_table_is_read_beside_the_pipeline_and_typos_are_errors() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../lake.toml"))
        .unwrap();
    let (pipeline, service) = read_config(&text).unwrap();
    assert_eq!(pipeline.bronze.len(), 1);
    assert_eq!(service.address.to_string(), "127.0.0.1:8080");
    let typo = read_config("[service]\nbody_limit = 10\n")
        .unwrap_err()
        .to_string();
    assert!(typo.contains("body_limit"), "{typo}");
    let zero = read_config("[service]\nrefresh_interval_seconds = 0\n")
        .unwrap_err()
        .to_string();
    assert!(zero.contains("refresh_interval_seconds"), "{zero}");
}

/// The load test, small: clients side by side with retries and broken-off
/// bodies lose and double nothing, and the tables equal a batch run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_with_retries_and_disconnects_nothing_is_lost_or_doubled() {
    use lake_examples::ingest_service::load::{LoadOptions, run};
    let dir = tempfile::tempdir().unwrap();
    let mut options = LoadOptions::new(4, 6, 200);
    options.retry_every = 2;
    options.abort_every = 3;
    options.refresh_interval_seconds = 0.3;
    let report = run(dir.path(), &options).await.unwrap();
    assert!(report.exact(), "{report:?}");
    assert_eq!(report.batches, 24);
    // 24 batches, 12 posted twice, 8 broken off first.
    assert_eq!(report.requests, 24 + 12 + 8);
    assert_eq!(report.lines, 24 * 200);
    assert_eq!(report.bronze_rows + report.dead_letters, 24 * 200);
    assert!(report.dead_letters > 0, "{report:?}");
}
