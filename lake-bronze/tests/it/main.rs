//! Integration tests of lake-bronze, on real Delta tables on local files.

mod json;
mod support;
