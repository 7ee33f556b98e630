//! Column profiles of a batch or a table, and the suite they suggest, as
//! Deequ's constraint suggestion does.
//!
//! The statistics are one DataFusion aggregate query: row and null counts,
//! an approximate distinct count (HyperLogLog, `approx_distinct`), min and
//! max. For text columns a second set of counts (`try_cast` to integer,
//! float, date, timestamp and boolean) infers the type the text holds.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::array_value_to_string;
use lake_core::datafusion::datasource::{MemTable, TableProvider};
use lake_core::datafusion::prelude::SessionContext;
use lake_core::{Action, LakeError, Result, StorageExt, StorageRef, quote_ident};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::expectation::{Check, Expectation};
use crate::suite::Suite;

/// A column with at most this many distinct values gets an `in_set`
/// suggestion listing them.
pub const MAX_SET_SUGGESTION: u64 = 10;

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ColumnProfile {
    /// The column.
    pub column: String,
    /// Its Arrow type, as Arrow displays it (string and binary views as
    /// `Utf8` and `Binary`).
    pub data_type: String,
    /// The type its values hold: the Arrow type, or for text the narrowest
    /// of `Int64`, `Float64`, `Boolean`, `Date32`, `Timestamp` that every
    /// non-null value parses as (else `Utf8`).
    pub inferred_type: String,
    /// Null values.
    pub null_count: u64,
    /// `null_count / rows` (0 for no rows).
    pub null_fraction: f64,
    /// Distinct non-null values, approximately (HyperLogLog).
    pub approx_distinct: u64,
    /// The smallest value, as text (none for nested types or no values).
    pub min: Option<String>,
    /// The largest value, as text.
    pub max: Option<String>,
    /// The distinct values, when there are at most [`MAX_SET_SUGGESTION`].
    pub values: Option<Vec<String>>,
}

/// The profile of a batch or table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Profile {
    /// Rows profiled.
    pub rows: u64,
    /// One profile per column, in schema order.
    pub columns: Vec<ColumnProfile>,
}

/// Profiles record batches (all with one schema).
pub async fn profile_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Profile> {
    let table = MemTable::try_new(schema, vec![batches])
        .map_err(|e| LakeError::datafusion("profile", e))?;
    profile_provider(Arc::new(table), "batch").await
}

/// Profiles the Delta table at `location`, at its latest version.
pub async fn profile_table(storage: &StorageRef, location: &Url) -> Result<Profile> {
    let table = storage.open_table(location).await?;
    let ctx = SessionContext::new();
    let provider = lake_core::delta_provider(&ctx, &table, location.as_str()).await?;
    profile_provider(provider, location.as_str()).await
}

/// Profiles any DataFusion table; `name` names it in errors.
pub async fn profile_provider(provider: Arc<dyn TableProvider>, name: &str) -> Result<Profile> {
    let schema = provider.schema();
    let ctx = SessionContext::new();
    ctx.register_table("t", provider)
        .map_err(|e| LakeError::datafusion(name, e))?;
    let query = |sql: String| {
        let ctx = &ctx;
        async move {
            let batches = ctx
                .sql(&sql)
                .await
                .map_err(|e| LakeError::datafusion(name, e))?
                .collect()
                .await
                .map_err(|e| LakeError::datafusion(name, e))?;
            Ok::<_, LakeError>(batches)
        }
    };
    // Row 0 of a one-row answer, cell by cell, as text (`None` for null).
    let cells = |batches: &[RecordBatch]| -> Result<Vec<Option<String>>> {
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| LakeError::not_found(format!("profile of {name}")))?;
        batch
            .columns()
            .iter()
            .map(|c| {
                if c.is_null(0) {
                    Ok(None)
                } else {
                    array_value_to_string(c, 0)
                        .map(Some)
                        .map_err(|e| LakeError::arrow(name, e))
                }
            })
            .collect()
    };
    let number = |cell: &Option<String>| -> u64 {
        cell.as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };

    let mut select = vec!["count(*)".to_string()];
    // The parses are projected first under names of their own: DataFusion
    // names `try_cast(c AS T)` like `c`, and two aggregates of one name clash.
    let mut parses = Vec::new();
    for field in schema.fields() {
        let c = quote_ident(field.name());
        select.push(format!("count({c})"));
        if ordered(field.data_type()) {
            // As text: approx_distinct takes no floats, dates or booleans.
            select.push(format!("approx_distinct(CAST({c} AS VARCHAR))"));
            select.push(format!("CAST(min({c}) AS VARCHAR)"));
            select.push(format!("CAST(max({c}) AS VARCHAR)"));
        }
        if text(field.data_type()) {
            for target in TEXT_TYPES.iter().map(|(sql, _)| sql) {
                let alias = format!("__lake_parse_{}", parses.len());
                parses.push(format!("try_cast({c} AS {target}) AS {alias}"));
                select.push(format!("count({alias})"));
            }
        }
    }
    // Aliased: DataFusion names `count(try_cast(c AS BOOLEAN))` like `count(c)`.
    let select: Vec<String> = select
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS s{i}"))
        .collect();
    let source = if parses.is_empty() {
        "t".to_string()
    } else {
        format!("(SELECT *, {} FROM t)", parses.join(", "))
    };
    let row = cells(&query(format!("SELECT {} FROM {source}", select.join(", "))).await?)?;
    let rows = number(&row[0]);
    let mut next = 1;
    let mut columns = Vec::new();
    for field in schema.fields() {
        let non_null = number(&row[next]);
        next += 1;
        let (approx_distinct, min, max) = if ordered(field.data_type()) {
            let stats = (
                number(&row[next]),
                row[next + 1].clone(),
                row[next + 2].clone(),
            );
            next += 3;
            stats
        } else {
            (0, None, None)
        };
        let mut inferred_type = logical_type(field.data_type());
        if text(field.data_type()) {
            let parsed: Vec<u64> = (0..TEXT_TYPES.len())
                .map(|i| number(&row[next + i]))
                .collect();
            next += TEXT_TYPES.len();
            inferred_type = "Utf8".to_string();
            if non_null > 0
                && let Some(i) = parsed.iter().position(|&n| n == non_null)
            {
                inferred_type = TEXT_TYPES[i].1.to_string();
            }
        }
        let values = if ordered(field.data_type()) && approx_distinct <= MAX_SET_SUGGESTION {
            let c = quote_ident(field.name());
            let sql = format!(
                "SELECT DISTINCT CAST({c} AS VARCHAR) AS v FROM t WHERE {c} IS NOT NULL ORDER BY v LIMIT {}",
                MAX_SET_SUGGESTION + 1
            );
            let mut values = Vec::new();
            for batch in query(sql).await? {
                for i in 0..batch.num_rows() {
                    values.push(
                        array_value_to_string(batch.column(0), i)
                            .map_err(|e| LakeError::arrow(name, e))?,
                    );
                }
            }
            // The estimate was low: too many values to suggest a set.
            (values.len() as u64 <= MAX_SET_SUGGESTION).then_some(values)
        } else {
            None
        };
        let null_count = rows - non_null;
        columns.push(ColumnProfile {
            column: field.name().clone(),
            data_type: logical_type(field.data_type()),
            inferred_type,
            null_count,
            null_fraction: if rows == 0 {
                0.0
            } else {
                null_count as f64 / rows as f64
            },
            approx_distinct,
            min,
            max,
            values,
        });
    }
    Ok(Profile { rows, columns })
}

/// Text parses tried, narrowest first: (SQL type, the inferred type's name).
const TEXT_TYPES: [(&str, &str); 5] = [
    ("BOOLEAN", "Boolean"),
    ("BIGINT", "Int64"),
    ("DOUBLE", "Float64"),
    ("DATE", "Date32"),
    ("TIMESTAMP", "Timestamp"),
];

/// The type as the lake writes it: DataFusion reads strings and binaries
/// as views, but silver's typed batches (what suites check) hold `Utf8`.
fn logical_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8View => DataType::Utf8.to_string(),
        DataType::BinaryView => DataType::Binary.to_string(),
        other => other.to_string(),
    }
}

fn text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Types with an order (min, max) and a distinct count: not nested ones.
fn ordered(data_type: &DataType) -> bool {
    !data_type.is_nested() && !matches!(data_type, DataType::Null)
}

impl Profile {
    /// The expectations the profiled data satisfies, all with the `warn`
    /// action (review them before making any `drop` or `fail`):
    /// - every column: its type;
    /// - no nulls: `not_null`;
    /// - every value distinct, no nulls, more than one row: `unique`;
    /// - a number never below zero: `between` with `min = 0`;
    /// - text that always parses as a number: a `sql` check that it does;
    /// - at most [`MAX_SET_SUGGESTION`] distinct values (in more rows than
    ///   that): `in_set` of them.
    pub fn suggest_suite(&self, name: &str) -> Suite {
        let mut suite = Suite::new(name);
        let mut add = |check: Check| {
            suite
                .expectations
                .push(Expectation::new(check).with_action(Action::Warn));
        };
        for column in &self.columns {
            let c = column.column.clone();
            add(Check::ColumnType {
                column: c.clone(),
                data_type: column.data_type.clone(),
            });
            if self.rows == 0 {
                continue;
            }
            if column.null_count == 0 {
                add(Check::NotNull { column: c.clone() });
                // HyperLogLog is within a few percent: call a column unique
                // only when the estimate reaches the row count.
                if self.rows > 1 && column.approx_distinct >= self.rows {
                    add(Check::Unique {
                        columns: vec![c.clone()],
                    });
                }
            }
            let numeric = column.data_type.starts_with("Int")
                || column.data_type.starts_with("UInt")
                || column.data_type.starts_with("Float")
                || column.data_type.starts_with("Decimal");
            if numeric
                && column
                    .min
                    .as_deref()
                    .and_then(|m| m.parse::<f64>().ok())
                    .is_some_and(|m| m >= 0.0)
            {
                add(Check::Between {
                    column: c.clone(),
                    min: Some(0.0.into()),
                    max: None,
                    exclusive: false,
                });
            }
            if column.data_type == "Utf8"
                && matches!(column.inferred_type.as_str(), "Int64" | "Float64")
            {
                add(Check::Sql {
                    expr: format!(
                        "{} IS NULL OR try_cast({} AS DOUBLE) IS NOT NULL",
                        quote_ident(&c),
                        quote_ident(&c)
                    ),
                });
            }
            if let Some(values) = &column.values
                && self.rows > MAX_SET_SUGGESTION
                && !numeric
            {
                add(Check::InSet {
                    column: c.clone(),
                    values: values.clone(),
                });
            }
        }
        suite
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use lake_core::Validator;

    use super::*;

    fn batch() -> RecordBatch {
        let n = 30;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, true),
            Field::new("status", DataType::Utf8, true),
            Field::new("code", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let ids: Vec<i64> = (1..=n).collect();
        let amounts: Vec<Option<f64>> =
            (0..n).map(|i| (i != 7).then_some(i as f64 * 1.5)).collect();
        let statuses: Vec<&str> = (0..n)
            .map(|i| ["placed", "paid", "shipped"][i as usize % 3])
            .collect();
        let codes: Vec<Option<String>> = (0..n)
            .map(|i| (i % 10 != 0).then(|| (i * 7).to_string()))
            .collect();
        let notes: Vec<Option<String>> = (0..n)
            .map(|i| {
                Some(if i % 2 == 0 {
                    format!("n{i}")
                } else {
                    i.to_string()
                })
            })
            .collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Float64Array::from(amounts)),
                Arc::new(StringArray::from(statuses)),
                Arc::new(StringArray::from(codes)),
                Arc::new(StringArray::from(notes)),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn profiles_match_hand_counts_and_the_suggested_suite_passes() {
        let batch = batch();
        let profile = profile_batches(batch.schema(), vec![batch.clone()])
            .await
            .unwrap();
        assert_eq!(profile.rows, 30);
        let column = |name: &str| {
            profile
                .columns
                .iter()
                .find(|c| c.column == name)
                .unwrap()
                .clone()
        };
        let id = column("id");
        assert_eq!((id.null_count, id.approx_distinct), (0, 30));
        assert_eq!(
            (id.min.as_deref(), id.max.as_deref()),
            (Some("1"), Some("30"))
        );
        let amount = column("amount");
        assert_eq!(amount.null_count, 1);
        assert!((amount.null_fraction - 1.0 / 30.0).abs() < 1e-12);
        assert_eq!(amount.min.as_deref(), Some("0.0"));
        let status = column("status");
        assert_eq!(status.inferred_type, "Utf8");
        assert_eq!(
            status.values,
            Some(vec!["paid".into(), "placed".into(), "shipped".into()])
        );
        let code = column("code");
        assert_eq!((code.null_count, code.inferred_type.as_str()), (3, "Int64"));
        assert_eq!(
            column("note").inferred_type,
            "Utf8",
            "mixed text stays text"
        );

        let suite = profile.suggest_suite("orders");
        let rules: Vec<String> = suite.expectations.iter().map(|e| e.rule()).collect();
        for expected in [
            "id_type",
            "id_not_null",
            "id_between",
            "amount_between",
            "status_in_set",
            "expect \"code\" IS NULL OR try_cast(\"code\" AS DOUBLE) IS NOT NULL",
        ] {
            assert!(
                rules.iter().any(|r| r == expected),
                "{expected} in {rules:?}"
            );
        }
        let unique: Vec<&String> = rules.iter().filter(|r| r.ends_with("_unique")).collect();
        assert_eq!(unique, ["id_unique", "note_unique"], "every value distinct");
        assert!(
            !rules
                .iter()
                .any(|r| r == "amount_not_null" || r == "code_not_null"),
            "columns with nulls: {rules:?}"
        );
        // The data it was suggested from meets every suggestion.
        let validation = suite.check().unwrap().validate(&batch).await.unwrap();
        for rule in &validation.rules {
            assert!(rule.success, "{} failed on its own data", rule.rule);
        }
    }

    #[tokio::test]
    async fn an_empty_batch_profiles_to_zero_rows() {
        let empty = batch().slice(0, 0);
        let profile = profile_batches(empty.schema(), vec![empty]).await.unwrap();
        assert_eq!(profile.rows, 0);
        assert!(profile.columns.iter().all(|c| c.null_fraction == 0.0));
        let suite = profile.suggest_suite("empty");
        assert_eq!(suite.expectations.len(), 5, "column types only");
    }

    #[tokio::test]
    async fn a_delta_table_profiles_like_its_rows() {
        let storage: StorageRef =
            Arc::new(lake_core::ObjectStorage::from_url("memory:///lake").unwrap());
        let id = lake_core::TableId::silver("sales", "orders").unwrap();
        let location = storage.layout().table_location(&id);
        let batch = batch();
        let table = storage
            .ensure_table(&location, batch.schema().as_ref(), &[])
            .await
            .unwrap();
        table.write(vec![batch.clone()]).await.unwrap();
        let from_table = profile_table(&storage, &location).await.unwrap();
        let from_batch = profile_batches(batch.schema(), vec![batch]).await.unwrap();
        assert_eq!(from_table, from_batch);
    }
}
