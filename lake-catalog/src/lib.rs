//! Implementations of [`lake_core::Catalog`].
//!
//! This crate will hold `MemoryCatalog`, the embedded `FileCatalog`
//! (JSON documents under `{root}/_catalog/`, safe under concurrent writers
//! through conditional puts), `GlueCatalog` behind the `glue` feature, and a
//! DataFusion `CatalogProvider` over any catalog.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
