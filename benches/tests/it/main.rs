//! Integration tests of lake-bench: the whole pipeline as configured.

mod backends;
mod compare;
mod docs;
mod faults;
mod processes;
mod security;
mod support;
