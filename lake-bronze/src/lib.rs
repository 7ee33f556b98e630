//! Bronze: raw ingestion into append-only Delta tables that loses nothing.
//!
//! This crate will hold the bronze writer (`bronze/{source}/{table}`,
//! partitioned by ingestion date), the readers for newline-delimited JSON,
//! CSV, Parquet, Avro and Arrow batches, the dead-letter store
//! (`_dlq/bronze/{source}/{table}`) and exactly-once appends per batch id,
//! implementing [`lake_core::IngestStage`]. See `SEMANTICS.md`, section Bronze.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
