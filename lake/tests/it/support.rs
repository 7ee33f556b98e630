//! Running the `lake` binary.

use std::path::Path;
use std::process::{Command, Output};

/// What a run of the binary printed and how it exited.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// Checks that stderr is a readable error: `lake: error: ...` and
    /// `caused by:` lines, no panic, no backtrace (RUST_BACKTRACE is set).
    #[track_caller]
    pub fn readable_error(&self, mentions: &str) {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines
                .first()
                .is_some_and(|l| l.starts_with("lake: error: ")),
            "{}",
            self.stderr
        );
        assert!(
            lines[1..].iter().all(|l| l.starts_with("  caused by: ")),
            "{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "{}",
            self.stderr
        );
        assert!(
            self.stderr.contains(mentions),
            "{mentions:?} in:\n{}",
            self.stderr
        );
    }
}

/// Runs `lake ARGS` in `dir` with RUST_BACKTRACE=1, as users have it set.
pub fn lake(dir: &Path, args: &[&str]) -> Ran {
    lake_with_env(dir, &[], args)
}

/// [`lake`], with environment variables set for the process.
pub fn lake_with_env(dir: &Path, env: &[(String, String)], args: &[&str]) -> Ran {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_lake"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("the lake binary runs");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}
