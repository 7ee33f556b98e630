//! `lake-bench compare`: our tables equal the independently computed
//! expected ones, quarantine and conflicts included; the naive design's do not.

use lake_bench::compare;

use crate::support::workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_matches_the_expected_tables_and_the_naive_design_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut batches = workload();
    // Events silver must quarantine, and a sequence conflict split over
    // two batches, which the naive design resolves by arrival.
    batches[1].push_str(concat!(
        "{\"order_id\":null,\"updated_at\":\"2025-11-01T10:00:00Z\",\"op\":\"c\"}\n",
        "{\"order_id\":\"q1\",\"updated_at\":\"2025-11-01 10:00:00\",\"op\":\"c\"}\n",
        "{\"order_id\":\"q2\",\"updated_at\":\"2025-11-01T10:00:00Z\",\"op\":\"c\",\"amount\":\"+1\"}\n",
        "{\"order_id\":\"k\",\"updated_at\":\"2025-11-01T10:00:00Z\",\"op\":\"u\",\"amount\":9,\"order_date\":\"2025-11-01\"}\n",
    ));
    batches[2].push_str(
        "{\"order_id\":\"k\",\"updated_at\":\"2025-11-01T10:00:00Z\",\"op\":\"c\",\"amount\":1,\"order_date\":\"2025-11-01\"}\n",
    );
    let mut files = Vec::new();
    for (i, text) in batches.iter().enumerate() {
        let file = input.join(format!("batch-{:05}.jsonl", i + 1));
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }

    let result = compare::run(&files, dir.path()).await.unwrap();

    assert!(result.ours_check.matches(), "{:?}", result.ours_check);
    assert!(result.ours_counts_match, "{:?}", result.ours_totals);
    assert_eq!(result.ours_totals.quarantined, 3);
    assert_eq!(result.ours_totals.sequence_conflicts, 1);
    assert!(result.expected_silver_rows > 1_000);
    assert!(
        result.naive_check.silver_missing > 0 && result.naive_check.gold_mismatched > 0,
        "{:?}",
        result.naive_check
    );
    let table = result.to_markdown();
    assert!(table.contains("| ours | yes |"), "{table}");
    assert!(table.contains("| naive | no: "), "{table}");
}

/// `lake-bench silver`: both designs run on the same batches; ours gives
/// the expected history, the two-MERGE design loses the late events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_silver_bench_runs_both_designs_and_only_ours_is_exact() {
    use lake_bench::silver::{Design, batches, run};
    let batches = batches(2_000, &[0.01, 0.1], 0.05, 7);
    let mut results = Vec::new();
    for design in [Design::Ours, Design::TwoMerge] {
        let dir = tempfile::tempdir().unwrap();
        let result = run(design, &batches, dir.path()).await.unwrap();
        assert_eq!(result["merge_seconds"].as_array().unwrap().len(), 2);
        results.push(result);
    }
    assert_eq!(results[0]["silver_missing"], 0, "{}", results[0]);
    assert_eq!(results[0]["silver_extra"], 0, "{}", results[0]);
    assert!(
        results[1]["silver_missing"].as_u64().unwrap() > 0,
        "{}",
        results[1]
    );
}
