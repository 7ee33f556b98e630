//! Incremental refresh of a gold table.
//!
//! # How a refresh works
//! 1. The bookmark is the source version last aggregated, kept as the
//!    application transaction `lake-gold:{source}` in the gold table's own
//!    commits, so data and bookmark advance together.
//! 2. The source commits after the bookmark say which values of the
//!    partition column changed: the partition values of their `add` and
//!    `remove` actions when the source is partitioned by that column, or the
//!    values the writer recorded in `commitInfo` ([`lake_core::touched`])
//!    when it is not. A commit that says neither, a schema change, or a
//!    missing bookmark means a full rebuild: correct first, fast when it can.
//! 3. Only those partitions are recomputed from the source (the partition
//!    filter reaches the scan), and they replace the old ones in one commit
//!    (`replaceWhere` on the partition column) that also moves the bookmark.
//!
//! Every group lives in exactly one partition, so recomputing a partition
//! from all of its source rows gives what a full recomputation gives for
//! it; untouched partitions are unchanged by construction. The only columns
//! that differ from a full rebuild are the metadata columns
//! [`CREATED_AT`] and
//! [`DATA_VERSION`], which say when and from
//! which source version each partition was computed.

use std::collections::BTreeSet;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use chrono::Utc;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::functions::expr_fn::nullif;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext, ident, lit};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use lake_core::maintenance::rewrite_fence;
use lake_core::{
    AggregateReport, AggregateStage, Bookmark, BookmarkState, CatalogExt, CatalogRef, LakeError,
    Result, StageContext, StorageExt, StorageRef, TableDefinition, TableId, Touched, VersionRange,
    changes_data, commit_actions,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::spec::{AggregationSpec, CREATED_AT, DATA_VERSION};

/// Which partitions a refresh recomputed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshScope {
    /// The source had no commit after the bookmark: nothing was written.
    UpToDate,
    /// Every partition (first refresh, a rebuild on request, or a source
    /// commit that did not say what it touched).
    Full {
        /// Why a full rebuild was needed.
        reason: String,
    },
    /// These partition values (Delta partition-value text; `None` is null).
    Partitions(BTreeSet<Option<String>>),
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefreshReport {
    /// The counts every aggregate stage reports.
    pub report: AggregateReport,
    /// What was recomputed.
    pub scope: RefreshScope,
    /// The source version aggregated.
    pub source_version: Option<u64>,
    /// Source data files the scan read (after partition pruning and file skipping).
    pub files_scanned: u64,
    /// The gold table's schema, when the refresh committed (for catalog registration).
    #[serde(skip)]
    pub schema: Option<SchemaRef>,
}

/// A gold table kept up to date from its source by an [`AggregationSpec`].
#[derive(Debug, Clone)]
pub struct GoldAggregation {
    spec: AggregationSpec,
    name: String,
}

impl GoldAggregation {
    /// Checks `spec` and wraps it.
    pub fn new(spec: AggregationSpec) -> Result<Self> {
        spec.check()?;
        Ok(Self {
            name: spec.target.to_string(),
            spec,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &AggregationSpec {
        &self.spec
    }

    /// A refresh of the gold table on `storage`; nothing runs until it is awaited.
    ///
    /// ```no_run
    /// # async fn demo(gold: lake_gold::GoldAggregation, storage: lake_core::StorageRef) -> lake_core::Result<()> {
    /// let incremental = gold.refresh(&storage).await?;
    /// let rebuilt = gold.refresh(&storage).full_rebuild().await?;
    /// # Ok(()) }
    /// ```
    pub fn refresh(&self, storage: &StorageRef) -> RefreshBuilder<'_> {
        RefreshBuilder {
            aggregation: self,
            storage: Arc::clone(storage),
            full_rebuild: false,
        }
    }

    fn app_id(&self) -> String {
        format!("lake-gold:{}", self.spec.source)
    }

    /// Registers the gold table in `catalog` (idempotent).
    pub async fn register(
        &self,
        storage: &StorageRef,
        catalog: &CatalogRef,
        schema: SchemaRef,
    ) -> Result<()> {
        let spec = &self.spec;
        let location = storage.layout().table_location(&spec.target);
        let mut definition = TableDefinition::delta(
            spec.target.clone(),
            location,
            schema,
            vec![spec.partition_by.clone()],
        );
        definition
            .properties
            .insert("lake.source".to_string(), spec.source.to_string());
        catalog.ensure_table(definition).await?;
        Ok(())
    }

    async fn run(&self, storage: &StorageRef, full_rebuild: bool) -> Result<RefreshReport> {
        let spec = &self.spec;
        let target_name = spec.target.to_string();
        let source_name = spec.source.to_string();
        let layout = storage.layout();
        let mut outcome = RefreshReport {
            report: AggregateReport::empty(spec.target.clone()),
            scope: RefreshScope::UpToDate,
            source_version: None,
            files_scanned: 0,
            schema: None,
        };
        let source = storage
            .open_table(&layout.table_location(&spec.source))
            .await?;
        let Some(source_version) = source.version() else {
            return Ok(outcome);
        };
        outcome.source_version = Some(source_version);
        let target_location = layout.table_location(&spec.target);
        let gold = storage.open_table(&target_location).await?;
        let bookmark = Bookmark::new(self.app_id());
        let state = bookmark
            .read(&gold, &target_name, &source, &source_name)
            .await?;
        let scope = match &state {
            _ if full_rebuild => RefreshScope::Full {
                reason: "rebuild requested".to_string(),
            },
            BookmarkState::At(b) if *b >= source_version => return Ok(outcome),
            BookmarkState::At(b) => {
                touched_partitions(&source, &source_name, b + 1, source_version, spec).await?
            }
            // The source was created again: its commits say nothing of
            // what the gold rows were computed from.
            BookmarkState::Replaced { reason } => RefreshScope::Full {
                reason: reason.clone(),
            },
            _ => RefreshScope::Full {
                reason: "first refresh".to_string(),
            },
        };

        let first = match (&scope, &state) {
            (RefreshScope::Partitions(_), BookmarkState::At(b)) => b + 1,
            _ => 0,
        };
        outcome.report.source_versions.insert(
            source_name.clone(),
            VersionRange::new(first, source_version),
        );
        if scope == RefreshScope::Partitions(BTreeSet::new()) && gold.version().is_some() {
            // The source moved but changed no partition (say, a batch that
            // was all quarantined): only the bookmark moves.
            let moves = bookmark.transactions(&source, &source_name, source_version)?;
            let schema = table_schema(&gold, &target_name)?;
            outcome.schema = Some(Arc::clone(&schema));
            let table = gold
                .write(vec![RecordBatch::new_empty(schema)])
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(
                    CommitProperties::default().with_application_transactions(moves),
                )
                .await
                .map_err(|e| LakeError::delta(&target_name, e))?;
            outcome.report.table_version = table.version();
            outcome.scope = scope;
            return Ok(outcome);
        }

        let ctx = session();
        let source_schema = register_source(&ctx, &source, &source_name).await?;
        for column in spec.source_columns() {
            if source_schema.field_with_name(column.as_str()).is_err() {
                return Err(LakeError::Schema {
                    table: source_name.clone(),
                    message: format!(
                        "column `{column}` named by the spec of {target_name} does not exist"
                    ),
                });
            }
        }
        let partition_type = source_schema
            .field_with_name(spec.partition_by.as_str())
            .map_err(|e| LakeError::arrow(&source_name, e))?
            .data_type()
            .clone();
        let partition_filter = match &scope {
            RefreshScope::Partitions(values) => {
                Some(partition_predicate(spec, values, &partition_type)?)
            }
            _ => None,
        };
        let frame = aggregate(&ctx, spec, partition_filter.clone(), source_version).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        outcome.schema = Some(Arc::clone(&schema));
        let plan = frame
            .create_physical_plan()
            .await
            .map_err(|e| LakeError::datafusion(&target_name, e))?;
        let mut batches = collect(Arc::clone(&plan), ctx.task_ctx())
            .await
            .map_err(|e| LakeError::datafusion(&target_name, e))?;
        let scanned = ScanMetrics::of(plan.as_ref());
        outcome.report.rows_read = scanned.rows;
        outcome.files_scanned = scanned.files;
        outcome.report.rows_written = batches.iter().map(|b| b.num_rows() as u64).sum();
        let partition = spec.partition_by.as_str();
        outcome.report.partitions_refreshed = match &scope {
            RefreshScope::Partitions(values) => values.len() as u64,
            _ => distinct_values(&batches, partition, &target_name)?,
        };
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(Arc::clone(&schema)));
        }

        let gold = if gold.version().is_some() {
            gold
        } else {
            storage
                .ensure_table(&target_location, &schema, &[partition])
                .await?
        };
        let moves = bookmark.transactions(&source, &source_name, source_version)?;
        // The fence: a compaction of the gold table racing this overwrite
        // must conflict with it (see `lake_core::maintenance`).
        let write = gold
            .write(batches)
            .with_partition_columns([partition])
            .with_save_mode(SaveMode::Overwrite)
            .with_commit_properties(
                CommitProperties::default()
                    .with_application_transactions(moves)
                    .with_application_transaction(rewrite_fence()),
            );
        let write = match partition_filter {
            Some(predicate) => write.with_replace_where(predicate),
            None => write,
        };
        let table = write.await.map_err(|e| LakeError::delta(&target_name, e))?;
        outcome.report.table_version = table.version();
        outcome.scope = scope;
        info!(
            table = %target_name,
            source_version,
            partitions = outcome.report.partitions_refreshed,
            rows = outcome.report.rows_written,
            "gold refreshed"
        );
        Ok(outcome)
    }
}

/// A refresh of a gold table, run when awaited (like deltalake's operation builders).
#[derive(Debug)]
#[must_use = "a refresh does nothing until awaited"]
pub struct RefreshBuilder<'a> {
    aggregation: &'a GoldAggregation,
    storage: StorageRef,
    full_rebuild: bool,
}

impl RefreshBuilder<'_> {
    /// Recomputes every partition instead of only the touched ones.
    pub fn full_rebuild(mut self) -> Self {
        self.full_rebuild = true;
        self
    }
}

impl<'a> IntoFuture for RefreshBuilder<'a> {
    type Output = Result<RefreshReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.aggregation.run(&self.storage, self.full_rebuild).await })
    }
}

#[async_trait]
impl AggregateStage for GoldAggregation {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> &TableId {
        &self.spec.target
    }

    fn sources(&self) -> Vec<TableId> {
        vec![self.spec.source.clone()]
    }

    fn bookmarks(&self) -> Vec<(TableId, Bookmark)> {
        vec![(self.spec.source.clone(), Bookmark::new(self.app_id()))]
    }

    async fn aggregate(&self, context: &StageContext) -> Result<AggregateReport> {
        let outcome = self.refresh(&context.storage).await?;
        if let (Some(catalog), Some(schema)) = (&context.catalog, &outcome.schema)
            && outcome.report.table_version.is_some()
        {
            self.register(&context.storage, catalog, Arc::clone(schema))
                .await?;
        }
        Ok(outcome.report)
    }
}

/// A session that evaluates filters inside the Parquet scan, so the columns
/// a partition or date filter rejects are never decoded.
pub(crate) fn session() -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    // The lake writes no bloom filters; looking for them costs a read per file.
    config.options_mut().execution.parquet.bloom_filter_on_read = false;
    SessionContext::new_with_config(config)
}

/// Registers `table` as `source` in `ctx` and returns its Arrow schema.
async fn register_source(
    ctx: &SessionContext,
    table: &DeltaTable,
    name: &str,
) -> Result<SchemaRef> {
    // Silver's SCD2 table has deletion vectors; this scan still prunes
    // the pages of dates not refreshed.
    let provider = lake_core::pruning_provider(ctx, table, name).await?;
    let schema = provider.schema();
    ctx.register_table("source", provider)
        .map_err(|e| LakeError::datafusion(name, e))?;
    Ok(schema)
}

/// The aggregation as a DataFrame: the filtered source rows, grouped, with
/// the metrics, the derived metrics and the metadata columns.
async fn aggregate(
    ctx: &SessionContext,
    spec: &AggregationSpec,
    partitions: Option<Expr>,
    source_version: u64,
) -> Result<DataFrame> {
    let target = spec.target.to_string();
    let fail = |e| LakeError::datafusion(&target, e);
    let rows = ctx.table("source").await.map_err(fail)?;
    let filter = ctx
        .parse_sql_expr(spec.filter_sql(), rows.schema())
        .map_err(|e| LakeError::config("filter", format!("{target}: {e}")))?;
    let mut rows = rows.filter(filter).map_err(fail)?;
    if let Some(partitions) = partitions {
        rows = rows.filter(partitions).map_err(fail)?;
    }
    ctx.register_table("source_rows", rows.into_view())
        .map_err(fail)?;
    let groups: Vec<String> = spec
        .group_by
        .iter()
        .map(|c| lake_core::quote_ident(c.as_str()))
        .collect();
    let metrics: Vec<String> = spec
        .metrics
        .iter()
        .map(|m| {
            format!(
                "{} AS {}",
                m.function.to_sql(),
                lake_core::quote_ident(m.name.as_str())
            )
        })
        .collect();
    let sql = format!(
        "SELECT {}, {} FROM source_rows GROUP BY {}",
        groups.join(", "),
        metrics.join(", "),
        groups.join(", ")
    );
    let mut frame = ctx
        .sql(&sql)
        .await
        .map_err(|e| LakeError::config("metrics", format!("{target}: {e}")))?;
    for derived in &spec.derived {
        let expr = ctx
            .parse_sql_expr(&derived.expr, frame.schema())
            .map_err(|e| {
                LakeError::config(
                    format!("derived.{}", derived.name),
                    format!("{target}: {e}"),
                )
            })?;
        frame = frame
            .with_column(derived.name.as_str(), null_on_zero_divisor(expr)?)
            .map_err(|e| {
                LakeError::config(
                    format!("derived.{}", derived.name),
                    format!("{target}: {e}"),
                )
            })?;
    }
    let now =
        ScalarValue::TimestampMicrosecond(Some(Utc::now().timestamp_micros()), Some("UTC".into()));
    frame
        .with_column(CREATED_AT, lit(now))
        .and_then(|f| f.with_column(DATA_VERSION, lit(source_version as i64)))
        .map_err(fail)
}

/// Rewrites every `a / b` as `a / nullif(b, 0)`: a zero divisor gives null,
/// as `SEMANTICS.md` wants for `value_per_user`, instead of an error
/// (integers) or an infinity (floats).
fn null_on_zero_divisor(expr: Expr) -> Result<Expr> {
    expr.transform_up(|e| {
        Ok(match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Divide,
                right,
            }) => Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                left,
                Operator::Divide,
                Box::new(nullif(*right, lit(0))),
            ))),
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
    .map_err(|e| LakeError::datafusion("derived metric", e))
}

/// `partition IN (values…) [OR partition IS NULL]`, with each value typed
/// like the column, so Delta and DataFusion can prune on it.
fn partition_predicate(
    spec: &AggregationSpec,
    values: &BTreeSet<Option<String>>,
    data_type: &DataType,
) -> Result<Expr> {
    let column = ident(spec.partition_by.as_str());
    let texts: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
    let typed = arrow::compute::cast(&StringArray::from(texts.clone()), data_type)
        .map_err(|e| LakeError::arrow(spec.source.to_string(), e))?;
    let mut literals = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let value = ScalarValue::try_from_array(&typed, i)
            .map_err(|e| LakeError::datafusion(spec.source.to_string(), e))?;
        if value.is_null() {
            return Err(LakeError::Schema {
                table: spec.source.to_string(),
                message: format!(
                    "partition value {text:?} of `{}` is not a {data_type}",
                    spec.partition_by
                ),
            });
        }
        literals.push(lit(value));
    }
    let mut predicate = (!literals.is_empty()).then(|| column.clone().in_list(literals, false));
    if values.contains(&None) {
        let nulls = column.is_null();
        predicate = Some(match predicate {
            Some(p) => p.or(nulls),
            None => nulls,
        });
    }
    // An empty set of values selects nothing.
    Ok(predicate.unwrap_or_else(|| lit(false)))
}

/// The partition values the source commits `first..=last` touched, or a
/// full rebuild when a commit does not say.
async fn touched_partitions(
    source: &DeltaTable,
    name: &str,
    first: u64,
    last: u64,
    spec: &AggregationSpec,
) -> Result<RefreshScope> {
    let column = spec.partition_by.as_str();
    let partitioned = source
        .snapshot()
        .map_err(|e| LakeError::delta(name, e))?
        .metadata()
        .partition_columns()
        .iter()
        .any(|c| c == column);
    let full = |reason: String| Ok(RefreshScope::Full { reason });
    let mut values = BTreeSet::new();
    for version in first..=last {
        let actions = match commit_actions(source, version, name).await {
            Ok(actions) => actions,
            Err(LakeError::NotFound { .. }) => {
                return full(format!(
                    "commit {version} of {name} is no longer in its log"
                ));
            }
            Err(e) => return Err(e),
        };
        let mut files_changed = false;
        let mut recorded: Option<Touched> = None;
        for action in &actions {
            if action.get("metaData").is_some() {
                return full(format!("commit {version} of {name} changed its metadata"));
            }
            if let Some(info) = action.get("commitInfo") {
                recorded = Touched::from_commit_info(info);
            }
            // A compaction moves rows between files without changing them.
            let Some(file) = action
                .get("add")
                .or_else(|| action.get("remove"))
                .filter(|file| changes_data(file))
            else {
                continue;
            };
            files_changed = true;
            if partitioned {
                match file.get("partitionValues").and_then(|p| p.get(column)) {
                    Some(serde_json::Value::String(value)) => {
                        values.insert(Some(value.clone()));
                    }
                    Some(serde_json::Value::Null) => {
                        values.insert(None);
                    }
                    _ => {
                        return full(format!(
                            "commit {version} of {name} has a file without its `{column}` value"
                        ));
                    }
                }
            }
        }
        if files_changed && !partitioned {
            match recorded.as_ref().and_then(|t| t.values(column)) {
                Some(touched) => values.extend(touched.iter().cloned()),
                None => {
                    return full(format!(
                        "commit {version} of {name} did not record the `{column}` values it changed"
                    ));
                }
            }
        }
    }
    Ok(RefreshScope::Partitions(values))
}

/// What the scans of an executed plan read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScanMetrics {
    /// Rows the scans produced (after file skipping, before other filters).
    pub rows: u64,
    /// Data files read, after partition pruning and file skipping
    /// (deltalake's `count_files_scanned`).
    pub files: u64,
}

impl ScanMetrics {
    /// Sums the scan metrics of every node of an executed `plan`.
    pub fn of(plan: &dyn ExecutionPlan) -> Self {
        let mut total = Self::default();
        if let Some(metrics) = plan.metrics() {
            total.files += metrics
                .sum_by_name("count_files_scanned")
                .map_or(0, |v| v.as_usize() as u64);
            if plan.children().is_empty() {
                total.rows += metrics.output_rows().unwrap_or(0) as u64;
            }
        }
        for child in plan.children() {
            let child = Self::of(child.as_ref());
            total.rows += child.rows;
            total.files += child.files;
        }
        total
    }
}

/// The Arrow schema of a Delta table.
pub(crate) fn table_schema(table: &DeltaTable, name: &str) -> Result<SchemaRef> {
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
    Ok(snapshot.snapshot().arrow_schema())
}

/// The number of distinct values of `column` in `batches`.
fn distinct_values(batches: &[RecordBatch], column: &str, name: &str) -> Result<u64> {
    let mut values = BTreeSet::new();
    for batch in batches {
        let Some(array) = batch.column_by_name(column) else {
            continue;
        };
        let text =
            arrow::compute::cast(array, &DataType::Utf8).map_err(|e| LakeError::arrow(name, e))?;
        let text = text.as_string::<i32>();
        values.extend((0..text.len()).map(|i| text.is_valid(i).then(|| text.value(i).to_string())));
    }
    Ok(values.len() as u64)
}
