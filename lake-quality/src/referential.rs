//! [`Referential`]: every value of a column is present in another table's
//! column, a foreign key as Deequ's referential-integrity check states it.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use lake_core::datafusion::prelude::SessionContext;
use lake_core::{
    Action, Ident, LakeError, Result, RuleResult, StorageExt, StorageRef, TableId, Validation,
    Validator, quote_ident,
};
use tokio::sync::Mutex;

use crate::expectation::PARTIAL_UNEXPECTED;

/// Checks that every non-null value of `column` (compared as text) is a
/// value of `reference_column` in the Delta table `reference`, at its
/// latest version. Nulls are left out, as for every column check.
///
/// The reference's distinct values are read once per table version and
/// kept in memory: meant for dimension tables (customers, products), not
/// for a reference of billions of keys.
pub struct Referential {
    rule: String,
    column: String,
    reference: TableId,
    reference_column: Ident,
    storage: StorageRef,
    mostly: f64,
    action: Action,
    cache: Mutex<Option<(u64, Arc<HashSet<String>>)>>,
}

impl fmt::Debug for Referential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Referential")
            .field("rule", &self.rule)
            .field("reference", &self.reference)
            .field("reference_column", &self.reference_column)
            .field("mostly", &self.mostly)
            .field("action", &self.action)
            .finish()
    }
}

impl Referential {
    /// `column` of the checked rows must appear in `reference_column` of
    /// `reference`; the rule is named `{column}_in_{reference}`, warns, and
    /// has `mostly = 1`.
    pub fn new(
        storage: StorageRef,
        column: impl Into<String>,
        reference: TableId,
        reference_column: &str,
    ) -> Result<Self> {
        let column = column.into();
        let reference_column = Ident::new_as("reference column", reference_column)?;
        Ok(Self {
            rule: format!("{column}_in_{reference}"),
            column,
            reference,
            reference_column,
            storage,
            mostly: 1.0,
            action: Action::Warn,
            cache: Mutex::new(None),
        })
    }

    /// Sets the action.
    #[must_use]
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets `mostly`, the fraction of non-null values that must be found.
    pub fn with_mostly(mut self, mostly: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&mostly) {
            return Err(LakeError::config(
                "mostly",
                format!("{mostly} is not between 0 and 1 (rule {})", self.rule),
            ));
        }
        self.mostly = mostly;
        Ok(self)
    }

    /// The reference's distinct values, read again when its version moved.
    async fn reference_values(&self) -> Result<Arc<HashSet<String>>> {
        let location = self.storage.layout().table_location(&self.reference);
        let table = self.storage.open_table(&location).await?;
        let name = self.reference.to_string();
        let version = table.version().ok_or_else(|| {
            LakeError::not_found(format!(
                "reference table {name} of rule {} (it has no data)",
                self.rule
            ))
        })?;
        let mut cache = self.cache.lock().await;
        if let Some((cached, values)) = cache.as_ref()
            && *cached == version
        {
            return Ok(Arc::clone(values));
        }
        let ctx = SessionContext::new();
        let provider = lake_core::delta_provider(&ctx, &table, &name).await?;
        ctx.register_table("reference", provider)
            .map_err(|e| LakeError::datafusion(&name, e))?;
        let c = quote_ident(self.reference_column.as_str());
        let batches = ctx
            .sql(&format!(
                "SELECT DISTINCT CAST({c} AS VARCHAR) FROM reference WHERE {c} IS NOT NULL"
            ))
            .await
            .map_err(|e| LakeError::datafusion(&name, e))?
            .collect()
            .await
            .map_err(|e| LakeError::datafusion(&name, e))?;
        let mut values = HashSet::new();
        for batch in &batches {
            let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)
                .map_err(|e| LakeError::arrow(&name, e))?;
            values.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
        let values = Arc::new(values);
        *cache = Some((version, Arc::clone(&values)));
        Ok(values)
    }
}

#[async_trait]
impl Validator for Referential {
    fn name(&self) -> &str {
        &self.rule
    }

    async fn validate(&self, batch: &RecordBatch) -> Result<Validation> {
        let values = batch
            .column_by_name(&self.column)
            .ok_or_else(|| LakeError::Schema {
                table: "validated batch".to_string(),
                message: format!(
                    "expectation `{}` needs column `{}`, which the data lacks",
                    self.rule, self.column
                ),
            })?;
        let text = arrow::compute::cast(values, &DataType::Utf8)
            .map_err(|e| LakeError::arrow(format!("expectation `{}`", self.rule), e))?;
        let text = text.as_string::<i32>();
        let known = self.reference_values().await?;
        let failed: BooleanArray = text
            .iter()
            .map(|v| Some(v.is_some_and(|v| !known.contains(v))))
            .collect();
        let missing = text.null_count();
        let examples = text
            .iter()
            .zip(failed.values().iter())
            .filter(|(_, failed)| *failed)
            .filter_map(|(v, _)| v.map(|v| serde_json::Value::String(v.to_string())))
            .take(PARTIAL_UNEXPECTED)
            .collect();
        let mut result = RuleResult::from_mask(self.rule.clone(), self.action, failed);
        result.missing_count = missing;
        let counted = result.element_count - missing;
        result.success = counted == 0
            || (counted - result.unexpected_count) as f64 / counted as f64 >= self.mostly;
        result.partial_unexpected_list = examples;
        result.observed_value = Some(serde_json::json!({
            "unexpected_percent": if counted == 0 { 0.0 } else { 100.0 * result.unexpected_count as f64 / counted as f64 },
            "reference_values": known.len(),
        }));
        Ok(Validation {
            rules: vec![result],
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(values: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "customer_id",
            DataType::Utf8,
            true,
        )]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values))]).unwrap()
    }

    async fn add_customers(storage: &StorageRef, ids: &[&str]) {
        let location = storage
            .layout()
            .table_location(&TableId::silver("sales", "customers").unwrap());
        let rows = batch(ids.iter().map(|i| Some(*i)).collect());
        let table = storage
            .ensure_table(&location, rows.schema().as_ref(), &[])
            .await
            .unwrap();
        table.write(vec![rows]).await.unwrap();
    }

    #[tokio::test]
    async fn values_missing_from_the_reference_fail_and_the_reference_is_reread_when_it_moves() {
        let storage: StorageRef =
            Arc::new(lake_core::ObjectStorage::from_url("memory:///lake").unwrap());
        let customers = TableId::silver("sales", "customers").unwrap();
        let check = |mostly: f64| {
            Referential::new(
                Arc::clone(&storage),
                "customer_id",
                customers.clone(),
                "customer_id",
            )
            .unwrap()
            .with_action(Action::Drop)
            .with_mostly(mostly)
            .unwrap()
        };
        let orders = batch(vec![Some("c1"), Some("c3"), None, Some("c2"), Some("c4")]);

        let err = check(1.0).validate(&orders).await.unwrap_err();
        assert!(
            err.to_string().contains("silver.sales.customers"),
            "no reference yet: {err}"
        );

        add_customers(&storage, &["c1", "c2"]).await;
        let strict = check(1.0);
        let result = strict.validate(&orders).await.unwrap().rules.remove(0);
        assert_eq!(
            result.rule, "customer_id_in_silver.sales.customers",
            "the rule names both sides"
        );
        assert_eq!(
            (
                result.element_count,
                result.missing_count,
                result.unexpected_count
            ),
            (5, 1, 2)
        );
        assert!(!result.success);
        assert_eq!(result.partial_unexpected_list, ["c3", "c4"]);
        let failed = result.failed_rows.unwrap();
        assert_eq!(
            failed.iter().collect::<Vec<_>>(),
            [false, true, false, false, true].map(Some),
            "drop routing gets exactly the unknown keys"
        );
        // Half of the four non-null values are known: `mostly` 0.5 passes.
        let half = check(0.5).validate(&orders).await.unwrap().rules.remove(0);
        assert!(half.success);

        // A new version of the reference is read again by the same check.
        add_customers(&storage, &["c3"]).await;
        let result = strict.validate(&orders).await.unwrap().rules.remove(0);
        assert_eq!(result.unexpected_count, 1);
        assert_eq!(result.partial_unexpected_list, ["c4"]);

        let wrong = batch(vec![Some("c1")]);
        let wrong = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("buyer", DataType::Utf8, true)])),
            vec![Arc::clone(wrong.column(0))],
        )
        .unwrap();
        let err = strict.validate(&wrong).await.unwrap_err();
        assert!(err.to_string().contains("`customer_id`"), "{err}");
        let fresh = || Referential::new(Arc::clone(&storage), "x", customers.clone(), "id");
        assert!(fresh().unwrap().with_mostly(1.5).is_err());
        assert!(
            Referential::new(Arc::clone(&storage), "x", customers.clone(), "../y").is_err(),
            "the reference column is an identifier"
        );
    }
}
