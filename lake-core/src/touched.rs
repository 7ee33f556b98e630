//! What a commit changed, told to the readers that refresh incrementally.
//!
//! A gold refresh recomputes only the partitions (say, order dates) that the
//! silver commits since its bookmark touched. When the source table is
//! partitioned by that column, the Delta log already says which: the
//! partition values of the commits' `add` and `remove` actions. When it is
//! not (silver clusters rows by a hash of the key, so a commit rewrites
//! files that hold every date), a reader could only find out by reading and
//! comparing the rewritten files, which costs as much as recomputing
//! everything. The writer, though, knows cheaply which values it changed.
//! So it records them in the commit's `commitInfo` under [`TOUCHED_KEY`],
//! in the same atomic commit as the data.
//!
//! # Contract
//! A writer that records [`Touched`] for a column lists every value of that
//! column held by a row the commit added or removed (before and after the
//! change: a row whose date moved lists both dates). A superset is allowed;
//! a missing value is a bug. Values are written the way Delta writes
//! partition values (`2025-11-01` for a date), `None` for null.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The `commitInfo` field holding a commit's [`Touched`] values.
pub const TOUCHED_KEY: &str = "lake.touched";

/// Per column, the values held by rows a commit added or removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Touched {
    columns: BTreeMap<String, BTreeSet<Option<String>>>,
}

impl Touched {
    /// Nothing touched yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that rows with `value` in `column` changed.
    pub fn insert(&mut self, column: &str, value: Option<String>) {
        self.columns
            .entry(column.to_string())
            .or_default()
            .insert(value);
    }

    /// Declares `column` as tracked even when no value changed, so that a
    /// reader can tell "nothing of this column changed" from "not recorded".
    pub fn track(&mut self, column: &str) {
        self.columns.entry(column.to_string()).or_default();
    }

    /// The values recorded for `column`, or `None` when the commit did not
    /// record that column.
    pub fn values(&self, column: &str) -> Option<&BTreeSet<Option<String>>> {
        self.columns.get(column)
    }

    /// The `commitInfo` entry, for `CommitProperties::with_metadata`.
    pub fn to_commit_metadata(&self) -> (String, serde_json::Value) {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        (TOUCHED_KEY.to_string(), value)
    }

    /// Reads the values recorded in a `commitInfo` action, if any.
    pub fn from_commit_info(commit_info: &serde_json::Value) -> Option<Self> {
        let value = commit_info.get(TOUCHED_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_commit_info() {
        let mut touched = Touched::new();
        touched.insert("order_date", Some("2025-11-01".into()));
        touched.insert("order_date", None);
        touched.track("region");
        let (key, value) = touched.to_commit_metadata();
        let commit_info = serde_json::json!({ "timestamp": 1, key: value });
        let read = Touched::from_commit_info(&commit_info).unwrap();
        assert_eq!(read, touched);
        assert_eq!(read.values("order_date").unwrap().len(), 2);
        assert!(read.values("region").unwrap().is_empty());
        assert!(read.values("status").is_none());
        assert!(Touched::from_commit_info(&serde_json::json!({"timestamp": 1})).is_none());
    }
}
