//! The SCD Type 2 engine: the history of one key as a pure function of the
//! set of its valid events.
//!
//! Because the history is recomputed from *all* events of a key (the
//! changes table keeps them), the result cannot depend on arrival order or
//! batch boundaries: late arrivals, redeliveries and splits all give the
//! same versions as processing every event at once. That is the order
//! independence property of `SEMANTICS.md`, and the merge only has to
//! replace the rows of the keys a batch touched.
//!
//! The rules, in order (see `SEMANTICS.md`, section Silver):
//! 1. exact duplicates (same instant, op and tracked values) count once;
//! 2. different events at the same instant are a sequence conflict: the
//!    greatest by op rank (`d` > `u` > `c`), then by the tracked values in
//!    order (null lowest), wins; every conflict is reported;
//! 3. walking the survivors by instant, a create or update equal to the
//!    version in force opens nothing; any other opens a version and closes
//!    the one in force; a delete closes the version in force, if any.

pub mod columnar;
mod history;
mod value;

pub use columnar::{EventColumns, Plan, VersionRows, plan};
pub use history::{Conflict, History, Version, history};
pub use value::{Cell, Op};

/// One valid, typed event of a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Event {
    /// The sequence value: microseconds since the epoch (UTC) for the
    /// reference workload, or any totally ordered integer.
    pub sequence: i64,
    /// Create, update or delete.
    pub op: Op,
    /// The tracked columns, in the spec's order.
    pub tracked: Vec<Cell>,
}

#[cfg(test)]
mod tests;
