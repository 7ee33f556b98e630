//! Checks on record batches: the [`Validator`] trait and what it returns.
//!
//! A validator reports one [`RuleResult`] per rule it checks. Row-level
//! rules carry a mask of the rows that failed; table-level rules (row
//! count, freshness, a column mean) carry only an outcome. The [`Action`]
//! of each rule decides what the caller does: count a warning, route the
//! failing rows to quarantine, or abort before anything is committed.
//! Implementations live in `lake-quality`.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, Result};

/// A shared validator.
pub type ValidatorRef = Arc<dyn Validator>;

/// What happens when a rule fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Keep the rows; count the failure in the report.
    #[default]
    Warn,
    /// Send every failing row to quarantine, tagged with the rule's name.
    Drop,
    /// Abort the stage before anything is committed.
    Fail,
}

impl Action {
    /// The action's name, as serde writes it (`warn`, `drop`, `fail`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Warn => "warn",
            Action::Drop => "drop",
            Action::Fail => "fail",
        }
    }
}

/// The outcome of one rule over one batch.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RuleResult {
    /// The rule's name, used in quarantine reasons and reports.
    pub rule: String,
    /// What to do when it fails.
    pub action: Action,
    /// Whether the rule passed (for row rules: within its `mostly` threshold).
    pub success: bool,
    /// Rows examined.
    pub element_count: usize,
    /// Rows left out because their value was null (column checks other than not-null).
    pub missing_count: usize,
    /// Rows that failed (0 for table-level rules).
    pub unexpected_count: usize,
    /// Up to 20 failing values, as JSON, for reports.
    pub partial_unexpected_list: Vec<serde_json::Value>,
    /// For row-level rules, `true` at each failing row; same length as the batch.
    pub failed_rows: Option<BooleanArray>,
    /// For aggregate rules, the value observed (a mean, a row count, ...).
    pub observed_value: Option<serde_json::Value>,
    /// A human-readable explanation.
    pub message: Option<String>,
}

impl RuleResult {
    /// A row-level result from a failure mask (`true` = failed; nulls count as passed).
    pub fn from_mask(rule: impl Into<String>, action: Action, failed_rows: BooleanArray) -> Self {
        let unexpected_count = failed_rows.true_count();
        Self {
            rule: rule.into(),
            action,
            success: unexpected_count == 0,
            element_count: failed_rows.len(),
            missing_count: 0,
            unexpected_count,
            partial_unexpected_list: Vec::new(),
            failed_rows: Some(failed_rows),
            observed_value: None,
            message: None,
        }
    }

    /// A table-level result.
    pub fn table_level(
        rule: impl Into<String>,
        action: Action,
        success: bool,
        element_count: usize,
        observed_value: Option<serde_json::Value>,
    ) -> Self {
        Self {
            rule: rule.into(),
            action,
            success,
            element_count,
            missing_count: 0,
            unexpected_count: 0,
            partial_unexpected_list: Vec::new(),
            failed_rows: None,
            observed_value,
            message: None,
        }
    }

    /// Whether row `row` failed this rule.
    pub fn row_failed(&self, row: usize) -> bool {
        self.failed_rows
            .as_ref()
            .is_some_and(|mask| mask.is_valid(row) && mask.value(row))
    }

    /// The failed rows' share of the rows checked (nulls left out), in
    /// percent; 0 when no row was checked.
    pub fn unexpected_percent(&self) -> f64 {
        let counted = self.element_count.saturating_sub(self.missing_count);
        if counted == 0 {
            0.0
        } else {
            100.0 * self.unexpected_count as f64 / counted as f64
        }
    }

    /// One line for error messages and logs: the counts and up to five
    /// failing values.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "`{}` failed: {} of {} rows unexpected",
            self.rule, self.unexpected_count, self.element_count
        );
        if self.missing_count > 0 {
            line.push_str(&format!(" ({} null, left out)", self.missing_count));
        }
        if !self.partial_unexpected_list.is_empty() {
            let examples: Vec<String> = self
                .partial_unexpected_list
                .iter()
                .take(5)
                .map(|v| v.to_string())
                .collect();
            line.push_str(&format!(", e.g. {}", examples.join(", ")));
        }
        if let Some(observed) = &self.observed_value {
            line.push_str(&format!(", observed {observed}"));
        }
        if let Some(message) = &self.message {
            line.push_str(&format!(" ({message})"));
        }
        line
    }
}

/// A result serialises as Great Expectations writes an expectation's
/// validation result: `expectation`, `success` and a `result` object with
/// `element_count`, `missing_count`, `unexpected_count`,
/// `unexpected_percent`, `partial_unexpected_list` and, for aggregate
/// checks, `observed_value`; plus the rule's `action`. The row mask is not
/// serialised.
impl Serialize for RuleResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Counts<'a> {
            element_count: usize,
            missing_count: usize,
            unexpected_count: usize,
            unexpected_percent: f64,
            partial_unexpected_list: &'a [serde_json::Value],
            #[serde(skip_serializing_if = "Option::is_none")]
            observed_value: Option<&'a serde_json::Value>,
        }
        #[derive(Serialize)]
        struct Shape<'a> {
            expectation: &'a str,
            action: Action,
            success: bool,
            result: Counts<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
        }
        Shape {
            expectation: &self.rule,
            action: self.action,
            success: self.success,
            result: Counts {
                element_count: self.element_count,
                missing_count: self.missing_count,
                unexpected_count: self.unexpected_count,
                unexpected_percent: self.unexpected_percent(),
                partial_unexpected_list: &self.partial_unexpected_list,
                observed_value: self.observed_value.as_ref(),
            },
            message: self.message.as_deref(),
        }
        .serialize(serializer)
    }
}

/// Everything a validator found in one batch (serialises as
/// `{"results": [...]}`, each in the shape of [`RuleResult`]'s serde).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Validation {
    /// One result per rule checked.
    #[serde(rename = "results")]
    pub rules: Vec<RuleResult>,
}

impl Validation {
    /// The results of the rules a validator checked.
    pub fn new(rules: Vec<RuleResult>) -> Self {
        Self { rules }
    }

    /// Adds the results of another validator.
    pub fn extend(&mut self, other: Validation) {
        self.rules.extend(other.rules);
    }

    /// Rows to route to quarantine: those failing any `drop` rule.
    pub fn drop_mask(&self, num_rows: usize) -> BooleanArray {
        let mut mask = vec![false; num_rows];
        for rule in self.rules.iter().filter(|r| r.action == Action::Drop) {
            for (row, failed) in mask.iter_mut().enumerate() {
                *failed |= rule.row_failed(row);
            }
        }
        BooleanArray::from(mask)
    }

    /// The names of the rules row `row` failed, for its quarantine reason.
    pub fn reasons(&self, row: usize) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.row_failed(row))
            .map(|r| r.rule.as_str())
            .collect()
    }

    /// Rules with the `fail` action that did not pass.
    pub fn fatal(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules
            .iter()
            .filter(|r| r.action == Action::Fail && !r.success)
    }

    /// Rules with the `warn` action that did not pass.
    pub fn warnings(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules
            .iter()
            .filter(|r| r.action == Action::Warn && !r.success)
    }

    /// `Err(LakeError::Quality)` listing every failed `fail` rule of `table`, if any.
    pub fn check_fatal(&self, table: &str) -> Result<()> {
        let failures: Vec<String> = self.fatal().map(RuleResult::summary).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(LakeError::Quality {
                table: table.to_string(),
                failures,
            })
        }
    }
}

/// A check over record batches.
///
/// # Contract
/// - `validate` never changes the batch and never fails because of the
///   data: bad data is a failed rule, not an `Err`. `Err` is for a check
///   that cannot run (a missing column, a query that does not plan), and
///   names the rule and the column.
/// - Row-level results have masks exactly as long as the batch.
/// - Rule names are stable: they end up in quarantine reasons and metrics.
#[async_trait]
pub trait Validator: Send + Sync + Debug {
    /// The validator's name (a suite name, or the rule name for a single rule).
    fn name(&self) -> &str;

    /// Checks `batch`, returning one result per rule.
    async fn validate(&self, batch: &RecordBatch) -> Result<Validation>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_mask_and_reasons_combine_rules() {
        let v = Validation {
            rules: vec![
                RuleResult::from_mask(
                    "a",
                    Action::Drop,
                    BooleanArray::from(vec![true, false, false]),
                ),
                RuleResult::from_mask(
                    "b",
                    Action::Drop,
                    BooleanArray::from(vec![Some(true), None, Some(true)]),
                ),
                RuleResult::from_mask(
                    "w",
                    Action::Warn,
                    BooleanArray::from(vec![false, true, false]),
                ),
            ],
        };
        assert_eq!(v.drop_mask(3), BooleanArray::from(vec![true, false, true]));
        assert_eq!(v.reasons(0), vec!["a", "b"]);
        assert_eq!(v.reasons(1), vec!["w"]);
        assert_eq!(v.warnings().count(), 1);
        assert!(v.check_fatal("silver.sales.orders").is_ok());
    }

    #[test]
    fn fatal_rules_become_one_error_listing_all() {
        let v = Validation {
            rules: vec![
                RuleResult::from_mask("x", Action::Fail, BooleanArray::from(vec![true, true])),
                RuleResult::table_level("rows", Action::Fail, false, 2, Some(serde_json::json!(2))),
                RuleResult::table_level("ok", Action::Fail, true, 2, None),
            ],
        };
        let err = v
            .check_fatal("silver.sales.orders")
            .unwrap_err()
            .to_string();
        assert!(err.contains("silver.sales.orders"), "{err}");
        assert!(err.contains("`x` failed: 2 of 2"), "{err}");
        assert!(err.contains("`rows` failed"), "{err}");
        assert!(!err.contains("`ok`"), "{err}");
    }

    #[test]
    fn results_serialise_in_the_great_expectations_shape_and_errors_show_examples() {
        let mut result = RuleResult::from_mask(
            "amount_between",
            Action::Fail,
            BooleanArray::from(vec![true, false, false, true, false]),
        );
        result.missing_count = 1;
        result.success = false;
        result.partial_unexpected_list = vec![serde_json::json!("-1.0"), serde_json::json!("1e9")];
        let json = serde_json::to_value(Validation {
            rules: vec![result.clone()],
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"results": [{
                "expectation": "amount_between",
                "action": "fail",
                "success": false,
                "result": {
                    "element_count": 5,
                    "missing_count": 1,
                    "unexpected_count": 2,
                    "unexpected_percent": 50.0,
                    "partial_unexpected_list": ["-1.0", "1e9"],
                }
            }]})
        );
        let err = Validation {
            rules: vec![result],
        }
        .check_fatal("silver.sales.orders")
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("2 of 5 rows unexpected (1 null, left out), e.g. \"-1.0\", \"1e9\""),
            "{err}"
        );
    }
}
