//! `lake-bench`: the reference workload generator and the `lake-bench`
//! harness binary.
//!
//! Not published. Benchmarks report ratios against a baseline measured in
//! the same run, never absolute timings in unit tests.
//!
//! ```sh
//! cargo run --release -p lake-bench -- bronze --events 1000000
//! ```

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod compare;
pub mod gold;
pub mod quality;
pub mod silver;
pub mod workload;
