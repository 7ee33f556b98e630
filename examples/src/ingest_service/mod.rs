//! An ingestion microservice to copy: batches posted over HTTP go straight
//! into bronze, and one loop keeps silver and gold fresh.
//!
//! ```text
//! POST /v1/tables/{source}/{table}/batches   JSON lines, CSV or Parquet, by Content-Type
//! GET  /v1/status                            every table, every stage's bookmark and lag
//! GET  /healthz                              ok
//! GET  /metrics                              Prometheus text
//! ```
//!
//! How it is built, and why:
//!
//! - **One request, one bronze commit.** A request's body is streamed into
//!   [`Pipeline::ingest`] (never held whole), so connections ingest side by
//!   side and none waits for a silver run. The `Idempotency-Key` header is
//!   the batch id: a retry with the same key and bytes is answered with the
//!   first ingestion's report and adds nothing; the same key with other
//!   bytes is a `409`. A body that ends early (the client went away) or
//!   passes the limit fails the ingestion before its commit, so nothing of
//!   it lands.
//! - **One refresh loop.** [`Pipeline::run_pending`] runs every
//!   `refresh_interval_seconds`, and also as soon as a batch lands when
//!   `refresh_after_batch` is set; batches landing during a refresh start
//!   one more refresh after it, never one per batch. A refresh that fails is
//!   counted and logged and tried again on the next tick: bookmarks make
//!   every retry exactly-once.
//! - **Graceful shutdown.** The server stops accepting, finishes the
//!   requests in flight, and then the loop finishes its refresh and runs
//!   one more if a batch landed since, so a stopped service leaves nothing
//!   unrefined.
//!
//! It is configured by the pipeline's own `lake.toml` plus a `[service]`
//! table ([`ServiceConfig`]); [`read_config`] splits the two.

mod http;
pub mod load;
mod metrics;
mod refresh;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use lake::config::PipelineConfig;
use lake::{LakeError, Pipeline, Result, TableId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use metrics::Metrics;

/// The `[service]` table of `lake.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The address to listen on (default `127.0.0.1:8080`).
    pub address: SocketAddr,
    /// The largest request body, in bytes (default 256 MiB); a larger one
    /// is refused with `413` and nothing of it is ingested.
    pub body_limit_bytes: u64,
    /// Seconds between refreshes of silver and gold (default 10).
    pub refresh_interval_seconds: f64,
    /// Whether a landed batch starts a refresh at once (default true).
    pub refresh_after_batch: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 256 * 1024 * 1024,
            refresh_interval_seconds: 10.0,
            refresh_after_batch: true,
        }
    }
}

impl ServiceConfig {
    /// Sets [`address`](Self::address).
    pub fn with_address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    /// Sets [`body_limit_bytes`](Self::body_limit_bytes).
    pub fn with_body_limit_bytes(mut self, body_limit_bytes: u64) -> Self {
        self.body_limit_bytes = body_limit_bytes;
        self
    }

    /// Sets [`refresh_interval_seconds`](Self::refresh_interval_seconds).
    pub fn with_refresh_interval_seconds(mut self, seconds: f64) -> Self {
        self.refresh_interval_seconds = seconds;
        self
    }

    /// Sets [`refresh_after_batch`](Self::refresh_after_batch).
    pub fn with_refresh_after_batch(mut self, refresh_after_batch: bool) -> Self {
        self.refresh_after_batch = refresh_after_batch;
        self
    }

    fn check(&self) -> Result<()> {
        if !(self.refresh_interval_seconds.is_finite() && self.refresh_interval_seconds > 0.0) {
            return Err(LakeError::config(
                "service.refresh_interval_seconds",
                format!(
                    "{} is not a positive number of seconds",
                    self.refresh_interval_seconds
                ),
            ));
        }
        if self.body_limit_bytes == 0 {
            return Err(LakeError::config(
                "service.body_limit_bytes",
                "must be above 0",
            ));
        }
        Ok(())
    }
}

/// Reads a `lake.toml`: the pipeline's configuration, and its `[service]`
/// table (every field optional). An unknown or malformed field of either is
/// an error naming it.
pub fn read_config(text: &str) -> Result<(PipelineConfig, ServiceConfig)> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| LakeError::config("lake.toml", e.to_string()))?;
    let service = match table.remove("service") {
        Some(value) => value
            .try_into::<ServiceConfig>()
            .map_err(|e| LakeError::config("service", e.to_string().trim_end()))?,
        None => ServiceConfig::default(),
    };
    service.check()?;
    let pipeline = toml::Value::Table(table)
        .try_into::<PipelineConfig>()
        .map_err(|e| LakeError::config("pipeline config", e.to_string().trim_end()))?;
    Ok((pipeline, service))
}

/// [`read_config`] on the file at `path`, with a relative `lake` root taken
/// relative to the file's folder (as `lake --config` does).
pub fn read_config_file(path: &Path) -> Result<(PipelineConfig, ServiceConfig)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LakeError::config("config", format!("cannot read {}: {e}", path.display())))?;
    let (mut pipeline, service) = read_config(&text).map_err(|e| match e {
        LakeError::Config { field, message } => {
            LakeError::config(format!("{} {field}", path.display()), message)
        }
        other => other,
    })?;
    if let Some(root) = &pipeline.lake
        && !root.contains("://")
        && Path::new(root).is_relative()
    {
        let base = path.parent().unwrap_or(Path::new(""));
        pipeline.lake = Some(base.join(root).to_string_lossy().to_string());
    }
    Ok((pipeline, service))
}

/// The service: a pipeline, its configuration and its metrics.
#[derive(Clone)]
pub struct IngestService {
    state: Arc<State>,
}

struct State {
    pipeline: Pipeline,
    config: ServiceConfig,
    metrics: Metrics,
    /// The bronze tables batches may be posted to.
    tables: Vec<TableId>,
    /// Rung when a batch lands, to start a refresh.
    landed: Notify,
    /// A batch landed since the last refresh started.
    unrefined: AtomicBool,
}

impl IngestService {
    /// A service over `pipeline`, taking batches for its ingest stages' tables.
    pub fn new(pipeline: Pipeline, config: ServiceConfig) -> Result<Self> {
        config.check()?;
        let tables = pipeline
            .ingest_stages()
            .iter()
            .map(|s| s.target().clone())
            .collect();
        Ok(Self {
            state: Arc::new(State {
                pipeline,
                config,
                metrics: Metrics::new(),
                tables,
                landed: Notify::new(),
                unrefined: AtomicBool::new(false),
            }),
        })
    }

    /// The service's metrics (what `GET /metrics` prints).
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// The HTTP routes, for a server of the caller's own.
    ///
    /// Without [`serve`](Self::serve) nothing refreshes silver and gold:
    /// run [`Pipeline::run_pending`] yourself.
    pub fn router(&self) -> axum::Router {
        http::router(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` completes, refreshing silver and
    /// gold in the background; then stops accepting, finishes the requests
    /// in flight and the refresh under way, refreshes once more if a batch
    /// landed since, and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let refresher = tokio::spawn(refresh::run(Arc::clone(&self.state), stopped));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| LakeError::other("ingest service", e));
        // The server has finished every request: let the loop finish too.
        let _ = stop.send(true);
        let refreshed = refresher
            .await
            .map_err(|e| LakeError::other("refresh loop", e))?;
        served.and(refreshed)
    }
}
