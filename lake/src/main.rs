//! The `lake` command: run, inspect and query a medallion lake.
//!
//! `lake --help` lists the commands; `lake COMMAND --help` explains one.
//! Exit codes: 0 on success, 1 when a run failed, 2 on bad usage or
//! configuration.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
