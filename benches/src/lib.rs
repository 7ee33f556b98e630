//! `lake-bench`: the reference workload generator, criterion benchmarks and
//! the `lake-bench` harness binary (`generate`, `run`, `compare`).
//!
//! Not published. Benchmarks report ratios against a baseline measured in
//! the same run, never absolute timings in unit tests.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
