//! [`TableKeyCheck`]: expectations that read another Delta table:
//! - [`TableKeyCheck::referential`]: every value of a column is present in
//!   another table's column, a foreign key as Deequ's referential-integrity
//!   check states it;
//! - [`TableKeyCheck::unique_against`]: no row's key is already among a
//!   table's keys (for insert-only tables, or a table's current rows).
//!
//! Both read the other table's keys once per table version and keep them in
//! memory, as length-prefixed text (so compound keys compare column by
//! column): meant for dimension tables and key sets, not billions of keys.

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
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::expectation::PARTIAL_UNEXPECTED;

/// A check of a batch's keys against the keys of another Delta table, at
/// its latest version; rows with a null key column are left out, as for
/// every column check. Built by [`referential`](Self::referential) (the key
/// must be there) or [`unique_against`](Self::unique_against) (it must not).
pub struct TableKeyCheck {
    rule: String,
    columns: Vec<String>,
    /// Whether a key must be among the table's (else it must not be).
    must_exist: bool,
    mostly: f64,
    action: Action,
    keys: KeySet,
}

impl fmt::Debug for TableKeyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableKeyCheck")
            .field("rule", &self.rule)
            .field("columns", &self.columns)
            .field("must_exist", &self.must_exist)
            .field("mostly", &self.mostly)
            .field("action", &self.action)
            .finish()
    }
}

impl TableKeyCheck {
    /// Every non-null value of `column` (compared as text) must be a value
    /// of `reference_column` in `reference`: a foreign key. Named
    /// `{column}_in_{reference}`, it warns and has `mostly = 1`.
    pub fn referential(
        storage: StorageRef,
        column: impl Into<String>,
        reference: TableId,
        reference_column: &str,
    ) -> Result<Self> {
        let column = column.into();
        let reference_column = Ident::new_as("reference column", reference_column)?;
        let rule = format!("{column}_in_{reference}");
        Ok(Self {
            keys: KeySet::new(storage, reference, vec![reference_column], None, &rule),
            rule,
            columns: vec![column],
            must_exist: true,
            mostly: 1.0,
            action: Action::Warn,
        })
    }

    /// `columns` (one, or a compound key) must not repeat a key of `table`,
    /// whose key columns have the same names; `filter` is a SQL predicate
    /// on the table (`is_current`, say). Named `{columns}_new_in_{table}`,
    /// it warns and has `mostly = 1`.
    pub fn unique_against(
        storage: StorageRef,
        columns: &[&str],
        table: TableId,
        filter: Option<&str>,
    ) -> Result<Self> {
        if columns.is_empty() {
            return Err(LakeError::config(
                "columns",
                "a key needs at least one column",
            ));
        }
        let idents = columns
            .iter()
            .map(|c| Ident::new_as("key column", *c))
            .collect::<Result<Vec<_>>>()?;
        let rule = format!("{}_new_in_{table}", columns.join("_"));
        Ok(Self {
            keys: KeySet::new(storage, table, idents, filter.map(str::to_string), &rule),
            rule,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            must_exist: false,
            mostly: 1.0,
            action: Action::Warn,
        })
    }

    /// Sets the action.
    #[must_use]
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets the rule's name in reports and quarantine reasons.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.rule = name.into();
        self.keys.rule = self.rule.clone();
        self
    }

    /// Sets `mostly`, the fraction of keyed rows that must pass.
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
}

/// A [`TableKeyCheck`] written as data: a suite's `[[table_check]]` in
/// TOML or JSON, built into a check once the suite knows its storage
/// ([`Suite::with_storage`](crate::Suite::with_storage)).
///
/// ```toml
/// [[table_check]]
/// expect = "referential"
/// column = "customer_id"
/// reference = "silver.crm.customers"
/// reference_column = "customer_id"
/// action = "drop"
///
/// [[table_check]]
/// expect = "unique_against"
/// columns = ["order_id"]
/// table = "silver.sales.orders"
/// filter = "is_current"
/// mostly = 0.99
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableExpectation {
    /// The rule's name (default: the check's own, as [`TableKeyCheck`] names it).
    #[serde(default)]
    pub name: Option<String>,
    /// The fraction of keyed rows that must pass.
    #[serde(default = "crate::expectation::one")]
    pub mostly: f64,
    /// What a failure does.
    #[serde(default)]
    pub action: Action,
    /// The check.
    #[serde(flatten)]
    pub check: TableCheck,
}

/// What a [`TableExpectation`] checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TableCheck {
    /// [`TableKeyCheck::referential`]: every non-null value of `column` is
    /// a value of `reference_column` in `reference`.
    Referential {
        /// The checked column.
        column: String,
        /// The table holding the allowed values.
        reference: TableId,
        /// Its column.
        reference_column: String,
    },
    /// [`TableKeyCheck::unique_against`]: no row's key (`columns`) is
    /// already a key of `table`, or of its rows passing `filter`.
    UniqueAgainst {
        /// One column, or a compound key, named alike in both.
        columns: Vec<String>,
        /// The table whose keys must not repeat.
        table: TableId,
        /// A SQL predicate on the table's rows (`is_current`, say).
        #[serde(default)]
        filter: Option<String>,
    },
}

impl TableExpectation {
    /// `check`, with `mostly = 1.0`, the `warn` action and the check's own name.
    pub fn new(check: TableCheck) -> Self {
        Self {
            name: None,
            mostly: 1.0,
            action: Action::Warn,
            check,
        }
    }

    /// The check over the tables of `storage`; an error names a bad
    /// identifier or `mostly`.
    pub fn build(&self, storage: StorageRef) -> Result<TableKeyCheck> {
        let check = match &self.check {
            TableCheck::Referential {
                column,
                reference,
                reference_column,
            } => TableKeyCheck::referential(
                storage,
                column.as_str(),
                reference.clone(),
                reference_column,
            )?,
            TableCheck::UniqueAgainst {
                columns,
                table,
                filter,
            } => {
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                TableKeyCheck::unique_against(storage, &columns, table.clone(), filter.as_deref())?
            }
        };
        let check = check.with_action(self.action).with_mostly(self.mostly)?;
        Ok(match &self.name {
            Some(name) => check.with_name(name.as_str()),
            None => check,
        })
    }
}

#[async_trait]
impl Validator for TableKeyCheck {
    fn name(&self) -> &str {
        &self.rule
    }

    async fn validate(&self, batch: &RecordBatch) -> Result<Validation> {
        let known = self.keys.get().await?;
        let (failed, missing, examples) = key_failures(batch, &self.columns, &self.rule, |key| {
            known.contains(key) != self.must_exist
        })?;
        let mut result = RuleResult::from_mask(self.rule.clone(), self.action, failed);
        result.missing_count = missing;
        let counted = result.element_count - missing;
        result.success = counted == 0
            || (counted - result.unexpected_count) as f64 / counted as f64 >= self.mostly;
        result.partial_unexpected_list = examples;
        // The size of the key set checked against, for reports.
        result.observed_value = Some(serde_json::json!({ "table_keys": known.len() }));
        Ok(Validation::new(vec![result]))
    }
}

/// Appends `value` to `key` as `{len}:{value}`, so that keys of several
/// columns never run into each other.
fn push_part(key: &mut String, value: &str) {
    use std::fmt::Write as _;
    let _ = write!(key, "{}:{value}", value.len());
}

/// The keys of a table, read once per table version.
struct KeySet {
    storage: StorageRef,
    table: TableId,
    columns: Vec<Ident>,
    filter: Option<String>,
    rule: String,
    cache: Mutex<Option<(u64, Arc<HashSet<String>>)>>,
}

impl KeySet {
    fn new(
        storage: StorageRef,
        table: TableId,
        columns: Vec<Ident>,
        filter: Option<String>,
        rule: &str,
    ) -> Self {
        Self {
            storage,
            table,
            columns,
            filter,
            rule: rule.to_string(),
            cache: Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<Arc<HashSet<String>>> {
        let location = self.storage.layout().table_location(&self.table);
        let table = self.storage.open_table(&location).await?;
        let name = self.table.to_string();
        let version = table.version().ok_or_else(|| {
            LakeError::not_found(format!(
                "table {name} read by rule {} (it has no data)",
                self.rule
            ))
        })?;
        let mut cache = self.cache.lock().await;
        if let Some((cached, keys)) = cache.as_ref()
            && *cached == version
        {
            return Ok(Arc::clone(keys));
        }
        let ctx = SessionContext::new();
        let provider = lake_core::delta_provider(&ctx, &table, &name).await?;
        ctx.register_table("keys", provider)
            .map_err(|e| LakeError::datafusion(&name, e))?;
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("CAST({} AS VARCHAR)", quote_ident(c.as_str())))
            .collect();
        let mut conditions: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote_ident(c.as_str())))
            .collect();
        if let Some(filter) = &self.filter {
            conditions.push(format!("({filter})"));
        }
        let batches = ctx
            .sql(&format!(
                "SELECT DISTINCT {} FROM keys WHERE {}",
                select.join(", "),
                conditions.join(" AND ")
            ))
            .await
            .map_err(|e| LakeError::datafusion(&name, e))?
            .collect()
            .await
            .map_err(|e| LakeError::datafusion(&name, e))?;
        let mut keys = HashSet::new();
        for batch in &batches {
            let columns = batch
                .columns()
                .iter()
                .map(|c| arrow::compute::cast(c, &DataType::Utf8))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| LakeError::arrow(&name, e))?;
            for row in 0..batch.num_rows() {
                let mut key = String::new();
                for column in &columns {
                    push_part(&mut key, column.as_string::<i32>().value(row));
                }
                keys.insert(key);
            }
        }
        let keys = Arc::new(keys);
        *cache = Some((version, Arc::clone(&keys)));
        Ok(keys)
    }
}

/// The rows of `batch` whose key (`columns`, as text) `fails`: the failure
/// mask, the rows left out for a null key column, and up to 20 examples.
fn key_failures(
    batch: &RecordBatch,
    columns: &[String],
    rule: &str,
    fails: impl Fn(&str) -> bool,
) -> Result<(BooleanArray, usize, Vec<serde_json::Value>)> {
    let arrays = columns
        .iter()
        .map(|name| {
            let values = batch
                .column_by_name(name)
                .ok_or_else(|| LakeError::Schema {
                    table: "validated batch".to_string(),
                    message: format!(
                        "expectation `{rule}` needs column `{name}`, which the data lacks"
                    ),
                })?;
            arrow::compute::cast(values, &DataType::Utf8)
                .map_err(|e| LakeError::arrow(format!("expectation `{rule}`"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    let texts: Vec<_> = arrays.iter().map(|a| a.as_string::<i32>()).collect();
    let mut key = String::new();
    let mut missing = 0;
    let mut examples = Vec::new();
    let failed: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            if texts.iter().any(|t| t.is_null(row)) {
                missing += 1;
                return Some(false);
            }
            key.clear();
            for text in &texts {
                push_part(&mut key, text.value(row));
            }
            let failed = fails(&key);
            if failed && examples.len() < PARTIAL_UNEXPECTED {
                let parts: Vec<&str> = texts.iter().map(|t| t.value(row)).collect();
                examples.push(serde_json::Value::String(parts.join(", ")));
            }
            Some(failed)
        })
        .collect();
    Ok((failed, missing, examples))
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
            TableKeyCheck::referential(
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
        let fresh =
            || TableKeyCheck::referential(Arc::clone(&storage), "x", customers.clone(), "id");
        assert!(fresh().unwrap().with_mostly(1.5).is_err());
        assert!(
            TableKeyCheck::referential(Arc::clone(&storage), "x", customers.clone(), "../y")
                .is_err(),
            "the reference column is an identifier"
        );
    }

    #[tokio::test]
    async fn keys_already_in_the_table_fail_column_by_column() {
        use arrow::array::BooleanArray;
        let storage: StorageRef =
            Arc::new(lake_core::ObjectStorage::from_url("memory:///lake").unwrap());
        let target = TableId::silver("sales", "lines").unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, true),
            Field::new("line", DataType::Utf8, true),
            Field::new("is_current", DataType::Boolean, false),
        ]));
        let rows = |o: Vec<Option<&str>>, l: Vec<Option<&str>>, current: Vec<bool>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(o)),
                    Arc::new(StringArray::from(l)),
                    Arc::new(BooleanArray::from(current)),
                ],
            )
            .unwrap()
        };
        let location = storage.layout().table_location(&target);
        let table = storage
            .ensure_table(&location, schema.as_ref(), &[])
            .await
            .unwrap();
        // (a, 1) is current; (a1, "") only historical; "a1"+"" vs "a"+"1"
        // would collide if keys were concatenated.
        table
            .write(vec![rows(
                vec![Some("a"), Some("a1")],
                vec![Some("1"), Some("")],
                vec![true, false],
            )])
            .await
            .unwrap();
        let check = TableKeyCheck::unique_against(
            Arc::clone(&storage),
            &["order_id", "line"],
            target.clone(),
            Some("is_current"),
        )
        .unwrap()
        .with_action(Action::Drop);
        let batch = rows(
            vec![Some("a"), Some("a1"), Some("a"), None, Some("b")],
            vec![Some("1"), Some(""), Some("2"), Some("1"), Some("1")],
            vec![true; 5],
        );
        let result = check.validate(&batch).await.unwrap().rules.remove(0);
        assert_eq!(result.rule, "order_id_line_new_in_silver.sales.lines");
        assert_eq!((result.missing_count, result.unexpected_count), (1, 1));
        assert_eq!(result.partial_unexpected_list, ["a, 1"]);
        assert!(!result.success);
        let all = TableKeyCheck::unique_against(
            Arc::clone(&storage),
            &["order_id", "line"],
            target,
            None,
        )
        .unwrap();
        let result = all.validate(&batch).await.unwrap().rules.remove(0);
        assert_eq!(
            result.unexpected_count, 2,
            "the historical key counts without the filter"
        );
        assert!(
            TableKeyCheck::unique_against(storage, &[], TableId::silver("a", "b").unwrap(), None)
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_suite_loads_table_checks_from_toml_and_runs_them_with_its_storage() {
        let storage: StorageRef =
            Arc::new(lake_core::ObjectStorage::from_url("memory:///lake").unwrap());
        add_customers(&storage, &["c1", "c2"]).await;
        let text = r#"
            name = "orders"
            [[expectation]]
            expect = "not_null"
            column = "customer_id"
            [[table_check]]
            expect = "referential"
            column = "customer_id"
            reference = "silver.sales.customers"
            reference_column = "customer_id"
            action = "drop"
            [[table_check]]
            name = "customer_is_new"
            expect = "unique_against"
            columns = ["customer_id"]
            table = "silver.sales.customers"
            mostly = 0.5
        "#;
        let suite = crate::Suite::from_toml(text).unwrap();
        assert_eq!(suite.table_checks.len(), 2);
        let orders = batch(vec![Some("c1"), Some("c3"), None]);
        let err = suite.validate(&orders).await.unwrap_err().to_string();
        assert!(
            err.contains("orders") && err.contains("with_storage"),
            "an unbound suite says what to do: {err}"
        );

        let suite = suite.with_storage(Arc::clone(&storage)).unwrap();
        let rules = suite.validate(&orders).await.unwrap().rules;
        let names: Vec<&str> = rules.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(
            names,
            [
                "customer_id_not_null",
                "customer_id_in_silver.sales.customers",
                "customer_is_new"
            ]
        );
        let referential = &rules[1];
        assert_eq!(referential.action, Action::Drop);
        assert_eq!(referential.partial_unexpected_list, ["c3"]);
        let new = &rules[2];
        assert_eq!(
            (new.unexpected_count, new.missing_count, new.success),
            (1, 1, true),
            "c1 is known, c3 is new: half pass, mostly 0.5"
        );
        // The suite round-trips through JSON with its table checks.
        let json = serde_json::to_string(&suite).unwrap();
        assert_eq!(crate::Suite::from_json(&json).unwrap(), suite);

        let unknown = text.replace("reference_column", "reference_col");
        let err = crate::Suite::from_toml(&unknown).unwrap_err().to_string();
        assert!(err.contains("reference_col"), "{err}");
        let bad_mostly = text.replace("mostly = 0.5", "mostly = 5.0");
        let err = crate::Suite::from_toml(&bad_mostly)
            .unwrap_err()
            .to_string();
        assert!(err.contains("table_check[1]"), "{err}");
        let bad_table = text.replace(
            "table = \"silver.sales.customers\"",
            "table = \"silver.sales/../x\"",
        );
        assert!(crate::Suite::from_toml(&bad_table).is_err());
    }
}
