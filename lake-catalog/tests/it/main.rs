//! Integration tests of lake-catalog.

mod conformance;
#[cfg(feature = "glue")]
mod lake_formation;
