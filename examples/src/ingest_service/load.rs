//! A load test of the service on loopback: clients posting batches side by
//! side, some posted twice under the same key, some broken off mid-body
//! and posted again; then every accepted line is looked for in bronze and
//! the dead-letter store, and silver and gold are compared with a batch
//! run over the same deliveries.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lake::config::PipelineConfig;
use lake::{LakeError, ObjectStorage, Pipeline, RawBatch, Result, StorageRef, TableId};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::{IngestService, ServiceConfig};

/// How hard the test pushes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Clients posting side by side.
    pub clients: usize,
    /// Batches each client posts, one after another.
    pub batches: usize,
    /// Lines per batch (about one in a hundred is broken on purpose).
    pub lines: usize,
    /// Every `retry_every`-th batch of a client is posted a second time
    /// under its key (0: never).
    pub retry_every: usize,
    /// Every `abort_every`-th batch is first sent half and the connection
    /// dropped, then posted whole under the same key (0: never).
    pub abort_every: usize,
    /// Seconds between the service's refreshes.
    pub refresh_interval_seconds: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            clients: 8,
            batches: 25,
            lines: 1_000,
            retry_every: 5,
            abort_every: 7,
            refresh_interval_seconds: 1.0,
        }
    }
}

impl LoadOptions {
    /// `clients` clients posting `batches` batches of `lines` lines each.
    pub fn new(clients: usize, batches: usize, lines: usize) -> Self {
        Self {
            clients,
            batches,
            lines,
            ..Self::default()
        }
    }
}

/// What the load test measured and found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LoadReport {
    /// The options it ran with.
    pub options: LoadOptions,
    /// Batches accepted (each once, retries not counted).
    pub batches: usize,
    /// Requests sent, retries and broken-off ones included.
    pub requests: usize,
    /// Lines in the accepted batches.
    pub lines: u64,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    /// Accepted batches per second.
    pub batches_per_second: f64,
    /// Accepted lines per second.
    pub lines_per_second: f64,
    /// Median latency of an accepted request, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency of an accepted request, in milliseconds.
    pub p99_ms: f64,
    /// Seconds the service took to stop (its last refresh included).
    pub stop_seconds: f64,
    /// The baseline measured in the same run: seconds of the same
    /// deliveries through `Pipeline::run_batch`, one after another (bronze,
    /// silver and gold per batch, no HTTP).
    pub batch_run_seconds: f64,
    /// Rows in bronze.
    pub bronze_rows: u64,
    /// Rows in the dead-letter store.
    pub dead_letters: u64,
    /// Batches whose lines are not all in bronze or the dead-letter store
    /// exactly once (0 when nothing was lost or doubled).
    pub batches_off: usize,
    /// Whether silver equals the batch run's.
    pub silver_equal: bool,
    /// Whether gold equals the batch run's.
    pub gold_equal: bool,
}

impl LoadReport {
    /// Whether nothing was lost or doubled and the tables equal a batch run's.
    pub fn exact(&self) -> bool {
        self.batches_off == 0 && self.silver_equal && self.gold_equal
    }
}

/// One client's batch: its key and its lines.
struct Delivery {
    key: String,
    body: Vec<u8>,
    lines: u64,
}

/// Batch `batch` of client `client`: order events over a key space the
/// clients share, so batches update each other's keys, and one line in a
/// hundred broken.
fn delivery(client: usize, batch: usize, lines: usize, options: &LoadOptions) -> Delivery {
    const CATEGORIES: [&str; 4] = ["books", "garden", "toys", "tools"];
    const REGIONS: [&str; 3] = ["eu", "us", "apac"];
    const STATUSES: [&str; 3] = ["placed", "paid", "shipped"];
    let keys = (options.clients * options.batches * lines / 4).max(1);
    let mut body = String::new();
    for i in 0..lines {
        let n = (client * 7_919 + batch * 104_729 + i * 1_299_709) % (1 << 31);
        if n % 100 == 42 {
            body.push_str("{\"order_id\": broken\n");
            continue;
        }
        let key = n % keys;
        // Instants spread over a day per batch round, distinct per line.
        let micros = (batch as u64 * 86_400_000_000)
            + (client as u64 * 1_000_003 + i as u64 * 7_777) % 86_400_000_000;
        let (seconds, fraction) = (micros / 1_000_000, micros % 1_000_000);
        let (day, rest) = (seconds / 86_400, seconds % 86_400);
        body.push_str(&format!(
            "{{\"order_id\":\"o{key:07}\",\"customer_id\":\"c{:05}\",\"category\":\"{}\",\"region\":\"{}\",\"amount\":{}.{:02},\"status\":\"{}\",\"order_date\":\"2025-{:02}-{:02}\",\"op\":\"{}\",\"updated_at\":\"2026-01-{:02}T{:02}:{:02}:{:02}.{fraction:06}Z\"}}\n",
            key % 5_000,
            CATEGORIES[key % CATEGORIES.len()],
            REGIONS[key % REGIONS.len()],
            1 + n % 900,
            n % 100,
            STATUSES[n % STATUSES.len()],
            1 + key % 12,
            1 + key % 28,
            if n % 50 == 7 { "d" } else { "u" },
            1 + day % 28,
            rest / 3600,
            (rest / 60) % 60,
            rest % 60,
        ));
    }
    Delivery {
        key: format!("client-{client:03}-batch-{batch:05}"),
        body: body.into_bytes(),
        lines: lines as u64,
    }
}

fn failed(message: impl Into<String>) -> LakeError {
    LakeError::config("load test", message)
}

/// Runs the load test with lakes under `dir` (`served/` and `batch/`).
pub async fn run(dir: &Path, options: &LoadOptions) -> Result<LoadReport> {
    let served = storage(&dir.join("served"))?;
    let service = IngestService::new(
        pipeline(&served).await?,
        ServiceConfig::default().with_refresh_interval_seconds(options.refresh_interval_seconds),
    )?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| LakeError::other("load test listener", e))?;
    let address = listener
        .local_addr()
        .map_err(|e| LakeError::other("load test listener", e))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.serve(listener, async {
        let _ = stopped.await;
    }));

    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..options.clients {
        let options = options.clone();
        clients.spawn(async move { post_all(address, client, &options).await });
    }
    let (mut latencies, mut requests, mut lines) = (Vec::new(), 0, 0);
    while let Some(done) = clients.join_next().await {
        let done = done.map_err(|e| LakeError::other("load test client", e))??;
        latencies.extend(done.latencies);
        requests += done.requests;
        lines += done.lines;
    }
    let seconds = started.elapsed().as_secs_f64();
    let stopping = Instant::now();
    let _ = stop.send(());
    server
        .await
        .map_err(|e| LakeError::other("load test service", e))??;
    let stop_seconds = stopping.elapsed().as_secs_f64();

    // The same deliveries as a batch run, one after another.
    let batch = storage(&dir.join("batch"))?;
    let batch_pipeline = pipeline(&batch).await?;
    let mut expected = Vec::new();
    let batch_started = Instant::now();
    for client in 0..options.clients {
        for b in 0..options.batches {
            let delivery = delivery(client, b, options.lines, options);
            let run = batch_pipeline
                .run_batch(RawBatch::from_bytes(
                    &delivery.key,
                    lake::InputFormat::JsonLines,
                    delivery.body,
                )?)
                .await?;
            expected.push((delivery.key, run.totals()));
        }
    }
    let batch_run_seconds = batch_started.elapsed().as_secs_f64();
    let bronze = TableId::bronze("shop", "orders")?;
    let count_by_batch = |storage: StorageRef, location: url::Url| async move {
        let rows = lake_testing::table_rows(
            &storage,
            &location,
            "SELECT _batch_id, count(*) FROM t GROUP BY _batch_id",
        )
        .await?;
        Ok::<_, LakeError>(
            rows.into_iter()
                .filter_map(|row| {
                    let (id, n) = row.rsplit_once('|')?;
                    Some((id.to_string(), n.parse::<u64>().ok()?))
                })
                .collect::<std::collections::HashMap<String, u64>>(),
        )
    };
    let layout = served.layout();
    let rows = count_by_batch(Arc::clone(&served), layout.table_location(&bronze)).await?;
    let dead = count_by_batch(Arc::clone(&served), layout.dead_letter(&bronze)).await?;
    let batches_off = expected
        .iter()
        .filter(|(key, totals)| {
            let landed = rows.get(key).copied().unwrap_or(0);
            let dead = dead.get(key).copied().unwrap_or(0);
            landed != totals.bronze_rows || dead != totals.dead_lettered
        })
        .count();
    let differ = differing_tables(&served, &batch).await?;
    let silver_equal = !differ.iter().any(|t| t.starts_with("silver"));
    let gold_equal = !differ.iter().any(|t| t.starts_with("gold"));

    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| -> f64 {
        match latencies.len() {
            0 => 0.0,
            n => latencies[((n as f64 * p).ceil() as usize).clamp(1, n) - 1] * 1_000.0,
        }
    };
    let batches = options.clients * options.batches;
    Ok(LoadReport {
        options: options.clone(),
        batches,
        requests,
        lines,
        seconds,
        batches_per_second: batches as f64 / seconds,
        lines_per_second: lines as f64 / seconds,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        stop_seconds,
        batch_run_seconds,
        bronze_rows: rows.values().sum(),
        dead_letters: dead.values().sum(),
        batches_off,
        silver_equal,
        gold_equal,
    })
}

/// What one client did.
struct Posted {
    latencies: Vec<f64>,
    requests: usize,
    lines: u64,
}

async fn post_all(
    address: std::net::SocketAddr,
    client: usize,
    options: &LoadOptions,
) -> Result<Posted> {
    let http = reqwest::Client::new();
    let url = format!("http://{address}/v1/tables/shop/orders/batches");
    let mut posted = Posted {
        latencies: Vec::new(),
        requests: 0,
        lines: 0,
    };
    for batch in 0..options.batches {
        let delivery = delivery(client, batch, options.lines, options);
        let every = |n: usize| n > 0 && batch % n == n - 1;
        if every(options.abort_every) {
            break_off(address, &delivery).await?;
            posted.requests += 1;
        }
        let attempts = if every(options.retry_every) { 2 } else { 1 };
        for attempt in 0..attempts {
            let started = Instant::now();
            let response = http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .header("idempotency-key", &delivery.key)
                .body(delivery.body.clone())
                .send()
                .await
                .map_err(|e| LakeError::other("load test request", e))?;
            let status = response.status();
            let report: serde_json::Value = response
                .json()
                .await
                .map_err(|e| LakeError::other("load test response", e))?;
            posted.requests += 1;
            if !status.is_success() {
                return Err(failed(format!("{}: {status}: {report}", delivery.key)));
            }
            if report["already_ingested"] != serde_json::Value::Bool(attempt > 0) {
                return Err(failed(format!(
                    "{} attempt {}: already_ingested is {}",
                    delivery.key, attempt, report["already_ingested"]
                )));
            }
            if attempt == 0 {
                posted.latencies.push(started.elapsed().as_secs_f64());
                posted.lines += delivery.lines;
            }
        }
    }
    Ok(posted)
}

/// Sends the head and half the body of `delivery`, then drops the connection.
async fn break_off(address: std::net::SocketAddr, delivery: &Delivery) -> Result<()> {
    let fail = |e| LakeError::other("load test broken-off request", e);
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .map_err(fail)?;
    let head = format!(
        "POST /v1/tables/shop/orders/batches HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/x-ndjson\r\nidempotency-key: {}\r\ncontent-length: {}\r\n\r\n",
        delivery.key,
        delivery.body.len()
    );
    socket.write_all(head.as_bytes()).await.map_err(fail)?;
    socket
        .write_all(&delivery.body[..delivery.body.len() / 2])
        .await
        .map_err(fail)?;
    socket.flush().await.map_err(fail)?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(socket);
    Ok(())
}

/// The reference tables, each with the query that reads what two lakes
/// fed the same deliveries must agree on: silver whole; gold without when
/// and from which version a partition was computed, its floating-point
/// metrics to 9 decimals (the order DataFusion sums in is not fixed);
/// bronze's raw records.
const COMPARED: [(&str, &str); 3] = [
    (
        "silver.sales.orders",
        "SELECT * FROM t ORDER BY order_id, valid_from",
    ),
    (
        "gold.analytics.daily_summary",
        "SELECT order_date, category, region, total_count, round(total_value, 9), \
                round(avg_value, 9), min_value, max_value, round(stddev_value, 9), unique_users, \
                round(value_per_user, 9) \
         FROM t ORDER BY order_date, category, region",
    ),
    ("bronze.shop.orders", "SELECT _raw FROM t ORDER BY _raw"),
];

/// The reference tables that differ between the lakes `a` and `b`, or are
/// empty in `a`.
pub async fn differing_tables(a: &StorageRef, b: &StorageRef) -> Result<Vec<String>> {
    let mut differ = Vec::new();
    for (table, sql) in COMPARED {
        let id: TableId = table.parse()?;
        let ours = lake_testing::table_rows(a, &a.layout().table_location(&id), sql).await?;
        let theirs = lake_testing::table_rows(b, &b.layout().table_location(&id), sql).await?;
        if ours.is_empty() || ours != theirs {
            differ.push(table.to_string());
        }
    }
    Ok(differ)
}

fn storage(dir: &Path) -> Result<StorageRef> {
    std::fs::create_dir_all(dir).map_err(|e| LakeError::other(dir.display().to_string(), e))?;
    Ok(Arc::new(ObjectStorage::from_url(&dir.to_string_lossy())?))
}

async fn pipeline(storage: &StorageRef) -> Result<Pipeline> {
    PipelineConfig::reference()?
        .builder_on(Arc::clone(storage))
        .await?
        .build()
}
