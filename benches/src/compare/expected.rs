//! The tables `SEMANTICS.md` defines for a workload, computed in memory
//! straight from the JSON lines.
//!
//! Independent of the pipeline on purpose: no Delta, no event log, no
//! buckets, and its own SCD2 walk (the one in `lake_silver::scd2` is what
//! this checks). Only the typing of one event is shared
//! (`lake_silver::rules::type_order`): the validity and typing rules are a
//! lexer for timestamps and numbers, and a second copy of them would test
//! nothing about history, which is where silver designs differ.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use lake_silver::rules::{OrderEvent, type_order};
use lake_silver::scd2::Op;

/// One silver row, comparable exactly (`amount` by its bits, `-0.0` as `0.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SilverRow {
    /// `order_id`.
    pub order_id: String,
    /// `customer_id`, `category`, `region`, `status`, `metadata` and the
    /// other business columns, in the silver schema's order.
    pub values: Business,
    /// `valid_from`, microseconds since the epoch.
    pub valid_from: i64,
    /// `valid_to`, microseconds since the epoch.
    pub valid_to: Option<i64>,
    /// `is_current`.
    pub is_current: bool,
}

/// The tracked business columns of an order, in the conflict order of
/// `SEMANTICS.md` (`customer_id`, `category`, `region`, `amount`,
/// `status`, `order_date`, `metadata`; null lowest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Business {
    /// `customer_id`.
    pub customer_id: Option<String>,
    /// `category`.
    pub category: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `amount`, as an order-preserving integer (see [`Amount`]).
    pub amount: Option<Amount>,
    /// `status`.
    pub status: Option<String>,
    /// `order_date`, days since 1970-01-01.
    pub order_date: Option<i32>,
    /// `metadata`, canonical JSON text.
    pub metadata: Option<String>,
}

/// A finite float compared by value, with `-0.0` equal to `0.0`.
#[derive(Debug, Clone, Copy)]
pub struct Amount(pub f64);

impl Amount {
    fn normal(self) -> f64 {
        if self.0 == 0.0 { 0.0 } else { self.0 }
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Amount {}
impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Amount {
    fn cmp(&self, other: &Self) -> Ordering {
        self.normal().total_cmp(&other.normal())
    }
}
impl std::hash::Hash for Amount {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normal().to_bits().hash(state);
    }
}

/// One row of the daily summary.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldRow {
    /// `total_count`.
    pub total_count: i64,
    /// `total_value`.
    pub total_value: Option<f64>,
    /// `avg_value`.
    pub avg_value: Option<f64>,
    /// `min_value`.
    pub min_value: Option<f64>,
    /// `max_value`.
    pub max_value: Option<f64>,
    /// `stddev_value`.
    pub stddev_value: Option<f64>,
    /// `unique_users`.
    pub unique_users: i64,
    /// `value_per_user`.
    pub value_per_user: Option<f64>,
}

/// The group of a daily-summary row: `order_date`, `category`, `region`.
pub type GoldKey = (Option<i32>, Option<String>, Option<String>);

/// Counts and tables a workload must produce.
#[derive(Debug, Default)]
pub struct Expected {
    /// Lines read (blank ones included).
    pub lines: u64,
    /// Blank lines.
    pub blank_lines: u64,
    /// Lines that are not a JSON object (the dead-letter store's rows).
    pub dead_lettered: u64,
    /// JSON objects (bronze rows).
    pub bronze_rows: u64,
    /// Events failing a validity rule.
    pub quarantined: u64,
    /// Every silver row.
    pub silver: Vec<SilverRow>,
    /// The daily summary.
    pub gold: BTreeMap<GoldKey, GoldRow>,
}

/// One valid event as the walk needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Change {
    at: i64,
    op: Op,
    values: Business,
}

impl Expected {
    /// Computes the expected tables from the batches' bytes, in any order.
    pub fn from_batches<'a>(batches: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut expected = Expected::default();
        let mut by_key: HashMap<String, Vec<Change>> = HashMap::new();
        for bytes in batches {
            expected.read(bytes, &mut by_key);
        }
        for (key, changes) in by_key {
            expected.silver.extend(walk(&key, changes));
        }
        expected.silver.sort();
        expected.gold = summarise(expected.silver.iter().filter(|r| r.is_current));
        expected
    }

    fn read(&mut self, bytes: &[u8], by_key: &mut HashMap<String, Vec<Change>>) {
        if bytes.is_empty() {
            return;
        }
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        for line in body.split(|b| *b == b'\n') {
            self.lines += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                self.blank_lines += 1;
                continue;
            }
            let object = std::str::from_utf8(line).ok().filter(|text| {
                matches!(
                    serde_json::from_str::<serde_json::Value>(text),
                    Ok(serde_json::Value::Object(_))
                )
            });
            let Some(text) = object else {
                self.dead_lettered += 1;
                continue;
            };
            self.bronze_rows += 1;
            match type_order(text) {
                Ok(event) => {
                    let (key, change) = change(event);
                    by_key.entry(key).or_default().push(change);
                }
                Err(_) => self.quarantined += 1,
            }
        }
    }
}

fn change(event: OrderEvent) -> (String, Change) {
    let OrderEvent {
        order_id,
        customer_id,
        category,
        region,
        amount,
        status,
        order_date,
        metadata,
        op,
        updated_at,
    } = event;
    (
        order_id,
        Change {
            at: updated_at,
            op,
            values: Business {
                customer_id,
                category,
                region,
                amount: amount.map(Amount),
                status,
                order_date,
                metadata,
            },
        },
    )
}

/// The versions of one key: the SCD2 rules of `SEMANTICS.md`, read literally.
fn walk(key: &str, mut changes: Vec<Change>) -> Vec<SilverRow> {
    // Rule 1 (exact duplicates once) and rule 6 (at one instant the
    // greatest by op rank, then the values in order, wins).
    changes.sort();
    changes.dedup();
    let mut winners: Vec<Change> = Vec::new();
    for change in changes {
        match winners.last_mut() {
            Some(last) if last.at == change.at => *last = change,
            _ => winners.push(change),
        }
    }
    let mut rows: Vec<SilverRow> = Vec::new();
    let mut open: Option<usize> = None;
    for change in winners {
        if change.op == Op::Delete {
            if let Some(i) = open.take() {
                rows[i].valid_to = Some(change.at);
                rows[i].is_current = false;
            }
            continue;
        }
        if let Some(i) = open {
            if rows[i].values == change.values {
                continue;
            }
            rows[i].valid_to = Some(change.at);
            rows[i].is_current = false;
        }
        rows.push(SilverRow {
            order_id: key.to_string(),
            values: change.values,
            valid_from: change.at,
            valid_to: None,
            is_current: true,
        });
        open = Some(rows.len() - 1);
    }
    rows
}

fn summarise<'a>(current: impl Iterator<Item = &'a SilverRow>) -> BTreeMap<GoldKey, GoldRow> {
    let mut groups: BTreeMap<GoldKey, Vec<&SilverRow>> = BTreeMap::new();
    for row in current {
        let v = &row.values;
        groups
            .entry((v.order_date, v.category.clone(), v.region.clone()))
            .or_default()
            .push(row);
    }
    groups
        .into_iter()
        .map(|(key, rows)| {
            let amounts: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.values.amount.map(|a| a.0))
                .collect();
            let n = amounts.len() as f64;
            let total = (!amounts.is_empty()).then(|| amounts.iter().sum::<f64>());
            let mean = total.map(|t| t / n);
            let stddev = mean.filter(|_| amounts.len() > 1).map(|m| {
                (amounts.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (n - 1.0)).sqrt()
            });
            let users: HashSet<&str> = rows
                .iter()
                .filter_map(|r| r.values.customer_id.as_deref())
                .collect();
            let unique_users = users.len() as i64;
            let row = GoldRow {
                total_count: rows.len() as i64,
                total_value: total,
                avg_value: mean,
                min_value: amounts.iter().copied().reduce(f64::min),
                max_value: amounts.iter().copied().reduce(f64::max),
                stddev_value: stddev,
                unique_users,
                value_per_user: total
                    .filter(|_| unique_users > 0)
                    .map(|t| t / unique_users as f64),
            };
            (key, row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, at: &str, op: &str, amount: &str) -> String {
        format!(
            r#"{{"order_id":"{id}","updated_at":"{at}","op":"{op}","amount":{amount},"order_date":"2025-11-01","category":"c","region":"r","customer_id":"u"}}"#
        )
    }

    #[test]
    fn late_arrival_splits_and_delete_closes() {
        let a = [
            line("1", "2025-11-01T10:00:00Z", "c", "1"),
            line("1", "2025-11-01T12:00:00Z", "u", "3"),
            String::new(),
            "{broken".to_string(),
        ]
        .join("\n");
        let b = [
            line("1", "2025-11-01T11:00:00Z", "u", "2"),
            line("1", "2025-11-01T11:00:00Z", "u", "2"),
            line("2", "2025-11-01T09:00:00Z", "c", "5"),
            line("2", "2025-11-01T09:30:00Z", "d", "5"),
            r#"{"order_id":null}"#.to_string(),
        ]
        .join("\r\n");
        let expected = Expected::from_batches([a.as_bytes(), b.as_bytes()]);
        assert_eq!(
            (expected.lines, expected.blank_lines, expected.dead_lettered),
            (9, 1, 1)
        );
        assert_eq!((expected.bronze_rows, expected.quarantined), (7, 1));
        let history: Vec<(&str, Option<f64>, bool)> = expected
            .silver
            .iter()
            .map(|r| {
                (
                    r.order_id.as_str(),
                    r.values.amount.map(|a| a.0),
                    r.is_current,
                )
            })
            .collect();
        assert_eq!(
            history,
            [
                ("1", Some(1.0), false),
                ("1", Some(2.0), false),
                ("1", Some(3.0), true),
                ("2", Some(5.0), false),
            ]
        );
        let gold: Vec<_> = expected.gold.values().collect();
        assert_eq!(gold.len(), 1);
        assert_eq!((gold[0].total_count, gold[0].total_value), (1, Some(3.0)));
        assert_eq!(gold[0].stddev_value, None);
    }
}
