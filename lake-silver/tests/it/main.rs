//! Integration tests of lake-silver: real bronze and silver Delta tables on local files.

mod architecture;
mod expectations;
mod layout;
mod order_independence;
mod orders;
mod pipeline;
mod race;
mod spec;
mod support;
