//! Two `lake-bench run` processes on one lake and one input, started at
//! once: every table ends exact, and each process says what it did and what
//! it found done.

use std::process::{Command, Stdio};

use lake_bench::compare::{self, expected::Expected};
use lake_core::{ObjectStorage, StorageRef};

use crate::support::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_lake_end_exact_and_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let batches = workload();
    for (i, text) in batches.iter().enumerate() {
        std::fs::write(input.join(format!("batch-{:05}.jsonl", i + 1)), text).unwrap();
    }
    let lake = dir.path().join("lake");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_lake-bench"))
            .args(["run", "--input"])
            .arg(&input)
            .arg("--lake")
            .arg(&lake)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (start(), start());
    let mut ingested = 0;
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(summary["reconciles"], true, "{summary}");
        let done = summary["batches_ingested"].as_u64().unwrap();
        let found = summary["batches_already_ingested"].as_u64().unwrap();
        assert_eq!(done + found, batches.len() as u64, "{summary}");
        ingested += done;
    }
    // Each delivery landed exactly once, by one process or the other.
    assert_eq!(ingested, batches.len() as u64);

    let storage: StorageRef =
        std::sync::Arc::new(ObjectStorage::from_url(lake.to_str().unwrap()).unwrap());
    let expected = Expected::from_batches(batches.iter().map(|b| b.as_bytes()));
    let check = compare::check(&storage, &expected).await.unwrap();
    assert!(check.matches(), "{check:?}");
}

/// `lake-bench maintain` on a lake `lake-bench run` made: fewer files, the
/// same rows, and the tables still equal the expected ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintain_bench_keeps_every_table_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let batches = workload();
    for (i, text) in batches.iter().enumerate() {
        std::fs::write(input.join(format!("batch-{:05}.jsonl", i + 1)), text).unwrap();
    }
    let lake = dir.path().join("lake");
    let bench = |args: &[&std::ffi::OsStr]| {
        let output = Command::new(env!("CARGO_BIN_EXE_lake-bench"))
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    bench(&[
        "run".as_ref(),
        "--input".as_ref(),
        input.as_os_str(),
        "--lake".as_ref(),
        lake.as_os_str(),
    ]);
    let out = bench(&["maintain".as_ref(), "--lake".as_ref(), lake.as_os_str()]);
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["rows_kept"], true, "{report}");
    let silver = report["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone"] == "silver")
        .unwrap();
    assert!(
        silver["files_after"].as_u64() < silver["files_before"].as_u64(),
        "{report}"
    );
    let bronze = report["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone"] == "bronze")
        .unwrap();
    assert!(
        bronze["files_after"].as_u64() < bronze["files_before"].as_u64(),
        "{report}"
    );
    let storage: StorageRef =
        std::sync::Arc::new(ObjectStorage::from_url(lake.to_str().unwrap()).unwrap());
    let expected = Expected::from_batches(batches.iter().map(|b| b.as_bytes()));
    let check = compare::check(&storage, &expected).await.unwrap();
    assert!(check.matches(), "{check:?}");
}

/// The gold bench with maintenance between rounds: both gold tables agree
/// after every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gold_bench_with_maintenance_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let bench = lake_bench::gold::GoldBench {
        orders: 3_000,
        dates: 30,
        touched: 4,
        rounds: 4,
        maintain_every: Some(2),
    };
    let result = lake_bench::gold::run(&bench, dir.path()).await.unwrap();
    let rounds = result["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 4);
    assert!(rounds.iter().all(|r| r["mismatched_rows"] == 0), "{result}");
    assert_eq!(
        rounds
            .iter()
            .filter(|r| r["maintained_before"] == true)
            .count(),
        2
    );
}

/// `lake-bench small`: every batch through the pipeline, timed, and the
/// tables it leaves equal the expected ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_batch_bench_times_every_batch_and_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let output = Command::new(env!("CARGO_BIN_EXE_lake-bench"))
        .args(["small", "--batches", "12", "--lines", "40", "--lake"])
        .arg(&lake)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 13, "{stdout}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["batches"], 12, "{summary}");
    assert!(
        summary["median_seconds"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    assert!(
        summary["growth_last_10_over_6_to_15"].as_f64().is_some(),
        "{summary}"
    );
    assert_eq!(
        summary["median_stage_seconds"].as_object().unwrap().len(),
        3,
        "{summary}"
    );
    let totals = &summary["totals"];
    assert_eq!(
        totals["input_records"].as_u64(),
        Some(
            totals["bronze_rows"].as_u64().unwrap()
                + totals["dead_lettered"].as_u64().unwrap()
                + totals["blank_lines"].as_u64().unwrap()
        ),
        "{summary}"
    );
    let spec = lake_bench::workload::WorkloadSpec::sized(12 * 40, 48, 12);
    let batches = lake_bench::workload::generate(&spec);
    let storage: StorageRef =
        std::sync::Arc::new(ObjectStorage::from_url(lake.to_str().unwrap()).unwrap());
    let expected = Expected::from_batches(batches.iter().map(|b| b.as_bytes()));
    let check = compare::check(&storage, &expected).await.unwrap();
    assert!(check.matches(), "{check:?}");
}
