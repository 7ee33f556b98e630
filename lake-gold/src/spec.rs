//! The declarative aggregation spec: what a gold table holds.
//!
//! A spec names a source table, the rows of it to aggregate (current rows by
//! default), the group-by columns, one of which partitions the gold table,
//! the metrics and the derived metrics. It is plain data: build it in Rust
//! or load it from TOML or JSON, with the same meaning.
//!
//! ```toml
//! target = "gold.analytics.daily_summary"
//! source = "silver.sales.orders"
//! group_by = ["order_date", "category", "region"]
//! partition_by = "order_date"
//!
//! [[metrics]]
//! name = "total_value"
//! fn = "sum"
//! column = "amount"
//!
//! [[derived]]
//! name = "value_per_user"
//! expr = "total_value / unique_users"
//! ```

use std::collections::HashSet;

use lake_core::{Ident, LakeError, Result, TableId, Zone, quote_ident};
use serde::{Deserialize, Serialize};

/// The filter applied to the source when a spec does not set one: the
/// current rows of an SCD2 table.
pub const CURRENT_ROWS: &str = "is_current";

/// Metadata column: when the partition was computed (UTC).
pub const CREATED_AT: &str = "created_at";

/// Metadata column: the source table version the partition was computed from.
pub const DATA_VERSION: &str = "data_version";

/// How one metric is computed over the rows of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fn", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Function {
    /// Rows in the group (`COUNT(*)`).
    Count,
    /// Non-null values of a column.
    CountNonNull {
        /// The column.
        column: Ident,
    },
    /// Exact count of distinct non-null values.
    CountDistinct {
        /// The column.
        column: Ident,
    },
    /// Approximate count of distinct non-null values (HyperLogLog, DataFusion's
    /// `approx_distinct`; about 1 % relative error).
    ApproxCountDistinct {
        /// The column.
        column: Ident,
    },
    /// Sum of non-null values; null when there are none.
    Sum {
        /// The column.
        column: Ident,
    },
    /// Mean of non-null values; null when there are none.
    Avg {
        /// The column.
        column: Ident,
    },
    /// Smallest non-null value.
    Min {
        /// The column.
        column: Ident,
    },
    /// Largest non-null value.
    Max {
        /// The column.
        column: Ident,
    },
    /// Sample standard deviation; null with fewer than two non-null values.
    StddevSamp {
        /// The column.
        column: Ident,
    },
    /// Population standard deviation; null when there are no non-null values.
    StddevPop {
        /// The column.
        column: Ident,
    },
    /// Approximate percentile (t-digest, DataFusion's `approx_percentile_cont`).
    ApproxPercentile {
        /// The column.
        column: Ident,
        /// The percentile, between 0 and 1.
        percentile: f64,
    },
    /// Any DataFusion aggregate expression, as SQL (`count(*) FILTER (WHERE status = 'paid')`).
    Sql {
        /// The expression.
        expr: String,
    },
}

impl Function {
    /// The SQL aggregate expression.
    pub fn to_sql(&self) -> String {
        let q = |c: &Ident| quote_ident(c.as_str());
        match self {
            Function::Count => "count(*)".to_string(),
            Function::CountNonNull { column } => format!("count({})", q(column)),
            Function::CountDistinct { column } => format!("count(DISTINCT {})", q(column)),
            Function::ApproxCountDistinct { column } => format!("approx_distinct({})", q(column)),
            Function::Sum { column } => format!("sum({})", q(column)),
            Function::Avg { column } => format!("avg({})", q(column)),
            Function::Min { column } => format!("min({})", q(column)),
            Function::Max { column } => format!("max({})", q(column)),
            Function::StddevSamp { column } => format!("stddev_samp({})", q(column)),
            Function::StddevPop { column } => format!("stddev_pop({})", q(column)),
            Function::ApproxPercentile { column, percentile } => format!(
                "approx_percentile_cont({percentile:?}) WITHIN GROUP (ORDER BY {})",
                q(column)
            ),
            Function::Sql { expr } => format!("({expr})"),
        }
    }

    fn column(&self) -> Option<&Ident> {
        match self {
            Function::Count | Function::Sql { .. } => None,
            Function::CountNonNull { column }
            | Function::CountDistinct { column }
            | Function::ApproxCountDistinct { column }
            | Function::Sum { column }
            | Function::Avg { column }
            | Function::Min { column }
            | Function::Max { column }
            | Function::StddevSamp { column }
            | Function::StddevPop { column }
            | Function::ApproxPercentile { column, .. } => Some(column),
        }
    }
}

/// A named metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metric {
    /// The output column.
    pub name: Ident,
    /// How it is computed.
    #[serde(flatten)]
    pub function: Function,
}

/// A metric computed from other metrics of the same row, as SQL.
///
/// Every division in the expression yields null when its divisor is zero
/// (the divisor is wrapped in `nullif(…, 0)`), so `total_value / unique_users`
/// is null for a group without users instead of an error or infinity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Derived {
    /// The output column.
    pub name: Ident,
    /// A SQL expression over the group-by columns and the metrics.
    pub expr: String,
}

/// What a gold table holds and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AggregationSpec {
    /// The gold table written.
    pub target: TableId,
    /// The table aggregated.
    pub source: TableId,
    /// A SQL condition selecting the source rows; [`CURRENT_ROWS`] when absent.
    #[serde(default)]
    pub filter: Option<String>,
    /// The group-by columns, in output order.
    pub group_by: Vec<Ident>,
    /// The group-by column that partitions the gold table.
    pub partition_by: Ident,
    /// The metrics, in output order.
    pub metrics: Vec<Metric>,
    /// Metrics computed from metrics, in output order.
    #[serde(default)]
    pub derived: Vec<Derived>,
}

impl AggregationSpec {
    /// A spec with no metrics yet, grouping `source` by `group_by` and
    /// partitioning by `partition_by`.
    pub fn new(
        target: TableId,
        source: TableId,
        group_by: &[&str],
        partition_by: &str,
    ) -> Result<Self> {
        Ok(Self {
            target,
            source,
            filter: None,
            group_by: group_by
                .iter()
                .map(|c| Ident::new(*c))
                .collect::<Result<_>>()?,
            partition_by: Ident::new(partition_by)?,
            metrics: Vec::new(),
            derived: Vec::new(),
        })
    }

    /// Adds a metric.
    pub fn metric(mut self, name: &str, function: Function) -> Result<Self> {
        self.metrics.push(Metric {
            name: Ident::new(name)?,
            function,
        });
        Ok(self)
    }

    /// Adds a derived metric.
    pub fn derived(mut self, name: &str, expr: &str) -> Result<Self> {
        self.derived.push(Derived {
            name: Ident::new(name)?,
            expr: expr.to_string(),
        });
        Ok(self)
    }

    /// Sets the source filter.
    #[must_use]
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Reads a spec from TOML, then [`check`](Self::check)s it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let spec: Self = toml::from_str(text)
            .map_err(|e| LakeError::config("aggregation spec", e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// Reads a spec from JSON, then [`check`](Self::check)s it.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: Self = serde_json::from_str(text)
            .map_err(|e| LakeError::config("aggregation spec", e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// The source filter in force.
    pub fn filter_sql(&self) -> &str {
        self.filter.as_deref().unwrap_or(CURRENT_ROWS)
    }

    /// Checks what can be checked without the data: zones, the partition
    /// column among the group-by columns, unique output names, percentiles
    /// in range. Column existence is checked against the source at refresh.
    pub fn check(&self) -> Result<()> {
        if self.target.zone != Zone::Gold {
            return Err(LakeError::config(
                "target",
                format!("{} is not a gold table", self.target),
            ));
        }
        if !self.group_by.contains(&self.partition_by) {
            return Err(LakeError::config(
                "partition_by",
                format!(
                    "`{}` must be one of the group-by columns of {}",
                    self.partition_by, self.target
                ),
            ));
        }
        if self.metrics.is_empty() {
            return Err(LakeError::config(
                "metrics",
                format!("{} has no metrics", self.target),
            ));
        }
        let mut names = HashSet::new();
        let outputs = self
            .group_by
            .iter()
            .chain(self.metrics.iter().map(|m| &m.name))
            .chain(self.derived.iter().map(|d| &d.name));
        for name in outputs {
            if [CREATED_AT, DATA_VERSION].contains(&name.as_str()) {
                return Err(LakeError::config(
                    "metrics",
                    format!("`{name}` is a metadata column of {}", self.target),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(LakeError::config(
                    "metrics",
                    format!("`{name}` appears twice in {}", self.target),
                ));
            }
        }
        for metric in &self.metrics {
            if let Function::ApproxPercentile { percentile, .. } = metric.function
                && !(0.0..=1.0).contains(&percentile)
            {
                return Err(LakeError::config(
                    format!("metrics.{}.percentile", metric.name),
                    format!("{percentile} is not between 0 and 1"),
                ));
            }
        }
        Ok(())
    }

    /// The source columns the spec names (group-by and metric inputs; SQL
    /// metrics and the filter are checked by DataFusion when planned).
    pub fn source_columns(&self) -> Vec<&Ident> {
        let mut columns: Vec<&Ident> = self.group_by.iter().collect();
        for column in self.metrics.iter().filter_map(|m| m.function.column()) {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        columns
    }

    /// Every output column, in table order: group-by columns, metrics,
    /// derived metrics, then [`CREATED_AT`] and [`DATA_VERSION`].
    pub fn output_columns(&self) -> Vec<&str> {
        self.group_by
            .iter()
            .map(Ident::as_str)
            .chain(self.metrics.iter().map(|m| m.name.as_str()))
            .chain(self.derived.iter().map(|d| d.name.as_str()))
            .chain([CREATED_AT, DATA_VERSION])
            .collect()
    }
}

/// The daily summary of the reference workload (`SEMANTICS.md`, Gold):
/// current silver orders grouped by `order_date`, `category` and `region`.
pub fn daily_summary(source: TableId, target: TableId) -> Result<AggregationSpec> {
    let amount = || Ident::new("amount");
    AggregationSpec::new(
        target,
        source,
        &["order_date", "category", "region"],
        "order_date",
    )?
    .metric("total_count", Function::Count)?
    .metric("total_value", Function::Sum { column: amount()? })?
    .metric("avg_value", Function::Avg { column: amount()? })?
    .metric("min_value", Function::Min { column: amount()? })?
    .metric("max_value", Function::Max { column: amount()? })?
    .metric("stddev_value", Function::StddevSamp { column: amount()? })?
    .metric(
        "unique_users",
        Function::CountDistinct {
            column: Ident::new("customer_id")?,
        },
    )?
    .derived("value_per_user", "total_value / unique_users")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> AggregationSpec {
        daily_summary(
            TableId::silver("sales", "orders").unwrap(),
            TableId::gold("analytics", "daily_summary").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_daily_summary_round_trips_through_toml_and_json() {
        let spec = summary();
        spec.check().unwrap();
        let toml_text = toml::to_string(&spec).unwrap();
        assert_eq!(AggregationSpec::from_toml(&toml_text).unwrap(), spec);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(AggregationSpec::from_json(&json).unwrap(), spec);
        assert_eq!(
            spec.output_columns(),
            [
                "order_date",
                "category",
                "region",
                "total_count",
                "total_value",
                "avg_value",
                "min_value",
                "max_value",
                "stddev_value",
                "unique_users",
                "value_per_user",
                "created_at",
                "data_version"
            ]
        );
    }

    #[test]
    fn a_spec_written_by_hand_in_toml_reads() {
        let spec = AggregationSpec::from_toml(
            r#"
            target = "gold.analytics.by_region"
            source = "silver.sales.orders"
            filter = "is_current AND status <> 'cancelled'"
            group_by = ["order_date", "region"]
            partition_by = "order_date"

            [[metrics]]
            name = "orders"
            fn = "count"

            [[metrics]]
            name = "p90"
            fn = "approx_percentile"
            column = "amount"
            percentile = 0.9

            [[metrics]]
            name = "paid"
            fn = "sql"
            expr = "count(*) FILTER (WHERE status = 'paid')"
            "#,
        )
        .unwrap();
        assert_eq!(spec.metrics.len(), 3);
        assert_eq!(
            spec.metrics[1].function.to_sql(),
            "approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY \"amount\")"
        );
        assert_eq!(spec.filter_sql(), "is_current AND status <> 'cancelled'");
    }

    #[test]
    fn names_that_would_escape_a_zone_or_a_quote_are_refused() {
        let spec = |target: &str, column: &str| {
            format!(
                "target = {target:?}\nsource = \"silver.sales.orders\"\ngroup_by = [{column:?}]\n\
                 partition_by = {column:?}\nmetrics = [{{ name = \"n\", fn = \"count\" }}]"
            )
        };
        for target in [
            "gold.analytics.../x",
            "gold.%2e%2e.x",
            "gold./etc.passwd",
            "gold.a.b\\c",
            "gold.a.b'--",
        ] {
            assert!(
                AggregationSpec::from_toml(&spec(target, "order_date")).is_err(),
                "{target}"
            );
        }
        for column in ["order_date\" OR 1=1", "a'b", "../x", "x;drop"] {
            assert!(
                AggregationSpec::from_toml(&spec("gold.a.b", column)).is_err(),
                "{column}"
            );
        }
        AggregationSpec::from_toml(&spec("gold.a.b", "order_date")).unwrap();
    }

    #[test]
    fn bad_specs_are_refused_naming_the_field() {
        let err = |text: &str| AggregationSpec::from_toml(text).unwrap_err().to_string();
        let base = r#"
            target = "gold.analytics.t"
            source = "silver.sales.orders"
            group_by = ["order_date"]
        "#;
        let e = err(&format!(
            "{base}partition_by = \"region\"\n[[metrics]]\nname = \"n\"\nfn = \"count\""
        ));
        assert!(e.contains("partition_by"), "{e}");
        let e = err(&format!(
            "{base}partition_by = \"order_date\"\n[[metrics]]\nname = \"n\"\nfn = \"median\""
        ));
        assert!(e.contains("median"), "{e}");
        let e = err(&format!(
            "{base}partition_by = \"order_date\"\n[[metrics]]\nname = \"order_date\"\nfn = \"count\""
        ));
        assert!(e.contains("twice"), "{e}");
        let e = err(&format!(
            "{base}partition_by = \"order_date\"\nmetrics = []"
        ));
        assert!(e.contains("no metrics"), "{e}");
        let e = err(&format!(
            "{base}partition_by = \"order_date\"\n[[metrics]]\nname = \"p\"\nfn = \"approx_percentile\"\ncolumn = \"amount\"\npercentile = 1.5"
        ));
        assert!(e.contains("metrics.p.percentile"), "{e}");
        let e = err(&format!(
            "{base}partition_by = \"order_date\"\n[[metrics]]\nname = \"../x\"\nfn = \"count\""
        ));
        assert!(e.contains("../x"), "{e}");
        let e = err(&base.replace("gold.analytics.t", "silver.sales.t").replace(
            "group_by",
            "partition_by = \"order_date\"\nmetrics = [{ name = \"n\", fn = \"count\" }]\ngroup_by",
        ));
        assert!(e.contains("not a gold table"), "{e}");
    }
}
