//! Integration tests of lake-catalog.

mod conformance;
