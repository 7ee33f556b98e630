//! `lake-bench silver`: the SCD2 merge against the classic two-MERGE SCD2
//! written with deltalake's `MergeBuilder` ([`crate::compare::naive`]).
//!
//! A table is built from `orders` creates, then two change batches are
//! merged and timed: one changing 1 % of the keys, then one changing 10 %
//! with 5 % late events (events older than the version they arrive after,
//! for keys of the first batch). Updates go to recent orders (80 % of them
//! to the newest tenth), as in real order streams. Each design runs in its
//! own process, so its peak memory is its own; after the batches its silver
//! table is checked against the expected history.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lake_bronze::BronzeWriter;
use lake_core::{IngestStage, ObjectStorage, RawBatch, Result, StageContext, StorageRef};
use lake_silver::OrdersSilver;

use crate::compare::{expected::Expected, naive, silver_check};
use crate::workload::{CATEGORIES, REGIONS, Rng, STATUSES};

/// Which design a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// `OrdersSilver`.
    Ours,
    /// Latest event per key and two MERGEs.
    TwoMerge,
}

/// The batches: creates of every order, then the 1 % and 10 % changes.
pub fn batches(orders: usize, changed: &[f64], late: f64, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let line = |key: usize, op: &str, seconds: u64, status: usize, cents: u64| {
        let (day, rest) = (seconds / 86_400, seconds % 86_400);
        format!(
            "{{\"order_id\":\"o{key:08}\",\"customer_id\":\"c{:06}\",\"category\":\"{}\",\"region\":\"{}\",\"amount\":{}.{:02},\"status\":\"{}\",\"order_date\":\"2025-{:02}-{:02}\",\"op\":\"{op}\",\"updated_at\":\"2026-01-01T{:02}:{:02}:{:02}.{:06}Z\"}}\n",
            key % 50_000,
            CATEGORIES[key % CATEGORIES.len()],
            REGIONS[key % REGIONS.len()],
            cents / 100,
            cents % 100,
            STATUSES[status],
            1 + (key / 200_000) % 12,
            1 + day % 28,
            rest / 3600,
            (rest / 60) % 60,
            rest % 60,
            // Distinct instants per key and event, within the day.
            (key as u64 * 7 + seconds) % 1_000_000,
        )
    };
    let mut out = Vec::new();
    let mut creates = String::new();
    for key in 0..orders {
        creates.push_str(&line(key, "c", 3_600, 0, 1_000 + key as u64 % 9_000));
    }
    out.push(creates);
    let mut earlier: Vec<usize> = Vec::new();
    for (round, fraction) in changed.iter().enumerate() {
        let n = ((orders as f64 * fraction) as usize).max(1);
        let at = 7_200 * (round as u64 + 2);
        let mut batch = String::new();
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let recent = orders - orders / 10;
            let key = if rng.unit() < 0.8 {
                recent + rng.below((orders / 10).max(1) as u64) as usize
            } else {
                rng.below(orders as u64) as usize
            };
            keys.push(key);
            batch.push_str(&line(key, "u", at, 1 + round % 3, 500 + rng.below(90_000)));
        }
        // Late events: keys changed by an earlier batch, at an instant
        // between their create and that change.
        let lates = (n as f64 * late) as usize;
        for i in 0..lates.min(earlier.len()) {
            let key = earlier[(i * 7919) % earlier.len()];
            batch.push_str(&line(key, "u", 5_400, 3, 100 + rng.below(1_000)));
        }
        earlier = keys;
        out.push(batch);
    }
    out
}

/// Builds the table from `batches[0]`, then merges and times each other
/// batch; returns the seconds of each merge and the silver mismatches.
pub async fn run(design: Design, batches: &[String], dir: &Path) -> Result<serde_json::Value> {
    let lake = dir.to_str().unwrap_or_default().to_string();
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(&lake)?);
    let tables = naive::NaiveTables::reference()?;
    let ours = OrdersSilver::new(tables.bronze.clone(), tables.silver.clone())?;
    let mut seconds = Vec::new();
    for (i, text) in batches.iter().enumerate() {
        let id = format!("batch-{:05}.jsonl", i + 1);
        let file = dir.join(&id);
        std::fs::write(&file, text).map_err(|e| {
            lake_core::LakeError::config("silver bench", format!("{}: {e}", file.display()))
        })?;
        let context = StageContext::new(Arc::clone(&storage)).with_run_id(id.clone());
        let raw = RawBatch::from_file(&file)?;
        // The two-MERGE design selects the batch by its bronze id, which is
        // the batch's identity (path and content), not the file name.
        let batch_id = raw.batch_id.clone();
        BronzeWriter::new(tables.bronze.clone())?
            .ingest(&context, raw)
            .await?;
        let started = Instant::now();
        match design {
            Design::Ours => {
                ours.run(&storage).await?;
            }
            Design::TwoMerge => naive::silver(&storage, &tables, &batch_id).await?,
        }
        seconds.push(started.elapsed().as_secs_f64());
    }
    let expected = Expected::from_batches(batches.iter().map(String::as_bytes));
    let check = silver_check(&storage, &expected).await?;
    Ok(serde_json::json!({
        "build_seconds": seconds.first(),
        "merge_seconds": &seconds[1..],
        "expected_silver_rows": expected.silver.len(),
        "silver_missing": check.silver_missing,
        "silver_extra": check.silver_extra,
    }))
}
