//! Silver: typed, validated, deduplicated records with SCD Type 2 history.
//!
//! - [`SilverSpec`]: what a silver table holds, declared in Rust or TOML:
//!   keys (compound keys compare column by column), a sequence of one or
//!   more columns, the mapping from bronze (renames, safe casts, derived
//!   columns as SQL), tracked columns, delete detection, null-ignoring
//!   updates, SCD1 or SCD2 and the names of the validity columns.
//! - [`SilverTable`]: the refine stage of a spec, incremental from bronze
//!   with its bookmark in the silver commits: quarantine, the changes table
//!   (the event log), the history merge, and the values each commit touched
//!   for gold. [`run`](SilverTable::run) and
//!   [`rebuild`](SilverTable::rebuild) are operation builders ([`Refine`])
//!   that run when awaited.
//! - [`engine`]: what a run does, phase by phase, for any spec; it knows
//!   records only through a [`Typer`] (bronze rows in, typed events and
//!   [`QuarantineReason`]s out): [`ColumnMapping`] for a spec's `columns`,
//!   or a team's own.
//! - [`scd2`]: the history of a key as a pure function of its valid events,
//!   which is what makes silver independent of arrival order; usable on its
//!   own (see the `scd2_only` example).
//! - [`mod@reference`]: the reference workload of `SEMANTICS.md`, one user of
//!   the engine: [`SilverSpec::orders`] typed by
//!   [`ReferenceRules`](reference::ReferenceRules) from each record's
//!   original text; [`OrdersSilver`] is its stage, and
//!   [`CdcFormat::Debezium`] reads Debezium-style envelopes instead of flat
//!   events.
//!
//! Modules depend in one direction: `spec` and `scd2` on nothing of this
//! crate, `engine` on them, `reference` on the engine, and the stages
//! (`SilverTable`, `OrdersSilver`) on all of them.
//!
//! ```no_run
//! # async fn example(storage: lake_core::StorageRef) -> lake_core::Result<()> {
//! use lake_silver::{SilverSpec, SilverTable};
//!
//! let spec = SilverSpec::from_toml(r#"
//!     source = "bronze.crm.customers"
//!     target = "silver.crm.customers"
//!     keys = ["customer_id"]
//!     sequence_by = "updated_at"
//!     deletes = { column = "op", values = ["d"] }
//!     [[columns]]
//!     name = "customer_id"
//!     type = "int64"
//!     [[columns]]
//!     name = "email"
//!     [[columns]]
//!     name = "updated_at"
//!     type = "timestamp"
//! "#)?;
//! let report = SilverTable::new(spec)?.run(&storage).await?;
//! println!("{} valid, {} quarantined", report.valid, report.quarantined);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub use engine::{ColumnMapping, QuarantineReason, Typed, Typer, TyperRef};
pub use orders::OrdersSilver;
pub use reference::rules;
pub use spec::{
    BUCKETS_PROPERTY, CdcFormat, ColumnSpec, ColumnType, DEFAULT_BUCKETS, DeleteRule, Mode,
    SilverSpec, TrackHistory, Typing, ValidityColumns,
};
pub use stage::{Refine, SilverTable};

pub mod engine;
pub mod orders;
pub mod reference;
pub mod scd2;
pub mod spec;
mod stage;
