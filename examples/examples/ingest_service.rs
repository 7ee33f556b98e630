//! An ingestion microservice (see `lake_examples::ingest_service`): batches
//! posted over HTTP land in bronze, and a background loop keeps silver and
//! gold fresh. Stop it with Ctrl-C or SIGTERM: it finishes what it started.
//!
//! Usage: `cargo run -p lake-examples --example ingest_service -- --config lake.toml [--lake ROOT] [--address HOST:PORT]`
//!
//! ```text
//! curl -X POST localhost:8080/v1/tables/shop/orders/batches \
//!      -H 'Content-Type: application/x-ndjson' -H 'Idempotency-Key: batch-1' \
//!      --data-binary @examples/data/orders/batch-00001.jsonl
//! curl localhost:8080/v1/status
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use lake_examples::ingest_service::{IngestService, read_config_file};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in lake::error_lines(&e) {
                eprintln!("ingest_service: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> lake::Result<()> {
    let usage = |message: String| lake::LakeError::config("usage", message);
    let mut config = PathBuf::from("lake.toml");
    let (mut lake, mut address) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--config" => config = PathBuf::from(value()?),
            "--lake" => lake = Some(value()?),
            "--address" => {
                let text = value()?;
                address = Some(
                    text.parse()
                        .map_err(|e| usage(format!("--address {text:?}: {e}")))?,
                );
            }
            other => {
                return Err(usage(format!(
                    "unknown argument {other:?}: --config FILE, --lake ROOT, --address HOST:PORT"
                )));
            }
        }
    }
    let (pipeline, mut service) = read_config_file(&config)?;
    if let Some(address) = address {
        service = service.with_address(address);
    }
    let listener = tokio::net::TcpListener::bind(service.address)
        .await
        .map_err(|e| lake::LakeError::other(format!("listening on {}", service.address), e))?;
    let pipeline = pipeline.build(lake.as_deref()).await?;
    println!(
        "ingest_service: listening on http://{} (lake {})",
        listener
            .local_addr()
            .map_err(|e| lake::LakeError::other("listener", e))?,
        pipeline.storage().layout().root()
    );
    IngestService::new(pipeline, service)?
        .serve(listener, shutdown())
        .await?;
    println!("ingest_service: stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix (what a container runtime sends).
async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
