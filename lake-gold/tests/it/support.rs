//! A lake in a temporary folder running bronze → silver → gold, and the
//! daily summary computed independently from silver's current rows.

use std::collections::BTreeMap;

use lake_bronze::BronzeWriter;
use lake_core::TableId;
use lake_gold::{GoldAggregation, RefreshReport, daily_summary};
use lake_silver::OrdersSilver;

/// The shared fixture, with the reference pipeline's gold tables.
pub struct Lake {
    lake: lake_testing::TestLake,
    pub gold: GoldAggregation,
    /// The same spec into another table, always rebuilt in full.
    pub rebuilt: GoldAggregation,
}

pub fn bronze() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}

pub fn silver() -> TableId {
    TableId::silver("sales", "orders").unwrap()
}

pub fn gold() -> TableId {
    TableId::gold("analytics", "daily_summary").unwrap()
}

impl std::ops::Deref for Lake {
    type Target = lake_testing::TestLake;

    fn deref(&self) -> &Self::Target {
        &self.lake
    }
}

pub const SUMMARY_COLUMNS: &str = "order_date, category, region, total_count, total_value, \
    avg_value, min_value, max_value, stddev_value, unique_users, value_per_user";

impl Lake {
    pub fn new() -> Self {
        let gold = GoldAggregation::new(daily_summary(silver(), gold()).unwrap()).unwrap();
        let rebuilt = GoldAggregation::new(
            daily_summary(
                silver(),
                TableId::gold("analytics", "daily_summary_rebuilt").unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        Self {
            lake: lake_testing::TestLake::new(),
            gold,
            rebuilt,
        }
    }

    /// Bronze and silver for one delivered batch.
    pub async fn land(&self, batch_id: &str, lines: &[String]) {
        let writer = BronzeWriter::new(bronze()).unwrap();
        self.ingest_lines(&writer, batch_id, lines).await.unwrap();
        OrdersSilver::new(bronze(), silver())
            .unwrap()
            .run(&self.storage)
            .await
            .unwrap()
            .reconcile()
            .unwrap();
    }

    /// Bronze, silver and an incremental gold refresh for one batch.
    pub async fn deliver(&self, batch_id: &str, lines: &[String]) -> RefreshReport {
        self.land(batch_id, lines).await;
        self.gold.refresh(&self.storage).await.unwrap()
    }

    /// The summary columns of a gold table (metadata columns left out).
    pub async fn summary(&self, table: &TableId) -> Summary {
        parse_summary(
            self.rows(
                table,
                &format!("SELECT {SUMMARY_COLUMNS} FROM t ORDER BY order_date, category, region"),
            )
            .await,
        )
    }

    /// The daily summary computed here, in plain Rust, from silver's current rows.
    pub async fn expected(&self) -> Summary {
        let rows = self
            .rows(
                &silver(),
                "SELECT order_date, category, region, customer_id, amount FROM t WHERE is_current",
            )
            .await;
        expected_summary(&rows)
    }

    /// The daily summary as one SQL query over silver's current rows.
    pub async fn by_sql(&self) -> Summary {
        parse_summary(
            self.rows(
                &silver(),
                "SELECT order_date, category, region, count(*), sum(amount), avg(amount), \
                 min(amount), max(amount), stddev_samp(amount), count(DISTINCT customer_id), \
                 sum(amount) / nullif(count(DISTINCT customer_id), 0) \
                 FROM t WHERE is_current GROUP BY order_date, category, region",
            )
            .await,
        )
    }
}

/// Group key (date, category, region; empty text for null) → metric cells
/// (`None` for null), in summary column order.
pub type Summary = BTreeMap<[String; 3], Vec<Option<f64>>>;

fn parse_summary(rows: Vec<String>) -> Summary {
    rows.iter()
        .map(|row| {
            let cells: Vec<&str> = row.split('|').collect();
            assert_eq!(cells.len(), 11, "{row}");
            let key = [cells[0], cells[1], cells[2]].map(str::to_string);
            let metrics = cells[3..]
                .iter()
                .map(|c| (!c.is_empty()).then(|| c.parse::<f64>().unwrap()))
                .collect();
            (key, metrics)
        })
        .collect()
}

fn expected_summary(rows: &[String]) -> Summary {
    let mut groups: BTreeMap<[String; 3], (u64, Vec<f64>, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    for row in rows {
        let cells: Vec<&str> = row.split('|').collect();
        let key = [cells[0], cells[1], cells[2]].map(str::to_string);
        let group = groups.entry(key).or_default();
        group.0 += 1;
        if !cells[4].is_empty() {
            group.1.push(cells[4].parse().unwrap());
        }
        if !cells[3].is_empty() {
            group.2.insert(cells[3].to_string());
        }
    }
    groups
        .into_iter()
        .map(|(key, (count, amounts, users))| {
            let n = amounts.len() as f64;
            let sum = (!amounts.is_empty()).then(|| amounts.iter().sum::<f64>());
            let avg = sum.map(|s| s / n);
            let min = amounts.iter().copied().reduce(f64::min);
            let max = amounts.iter().copied().reduce(f64::max);
            let stddev = (amounts.len() >= 2).then(|| {
                let mean = avg.unwrap();
                (amounts.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            });
            let unique = users.len() as f64;
            let per_user = sum.filter(|_| unique > 0.0).map(|s| s / unique);
            (
                key,
                vec![
                    Some(count as f64),
                    sum,
                    avg,
                    min,
                    max,
                    stddev,
                    Some(unique),
                    per_user,
                ],
            )
        })
        .collect()
}

/// Asserts two summaries are equal, floats to a relative 1e-9 (`SEMANTICS.md`).
pub fn assert_same(actual: &Summary, expected: &Summary, context: &str) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{context}: groups differ"
    );
    for (key, want) in expected {
        let got = &actual[key];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let same = match (g, w) {
                (None, None) => true,
                (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1e-300) || g == w,
                _ => false,
            };
            assert!(
                same,
                "{context}: group {key:?} metric {i}: got {got:?}, expected {want:?}"
            );
        }
    }
}

/// One event line of the reference workload.
#[allow(clippy::too_many_arguments)]
pub fn event(
    order: &str,
    customer: Option<&str>,
    category: &str,
    amount: Option<&str>,
    date: &str,
    op: &str,
    at: &str,
) -> String {
    lake_testing::events::order_event(order)
        .text_or_null("customer_id", customer)
        .text("category", category)
        .raw("amount", amount.unwrap_or("null"))
        .text("order_date", date)
        .text("op", op)
        .text("updated_at", at)
        .line()
}
