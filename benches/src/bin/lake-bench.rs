//! The `lake-bench` harness.
//!
//! ```text
//! lake-bench generate [--scale small|medium|large] [--events N --orders N --batches N] --out DIR [--seed N]
//! lake-bench bronze [--events N] [--repeat N] [--only floor|bronze]
//! lake-bench ingest --input FILE --lake DIR
//! lake-bench run --input DIR --lake DIR [--config FILE]
//! lake-bench gold [--orders N] [--dates N] [--touched N] [--rounds N] [--maintain-every N]
//! lake-bench maintain --lake DIR [--config FILE]
//! lake-bench quality [--rows N] [--repeat N]
//! lake-bench compare [--scale small|medium|large | --input DIR] [--seed N]
//! lake-bench silver [--orders N] [--also N] [--design ours|two-merge]
//! lake-bench small [--batches N] [--lines N] [--lake DIR] [--maintain-every N]
//! ```
//!
//! `bronze` measures newline-delimited JSON of the reference workload into
//! a bronze table against a floor measured in the same run: arrow-json
//! decoding plus a plain Parquet write of the same bytes, without Delta,
//! dead letters or lineage. It prints one JSON line with both timings and
//! their ratio. Bronze is timed twice: on a current-thread runtime (one
//! core, as the floor) and on a runtime with two workers, where chunks are
//! decoded and files encoded on tasks of their own beside the reader.

use std::fs::File;
use std::future::IntoFuture;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lake::config::PipelineConfig;
use lake_bench::workload::{WorkloadSpec, generate};
use lake_bronze::BronzeWriter;
use lake_core::arrow::datatypes::SchemaRef;
use lake_core::parquet::arrow::ArrowWriter;
use lake_core::parquet::basic::Compression;
use lake_core::parquet::file::properties::WriterProperties;
use lake_core::{IngestStage, LakeError, ObjectStorage, RawBatch, StageContext, Storage};

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Every command and the `--flags` it takes.
const COMMANDS: &[(&str, &[&str])] = &[
    (
        "generate",
        &["scale", "out", "seed", "events", "orders", "batches"],
    ),
    ("bronze", &["events", "repeat", "only"]),
    ("ingest", &["input", "lake"]),
    ("run", &["input", "lake", "config"]),
    (
        "gold",
        &["orders", "dates", "touched", "rounds", "maintain-every"],
    ),
    ("maintain", &["lake", "config"]),
    ("quality", &["rows", "repeat"]),
    ("compare", &["scale", "seed", "input"]),
    ("silver", &["orders", "also", "design", "batch-base"]),
    ("small", &["batches", "lines", "lake", "maintain-every"]),
    (
        "service",
        &["clients", "batches", "lines", "retry-every", "abort-every"],
    ),
];

/// The flags `command` takes.
fn flags(command: &str) -> &'static [&'static str] {
    COMMANDS
        .iter()
        .find(|(name, _)| *name == command)
        .map_or(&[], |(_, flags)| flags)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // LAKE_BENCH_CHECK_ARGS=1: check the command and its flags, run nothing
    // (how the docs test checks benchmark commands that take minutes).
    if std::env::var_os("LAKE_BENCH_CHECK_ARGS").is_some() {
        let known = args
            .first()
            .and_then(|c| COMMANDS.iter().find(|(name, _)| name == c));
        let checked = match known {
            Some((_, flags)) => options(&args[1..], flags).map(|_| ()),
            None => Err(usage().into()),
        };
        if let Err(e) = checked {
            eprintln!("lake-bench: {e}");
            std::process::exit(2);
        }
        return;
    }
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate_command(&args[1..]),
        Some("bronze") => bronze_command(&args[1..]),
        Some("ingest") => ingest_command(&args[1..]),
        Some("run") => run_command(&args[1..]),
        Some("gold") => gold_command(&args[1..]),
        Some("maintain") => maintain_command(&args[1..]),
        Some("quality") => quality_command(&args[1..]),
        Some("compare") => compare_command(&args[1..]),
        Some("silver") => silver_command(&args[1..]),
        Some("service") => service_command(&args[1..]),
        Some("small") => small_command(&args[1..]),
        _ => Err(usage().into()),
    };
    if let Err(e) = result {
        // One line per cause, never a backtrace, whatever RUST_BACKTRACE says.
        let mut lines = lake_core::error_lines(e.as_ref()).into_iter();
        eprintln!("lake-bench: {}", lines.next().unwrap_or_default());
        for cause in lines {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(2);
    }
}

fn usage() -> String {
    "usage: lake-bench generate [--scale small|medium|large] --out DIR [--seed N] | lake-bench bronze [--events N] [--repeat N] | lake-bench ingest --input FILE --lake DIR | lake-bench run --input DIR --lake DIR [--config FILE] | lake-bench gold [--orders N] [--dates N] [--touched N] [--rounds N] [--maintain-every N] | lake-bench maintain --lake DIR [--config FILE] | lake-bench quality [--rows N] [--repeat N] | lake-bench compare [--scale small|medium|large | --input DIR] [--seed N] | lake-bench silver [--orders N] [--also N] [--design ours|two-merge] | lake-bench service [--clients N] [--batches N] [--lines N] [--retry-every N] [--abort-every N] | lake-bench small [--batches N] [--lines N] [--lake DIR] [--maintain-every N]".to_string()
}

/// Peak resident memory of this process in bytes (Linux), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Processes every input file of a folder in name order (routed to bronze
/// tables as `lake run` routes them), one bronze → silver → gold cycle per
/// file, printing one JSON line per batch and a final summary.
fn run_command(args: &[String]) -> AnyResult<()> {
    let mut input = None;
    let mut lake = None;
    let mut config = None;
    for (key, value) in options(args, flags("run"))? {
        match key.as_str() {
            "input" => input = Some(PathBuf::from(value)),
            "lake" => lake = Some(value),
            "config" => config = Some(PathBuf::from(value)),
            _ => unreachable!(),
        }
    }
    let input = input.ok_or("run needs --input DIR")?;
    let config = match &config {
        Some(path) => PipelineConfig::from_toml(&std::fs::read_to_string(path)?)?,
        None => PipelineConfig::reference()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pipeline = runtime.block_on(config.build(lake.as_deref()))?;
    // Routed as `lake run` routes them, so a configuration with several
    // bronze tables works here too.
    let input = input.to_str().ok_or("--input is not UTF-8")?.to_string();
    let found = runtime.block_on(lake::inputs::discover(&config, &[input]))?;
    for (location, reason) in &found.not_read {
        eprintln!("lake-bench: not read: {location}: {reason}");
    }
    let files = found.inputs;
    let started = Instant::now();
    let mut totals = lake_core::RunTotals::default();
    let mut stage_seconds = std::collections::BTreeMap::<String, f64>::new();
    // What this process did, and what it found another delivery had done.
    let (mut ingested, mut found_done, mut reconciles) = (0u64, 0u64, true);
    for file in &files {
        let report = runtime.block_on(async { pipeline.run_batch(file.batch().await?).await })?;
        reconciles &= report.reconcile().is_ok();
        for stage in &report.stages {
            if let lake_core::StageOutcome::Ingest(ingest) = &stage.outcome {
                match ingest.already_ingested {
                    true => found_done += 1,
                    false => ingested += 1,
                }
            }
        }
        let t = report.totals();
        totals += t;
        for stage in &report.stages {
            *stage_seconds.entry(stage.stage.clone()).or_insert(0.0) += stage.seconds;
        }
        let stages: Vec<_> = report
            .stages
            .iter()
            .map(|s| match &s.outcome {
                // How many of its keys silver planned from the event log
                // (the others from their version in force alone).
                lake_core::StageOutcome::Refine(refine) => serde_json::json!({
                    "stage": s.stage,
                    "seconds": s.seconds,
                    "keys": refine.keys,
                    "keys_from_log": refine.keys_from_log,
                }),
                _ => serde_json::json!({ "stage": s.stage, "seconds": s.seconds }),
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "batch": std::path::Path::new(&file.location).file_name().map(|n| n.to_string_lossy().to_string()),
                "seconds": report.seconds(),
                "stages": stages,
                "totals": t,
            })
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "summary": true,
            "batches": files.len(),
            "batches_ingested": ingested,
            "batches_already_ingested": found_done,
            "seconds": started.elapsed().as_secs_f64(),
            "stage_seconds": stage_seconds,
            "totals": totals,
            // Every stage's own equation (lines in = rows + dead letters +
            // blank; rows read = valid + quarantined). Bronze rows and
            // silver's rows read differ when another process ingested a
            // batch this one's silver read, so they are not compared.
            "reconciles": reconciles
                && totals.input_records == totals.bronze_rows + totals.dead_lettered + totals.blank_lines
                && totals.refine_rows_read == totals.valid + totals.quarantined,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}

/// Files and bytes of every table of a lake (one `lake-bench run` made)
/// before and after maintenance, and its time. Vacuum runs with no
/// retention: the benchmark's lake has no other reader.
fn maintain_command(args: &[String]) -> AnyResult<()> {
    let mut lake = None;
    let mut config = None;
    for (key, value) in options(args, flags("maintain"))? {
        match key.as_str() {
            "lake" => lake = Some(value),
            "config" => config = Some(PathBuf::from(value)),
            _ => unreachable!(),
        }
    }
    let lake = lake.ok_or("maintain needs --lake DIR")?;
    let config = match &config {
        Some(path) => PipelineConfig::from_toml(&std::fs::read_to_string(path)?)?,
        None => PipelineConfig::reference()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pipeline = runtime.block_on(config.build(Some(&lake)))?;
    let prices = lake::cost::Prices::default();
    let before = runtime.block_on(lake::cost::cost(&pipeline, &prices))?;
    let options = lake_core::MaintenanceOptions::default()
        .with_vacuum_retention(std::time::Duration::ZERO)
        .with_short_retention(true);
    let started = Instant::now();
    let reports = runtime.block_on(pipeline.maintain().with_options(options).into_future())?;
    let seconds = started.elapsed().as_secs_f64();
    let after = runtime.block_on(lake::cost::cost(&pipeline, &prices))?;
    let tables: Vec<_> = before
        .tables
        .iter()
        .map(|b| {
            let a = after.tables.iter().find(|a| a.table == b.table);
            serde_json::json!({
                "table": b.table,
                "zone": b.zone,
                "files_before": b.files,
                "files_after": a.map(|a| a.files),
                "stored_bytes_before": b.stored_bytes,
                "stored_bytes_after": a.map(|a| a.stored_bytes),
                "rows": b.rows,
                "rows_after": a.map(|a| a.rows),
            })
        })
        .collect();
    let zones: Vec<_> = before
        .zones
        .iter()
        .map(|b| {
            let a = after.zones.iter().find(|a| a.zone == b.zone);
            let files = |report: &lake::cost::CostReport| -> u64 {
                report
                    .tables
                    .iter()
                    .filter(|t| t.zone == b.zone)
                    .map(|t| t.files)
                    .sum()
            };
            serde_json::json!({
                "zone": b.zone,
                "files_before": files(&before),
                "files_after": files(&after),
                "stored_bytes_before": b.stored_bytes,
                "stored_bytes_after": a.map(|a| a.stored_bytes),
            })
        })
        .collect();
    let rows_kept = before.tables.iter().all(|b| {
        after
            .tables
            .iter()
            .find(|a| a.table == b.table)
            .is_some_and(|a| a.rows == b.rows)
    });
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "maintain",
            "command": format!("lake-bench maintain --lake {lake}"),
            "seconds": seconds,
            "commits": reports.iter().map(|r| r.versions.len()).sum::<usize>(),
            "rows_kept": rows_kept,
            "zones": zones,
            "tables": tables,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    if !rows_kept {
        return Err("maintenance changed a table's row count".into());
    }
    Ok(())
}

/// Times an incremental gold refresh against a full rebuild (see `lake_bench::gold`).
fn gold_command(args: &[String]) -> AnyResult<()> {
    let mut bench = lake_bench::gold::GoldBench::default();
    for (key, value) in options(args, flags("gold"))? {
        let n = number(&key, &value)?.max(1);
        match key.as_str() {
            "orders" => bench.orders = n,
            "dates" => bench.dates = n,
            "touched" => bench.touched = n,
            "rounds" => bench.rounds = n,
            "maintain-every" => bench.maintain_every = Some(n),
            _ => unreachable!(),
        }
    }
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut result = runtime.block_on(lake_bench::gold::run(&bench, dir.path()))?;
    result["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
    println!("{result}");
    Ok(())
}

/// Our pipeline against the naive tutorial design on one workload, both
/// checked against the expected tables (see `lake_bench::compare`).
fn compare_command(args: &[String]) -> AnyResult<()> {
    let mut spec = WorkloadSpec::scale("medium").ok_or("no medium scale")?;
    let mut input: Option<PathBuf> = None;
    for (key, value) in options(args, flags("compare"))? {
        match key.as_str() {
            "scale" => spec = rescaled(&spec, &value)?,
            "seed" => spec.seed = number(&key, &value)? as u64,
            "input" => input = Some(PathBuf::from(value)),
            _ => unreachable!(),
        }
    }
    let dir = tempfile::tempdir()?;
    let input = match input {
        Some(input) => input,
        None => {
            let out = dir.path().join("input");
            write_workload(&spec, &out)?;
            out
        }
    };
    let files = jsonl_files(&input)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let comparison = runtime.block_on(lake_bench::compare::run(&files, dir.path()))?;
    println!("{}", comparison.to_markdown());
    let mut json = serde_json::to_value(&comparison)?;
    json["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
    println!("{json}");
    Ok(())
}

/// The SCD2 merge against the two-MERGE baseline (see `lake_bench::silver`).
/// Without `--design`, runs each design at `--orders` (and at `--also`, with
/// batches of the same size) in a child process of its own and prints them
/// side by side.
fn silver_command(args: &[String]) -> AnyResult<()> {
    let mut orders = 1_000_000;
    let mut also: Option<usize> = None;
    let mut design = None;
    let mut batch_base: Option<usize> = None;
    for (key, value) in options(args, flags("silver"))? {
        match key.as_str() {
            "orders" => orders = number(&key, &value)?.max(100),
            "also" => also = Some(number(&key, &value)?.max(100)),
            // Internal: the order count the 1 % and 10 % refer to.
            "batch-base" => batch_base = Some(number(&key, &value)?.max(100)),
            "design" => {
                design = Some(match value.as_str() {
                    "ours" => lake_bench::silver::Design::Ours,
                    "two-merge" => lake_bench::silver::Design::TwoMerge,
                    _ => return Err(format!("--design: {value:?} is not ours or two-merge").into()),
                })
            }
            _ => unreachable!(),
        }
    }
    if let Some(design) = design {
        let base = batch_base.unwrap_or(orders) as f64;
        let changed = [0.01 * base / orders as f64, 0.10 * base / orders as f64];
        let batches = lake_bench::silver::batches(orders, &changed, 0.05, 42);
        let dir = tempfile::tempdir()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let mut result = runtime.block_on(lake_bench::silver::run(design, &batches, dir.path()))?;
        result["orders"] = serde_json::json!(orders);
        result["changed_keys"] = serde_json::json!([0.01 * base, 0.10 * base]);
        result["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
        println!("{result}");
        return Ok(());
    }
    let me = std::env::current_exe()?;
    let child = |design: &str, n: usize| -> AnyResult<serde_json::Value> {
        let output = std::process::Command::new(&me)
            .args(["silver", "--design", design, "--orders", &n.to_string()])
            .args(["--batch-base", &orders.to_string()])
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "silver --design {design} --orders {n}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let mut runs = Vec::new();
    for n in std::iter::once(orders).chain(also) {
        let ours = child("ours", n)?;
        let baseline = child("two-merge", n)?;
        let ratio = |i: usize| {
            baseline["merge_seconds"][i].as_f64().unwrap_or(f64::NAN)
                / ours["merge_seconds"][i].as_f64().unwrap_or(f64::NAN)
        };
        runs.push(serde_json::json!({
            "orders": n,
            "ours": ours,
            "two_merge": baseline,
            "two_merge_over_ours_1pct": ratio(0),
            "two_merge_over_ours_10pct": ratio(1),
        }));
    }
    println!(
        "{}",
        serde_json::json!({ "benchmark": "silver_scd2_merge", "runs": runs })
    );
    Ok(())
}

/// The ingestion service under load on loopback (see
/// `lake_examples::ingest_service::load`): clients posting side by side,
/// with retries and broken-off bodies; prints the throughput, the
/// latencies and whether every line is there exactly once. Fails when it
/// is not, or when silver or gold differ from a batch run's.
fn service_command(args: &[String]) -> AnyResult<()> {
    use lake_examples::ingest_service::load::{LoadOptions, run};
    let mut load = LoadOptions::default();
    for (key, value) in options(args, flags("service"))? {
        let n = number(&key, &value)?;
        match key.as_str() {
            "clients" => load.clients = n.max(1),
            "batches" => load.batches = n.max(1),
            "lines" => load.lines = n.max(1),
            "retry-every" => load.retry_every = n,
            "abort-every" => load.abort_every = n,
            _ => unreachable!(),
        }
    }
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(dir.path(), &load))?;
    let mut json = serde_json::to_value(&report)?;
    json["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
    println!("{json}");
    if !report.exact() {
        return Err(format!(
            "the service lost, doubled or changed data: {} batches off, silver equal {}, gold equal {}",
            report.batches_off, report.silver_equal, report.gold_equal
        )
        .into());
    }
    Ok(())
}

/// The fixed cost of a small delivery, and how it grows with the lake:
/// `--batches` deliveries of `--lines` lines of the reference workload
/// (default 200 of 1,000), each through `run_batch` (bronze, silver, gold)
/// on the reference pipeline, timed one by one. Prints one JSON line per
/// batch and a summary: the median batch and stage seconds, batch 10 and
/// the last batch, and the medians of batches 6 to 15 and of the last ten,
/// whose ratio says how the cost per batch grows with the lake. With
/// `--maintain-every N`, the whole lake is maintained (untimed, vacuum
/// without retention: nothing else reads the benchmark's lake) after every
/// N-th batch.
fn small_command(args: &[String]) -> AnyResult<()> {
    let (mut batches, mut lines, mut lake, mut maintain_every) = (200usize, 1000usize, None, None);
    for (key, value) in options(args, flags("small"))? {
        match key.as_str() {
            "batches" => batches = number(&key, &value)?.max(1),
            "lines" => lines = number(&key, &value)?.max(1),
            "lake" => lake = Some(value),
            "maintain-every" => maintain_every = Some(number(&key, &value)?.max(1)),
            _ => unreachable!(),
        }
    }
    let temporary = tempfile::tempdir()?;
    let lake = match lake {
        Some(lake) => lake,
        None => temporary
            .path()
            .to_str()
            .ok_or("the temporary folder's path is not UTF-8")?
            .to_string(),
    };
    // Orders as many as a tenth of the events: updates and late events
    // touch keys of earlier batches, as a service's stream does.
    let spec = WorkloadSpec::sized(batches * lines, (batches * lines / 10).max(1), batches);
    let texts = generate(&spec);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pipeline = runtime.block_on(PipelineConfig::reference()?.build(Some(&lake)))?;
    let mut seconds = Vec::with_capacity(texts.len());
    let mut stage_seconds: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut totals = lake_core::RunTotals::default();
    for (i, text) in texts.into_iter().enumerate() {
        let batch = RawBatch::from_bytes(
            &format!("small-{:05}", i + 1),
            lake_core::InputFormat::JsonLines,
            text,
        )?;
        let started = Instant::now();
        let report = runtime.block_on(pipeline.run_batch(batch))?;
        let elapsed = started.elapsed().as_secs_f64();
        seconds.push(elapsed);
        totals += report.totals();
        let stages: Vec<_> = report
            .stages
            .iter()
            .map(|s| {
                stage_seconds
                    .entry(s.stage.clone())
                    .or_default()
                    .push(s.seconds);
                serde_json::json!({ "stage": s.stage, "seconds": s.seconds })
            })
            .collect();
        let maintained = maintain_every.is_some_and(|n| (i + 1) % n == 0);
        if maintained {
            let options = lake_core::MaintenanceOptions::default()
                .with_vacuum_retention(std::time::Duration::ZERO)
                .with_short_retention(true);
            runtime.block_on(pipeline.maintain().with_options(options).into_future())?;
        }
        println!(
            "{}",
            serde_json::json!({ "batch": i + 1, "seconds": elapsed, "stages": stages, "maintained_after": maintained })
        );
    }
    let median = |values: &[f64]| -> Option<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    };
    let window =
        |from: usize, to: usize| median(&seconds[from.min(seconds.len())..to.min(seconds.len())]);
    let early = window(5, 15);
    let late = window(seconds.len().saturating_sub(10), seconds.len());
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "small_batches",
            "command": format!(
                "lake-bench small --batches {batches} --lines {lines}{}",
                maintain_every.map_or(String::new(), |n| format!(" --maintain-every {n}"))
            ),
            "maintain_every": maintain_every,
            "batches": batches,
            "lines": lines,
            "median_seconds": median(&seconds),
            "median_stage_seconds": stage_seconds
                .iter()
                .map(|(stage, values)| (stage.clone(), serde_json::json!(median(values))))
                .collect::<serde_json::Map<_, _>>(),
            "batch_10_seconds": seconds.get(9),
            "last_batch_seconds": seconds.last(),
            "median_batches_6_to_15": early,
            "median_last_10": late,
            "growth_last_10_over_6_to_15": early.zip(late).map(|(early, late)| late / early),
            "totals": totals,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}

/// Times a 10-expectation suite against Parquet decoding (see `lake_bench::quality`).
fn quality_command(args: &[String]) -> AnyResult<()> {
    let mut rows = 10_000_000;
    let mut repeat = 3;
    for (key, value) in options(args, flags("quality"))? {
        match key.as_str() {
            "rows" => rows = number(&key, &value)?.max(1),
            "repeat" => repeat = number(&key, &value)?.max(1),
            _ => unreachable!(),
        }
    }
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let path = dir.path().join("orders.parquet");
    let mut result = runtime.block_on(lake_bench::quality::run(rows, repeat, &path))?;
    result["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
    println!("{result}");
    Ok(())
}

/// Ingests one file into `bronze/shop/orders` and prints the report with
/// the peak memory, to check that memory does not grow with the input.
/// Ingests one file, local or `s3://` (streamed, in bounded memory), into
/// `bronze.shop.orders`; S3 settings come from the `AWS_*` environment.
fn ingest_command(args: &[String]) -> AnyResult<()> {
    let (input, lake) = input_and_lake(args, "ingest needs --input FILE|s3://BUCKET/KEY")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let report = runtime.block_on(async {
        let context = StageContext::new(Arc::new(ObjectStorage::from_url(&lake)?))
            .with_run_id("ingest".to_string());
        let writer = BronzeWriter::new(lake_core::TableId::bronze("shop", "orders")?)?;
        let batch = match input.to_str().filter(|i| i.starts_with("s3://")) {
            Some(url) => {
                let url =
                    url::Url::parse(url).map_err(|e| LakeError::config("input", e.to_string()))?;
                let bucket = format!("s3://{}/", url.host_str().unwrap_or_default());
                let store = ObjectStorage::from_url(&bucket)?;
                RawBatch::from_object(&store.object_store(), &url).await?
            }
            None => RawBatch::from_file(&input)?,
        };
        writer.ingest(&context, batch).await
    })?;
    report.reconcile()?;
    println!(
        "{}",
        serde_json::json!({
            "report": report,
            "seconds": started.elapsed().as_secs_f64(),
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}

/// `--name value` pairs; unknown names are an error naming them.
fn options(args: &[String], known: &[&str]) -> AnyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .filter(|k| known.contains(k))
            .ok_or_else(|| format!("unknown argument {name:?}; {}", usage()))?;
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        out.push((key.to_string(), value.clone()));
    }
    Ok(out)
}

/// The `--input` and `--lake` arguments, both required.
fn input_and_lake(args: &[String], missing_input: &str) -> AnyResult<(PathBuf, String)> {
    let mut input = None;
    let mut lake = None;
    for (key, value) in options(args, flags("ingest"))? {
        match key.as_str() {
            "input" => input = Some(PathBuf::from(value)),
            "lake" => lake = Some(value),
            _ => unreachable!(),
        }
    }
    let input = input.ok_or(missing_input)?;
    let lake = lake.ok_or("--lake DIR is required")?;
    Ok((input, lake))
}

/// The workload of scale `name`, keeping `spec`'s seed (`--seed` may come first).
fn rescaled(spec: &WorkloadSpec, name: &str) -> AnyResult<WorkloadSpec> {
    let mut scaled =
        WorkloadSpec::scale(name).ok_or_else(|| format!("--scale: unknown scale {name:?}"))?;
    scaled.seed = spec.seed;
    Ok(scaled)
}

/// The `*.jsonl` files of `dir`, in name order.
fn jsonl_files(dir: &Path) -> AnyResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// Writes the workload's batches as `batch-00001.jsonl`, … into `out`.
fn write_workload(spec: &WorkloadSpec, out: &Path) -> AnyResult<()> {
    std::fs::create_dir_all(out)?;
    for (i, text) in generate(spec).iter().enumerate() {
        std::fs::write(out.join(format!("batch-{:05}.jsonl", i + 1)), text)?;
    }
    Ok(())
}

fn number(key: &str, value: &str) -> AnyResult<usize> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("--{key}: {value:?} is not a number").into())
}

fn generate_command(args: &[String]) -> AnyResult<()> {
    let mut spec = WorkloadSpec::small();
    let mut out: Option<PathBuf> = None;
    for (key, value) in options(args, flags("generate"))? {
        match key.as_str() {
            "scale" => spec = rescaled(&spec, &value)?,
            "out" => out = Some(PathBuf::from(value)),
            "seed" => spec.seed = number(&key, &value)? as u64,
            "events" => spec.events = number(&key, &value)?,
            "orders" => spec.orders = number(&key, &value)?.max(1),
            "batches" => spec.batches = number(&key, &value)?.max(1),
            _ => unreachable!(),
        }
    }
    let out = out.ok_or("generate needs --out DIR")?;
    std::fs::create_dir_all(&out)?;
    write_workload(&spec, &out)?;
    println!(
        "{}",
        serde_json::json!({
            "out": out.display().to_string(),
            "events": spec.events,
            "orders": spec.orders,
            "batches": spec.batches,
            "seed": spec.seed,
        })
    );
    Ok(())
}

fn bronze_command(args: &[String]) -> AnyResult<()> {
    let mut events = 1_000_000;
    let mut repeat = 3;
    let mut only: Option<String> = None;
    for (key, value) in options(args, flags("bronze"))? {
        match key.as_str() {
            "events" => events = number(&key, &value)?,
            "repeat" => repeat = number(&key, &value)?.max(1),
            // For profiling one side: `--only floor` or `--only bronze`.
            "only" => only = Some(value),
            _ => unreachable!(),
        }
    }
    // No broken lines: the floor (plain arrow-json) cannot read them.
    let spec = WorkloadSpec {
        corrupt: 0.0,
        ..WorkloadSpec::sized(events, events / 5, 1)
    };
    let text = generate(&spec).concat();
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("batch-00001.jsonl");
    std::fs::write(&input, &text)?;
    let lines = text.lines().count() as f64;
    let megabytes = text.len() as f64 / 1e6;
    drop(text);

    let one_core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let two_workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut floor = Vec::new();
    let mut ours = Vec::new();
    let mut ours_two = Vec::new();
    for round in 0..repeat {
        if only.as_deref() != Some("bronze") {
            floor.push(time_floor(
                &input,
                &dir.path().join(format!("floor-{round}.parquet")),
            )?);
        }
        if only.as_deref() != Some("floor") {
            let lake = dir.path().join(format!("lake-{round}"));
            ours.push(one_core.block_on(time_bronze(&input, &lake))?);
            let lake = dir.path().join(format!("lake-two-{round}"));
            ours_two.push(two_workers.block_on(time_bronze(&input, &lake))?);
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (floor_s, ours_s, two_s) = (best(&floor), best(&ours), best(&ours_two));
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "bronze_ndjson",
            "command": format!("lake-bench bronze --events {events} --repeat {repeat}"),
            "lines": lines,
            "megabytes": megabytes,
            "floor_seconds": floor_s,
            "bronze_seconds": ours_s,
            "floor_rows_per_second": lines / floor_s,
            "bronze_rows_per_second": lines / ours_s,
            "bronze_megabytes_per_second": megabytes / ours_s,
            "ratio_bronze_to_floor": ours_s / floor_s,
            "bronze_two_workers_seconds": two_s,
            "bronze_two_workers_rows_per_second": lines / two_s,
            "ratio_bronze_two_workers_to_floor": two_s / floor_s,
            "floor_runs": floor,
            "bronze_runs": ours,
            "bronze_two_workers_runs": ours_two,
        })
    );
    Ok(())
}

/// arrow-json decoding plus a plain Parquet write: what bronze cannot beat.
fn time_floor(input: &Path, output: &Path) -> AnyResult<f64> {
    let started = Instant::now();
    let (schema, _) =
        arrow_json::reader::infer_json_schema(BufReader::new(File::open(input)?), Some(1000))?;
    let schema: SchemaRef = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(64 * 1024)
        .with_coerce_primitive(true)
        .build(BufReader::new(File::open(input)?))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(File::create(output)?, schema, Some(properties))?;
    for batch in reader {
        writer.write(&batch?)?;
    }
    writer.close()?;
    Ok(started.elapsed().as_secs_f64())
}

async fn time_bronze(input: &Path, lake: &Path) -> AnyResult<f64> {
    let storage = Arc::new(ObjectStorage::from_url(
        lake.to_str().ok_or("lake path is not UTF-8")?,
    )?);
    let context = StageContext::new(storage).with_run_id("bench".to_string());
    let writer = BronzeWriter::new(lake_core::TableId::bronze("shop", "orders")?)?;
    let started = Instant::now();
    let report = writer.ingest(&context, RawBatch::from_file(input)?).await?;
    let seconds = started.elapsed().as_secs_f64();
    report.reconcile()?;
    Ok(seconds)
}
