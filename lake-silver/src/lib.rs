//! Silver: typed, validated, deduplicated records with SCD Type 2 history.
//!
//! - [`scd2`]: the history of a key as a pure function of its valid events,
//!   which is what makes silver independent of arrival order; usable on its
//!   own (see the `scd2_only` example).
//! - [`rules`]: validity and typing of the reference workload.
//! - [`OrdersSilver`]: the reference workload's refine stage, incremental
//!   from bronze with its bookmark in the silver commits: quarantine, the
//!   changes table, the SCD2 merge, and the order dates each commit touched
//!   for gold (see [`orders`]).
//!
//! [`Mode::Scd1`] keeps only the latest state of each key, from the same
//! event log; [`CdcFormat::Debezium`] reads Debezium-style envelopes instead
//! of flat events. [`scd2::plan`] takes any key columns (compound keys are
//! compared column by column) and, through [`scd2::columnar::sequence_ranks`],
//! a sequence of several columns compared lexicographically. Still to come
//! (see the silver issue): the declarative silver spec (mappings,
//! tracked-column lists) that drives them for any table. See `SEMANTICS.md`,
//! section Silver.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub use orders::{CdcFormat, Mode, OrdersSilver};

pub mod orders;
pub mod rules;
pub mod scd2;
