//! Data-quality expectations, suites and actions.
//!
//! - Column checks: not null, between, in set, unique and compound
//!   unique, regex, string length, and SQL boolean expressions evaluated by
//!   DataFusion (DLT's `EXPECT`). Table-level checks: row count, column
//!   exists, column type, mean/min/max/sum between, freshness. Each takes
//!   `mostly` and an [`lake_core::Action`], runs on whole Arrow columns,
//!   and reports in the Great Expectations shape.
//! - [`Suite`]s from Rust, TOML or JSON, each a [`lake_core::Validator`]
//!   the pipeline runs on silver's typed rows.
//! - [`AnomalyCheck`]s over the metrics history every pipeline run appends
//!   to `_metadata/quality`.
//!
//! - Profiles of a batch or table ([`profile_batches`], [`profile_table`]):
//!   null fraction, approximate distinct count, min, max and the type text
//!   holds, and the suite they suggest ([`Profile::suggest_suite`]).
//!
//! - [`TableKeyCheck`]: a column's values must be present in another
//!   table's column (a foreign key), or a batch's keys must not already be
//!   in a table (its current rows, say); a [`lake_core::Validator`] of its
//!   own because it reads that table, and a suite's `[[table_check]]`
//!   ([`TableExpectation`]) once the suite has its storage.
//!
//! ```
//! use lake_quality::Suite;
//!
//! let suite = Suite::from_toml(r#"
//!     name = "orders"
//!     [[expectation]]
//!     expect = "not_null"
//!     column = "order_id"
//!     action = "drop"
//!     [[expectation]]
//!     expect = "between"
//!     column = "amount"
//!     min = 0.0
//!     mostly = 0.99
//! "#).unwrap();
//! assert_eq!(suite.expectations.len(), 2);
//! assert!(Suite::from_toml("name = \"x\"\n[[expectation]]\nexpect = \"telepathy\"\n").is_err());
//! ```

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod anomaly;
pub mod expectation;
pub mod profile;
pub mod referential;
mod suite;

pub use anomaly::{AnomalyCheck, AnomalyMetric, AnomalyResult};
pub use expectation::{Bound, Check, Expectation, Stat};
pub use profile::{ColumnProfile, Profile, profile_batches, profile_provider, profile_table};
pub use referential::{TableCheck, TableExpectation, TableKeyCheck};
pub use suite::Suite;

#[cfg(test)]
mod tests;
