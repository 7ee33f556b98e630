//! Implementations of [`lake_core::Catalog`].
//!
//! - [`MemoryCatalog`]: in memory, for tests and embedding.
//!
//! Still to come (see the catalog issue): the embedded `FileCatalog` (JSON
//! documents under `{root}/_catalog/`, safe under concurrent writers through
//! conditional puts), `GlueCatalog` behind the `glue` feature, and a
//! DataFusion `CatalogProvider` over any catalog.
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

mod memory;

pub use memory::MemoryCatalog;
