//! The report of one pipeline run: what each stage read, wrote, dead-lettered
//! and quarantined, with timings. It serialises to JSON and prints as a table.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, Result};
use crate::stage::{AggregateReport, IngestReport, RefineReport};

/// What one stage reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StageOutcome {
    /// An ingest stage.
    Ingest(IngestReport),
    /// A refine stage.
    Refine(RefineReport),
    /// An aggregate stage.
    Aggregate(AggregateReport),
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StageRun {
    /// The stage's name.
    pub stage: String,
    /// Wall-clock seconds the stage took.
    pub seconds: f64,
    /// What it reported.
    pub outcome: StageOutcome,
}

impl StageRun {
    /// What `stage` reported after `seconds` of wall-clock time.
    pub fn new(stage: impl Into<String>, seconds: f64, outcome: StageOutcome) -> Self {
        Self {
            stage: stage.into(),
            seconds,
            outcome,
        }
    }

    /// Checks the stage's own equation (see each report's `reconcile`).
    pub fn reconcile(&self) -> Result<()> {
        let checked = match &self.outcome {
            StageOutcome::Ingest(report) => report.reconcile(),
            StageOutcome::Refine(report) => report.reconcile(),
            StageOutcome::Aggregate(_) => Ok(()),
        };
        checked.map_err(|e| match e {
            LakeError::Reconciliation { message, .. } => LakeError::Reconciliation {
                stage: self.stage.clone(),
                message,
            },
            other => other,
        })
    }
}

/// Counts summed over every stage of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunTotals {
    /// Raw records read by ingest stages.
    pub input_records: u64,
    /// Rows appended to bronze.
    pub bronze_rows: u64,
    /// Records sent to the dead-letter store.
    pub dead_lettered: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Rows read by refine stages.
    pub refine_rows_read: u64,
    /// Rows that passed typing and expectations.
    pub valid: u64,
    /// Rows sent to quarantine.
    pub quarantined: u64,
    /// Sequence conflicts resolved.
    pub sequence_conflicts: u64,
    /// Partitions refreshed by aggregate stages.
    pub partitions_refreshed: u64,
}

impl std::ops::AddAssign for RunTotals {
    /// Adds another run's counts: the totals of several runs.
    fn add_assign(&mut self, other: Self) {
        self.input_records += other.input_records;
        self.bronze_rows += other.bronze_rows;
        self.dead_lettered += other.dead_lettered;
        self.blank_lines += other.blank_lines;
        self.refine_rows_read += other.refine_rows_read;
        self.valid += other.valid;
        self.quarantined += other.quarantined;
        self.sequence_conflicts += other.sequence_conflicts;
        self.partitions_refreshed += other.partitions_refreshed;
    }
}

/// The report of one pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunReport {
    /// The run's id.
    pub run_id: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
    /// The stages, in the order they ran.
    pub stages: Vec<StageRun>,
}

impl RunReport {
    /// The report of run `run_id`, from `started_at` to `finished_at`.
    pub fn new(
        run_id: impl Into<String>,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        stages: Vec<StageRun>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            started_at,
            finished_at,
            stages,
        }
    }

    /// Counts summed over all stages.
    pub fn totals(&self) -> RunTotals {
        let mut totals = RunTotals::default();
        for stage in &self.stages {
            match &stage.outcome {
                StageOutcome::Ingest(r) => {
                    totals.input_records += r.input_records;
                    totals.bronze_rows += r.rows_written;
                    totals.dead_lettered += r.dead_lettered;
                    totals.blank_lines += r.blank_lines;
                }
                StageOutcome::Refine(r) => {
                    totals.refine_rows_read += r.rows_read;
                    totals.valid += r.valid;
                    totals.quarantined += r.quarantined;
                    totals.sequence_conflicts += r.sequence_conflicts;
                }
                StageOutcome::Aggregate(r) => {
                    totals.partitions_refreshed += r.partitions_refreshed;
                }
            }
        }
        totals
    }

    /// Checks every stage's equation; the first that fails is the error.
    pub fn reconcile(&self) -> Result<()> {
        self.stages.iter().try_for_each(StageRun::reconcile)
    }

    /// Total wall-clock seconds.
    pub fn seconds(&self) -> f64 {
        (self.finished_at - self.started_at).as_seconds_f64()
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a run report always serialises")
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run {} ({:.3} s)", self.run_id, self.seconds())?;
        writeln!(
            f,
            "{:<24} {:<9} {:<32} {:>10} {:>10} {:>8} {:>7} {:>8} {:>8} {:>9}",
            "stage", "kind", "table", "in", "out", "dlq", "blank", "quar", "version", "seconds"
        )?;
        for stage in &self.stages {
            let (kind, table, input, output, dlq, blank, quarantined, version) =
                match &stage.outcome {
                    StageOutcome::Ingest(r) => (
                        "ingest",
                        r.table.to_string(),
                        r.input_records,
                        r.rows_written,
                        r.dead_lettered.to_string(),
                        r.blank_lines.to_string(),
                        "-".to_string(),
                        r.table_version,
                    ),
                    StageOutcome::Refine(r) => (
                        "refine",
                        r.table.to_string(),
                        r.rows_read,
                        r.rows_written,
                        "-".to_string(),
                        "-".to_string(),
                        r.quarantined.to_string(),
                        r.table_versions.get(&r.table.to_string()).copied(),
                    ),
                    StageOutcome::Aggregate(r) => (
                        "aggregate",
                        r.table.to_string(),
                        r.rows_read,
                        r.rows_written,
                        "-".to_string(),
                        "-".to_string(),
                        "-".to_string(),
                        r.table_version,
                    ),
                };
            let version = version.map_or_else(|| "-".to_string(), |v| v.to_string());
            writeln!(
                f,
                "{:<24} {:<9} {:<32} {:>10} {:>10} {:>8} {:>7} {:>8} {:>8} {:>9.3}",
                stage.stage,
                kind,
                table,
                input,
                output,
                dlq,
                blank,
                quarantined,
                version,
                stage.seconds
            )?;
        }
        Ok(())
    }
}
