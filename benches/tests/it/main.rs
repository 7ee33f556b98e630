//! Integration tests of lake-bench: the whole pipeline as configured.

mod backends;
mod compare;
mod faults;
mod processes;
mod security;
mod support;
