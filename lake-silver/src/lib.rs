//! Silver: typed, validated, deduplicated records with SCD Type 2 history.
//!
//! This crate will hold the silver spec, typing and quarantine
//! (`_quarantine/{domain}/{entity}`), the changes table, and the SCD1/SCD2
//! merge that does not depend on arrival order, read incrementally from
//! bronze, implementing [`lake_core::RefineStage`]. See `SEMANTICS.md`,
//! section Silver.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
