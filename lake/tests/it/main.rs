//! The `lake` crate's integration tests: the CLI run as a process against
//! real files, and the configuration-driven pipeline.

mod access;
mod cli;
mod docs;
mod erase;
mod interop;
mod lineage;
mod maintain;
mod pii;
mod support;
