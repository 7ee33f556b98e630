//! Silver: typed, validated, deduplicated records with SCD Type 2 history.
//!
//! So far this crate holds the [`scd2`] engine (the history of a key as a
//! pure function of its valid events, which is what makes silver
//! independent of arrival order) and the [`rules`] of validity and typing
//! of the reference workload. Still to come (see the silver issue): the
//! silver spec, typing and quarantine (`_quarantine/{domain}/{entity}`),
//! the changes table, the incremental merge from bronze with its bookmark,
//! SCD1 mode, Debezium envelopes and the [`lake_core::RefineStage`]
//! implementation. See `SEMANTICS.md`, section Silver.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub use orders::OrdersSilver;

pub mod orders;
pub mod rules;
pub mod scd2;
