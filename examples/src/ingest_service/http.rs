//! The routes: taking a batch, status, health and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State as Shared};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use lake::{IngestReport, InputFormat, LakeError, RawBatch, StageOutcome, TableId, error_lines};

use super::State;
use super::metrics::Outcome;

pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/tables/{source}/{table}/batches", post(ingest))
        .route("/v1/status", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Why a request was refused: its status and one readable line.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    outcome: Outcome,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome: Outcome::Refused,
            message: message.into(),
        }
    }

    /// The status an ingestion error gets: the client's fault (`4xx`) or
    /// the lake's (`5xx`, `503` when trying again may succeed).
    fn of(error: &LakeError) -> Self {
        let root = match error {
            LakeError::Stage { source, .. } => source.as_ref(),
            other => other,
        };
        let (status, outcome) = match root {
            LakeError::BatchConflict(_) => (StatusCode::CONFLICT, Outcome::Conflict),
            LakeError::InvalidIdentifier { .. }
            | LakeError::Config { .. }
            | LakeError::Schema { .. }
            | LakeError::Arrow { .. } => (StatusCode::BAD_REQUEST, Outcome::Refused),
            LakeError::Quality { .. } => (StatusCode::UNPROCESSABLE_ENTITY, Outcome::Refused),
            LakeError::Other { component, .. } if component == BODY => {
                (StatusCode::BAD_REQUEST, Outcome::Aborted)
            }
            e if e.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, Outcome::Failed),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, Outcome::Failed),
        };
        // A body that is not the format it says (a broken Parquet footer,
        // say) is the client's fault too.
        let (status, outcome) = match status {
            StatusCode::INTERNAL_SERVER_ERROR if unreadable_input(error) => {
                (StatusCode::BAD_REQUEST, Outcome::Refused)
            }
            _ => (status, outcome),
        };
        Self {
            status,
            outcome,
            message: error_lines(error).join(": "),
        }
    }
}

/// Whether a Parquet or Arrow decoding error is among `error`'s causes.
fn unreadable_input(error: &LakeError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = next {
        if cause.is::<lake::parquet::errors::ParquetError>()
            || cause.is::<lake::arrow::error::ArrowError>()
        {
            return true;
        }
        next = cause.source();
    }
    false
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

/// The component name of a body that could not be read.
const BODY: &str = "request body";

async fn ingest(
    Shared(state): Shared<Arc<State>>,
    Path((source, table)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match take_batch(&state, &source, &table, &headers, body).await {
        Ok(report) => {
            let outcome = match report.already_ingested {
                true => Outcome::AlreadyIngested,
                false => Outcome::Ingested,
            };
            state.metrics.batch(&report, outcome);
            (StatusCode::OK, Json(report)).into_response()
        }
        Err((refusal, table)) => {
            tracing::warn!(%table, status = %refusal.status, error = %refusal.message, "batch refused");
            state.metrics.refused(&table, refusal.outcome);
            refusal.into_response()
        }
    };
    state
        .metrics
        .request("ingest", response.status(), started.elapsed());
    response
}

/// Ingests the request's body as one batch; a refusal comes with the table
/// it was for, for the metrics (`unknown` for a table the configuration
/// does not have: a label per name a client makes up would grow the
/// metrics without bound).
async fn take_batch(
    state: &State,
    source: &str,
    table: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<IngestReport, (Refusal, String)> {
    let unknown = |refusal: Refusal| (refusal, "unknown".to_string());
    let id = TableId::bronze(source, table)
        .map_err(|e| unknown(Refusal::new(StatusCode::BAD_REQUEST, e.to_string())))?;
    if !state.tables.contains(&id) {
        return Err(unknown(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("{id} is not a bronze table of this service's configuration"),
        )));
    }
    let named = id.to_string();
    let refuse = |refusal: Refusal| (refusal, named.clone());
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| {
            refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                "an Idempotency-Key header is required: it is the batch id, so that a retry is not ingested twice",
            ))
        })?
        .to_str()
        .map_err(|_| {
            refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the Idempotency-Key header is not visible ASCII text",
            ))
        })?;
    let format = format_of(headers).map_err(refuse)?;
    let limit = state.config.body_limit_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(refuse(too_large(limit)));
    }
    let over = Arc::new(AtomicBool::new(false));
    let batch = RawBatch::from_stream(key, format, limited(body, limit, Arc::clone(&over)))
        .map_err(|e| refuse(Refusal::new(StatusCode::BAD_REQUEST, e.to_string())))?
        .with_target(id);
    match state.pipeline.ingest(batch).await {
        Ok(run) => {
            state.unrefined.store(true, Ordering::SeqCst);
            state.landed.notify_one();
            run.stages
                .into_iter()
                .find_map(|stage| match stage.outcome {
                    StageOutcome::Ingest(report) => Some(report),
                    _ => None,
                })
                .ok_or_else(|| {
                    refuse(Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the pipeline ran no ingest stage",
                    ))
                })
        }
        Err(_) if over.load(Ordering::SeqCst) => Err(refuse(too_large(limit))),
        Err(e) => Err(refuse(Refusal::of(&e))),
    }
}

fn too_large(limit: u64) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is over this service's limit of {limit} bytes; nothing of it was ingested"
        ),
    )
}

/// The input format a `Content-Type` names.
fn format_of(headers: &HeaderMap) -> Result<InputFormat, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a Content-Type header is required: application/x-ndjson, text/csv or application/vnd.apache.parquet",
        ));
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson"
        | "application/jsonl"
        | "application/json-lines"
        | "application/jsonlines" => Ok(InputFormat::JsonLines),
        "text/csv" => Ok(InputFormat::Csv),
        "application/vnd.apache.parquet" | "application/x-parquet" | "application/parquet" => {
            Ok(InputFormat::Parquet)
        }
        other => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {other:?} is not one this service reads: application/x-ndjson (JSON lines), text/csv or application/vnd.apache.parquet"
            ),
        )),
    }
}

/// The body as a stream of chunks that fails once more than `limit` bytes
/// came (and says so in `over`), or when the connection breaks: either way
/// the ingestion fails before it commits.
fn limited(
    body: Body,
    limit: u64,
    over: Arc<AtomicBool>,
) -> BoxStream<'static, lake::Result<Bytes>> {
    let mut seen = 0u64;
    body.into_data_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(|e| LakeError::other(BODY, e))?;
            seen += chunk.len() as u64;
            if seen > limit {
                over.store(true, Ordering::SeqCst);
                return Err(LakeError::other(
                    BODY,
                    format!("more than the limit of {limit} bytes"),
                ));
            }
            Ok(chunk)
        })
        .boxed()
}

async fn status(Shared(state): Shared<Arc<State>>) -> Response {
    match lake::status::status(&state.pipeline).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => Refusal::of(&e).into_response(),
    }
}

async fn metrics(Shared(state): Shared<Arc<State>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
