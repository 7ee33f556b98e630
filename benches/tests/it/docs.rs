//! docs/benchmarks.md: every benchmark command names a `lake-bench`
//! command and flags that exist. They take minutes on a release build, so
//! the binary checks their arguments (`LAKE_BENCH_CHECK_ARGS`) instead of
//! running them; the figures beside them were measured by hand.

use std::path::Path;
use std::process::Command;

use lake_testing::docs::{code_blocks, shell_commands, split_command};

#[test]
fn every_benchmark_command_in_the_docs_is_one_lake_bench_accepts() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut checked = 0;
    for block in code_blocks(&text) {
        if block.lang != "sh" {
            continue;
        }
        assert!(
            block.text.starts_with("# benchmark"),
            "docs/benchmarks.md:{}: a shell block there is a benchmark, marked `# benchmark`",
            block.line
        );
        for command in shell_commands(&block.text) {
            let (_env, words) = split_command(&command);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            match words[..] {
                ["cargo", "build", "--release", "-p", "lake-bench"]
                | [
                    "cargo",
                    "build",
                    "--release",
                    "-p",
                    "lake-bench",
                    "--features",
                    "aws",
                ] => {}
                ["target/release/lake-bench", ref args @ ..] => {
                    let out = Command::new(env!("CARGO_BIN_EXE_lake-bench"))
                        .args(args)
                        .env("LAKE_BENCH_CHECK_ARGS", "1")
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "docs/benchmarks.md:{}: {command}: {}",
                        block.line,
                        String::from_utf8_lossy(&out.stderr)
                    );
                    checked += 1;
                }
                _ => panic!(
                    "docs/benchmarks.md:{}: not a benchmark command: {command}",
                    block.line
                ),
            }
        }
    }
    assert!(checked >= 8, "{checked}");
    // The check refuses what the harness would refuse.
    let out = Command::new(env!("CARGO_BIN_EXE_lake-bench"))
        .args(["silver", "--ordrs", "1"])
        .env("LAKE_BENCH_CHECK_ARGS", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
}
