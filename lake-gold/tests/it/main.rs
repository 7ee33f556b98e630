//! Integration tests of lake-gold: real bronze, silver and gold Delta tables on local files.

mod incremental;
mod metrics;
mod property;
mod replaced;
mod runs;
mod session;
mod summary;
mod support;
