//! Anomaly checks over the quality metrics history.
//!
//! Every pipeline run appends its expectation results to
//! `_metadata/quality` (see [`lake_core::runs`]). An [`AnomalyCheck`]
//! compares the latest run's value of one metric with the mean of the
//! runs before it, as Deequ's anomaly detection does over its metrics
//! repository: a row count that halves, a null rate that triples.

use lake_core::datafusion::prelude::SessionContext;
use lake_core::{
    Ident, LakeError, QUALITY, Result, StorageExt, StorageRef, TableId, quote_literal,
};
use serde::{Deserialize, Serialize};

/// The metric an anomaly check follows, read from one rule's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "metric", rename_all = "snake_case")]
pub enum AnomalyMetric {
    /// Rows the rule checked per run (the batch's row count).
    RowCount {
        /// The rule.
        rule: String,
    },
    /// Share of checked rows whose value was null (`missing_count / element_count`).
    NullRate {
        /// The rule.
        rule: String,
    },
    /// Share of checked rows that failed the rule; for a `not_null` rule,
    /// the null rate of its column.
    UnexpectedRate {
        /// The rule.
        rule: String,
    },
}

impl AnomalyMetric {
    fn rule(&self) -> &str {
        match self {
            AnomalyMetric::RowCount { rule }
            | AnomalyMetric::NullRate { rule }
            | AnomalyMetric::UnexpectedRate { rule } => rule,
        }
    }

    fn value(&self, element: i64, missing: i64, unexpected: i64) -> f64 {
        let rate = |part: i64| {
            if element == 0 {
                0.0
            } else {
                part as f64 / element as f64
            }
        };
        match self {
            AnomalyMetric::RowCount { .. } => element as f64,
            AnomalyMetric::NullRate { .. } => rate(missing),
            AnomalyMetric::UnexpectedRate { .. } => rate(unexpected),
        }
    }
}

/// The latest run's value of a metric against the mean of the `window`
/// runs before it; anomalous when it moved by more than
/// `max_relative_change` of that mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnomalyCheck {
    /// The table whose runs are compared.
    pub table: TableId,
    /// The metric.
    #[serde(flatten)]
    pub metric: AnomalyMetric,
    /// How many earlier runs make the baseline.
    pub window: usize,
    /// The largest accepted change, relative to the baseline (0.5 = ±50 %).
    pub max_relative_change: f64,
}

/// What an anomaly check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnomalyResult {
    /// The latest run's value, if any run was recorded.
    pub latest: Option<f64>,
    /// The mean of the earlier runs compared, if there were any.
    pub baseline: Option<f64>,
    /// `|latest - baseline| / baseline` (infinite when the baseline is 0
    /// and the latest value is not).
    pub relative_change: Option<f64>,
    /// Earlier runs in the baseline.
    pub runs_compared: usize,
    /// Whether the change exceeds the limit; never with no baseline.
    pub anomalous: bool,
}

impl AnomalyCheck {
    /// Compares `metric` of `table`'s latest run with the mean of the
    /// `window` runs before it, allowing a change of `max_relative_change`.
    pub fn new(
        table: TableId,
        metric: AnomalyMetric,
        window: usize,
        max_relative_change: f64,
    ) -> Self {
        Self {
            table,
            metric,
            window,
            max_relative_change,
        }
    }

    /// Reads the history and compares.
    pub async fn evaluate(&self, storage: &StorageRef) -> Result<AnomalyResult> {
        let history = self.history(storage).await?;
        let Some((latest, earlier)) = history.split_first() else {
            return Ok(AnomalyResult {
                latest: None,
                baseline: None,
                relative_change: None,
                runs_compared: 0,
                anomalous: false,
            });
        };
        let earlier = &earlier[..earlier.len().min(self.window)];
        let baseline =
            (!earlier.is_empty()).then(|| earlier.iter().sum::<f64>() / earlier.len() as f64);
        let relative_change = baseline.map(|b| {
            if b == 0.0 {
                if *latest == 0.0 { 0.0 } else { f64::INFINITY }
            } else {
                (latest - b).abs() / b.abs()
            }
        });
        Ok(AnomalyResult {
            latest: Some(*latest),
            baseline,
            relative_change,
            runs_compared: earlier.len(),
            anomalous: relative_change.is_some_and(|c| c > self.max_relative_change),
        })
    }

    /// The metric per run, newest first.
    async fn history(&self, storage: &StorageRef) -> Result<Vec<f64>> {
        let location = storage.layout().metadata(&Ident::new(QUALITY)?);
        let table = storage.open_table(&location).await?;
        if table.version().is_none() {
            return Ok(Vec::new());
        }
        let fail = |e| LakeError::datafusion(location.as_str(), e);
        let ctx = SessionContext::new();
        let provider = lake_core::delta_provider(&ctx, &table, location.as_str()).await?;
        ctx.register_table("quality", provider).map_err(fail)?;
        let sql = format!(
            "SELECT element_count, missing_count, unexpected_count FROM quality \
             WHERE \"table\" = {} AND rule = {} ORDER BY recorded_at DESC, run_id DESC LIMIT {}",
            quote_literal(&self.table.to_string()),
            quote_literal(self.metric.rule()),
            self.window + 1
        );
        let batches = ctx
            .sql(&sql)
            .await
            .map_err(fail)?
            .collect()
            .await
            .map_err(fail)?;
        let mut values = Vec::new();
        for batch in batches {
            let column = |i: usize| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<lake_core::arrow::array::Int64Array>()
                    .cloned()
                    .ok_or_else(|| LakeError::Schema {
                        table: location.to_string(),
                        message: "unexpected column types".to_string(),
                    })
            };
            let (element, missing, unexpected) = (column(0)?, column(1)?, column(2)?);
            for i in 0..batch.num_rows() {
                values.push(self.metric.value(
                    element.value(i),
                    missing.value(i),
                    unexpected.value(i),
                ));
            }
        }
        Ok(values)
    }
}
