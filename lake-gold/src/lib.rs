//! Gold: declarative aggregations refreshed incrementally, and SQL across the lake.
//!
//! This crate will hold the aggregation spec, the incremental partition
//! refresh (`replace_where` on the partitions a silver commit touched), the
//! reference daily summary and a DataFusion session over the catalog,
//! implementing [`lake_core::AggregateStage`]. See `SEMANTICS.md`, section Gold.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
