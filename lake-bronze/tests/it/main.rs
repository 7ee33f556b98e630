//! Integration tests of lake-bronze, on real Delta tables on local files.

mod bounded;
mod catalog;
mod faults;
mod formats;
mod hostile;
mod identity;
mod json;
mod support;
