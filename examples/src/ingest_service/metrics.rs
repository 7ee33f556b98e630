//! What `GET /metrics` prints, in the Prometheus (OpenMetrics) text format.

use std::time::Duration;

use axum::http::StatusCode;
use lake::IngestReport;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a posted batch ended; its label value is snake_case (`already_ingested`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Ingested: a bronze commit.
    Ingested,
    /// Its key was ingested before with the same bytes: nothing added.
    AlreadyIngested,
    /// Its key was ingested before with other bytes (`409`).
    Conflict,
    /// Refused before or while reading (`4xx`).
    Refused,
    /// The body broke off: nothing ingested.
    Aborted,
    /// The lake failed (`5xx`).
    Failed,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        encoder.write_str(match self {
            Outcome::Ingested => "ingested",
            Outcome::AlreadyIngested => "already_ingested",
            Outcome::Conflict => "conflict",
            Outcome::Refused => "refused",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    table: String,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    outcome: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The service's counters and histograms.
pub struct Metrics {
    registry: Registry,
    batches: Family<BatchLabels, Counter>,
    rows: Family<TableLabels, Counter>,
    dead_letters: Family<TableLabels, Counter>,
    requests: Histograms<RequestLabels>,
    refreshes: Histograms<RefreshLabels>,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("lake_service");
        let batches = Family::<BatchLabels, Counter>::default();
        registry.register(
            "batches",
            "Batches posted, by bronze table and outcome",
            batches.clone(),
        );
        let rows = Family::<TableLabels, Counter>::default();
        registry.register("rows", "Rows appended to bronze", rows.clone());
        let dead_letters = Family::<TableLabels, Counter>::default();
        registry.register(
            "dead_letters",
            "Records sent to the dead-letter store",
            dead_letters.clone(),
        );
        let requests: Histograms<RequestLabels> = Family::new_with_constructor(latency);
        registry.register(
            "request_seconds",
            "Time to answer a request, by route and status",
            requests.clone(),
        );
        let refreshes: Histograms<RefreshLabels> = Family::new_with_constructor(latency);
        registry.register(
            "refresh_seconds",
            "Time of a refresh of silver and gold, by outcome (ok or error)",
            refreshes.clone(),
        );
        Self {
            registry,
            batches,
            rows,
            dead_letters,
            requests,
            refreshes,
        }
    }

    pub(super) fn batch(&self, report: &IngestReport, outcome: Outcome) {
        let table = report.table.to_string();
        self.batches
            .get_or_create(&BatchLabels {
                table: table.clone(),
                outcome,
            })
            .inc();
        let labels = TableLabels { table };
        self.rows.get_or_create(&labels).inc_by(report.rows_written);
        self.dead_letters
            .get_or_create(&labels)
            .inc_by(report.dead_lettered);
    }

    pub(super) fn refused(&self, table: &str, outcome: Outcome) {
        self.batches
            .get_or_create(&BatchLabels {
                table: table.to_string(),
                outcome,
            })
            .inc();
    }

    pub(super) fn request(&self, route: &str, status: StatusCode, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status: status.as_u16(),
            })
            .observe(took.as_secs_f64());
    }

    pub(super) fn refresh(&self, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.refreshes
            .get_or_create(&RefreshLabels {
                outcome: outcome.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text `GET /metrics` answers.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
