//! `lake-bench compare`: one workload through our pipeline and through the
//! naive tutorial design ([`naive`]), in one run on the same deltalake
//! crate, each result checked against the tables `SEMANTICS.md` defines,
//! computed independently in memory ([`expected`]).
//!
//! A check counts mismatched rows: silver rows missing or extra (a multiset
//! difference over every column), gold groups missing, extra or with a
//! metric off by more than a relative 1e-9.

pub mod expected;
pub mod naive;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lake_core::arrow::array::{Array, AsArray, RecordBatch};
use lake_core::arrow::compute::cast;
use lake_core::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use lake_core::{
    LakeError, ObjectStorage, RawBatch, Result, RunTotals, StageOutcome, StorageRef, TableId,
};
use lake_gold::LakeSession;
use serde::Serialize;

use expected::{Amount, Business, Expected, GoldKey, GoldRow, SilverRow};
use lake::config::PipelineConfig;

/// Seconds per stage, summed over the batches.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageSeconds {
    /// Bronze.
    pub bronze: f64,
    /// Silver.
    pub silver: f64,
    /// Gold.
    pub gold: f64,
    /// The whole run, wall clock (run records included for ours).
    pub total: f64,
}

/// How one design's tables compare with the expected ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    /// Expected silver rows the table lacks.
    pub silver_missing: u64,
    /// Silver rows the table has but should not.
    pub silver_extra: u64,
    /// Expected gold groups that are absent or differ.
    pub gold_mismatched: u64,
    /// Gold groups the table has but should not.
    pub gold_extra: u64,
}

impl Check {
    /// Whether the tables equal the expected ones.
    pub fn matches(&self) -> bool {
        self.silver_missing + self.silver_extra + self.gold_mismatched + self.gold_extra == 0
    }
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Batches processed.
    pub batches: usize,
    /// Expected silver rows and gold groups.
    pub expected_silver_rows: usize,
    /// Expected gold groups.
    pub expected_gold_groups: usize,
    /// Our pipeline's stage times.
    pub ours: StageSeconds,
    /// The naive design's stage times.
    pub naive: StageSeconds,
    /// Our tables against the expected ones.
    pub ours_check: Check,
    /// The naive tables against the expected ones.
    pub naive_check: Check,
    /// Our run's counts.
    pub ours_totals: RunTotals,
    /// Whether our counts equal the expected ones (lines, blank lines,
    /// dead letters, bronze rows, quarantined) and reconcile.
    pub ours_counts_match: bool,
}

impl Comparison {
    /// The comparison as a Markdown table (the README's).
    pub fn to_markdown(&self) -> String {
        let ratio = |naive: f64, ours: f64| format!("{:.1}x", naive / ours);
        let row = |stage: &str, ours: f64, naive: f64| {
            format!(
                "| {stage} | {ours:.1} | {naive:.1} | {} |\n",
                ratio(naive, ours)
            )
        };
        let verdict = |check: &Check| {
            if check.matches() {
                "yes".to_string()
            } else {
                format!(
                    "no: {} silver rows missing, {} extra; {} gold groups wrong, {} extra",
                    check.silver_missing,
                    check.silver_extra,
                    check.gold_mismatched,
                    check.gold_extra
                )
            }
        };
        let mut out =
            String::from("| stage | ours (s) | naive (s) | naive / ours |\n|---|---|---|---|\n");
        out += &row("bronze", self.ours.bronze, self.naive.bronze);
        out += &row("silver", self.ours.silver, self.naive.silver);
        out += &row("gold", self.ours.gold, self.naive.gold);
        out += &row("end to end", self.ours.total, self.naive.total);
        out += &format!(
            "\n| design | matches SEMANTICS.md ({} silver rows, {} gold groups expected) |\n|---|---|\n| ours | {} |\n| naive | {} |\n",
            self.expected_silver_rows,
            self.expected_gold_groups,
            verdict(&self.ours_check),
            verdict(&self.naive_check)
        );
        out
    }
}

/// Runs `files` (in order) through both designs, in lakes under `dir`.
pub async fn run(files: &[PathBuf], dir: &Path) -> Result<Comparison> {
    let mut contents = Vec::with_capacity(files.len());
    for file in files {
        contents.push(std::fs::read(file).map_err(|e| {
            LakeError::config("input", format!("cannot read {}: {e}", file.display()))
        })?);
    }
    let expected = Expected::from_batches(contents.iter().map(Vec::as_slice));
    drop(contents);

    let ours_root = lake_root(&dir.join("ours"))?;
    let pipeline = PipelineConfig::reference()?.build(Some(&ours_root)).await?;
    let mut ours = StageSeconds::default();
    let mut totals = RunTotals::default();
    let started = Instant::now();
    for file in files {
        let report = pipeline.run_batch(RawBatch::from_file(file)?).await?;
        totals += report.totals();
        for stage in &report.stages {
            match stage.outcome {
                StageOutcome::Ingest(_) => ours.bronze += stage.seconds,
                StageOutcome::Refine(_) => ours.silver += stage.seconds,
                StageOutcome::Aggregate(_) => ours.gold += stage.seconds,
            }
        }
    }
    ours.total = started.elapsed().as_secs_f64();
    drop(pipeline);

    let naive_storage: StorageRef =
        Arc::new(ObjectStorage::from_url(&lake_root(&dir.join("naive"))?)?);
    let tables = naive::NaiveTables::reference()?;
    let mut naive = StageSeconds::default();
    let started = Instant::now();
    for file in files {
        let s = naive::run_batch(&naive_storage, &tables, file).await?;
        naive.bronze += s.bronze;
        naive.silver += s.silver;
        naive.gold += s.gold;
    }
    naive.total = started.elapsed().as_secs_f64();

    let ours_storage: StorageRef = Arc::new(ObjectStorage::from_url(&ours_root)?);
    let ours_counts_match = totals.input_records == expected.lines
        && totals.blank_lines == expected.blank_lines
        && totals.dead_lettered == expected.dead_lettered
        && totals.bronze_rows == expected.bronze_rows
        && totals.quarantined == expected.quarantined
        && totals.bronze_rows == totals.valid + totals.quarantined;
    Ok(Comparison {
        batches: files.len(),
        expected_silver_rows: expected.silver.len(),
        expected_gold_groups: expected.gold.len(),
        ours,
        naive,
        ours_check: check(&ours_storage, &expected).await?,
        naive_check: check(&naive_storage, &expected).await?,
        ours_totals: totals,
        ours_counts_match,
    })
}

fn lake_root(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LakeError::config("lake", format!("{}: {e}", dir.display())))?;
    dir.to_str()
        .map(str::to_string)
        .ok_or_else(|| LakeError::config("lake", format!("{} is not UTF-8", dir.display())))
}

/// Compares the silver and gold tables of the reference layout in `storage`
/// with `expected`.
pub async fn check(storage: &StorageRef, expected: &Expected) -> Result<Check> {
    let mut result = silver_check(storage, expected).await?;
    let session = LakeSession::new(Arc::clone(storage));
    session
        .register(&TableId::gold("analytics", "daily_summary")?)
        .await?;
    let batches = collect(
        &session,
        "SELECT order_date, category, region, total_count, total_value, avg_value, min_value, \
                max_value, stddev_value, unique_users, value_per_user \
         FROM gold.analytics.daily_summary",
    )
    .await?;
    let mut actual: BTreeMap<GoldKey, GoldRow> = BTreeMap::new();
    for batch in &batches {
        actual.extend(gold_rows(batch)?);
    }
    for (key, row) in &expected.gold {
        if !actual.remove(key).is_some_and(|a| gold_equal(&a, row)) {
            result.gold_mismatched += 1;
        }
    }
    result.gold_extra = actual.len() as u64;
    Ok(result)
}

/// Compares the SCD2 table `silver/sales/orders` in `storage` with
/// `expected`, row by row (the gold fields of the result stay zero).
pub async fn silver_check(storage: &StorageRef, expected: &Expected) -> Result<Check> {
    let session = LakeSession::new(Arc::clone(storage));
    session
        .register(&TableId::silver("sales", "orders")?)
        .await?;
    let mut result = Check::default();
    let mut balance: HashMap<SilverRow, i64> = HashMap::new();
    for row in &expected.silver {
        *balance.entry(row.clone()).or_default() += 1;
    }
    let batches = collect(
        &session,
        "SELECT order_id, customer_id, category, region, amount, status, order_date, metadata, \
                CAST(valid_from AS BIGINT), CAST(valid_to AS BIGINT), is_current \
         FROM silver.sales.orders",
    )
    .await?;
    for batch in &batches {
        for row in silver_rows(batch)? {
            *balance.entry(row).or_default() -= 1;
        }
    }
    for n in balance.values() {
        if *n > 0 {
            result.silver_missing += *n as u64;
        } else {
            result.silver_extra += n.unsigned_abs();
        }
    }
    Ok(result)
}

async fn collect(session: &LakeSession, sql: &str) -> Result<Vec<RecordBatch>> {
    session
        .sql(sql)
        .await?
        .collect()
        .await
        .map_err(|e| LakeError::datafusion("comparison query", e))
}

fn column(batch: &RecordBatch, i: usize, to: &DataType) -> Result<Arc<dyn Array>> {
    cast(batch.column(i), to).map_err(|e| LakeError::arrow("comparison", e))
}

fn texts(batch: &RecordBatch, i: usize) -> Result<Vec<Option<String>>> {
    let c = column(batch, i, &DataType::Utf8)?;
    Ok(c.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

fn floats(batch: &RecordBatch, i: usize) -> Result<Vec<Option<f64>>> {
    let c = column(batch, i, &DataType::Float64)?;
    Ok(c.as_primitive::<Float64Type>().iter().collect())
}

fn ints(batch: &RecordBatch, i: usize) -> Result<Vec<Option<i64>>> {
    let c = column(batch, i, &DataType::Int64)?;
    Ok(c.as_primitive::<Int64Type>().iter().collect())
}

fn dates(batch: &RecordBatch, i: usize) -> Result<Vec<Option<i32>>> {
    let c = column(batch, i, &DataType::Date32)?;
    Ok(c.as_primitive::<Date32Type>().iter().collect())
}

fn silver_rows(batch: &RecordBatch) -> Result<Vec<SilverRow>> {
    let (ids, customers, categories, regions) = (
        texts(batch, 0)?,
        texts(batch, 1)?,
        texts(batch, 2)?,
        texts(batch, 3)?,
    );
    let (amounts, statuses, order_dates, metadata) = (
        floats(batch, 4)?,
        texts(batch, 5)?,
        dates(batch, 6)?,
        texts(batch, 7)?,
    );
    let (from, to) = (ints(batch, 8)?, ints(batch, 9)?);
    let current = batch.column(10).as_boolean();
    Ok((0..batch.num_rows())
        .map(|i| SilverRow {
            order_id: ids[i].clone().unwrap_or_default(),
            values: Business {
                customer_id: customers[i].clone(),
                category: categories[i].clone(),
                region: regions[i].clone(),
                amount: amounts[i].map(Amount),
                status: statuses[i].clone(),
                order_date: order_dates[i],
                metadata: metadata[i].clone(),
            },
            valid_from: from[i].unwrap_or(i64::MIN),
            valid_to: to[i],
            is_current: current.value(i),
        })
        .collect())
}

fn gold_rows(batch: &RecordBatch) -> Result<Vec<(GoldKey, GoldRow)>> {
    let (days, categories, regions) = (dates(batch, 0)?, texts(batch, 1)?, texts(batch, 2)?);
    let (count, total, avg, min, max, stddev) = (
        ints(batch, 3)?,
        floats(batch, 4)?,
        floats(batch, 5)?,
        floats(batch, 6)?,
        floats(batch, 7)?,
        floats(batch, 8)?,
    );
    let (users, per_user) = (ints(batch, 9)?, floats(batch, 10)?);
    Ok((0..batch.num_rows())
        .map(|i| {
            (
                (days[i], categories[i].clone(), regions[i].clone()),
                GoldRow {
                    total_count: count[i].unwrap_or(-1),
                    total_value: total[i],
                    avg_value: avg[i],
                    min_value: min[i],
                    max_value: max[i],
                    stddev_value: stddev[i],
                    unique_users: users[i].unwrap_or(-1),
                    value_per_user: per_user[i],
                },
            )
        })
        .collect())
}

/// Equal counts, and floats within a relative 1e-9 (`SEMANTICS.md`).
fn gold_equal(a: &GoldRow, b: &GoldRow) -> bool {
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    };
    a.total_count == b.total_count
        && a.unique_users == b.unique_users
        && close(a.total_value, b.total_value)
        && close(a.avg_value, b.avg_value)
        && close(a.min_value, b.min_value)
        && close(a.max_value, b.max_value)
        && close(a.stddev_value, b.stddev_value)
        && close(a.value_per_user, b.value_per_user)
}
