//! The pipeline's validators run on silver's typed rows: `drop` routes rows
//! to quarantine with the rule names, `fail` aborts before any commit,
//! `warn` is reported.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::Float64Type;
use async_trait::async_trait;
use lake_core::{Action, LakeError, Result, RuleResult, Validation, Validator, ValidatorRef};
use lake_silver::OrdersSilver;

use crate::support::{Lake, bronze, event, silver};

/// Fails rows whose amount is not above `min`.
#[derive(Debug)]
struct AmountAbove {
    min: f64,
    action: Action,
}

#[async_trait]
impl Validator for AmountAbove {
    fn name(&self) -> &str {
        "amount_above"
    }

    async fn validate(&self, batch: &RecordBatch) -> Result<Validation> {
        let amount = batch
            .column_by_name("amount")
            .expect("typed rows have an amount")
            .as_primitive::<Float64Type>();
        let failed: BooleanArray = (0..amount.len())
            .map(|i| Some(amount.is_valid(i) && amount.value(i) <= self.min))
            .collect();
        let rule = format!("amount_above_{}", self.min);
        Ok(Validation::new(vec![RuleResult::from_mask(
            rule,
            self.action,
            failed,
        )]))
    }
}

fn events() -> Vec<String> {
    vec![
        event("o1", "placed", "10", "c", "2025-11-04T10:00:00Z"),
        event("o2", "placed", "0.5", "c", "2025-11-04T10:00:00Z"),
        event("o3", "placed", "3", "c", "2025-11-04T10:00:00Z"),
    ]
}

#[tokio::test]
async fn drop_rules_quarantine_rows_with_their_rule_names_and_warnings_are_reported() {
    let lake = Lake::new();
    lake.ingest("b1", &events()).await;
    let validators: Vec<ValidatorRef> = vec![
        Arc::new(AmountAbove {
            min: 1.0,
            action: Action::Drop,
        }),
        Arc::new(AmountAbove {
            min: 5.0,
            action: Action::Warn,
        }),
    ];
    let report = OrdersSilver::new(bronze(), silver())
        .unwrap()
        .run(&lake.storage)
        .with_validators(&validators)
        .await
        .unwrap();
    report.reconcile().unwrap();
    assert_eq!(
        (report.rows_read, report.valid, report.quarantined),
        (3, 2, 1)
    );
    assert_eq!(report.expectations.len(), 2);
    assert_eq!(
        report.expectations[1].unexpected_count, 2,
        "the warning counts o2 and o3"
    );
    let orders = lake
        .rows(&silver(), "SELECT order_id FROM t ORDER BY order_id")
        .await;
    assert_eq!(orders, vec!["o1", "o3"], "warned rows stay");
    let quarantine = lake
        .rows_at(
            &lake.storage.layout().quarantine(&silver()),
            "SELECT reason, _source_line FROM t",
        )
        .await;
    assert_eq!(quarantine, vec!["expectation: amount_above_1|2"]);
}

#[tokio::test]
async fn a_failed_fail_rule_commits_nothing() {
    let lake = Lake::new();
    lake.ingest("b1", &events()).await;
    let validators: Vec<ValidatorRef> = vec![Arc::new(AmountAbove {
        min: 1.0,
        action: Action::Fail,
    })];
    let stage = OrdersSilver::new(bronze(), silver()).unwrap();
    let err = stage
        .run(&lake.storage)
        .with_validators(&validators)
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::Quality { .. }), "{err:?}");
    assert!(err.to_string().contains("amount_above_1"), "{err}");
    assert!(lake.history().await.is_empty());
    let changes = silver().changes_table().unwrap();
    assert!(lake.rows(&changes, "SELECT * FROM t").await.is_empty());
    // Without the rule, the same bronze rows go through.
    let report = stage.run(&lake.storage).await.unwrap();
    assert_eq!(report.valid, 3);
}
