//! The pipeline builder's checks and the run loop, with small stages that
//! write real Delta tables on `memory://`.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use lake_core::{
    Action, AggregateReport, AggregateStage, ExpectationSummary, IngestReport, IngestStage,
    InputFormat, LakeError, ObjectStorage, Payload, Pipeline, RawBatch, RefineReport, RefineStage,
    Result, RuleResult, StageContext, StageOutcome, StorageExt, StorageRef, TableId, Validation,
    Validator,
};

/// Lines starting with `{` are rows, blank lines are counted, the rest is dead-lettered.
#[derive(Debug)]
struct LineIngest {
    name: String,
    target: TableId,
    /// Reports one dead-lettered record fewer than it saw.
    miscount: bool,
}

#[async_trait]
impl IngestStage for LineIngest {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> &TableId {
        &self.target
    }

    async fn ingest(&self, context: &StageContext, batch: RawBatch) -> Result<IngestReport> {
        let Payload::Bytes(bytes) = batch.payload else {
            return Err(LakeError::config("payload", "test stage reads bytes only"));
        };
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (mut rows, mut blank, mut dead) = (Vec::new(), 0, 0);
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines {
            if line.trim().is_empty() {
                blank += 1;
            } else if line.starts_with('{') {
                rows.push(line.to_string());
            } else {
                dead += 1;
            }
        }
        let schema = Arc::new(Schema::new(vec![Field::new("raw", DataType::Utf8, false)]));
        let written = rows.len() as u64;
        let data = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(rows))]).unwrap();
        let location = context.storage.layout().table_location(&self.target);
        let table = context.storage.open_table(&location).await?;
        let table = table
            .write(vec![data])
            .await
            .map_err(|e| LakeError::delta(self.target.to_string(), e))?;
        let mut report = IngestReport::new(self.target.clone(), &batch.batch_id);
        report.input_records = lines.len() as u64;
        report.rows_written = written;
        report.dead_lettered = if self.miscount { dead - 1 } else { dead };
        report.blank_lines = blank;
        report.bytes_read = bytes.len() as u64;
        report.table_version = table.version();
        Ok(report)
    }
}

/// Reads all of bronze, quarantines rows the validators drop.
#[derive(Debug)]
struct CountRefine {
    name: String,
    source: TableId,
    target: TableId,
}

#[async_trait]
impl RefineStage for CountRefine {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> &TableId {
        &self.target
    }

    fn sources(&self) -> Vec<TableId> {
        vec![self.source.clone()]
    }

    async fn refine(&self, context: &StageContext) -> Result<RefineReport> {
        let location = context.storage.layout().table_location(&self.source);
        let table = context.storage.open_table(&location).await?;
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| LakeError::delta(self.source.to_string(), e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| LakeError::datafusion("bronze", e))?;
        ctx.register_table("bronze", provider).unwrap();
        let batches = ctx
            .sql("SELECT raw FROM bronze")
            .await
            .and_then(|df| futures::executor::block_on(df.collect()))
            .map_err(|e| LakeError::datafusion("bronze", e))?;
        let mut report = RefineReport::empty(self.target.clone());
        for batch in &batches {
            let mut validation = Validation::default();
            for validator in &context.validators {
                validation.extend(validator.validate(batch).await?);
            }
            validation.check_fatal(&self.target.to_string())?;
            let dropped = validation.drop_mask(batch.num_rows()).true_count() as u64;
            report.rows_read += batch.num_rows() as u64;
            report.quarantined += dropped;
            report.valid += batch.num_rows() as u64 - dropped;
            report
                .expectations
                .extend(validation.rules.iter().map(ExpectationSummary::from));
        }
        report.rows_written = report.valid;
        Ok(report)
    }
}

/// Fails every row whose text contains `bad`.
#[derive(Debug)]
struct NoBadRows(Action);

#[async_trait]
impl Validator for NoBadRows {
    fn name(&self) -> &str {
        "no_bad_rows"
    }

    async fn validate(&self, batch: &RecordBatch) -> Result<Validation> {
        let raw = batch
            .column_by_name("raw")
            .ok_or_else(|| LakeError::config("no_bad_rows", "column `raw` missing"))?;
        // DataFusion may hand strings over as views: compare as plain UTF-8.
        let raw = arrow::compute::cast(raw, &DataType::Utf8)
            .map_err(|e| LakeError::arrow("no_bad_rows", e))?;
        let raw = raw.as_any().downcast_ref::<StringArray>().unwrap();
        let mask: BooleanArray = raw.iter().map(|v| v.map(|v| v.contains("bad"))).collect();
        Ok(Validation::new(vec![RuleResult::from_mask(
            "no_bad_rows",
            self.0,
            mask,
        )]))
    }
}

#[derive(Debug)]
struct TouchGold {
    source: TableId,
    target: TableId,
    fail: bool,
}

#[async_trait]
impl AggregateStage for TouchGold {
    fn name(&self) -> &str {
        "gold"
    }

    fn target(&self) -> &TableId {
        &self.target
    }

    fn sources(&self) -> Vec<TableId> {
        vec![self.source.clone()]
    }

    async fn aggregate(&self, _context: &StageContext) -> Result<AggregateReport> {
        if self.fail {
            return Err(LakeError::Schema {
                table: self.target.to_string(),
                message: "column `total` missing".to_string(),
            });
        }
        let mut report = AggregateReport::empty(self.target.clone());
        report.partitions_refreshed = 1;
        Ok(report)
    }
}

fn bronze() -> TableId {
    TableId::bronze("shop", "orders").unwrap()
}
fn silver() -> TableId {
    TableId::silver("sales", "orders").unwrap()
}
fn gold() -> TableId {
    TableId::gold("analytics", "daily").unwrap()
}

fn storage() -> StorageRef {
    Arc::new(ObjectStorage::from_url("memory:///").unwrap())
}

fn ingest(name: &str, target: TableId) -> Arc<LineIngest> {
    Arc::new(LineIngest {
        name: name.to_string(),
        target,
        miscount: false,
    })
}

fn refine(name: &str, source: TableId, target: TableId) -> Arc<CountRefine> {
    Arc::new(CountRefine {
        name: name.to_string(),
        source,
        target,
    })
}

fn aggregate(fail: bool) -> Arc<TouchGold> {
    Arc::new(TouchGold {
        source: silver(),
        target: gold(),
        fail,
    })
}

fn config_error(result: Result<Pipeline>) -> (String, String) {
    match result {
        Err(LakeError::Config { field, message }) => (field, message),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

const INPUT: &str = "{\"id\":1}\n\nnot json\r\n{\"id\":2,\"bad\":true}\n   \n{\"id\":3}";

#[tokio::test]
async fn a_run_goes_through_every_stage_and_reconciles() {
    let pipeline = Pipeline::builder()
        .with_storage(storage())
        .with_ingest(ingest("bronze", bronze()))
        .with_refine(refine("silver", bronze(), silver()))
        .with_aggregate(aggregate(false))
        .with_validator(silver(), Arc::new(NoBadRows(Action::Drop)))
        .build()
        .unwrap();
    let batch = RawBatch::from_bytes("batch-00001.jsonl", InputFormat::JsonLines, INPUT).unwrap();
    let report = pipeline.run_batch(batch).await.unwrap();

    assert_eq!(report.stages.len(), 3);
    report.reconcile().unwrap();
    let totals = report.totals();
    assert_eq!(totals.input_records, 6);
    assert_eq!(totals.bronze_rows, 3);
    assert_eq!(totals.dead_lettered, 1);
    assert_eq!(totals.blank_lines, 2);
    assert_eq!(totals.refine_rows_read, 3);
    assert_eq!(totals.quarantined, 1);
    assert_eq!(totals.valid, 2);
    assert_eq!(totals.partitions_refreshed, 1);
    match &report.stages[1].outcome {
        StageOutcome::Refine(r) => {
            assert_eq!(r.expectations.len(), 1);
            assert_eq!(r.expectations[0].unexpected_count, 1);
            assert!(!r.expectations[0].success);
        }
        other => panic!("second stage is {other:?}"),
    }

    let printed = report.to_string();
    for needle in [
        "bronze.shop.orders",
        "silver.sales.orders",
        "gold.analytics.daily",
        "ingest",
    ] {
        assert!(printed.contains(needle), "{needle} missing from\n{printed}");
    }
    let json = report.to_json();
    let back: lake_core::RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert!(json.contains("\"kind\":\"refine\""), "{json}");

    // A second batch appends; run_pending re-reads without ingesting.
    let batch =
        RawBatch::from_bytes("batch-00002.jsonl", InputFormat::JsonLines, "{\"id\":4}").unwrap();
    let report = pipeline.run_batch(batch).await.unwrap();
    assert!(
        matches!(&report.stages[0].outcome, StageOutcome::Ingest(r) if r.table_version == Some(1))
    );
    let pending = pipeline.run_pending().await.unwrap();
    assert_eq!(pending.stages.len(), 2);
    assert_eq!(pending.totals().refine_rows_read, 4);
    assert_eq!(pending.totals().input_records, 0);
}

#[tokio::test]
async fn a_report_that_does_not_reconcile_fails_the_run() {
    let pipeline = Pipeline::builder()
        .with_storage(storage())
        .with_ingest(Arc::new(LineIngest {
            name: "sloppy".to_string(),
            target: bronze(),
            miscount: true,
        }))
        .build()
        .unwrap();
    let batch = RawBatch::from_bytes("b1", InputFormat::JsonLines, INPUT).unwrap();
    match pipeline.run_batch(batch).await {
        Err(LakeError::Reconciliation { stage, message }) => {
            assert_eq!(stage, "sloppy");
            assert!(message.contains("6 input records"), "{message}");
        }
        other => panic!("expected a reconciliation error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_stage_is_named_in_the_error() {
    let pipeline = Pipeline::builder()
        .with_storage(storage())
        .with_ingest(ingest("bronze", bronze()))
        .with_refine(refine("silver", bronze(), silver()))
        .with_aggregate(aggregate(true))
        .build()
        .unwrap();
    let batch = RawBatch::from_bytes("b1", InputFormat::JsonLines, INPUT).unwrap();
    let err = pipeline.run_batch(batch).await.unwrap_err();
    assert!(
        matches!(err, LakeError::Stage { ref stage, .. } if stage == "gold"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "stage `gold` failed: schema of gold.analytics.daily: column `total` missing"
    );
}

#[tokio::test]
async fn fail_expectations_abort_the_stage() {
    let pipeline = Pipeline::builder()
        .with_storage(storage())
        .with_ingest(ingest("bronze", bronze()))
        .with_refine(refine("silver", bronze(), silver()))
        .with_validator(silver(), Arc::new(NoBadRows(Action::Fail)))
        .build()
        .unwrap();
    let batch = RawBatch::from_bytes("b1", InputFormat::JsonLines, INPUT).unwrap();
    let err = pipeline.run_batch(batch).await.unwrap_err().to_string();
    assert!(
        err.contains("data quality failed for silver.sales.orders"),
        "{err}"
    );
    assert!(err.contains("`no_bad_rows` failed: 1 of 3"), "{err}");
}

#[tokio::test]
async fn batches_are_routed_by_target_when_there_are_several_sources() {
    let other = TableId::bronze("crm", "customers").unwrap();
    let pipeline = Pipeline::builder()
        .with_storage(storage())
        .with_ingest(ingest("orders", bronze()))
        .with_ingest(ingest("customers", other.clone()))
        .build()
        .unwrap();
    let untargeted = RawBatch::from_bytes("b1", InputFormat::JsonLines, INPUT).unwrap();
    let (field, message) = match pipeline.run_batch(untargeted).await {
        Err(LakeError::Config { field, message }) => (field, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(field, "target");
    assert!(message.contains("2 ingest stages"), "{message}");

    let targeted = RawBatch::from_bytes("b1", InputFormat::JsonLines, INPUT)
        .unwrap()
        .with_target(other.clone());
    let report = pipeline.run_batch(targeted).await.unwrap();
    assert_eq!(report.stages[0].stage, "customers");

    let unknown = RawBatch::from_bytes("b1", InputFormat::JsonLines, INPUT)
        .unwrap()
        .with_target(TableId::bronze("x", "y").unwrap());
    assert!(pipeline.run_batch(unknown).await.is_err());
}

#[test]
fn the_builder_says_what_is_missing_or_inconsistent() {
    let (field, _) = config_error(
        Pipeline::builder()
            .with_ingest(ingest("b", bronze()))
            .build(),
    );
    assert_eq!(field, "storage");

    let (field, _) = config_error(Pipeline::builder().with_storage(storage()).build());
    assert_eq!(field, "stages");

    let (field, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_ingest(ingest("b", silver()))
            .build(),
    );
    assert_eq!(field, "stage `b`");
    assert!(message.contains("must write the bronze zone"), "{message}");

    let (_, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_ingest(ingest("same", bronze()))
            .with_refine(refine("same", bronze(), silver()))
            .build(),
    );
    assert!(message.contains("two stages have this name"), "{message}");

    let (_, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_ingest(ingest("a", bronze()))
            .with_ingest(ingest("b", bronze()))
            .build(),
    );
    assert!(message.contains("another stage writes too"), "{message}");

    let (_, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_refine(refine("s", gold(), silver()))
            .build(),
    );
    assert!(message.contains("may not read the gold zone"), "{message}");

    let (_, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_refine(refine("s", silver(), silver()))
            .build(),
    );
    assert!(message.contains("reads its own target"), "{message}");

    let derived = TableId::silver("sales", "order_lines").unwrap();
    let (field, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_refine(refine("lines", silver(), derived))
            .with_refine(refine("orders", bronze(), silver()))
            .build(),
    );
    assert_eq!(field, "stage `lines`");
    assert!(message.contains("which a later stage writes"), "{message}");

    let (field, message) = config_error(
        Pipeline::builder()
            .with_storage(storage())
            .with_ingest(ingest("b", bronze()))
            .with_validator(silver(), Arc::new(NoBadRows(Action::Warn)))
            .build(),
    );
    assert_eq!(field, "validators");
    assert!(message.contains("no refine stage writes"), "{message}");

    // A refine stage alone, reading bronze written by another service, is fine.
    Pipeline::builder()
        .with_storage(storage())
        .with_refine(refine("s", bronze(), silver()))
        .build()
        .unwrap();
}

/// Fails with a transient storage error `failures` times, then succeeds.
#[derive(Debug)]
struct FlakyGold {
    failures: std::sync::atomic::AtomicU32,
    calls: std::sync::atomic::AtomicU32,
    transient: bool,
}

#[async_trait]
impl AggregateStage for FlakyGold {
    fn name(&self) -> &str {
        "flaky gold"
    }

    fn target(&self) -> &TableId {
        static GOLD: std::sync::LazyLock<TableId> = std::sync::LazyLock::new(gold);
        &GOLD
    }

    fn sources(&self) -> Vec<TableId> {
        vec![silver()]
    }

    async fn aggregate(&self, _context: &StageContext) -> Result<AggregateReport> {
        use std::sync::atomic::Ordering;
        self.calls.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            let source = lake_core::object_store::Error::Generic {
                store: "test",
                source: "connection reset".into(),
            };
            return Err(if self.transient {
                LakeError::storage("memory:///gold", source)
            } else {
                LakeError::not_found("gold source")
            });
        }
        Ok(AggregateReport::empty(gold()))
    }
}

fn flaky(failures: u32, transient: bool) -> Arc<FlakyGold> {
    Arc::new(FlakyGold {
        failures: failures.into(),
        calls: 0.into(),
        transient,
    })
}

#[tokio::test]
async fn transient_failures_are_retried_with_bounded_attempts() {
    use lake_core::RetryPolicy;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let policy = RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(4));
    let run = |stage: Arc<FlakyGold>, policy: RetryPolicy| async move {
        let pipeline = Pipeline::builder()
            .with_storage(storage())
            .with_aggregate(stage)
            .with_retry(policy)
            .without_run_records()
            .build()
            .unwrap();
        pipeline.run_pending().await
    };

    let recovers = flaky(2, true);
    run(Arc::clone(&recovers), policy).await.unwrap();
    assert_eq!(recovers.calls.load(Ordering::SeqCst), 3, "two retries");

    let exhausted = flaky(3, true);
    let err = run(Arc::clone(&exhausted), policy).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        exhausted.calls.load(Ordering::SeqCst),
        3,
        "attempts are bounded"
    );

    let permanent = flaky(1, false);
    assert!(run(Arc::clone(&permanent), policy).await.is_err());
    assert_eq!(
        permanent.calls.load(Ordering::SeqCst),
        1,
        "a permanent error is not retried"
    );

    let off = flaky(1, true);
    assert!(run(Arc::clone(&off), RetryPolicy::none()).await.is_err());
    assert_eq!(off.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter() {
    use std::time::Duration;
    let policy =
        lake_core::RetryPolicy::new(10, Duration::from_millis(100), Duration::from_millis(350));
    for (attempt, full) in [(1, 100), (2, 200), (3, 350), (9, 350)] {
        let wait = policy.backoff(attempt);
        let full = Duration::from_millis(full);
        assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
    }
}

#[test]
fn errors_deep_in_a_cause_chain_are_classified() {
    let transient = lake_core::object_store::Error::Generic {
        store: "s3",
        source: "connection reset".into(),
    };
    let io = std::io::Error::other(transient);
    let parquet = lake_core::parquet::errors::ParquetError::External(Box::new(io));
    let delta = lake_core::deltalake::DeltaTableError::Parquet { source: parquet };
    assert!(LakeError::delta("t", delta).is_retryable());
    let missing = lake_core::object_store::Error::NotFound {
        path: "x".into(),
        source: "gone".into(),
    };
    let delta = lake_core::deltalake::DeltaTableError::ObjectStore { source: missing };
    assert!(!LakeError::delta("t", delta).is_retryable());
}
