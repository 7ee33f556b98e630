//! Conformance suites for implementations of the lake's traits (feature
//! `conformance`), as object_store exports its integration tests: the same
//! bodies run over every implementation in this workspace and over yours.

pub mod catalog;
pub mod storage;
