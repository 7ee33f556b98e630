//! Integration tests of lake-bronze, on real Delta tables on local files.

mod formats;
mod json;
mod support;
