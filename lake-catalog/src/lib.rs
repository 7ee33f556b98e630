//! Implementations of [`lake_core::Catalog`].
//!
//! - [`MemoryCatalog`]: in memory, for tests and embedding.
//! - [`FileCatalog`]: the embedded default, JSON documents under
//!   `{root}/_catalog/` in the lake's own store, safe under concurrent
//!   writers through create-if-absent puts.
//!
//! - `GlueCatalog` (feature `glue`): the AWS Glue Data Catalog, one
//!   database per zone or per namespace, tested against a local
//!   `moto_server`; its grants sync to AWS Lake Formation.
//!
//! Each keeps the access grants of [`lake_core::access`].
//!
//! The DataFusion bridge over any catalog is `lake_gold::LakeSession`.
//!
//! Every implementation records schema versions through
//! [`lake_core::check_compatibility`], so all accept and refuse the same changes.
//!
//! ```
//! use std::sync::Arc;
//! use lake_catalog::MemoryCatalog;
//! use lake_core::{CatalogRef, CatalogExt, TableId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lake_core::Result<()> {
//! let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
//! assert!(!catalog.table_exists(&TableId::silver("sales", "orders")?).await?);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod file;
#[cfg(feature = "glue")]
mod glue;
mod memory;

pub use file::FileCatalog;
#[cfg(feature = "glue")]
pub use glue::{
    DEFAULT_DATABASE_TEMPLATE, DEFAULT_GRANTS_DATABASE, GlueCatalog, GlueCatalogBuilder,
    LakeFormationPermission, LakeFormationReport, SyncLakeFormation, hive_type,
};
pub use memory::MemoryCatalog;
