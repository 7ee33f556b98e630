//! Data-quality expectations, suites, actions and a metrics history.
//!
//! This crate will hold vectorised expectations implementing
//! [`lake_core::Validator`] (not null, unique, between, in set, regex, SQL
//! conditions, ...), each with `mostly` and an [`lake_core::Action`],
//! results in the Great Expectations shape, suites from TOML or JSON, and
//! the metrics history under `_metadata/quality`.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
