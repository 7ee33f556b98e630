//! The README and `docs/` as a user follows them: every shell command runs,
//! every configuration parses. (Their Rust blocks are doctests: see the
//! `cfg(doctest)` modules of the crate root.)

use std::path::{Path, PathBuf};

use lake::config::PipelineConfig;
use lake_testing::docs::{code_blocks, shell_commands, split_command};

use crate::support::{lake, lake_with_env};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// The files a user reads, in the order the README sends them.
const DOCS: &[&str] = &[
    "README.md",
    "docs/zones.md",
    "docs/operations.md",
    "docs/benchmarks.md",
];

fn read(file: &str) -> String {
    std::fs::read_to_string(repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn every_shell_command_of_the_readme_and_the_operations_guide_runs() {
    let dir = tempfile::tempdir().unwrap();
    // The commands run from the repository's root: its sample data, a
    // scratch copy of everything else.
    std::os::unix::fs::symlink(repo().join("examples"), dir.path().join("examples")).unwrap();
    let mut ran = 0;
    for file in ["README.md", "docs/zones.md", "docs/operations.md"] {
        for block in code_blocks(&read(file)) {
            if !matches!(block.lang.as_str(), "sh" | "bash" | "shell") {
                continue;
            }
            assert!(
                !block.text.starts_with("# benchmark"),
                "{file}:{}: benchmark commands belong in docs/benchmarks.md",
                block.line
            );
            for command in shell_commands(&block.text) {
                let (env, words) = split_command(&command);
                // Variables a guide sets for one command only (such as
                // `MALLOC_ARENA_MAX`, or the key of an erasure), never ones
                // that point the command elsewhere.
                assert!(
                    env.iter()
                        .all(|(k, _)| k == "MALLOC_ARENA_MAX" || k == "LAKE_PII_KEY"),
                    "{file}:{}: {command}",
                    block.line
                );
                let args: Vec<&str> = match words.iter().map(String::as_str).collect::<Vec<_>>()[..]
                {
                    // The command running this test.
                    ["bash", "scripts/test", ..] => continue,
                    ["lake", ref rest @ ..] => rest.to_vec(),
                    ["cargo", "run", "-p", "lake", "--", ref rest @ ..] => rest.to_vec(),
                    ["cargo", "run", "-q", "-p", "lake", "--", ref rest @ ..] => rest.to_vec(),
                    _ => panic!(
                        "{file}:{}: a command this test does not know how to run: {command}",
                        block.line
                    ),
                };
                let out = lake_with_env(dir.path(), &env, &args);
                assert_eq!(
                    out.code, 0,
                    "{file}:{}: {command}\nstdout:\n{}\nstderr:\n{}",
                    block.line, out.stdout, out.stderr
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 10, "only {ran} commands found");
    // The main job's lake is there and the tour queried it.
    assert!(
        dir.path()
            .join("lake-demo/silver/sales/orders/_delta_log")
            .exists()
    );
}

#[test]
fn every_configuration_in_the_docs_parses_as_what_it_shows() {
    let mut checked = 0;
    for file in DOCS {
        for block in code_blocks(&read(file)) {
            if block.lang != "toml" {
                continue;
            }
            let value: toml::Value = toml::from_str(&block.text)
                .unwrap_or_else(|e| panic!("{file}:{}: not TOML: {e}", block.line));
            let parsed = if value.get("dependencies").is_some() {
                // A Cargo manifest excerpt: it names the crates of this workspace.
                assert!(block.text.contains("lake = "), "{file}:{}", block.line);
                Ok(())
            } else if PipelineConfig::from_toml(&block.text).is_ok()
                || lake::silver::SilverSpec::from_toml(&block.text).is_ok()
                || toml::from_str::<lake::gold::AggregationSpec>(&block.text).is_ok()
            {
                Ok(())
            } else {
                toml::from_str::<lake::quality::Suite>(&block.text).map(|_| ())
            };
            if let Err(e) = parsed {
                panic!(
                    "{file}:{}: neither a pipeline configuration, a silver spec, an aggregation spec nor a suite ({e}):\n{}",
                    block.line, block.text
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked}");
}

#[test]
fn the_committed_sample_data_is_what_lake_init_writes() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), &["init", "s"]).expect(0);
    for sample in [
        "orders/batch-00001.jsonl",
        "orders/batch-00002.jsonl",
        "orders/batch-00003.jsonl",
        "customers/customers-00001.csv",
        "customers/customers-00002.csv",
    ] {
        let written = std::fs::read(dir.path().join("s/incoming").join(sample)).unwrap();
        let committed = std::fs::read(repo().join("examples/data").join(sample)).unwrap();
        assert!(
            written == committed,
            "examples/data/{sample} differs from lake init's"
        );
    }
    let written = std::fs::read(dir.path().join("s/customers.toml")).unwrap();
    assert_eq!(
        written,
        std::fs::read(repo().join("examples/data/customers.toml")).unwrap()
    );
}
