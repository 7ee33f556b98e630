//! `lake`: a medallion data lake on Delta Lake tables, embedded in your
//! service. Raw data lands in **bronze**, is typed, validated and versioned
//! (SCD Type 2) in **silver**, and is aggregated in **gold**, as plain Delta
//! tables registered in a catalog (an embedded file catalog by default, AWS
//! Glue in production) that Spark, DuckDB, Polars or Trino read too.
//!
//! This crate is the one dependency to add: it re-exports the zone crates
//! (as `deltalake` does over `deltalake-core`), owns the pipeline
//! configuration ([`config::PipelineConfig`], TOML), the inputs of a run
//! ([`inputs`]) and the state of a lake ([`status`]), and builds the `lake`
//! command-line tool.
//!
//! # Example
//! The reference workload (`SEMANTICS.md`) from its configuration, one
//! delivered batch through bronze, silver and gold, then SQL over the catalog:
//! ```
//! use lake::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lake::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let root = dir.path().to_str().unwrap();
//! let config = PipelineConfig::reference()?;
//! let pipeline = config.build(Some(root)).await?;
//!
//! let lines = concat!(
//!     r#"{"order_id":"o1","amount":"12.50","order_date":"2025-11-01","op":"c","updated_at":"2025-11-01T10:00:00Z","category":"books","region":"eu","customer_id":"c1","status":"placed"}"#, "\n",
//!     r#"{"order_id":"o1","amount":15,"order_date":"2025-11-01","op":"u","updated_at":"2025-11-01T11:00:00Z","category":"books","region":"eu","customer_id":"c1","status":"paid"}"#, "\n",
//!     "{\"order_id\": broken\n",
//! );
//! let batch = RawBatch::from_bytes("delivery-1", InputFormat::JsonLines, lines)?;
//! let report = pipeline.run_batch(batch).await?;
//! let totals = report.totals();
//! assert_eq!((totals.bronze_rows, totals.dead_lettered), (2, 1));
//!
//! let catalog = pipeline.catalog().expect("the file catalog");
//! let session = LakeSession::over_catalog(pipeline.storage().clone(), catalog).await?;
//! let versions = session
//!     .sql("SELECT count(*) AS n FROM silver.sales.orders")
//!     .await?
//!     .collect()
//!     .await
//!     .map_err(|e| LakeError::datafusion("example", e))?;
//! assert_eq!(versions[0].num_rows(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! - `cli` (default): the `lake` binary. Turn default features off when you
//!   only embed the library.
//! - `aws`: `s3://` lake roots and inputs.
//! - `glue`: the AWS Glue Data Catalog (`catalog = "glue"`).
//!
//! # Crates
//! | re-exported as | crate | what it owns |
//! |---|---|---|
//! | `lake::*` | `lake-core` | errors, identifiers, layout, storage, catalog and stage traits, the [`Pipeline`] |
//! | [`bronze`] | `lake-bronze` | raw ingestion, dead letters |
//! | [`silver`] | `lake-silver` | typing, quarantine, SCD1/SCD2 |
//! | [`gold`] | `lake-gold` | aggregations, incremental refresh, the SQL session |
//! | [`quality`] | `lake-quality` | expectations and suites |
//! | [`catalogs`] | `lake-catalog` | memory, file and Glue catalogs |

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod config;
pub mod cost;
pub mod inputs;
pub mod lifecycle;
pub mod status;

pub use lake_core::*;

pub use lake_bronze as bronze;
pub use lake_catalog as catalogs;
pub use lake_gold as gold;
pub use lake_quality as quality;
pub use lake_silver as silver;

/// What a pipeline needs, in one import: `use lake::prelude::*;`.
pub mod prelude {
    pub use crate::config::PipelineConfig;
    pub use lake_bronze::{BronzeOptions, BronzeWriter};
    pub use lake_catalog::{FileCatalog, MemoryCatalog};
    pub use lake_core::{
        CatalogRef, InputFormat, LakeError, ObjectStorage, Pipeline, RawBatch, Result, RunReport,
        Storage, StorageRef, TableId,
    };
    pub use lake_gold::{AggregationSpec, GoldAggregation, LakeSession, TimeTravel, daily_summary};
    pub use lake_quality::Suite;
    pub use lake_silver::{Mode, OrdersSilver, SilverSpec, SilverTable};
}

// The Rust blocks of the README and the guides compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/zones.md")]
mod zones {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/operations.md")]
mod operations {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/benchmarks.md")]
mod benchmarks {}
