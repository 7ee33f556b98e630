//! Gold: declarative aggregations refreshed incrementally, and SQL across the lake.
//!
//! - [`AggregationSpec`]: what a gold table holds (source, filter, group-by,
//!   metrics, derived metrics, partition column), from Rust, TOML or JSON.
//!   [`daily_summary`] is the reference workload's (`SEMANTICS.md`, Gold).
//! - [`GoldAggregation`]: keeps a gold table up to date, recomputing only
//!   the partitions the source commits touched and replacing them in one
//!   commit with the bookmark (see [`refresh`]). It is the pipeline's
//!   [`AggregateStage`](lake_core::AggregateStage).
//! - [`LakeSession`]: SQL across zones over the catalog, with partition
//!   pruning and time travel.
//!
//! # Example
//! ```
//! use lake_core::{ObjectStorage, StorageRef, TableId};
//! use lake_gold::{GoldAggregation, LakeSession, daily_summary};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lake_core::Result<()> {
//! let storage: StorageRef = std::sync::Arc::new(ObjectStorage::from_url("memory:///")?);
//! let silver = TableId::silver("sales", "orders")?;
//! let gold = GoldAggregation::new(daily_summary(
//!     silver,
//!     TableId::gold("analytics", "daily_summary")?,
//! )?)?;
//! // Silver is still empty: nothing to aggregate yet.
//! let outcome = gold.refresh(&storage).await?;
//! assert_eq!(outcome.report.rows_written, 0);
//!
//! let session = LakeSession::new(storage);
//! let one = session.sql("SELECT 1 AS one").await?.collect().await.unwrap();
//! assert_eq!(one[0].num_rows(), 1);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod refresh;
pub mod session;
pub mod spec;

pub use refresh::{GoldAggregation, RefreshBuilder, RefreshReport, RefreshScope, ScanMetrics};
pub use session::{LakeCatalogProvider, LakeSession, TimeTravel, read_only};
pub use spec::{AggregationSpec, Derived, Function, Metric, daily_summary};
