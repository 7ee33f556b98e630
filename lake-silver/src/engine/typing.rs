//! Bronze rows to typed events, the one phase of a run that knows what the
//! records mean: the [`Typer`] trait, and [`ColumnMapping`], the typer of
//! a spec's `columns` (renames, safe casts, SQL expressions), through
//! DataFusion. Other typers (the reference workload's rules over `_raw`)
//! live with their workload.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::common::{Column, DataFusionError, ScalarValue, SchemaError};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{Expr, lit, try_cast, when};
use datafusion::prelude::SessionContext;
use lake_core::{LakeError, Result};

use super::key_buckets;
use super::quarantine::QuarantineReason;
use crate::spec::{CdcFormat, DeleteRule, KEY_BUCKET, OP_COLUMN, SilverSpec};

/// Turns bronze rows into typed events for a [`SilverSpec`]: bronze batch
/// in, the events in the event log's layout plus a reason for every row
/// refused out. Object-safe: a stage holds it as a [`TyperRef`].
///
/// # Contract
/// - Every bronze row ends up exactly once: as one event (with its row
///   number in [`Typed::rows`], ascending) or as one rejection with its
///   reason. The engine checks this and fails the run, before any commit,
///   when a typer breaks it.
/// - [`Typed::events`] has the event log's layout for the spec: its
///   business columns in spec order, the op column
///   ([`op_column`](Typer::op_column), values `c`, `u`, `d`), the sequence
///   columns, then `_key_bucket` from [`key_buckets`] over the key columns
///   among [`SilverSpec::buckets`].
/// - Typing is a function of the row and the spec only: the same record
///   gives the same event in any batch, whatever else the batch holds. The
///   order independence of silver depends on it.
/// - CPU-heavy typing runs off the async workers
///   (`tokio::task::spawn_blocking`), as [`ColumnMapping`]'s DataFusion
///   plan and the reference rules do.
#[async_trait]
pub trait Typer: Send + Sync + Debug {
    /// Refuses a spec this typer cannot type (by default, none).
    fn check(&self, spec: &SilverSpec) -> Result<()> {
        let _ = spec;
        Ok(())
    }

    /// The bronze columns read, beside the lineage columns every run reads
    /// for quarantine; `None` for all of them (the default).
    fn bronze_columns(&self) -> Option<&[&str]> {
        None
    }

    /// The event log's op column (by default [`OP_COLUMN`]).
    fn op_column(&self) -> &str {
        OP_COLUMN
    }

    /// Columns whose values are nearly unique per row, which silver writes
    /// without a dictionary (by default none beyond the keys, the validity
    /// columns and floats, which the engine picks itself).
    fn plain_columns(&self) -> &[&str] {
        &[]
    }

    /// Types `bronze` (the rows of one slice of bronze commits) for `spec`.
    async fn type_rows(&self, spec: &SilverSpec, bronze: RecordBatch) -> Result<Typed>;
}

/// A shared [`Typer`].
pub type TyperRef = Arc<dyn Typer>;

/// Typed events and what became of every bronze row (see [`Typer`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Typed {
    /// The events in the event log's layout: business columns, the op,
    /// the sequence columns, the key bucket.
    pub events: RecordBatch,
    /// The bronze row each event came from, ascending.
    pub rows: Vec<u32>,
    /// The bronze rows refused, with the reason.
    pub rejected: Vec<(u32, QuarantineReason)>,
}

impl Typed {
    /// Events, the bronze row of each, and the rows refused.
    pub fn new(
        events: RecordBatch,
        rows: Vec<u32>,
        rejected: Vec<(u32, QuarantineReason)>,
    ) -> Self {
        Self {
            events,
            rows,
            rejected,
        }
    }

    /// Checks the first rule of the [`Typer`] contract over `bronze_rows`
    /// rows: every row exactly once, as an event or a rejection.
    pub(crate) fn check_accounted(&self, bronze_rows: usize, typer: &dyn Typer) -> Result<()> {
        let broken = |what: String| {
            Err(LakeError::other(
                format!("typer {typer:?}"),
                format!("breaks its contract: {what}"),
            ))
        };
        if self.rows.len() != self.events.num_rows() {
            return broken(format!(
                "{} events but {} bronze row numbers",
                self.events.num_rows(),
                self.rows.len()
            ));
        }
        let mut seen = vec![false; bronze_rows];
        for &row in self.rows.iter().chain(self.rejected.iter().map(|(r, _)| r)) {
            match seen.get_mut(row as usize) {
                Some(seen) if !*seen => *seen = true,
                Some(_) => return broken(format!("bronze row {row} accounted for twice")),
                None => return broken(format!("bronze row {row} of {bronze_rows}")),
            }
        }
        if let Some(row) = seen.iter().position(|s| !s) {
            return broken(format!("bronze row {row} neither typed nor refused"));
        }
        Ok(())
    }
}

/// The typer of a spec's `columns` ([`Typing::Columns`](crate::Typing)):
/// renames, safe casts and SQL expressions over bronze's parsed columns,
/// in one DataFusion projection (see [`crate::spec`] for what they mean).
#[derive(Debug, Clone, Copy, Default)]
pub struct ColumnMapping;

#[async_trait]
impl Typer for ColumnMapping {
    async fn type_rows(&self, spec: &SilverSpec, bronze: RecordBatch) -> Result<Typed> {
        type_columns(spec, &bronze).await
    }
}

/// The envelope field a Debezium record's op is read from (`bad_op` when
/// it is not one of `c`, `r`, `u`, `d`).
const ENVELOPE_OP: &str = "op";

/// The column holding each row's position in the bronze batch.
const ROW: &str = "__lake_bronze_row";

fn column(name: &str) -> Expr {
    // Unqualified and as written: no SQL case folding of bronze names.
    Expr::Column(Column::new_unqualified(name))
}

/// A field of a Debezium envelope: a bronze column, or a field of the
/// `payload` that Kafka Connect's JSON converter wraps the envelope in.
fn envelope(schema: &Schema, name: &str) -> Option<(Expr, DataType)> {
    if let Ok(field) = schema.field_with_name(name) {
        return Some((column(name), field.data_type().clone()));
    }
    let DataType::Struct(fields) = schema.field_with_name("payload").ok()?.data_type() else {
        return None;
    };
    let (_, field) = fields.find(name)?;
    Some((
        get_field(column("payload"), name),
        field.data_type().clone(),
    ))
}

/// The column `name` of a Debezium envelope's row image: `before` for a
/// delete (the row it removed), `after` otherwise; null where the image
/// lacks the field, typed as the other image has it.
fn image_value(schema: &Schema, name: &str) -> Result<Expr> {
    let image = |which: &str| -> Option<(Expr, DataType)> {
        match envelope(schema, which)? {
            (expr, DataType::Struct(fields)) => {
                let (_, field) = fields.find(name)?;
                Some((get_field(expr, name), field.data_type().clone()))
            }
            _ => None,
        }
    };
    let (before, after) = (image("before"), image("after"));
    let data_type = after
        .as_ref()
        .or(before.as_ref())
        .map_or(DataType::Utf8, |(_, t)| t.clone());
    let null = || {
        ScalarValue::try_from(&data_type)
            .map(lit)
            .map_err(|e| LakeError::datafusion(format!("the Debezium field `{name}`"), e))
    };
    let before = before.map_or_else(null, |(e, _)| Ok(e))?;
    let after = after.map_or_else(null, |(e, _)| Ok(e))?;
    let op = envelope(schema, ENVELOPE_OP).map_or_else(
        || lit(ScalarValue::Utf8(None)),
        |(op, _)| try_cast(op, DataType::Utf8),
    );
    when(op.eq(lit("d")), before)
        .otherwise(after)
        .map_err(|e| LakeError::datafusion(format!("the Debezium field `{name}`"), e))
}

/// The JSON text of `columns` in each record's `_raw`, for the bronze
/// columns of a type other than text: under bronze's `evolve` policy a value
/// that does not fit the column bronze inferred (`"n/a"` in a number
/// column) is stored there as null and kept only in `_raw`, and reading
/// the null would lose it silently. Read again as text, it gets the spec's
/// cast, and quarantine when that fails.
///
/// `None` when there is nothing to read again, or when `_raw` does not
/// decode as JSON objects with scalar values there (a CSV source, or an
/// object where bronze has a number): such values stay null, as before.
fn lost_values(bronze: &RecordBatch, columns: &[&str]) -> Option<RecordBatch> {
    let raw = bronze.column_by_name("_raw")?.as_string_opt::<i32>()?;
    let schema = bronze.schema();
    let mut wanted: Vec<Field> = Vec::new();
    for &name in columns {
        let Ok(field) = schema.field_with_name(name) else {
            continue;
        };
        let scalar = field.data_type().is_primitive() || *field.data_type() == DataType::Boolean;
        if scalar && !wanted.iter().any(|f| f.name() == name) {
            wanted.push(Field::new(name, DataType::Utf8, true));
        }
    }
    if wanted.is_empty() || bronze.num_rows() == 0 {
        return None;
    }
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::new(Schema::new(wanted)))
        .with_coerce_primitive(true)
        .with_batch_size(bronze.num_rows())
        .build_decoder()
        .ok()?;
    for i in 0..raw.len() {
        let text = if raw.is_valid(i) { raw.value(i) } else { "{}" };
        let mut bytes = text.as_bytes();
        while !bytes.is_empty() {
            let read = decoder.decode(bytes).ok()?;
            if read == 0 {
                return None;
            }
            bytes = &bytes[read..];
        }
        // One record per line, so rows stay aligned with bronze's.
        decoder.decode(b"\n").ok()?;
    }
    let lost = decoder.flush().ok()??;
    (lost.num_rows() == bronze.num_rows()).then_some(lost)
}

/// The spec's SQL, planned against the bronze columns.
struct Parsed {
    /// Each column's expression, for derived columns.
    columns: Vec<Option<Expr>>,
    /// The delete condition.
    condition: Option<Expr>,
}

/// Plans the spec's SQL; on failure, the field at fault, the message, and
/// the column the SQL named that the schema lacks, if that was the cause.
fn parse_expressions(
    ctx: &SessionContext,
    spec: &SilverSpec,
    schema: &datafusion::common::DFSchema,
) -> std::result::Result<Parsed, (String, String, Option<String>)> {
    let parse = |field: String, sql: &str| {
        ctx.parse_sql_expr(sql, schema).map_err(|e| {
            let missing = match e.find_root() {
                DataFusionError::SchemaError(error, _) => match error.as_ref() {
                    SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
                    _ => None,
                },
                _ => None,
            };
            (field, e.to_string(), missing)
        })
    };
    let mut columns = Vec::with_capacity(spec.columns.len());
    for (i, column) in spec.columns.iter().enumerate() {
        columns.push(match &column.expr {
            Some(sql) => Some(parse(format!("columns[{i}].expr"), sql).map_err(
                |(field, message, missing)| {
                    (field, format!("`{}`: {message}", column.name), missing)
                },
            )?),
            None => None,
        });
    }
    let condition = match &spec.deletes {
        Some(DeleteRule::Condition { condition }) => {
            Some(parse("deletes.condition".to_string(), condition)?)
        }
        _ => None,
    };
    Ok(Parsed { columns, condition })
}

/// Types the bronze rows with the spec's `columns`: renames, safe casts
/// and SQL expressions, in one DataFusion projection. A row is refused for
/// the first rule it breaks: for each key column then each sequence
/// column, a failed cast (`bad_{column}`) or a null (`null_{column}`);
/// then a failed cast of any other column, in column order.
async fn type_columns(spec: &SilverSpec, bronze: &RecordBatch) -> Result<Typed> {
    let target = spec.target.to_string();
    let fail = |e| LakeError::datafusion(format!("typing {target}"), e);
    let n = bronze.num_rows();

    // The bronze columns the spec reads that bronze has not seen yet read
    // as null (a field absent from every record so far).
    let mut fields: Vec<Field> = bronze
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = bronze.columns().to_vec();
    let debezium = spec.cdc == CdcFormat::Debezium;
    // Under Debezium the columns come from the row images, not from bronze.
    let mut wanted: Vec<&str> = spec
        .columns
        .iter()
        .filter_map(|c| c.source_column())
        .filter(|_| !debezium)
        .collect();
    if let Some(DeleteRule::Column { column, .. }) = &spec.deletes {
        wanted.push(column);
    }
    for name in wanted {
        if !fields.iter().any(|f| f.name() == name) {
            fields.push(Field::new(name, DataType::Utf8, true));
            columns.push(new_null_array(&DataType::Utf8, n));
        }
    }
    // Values bronze could not store in the column it inferred, read again
    // from the record's original text (see `lost_values`).
    let mut recovered: Vec<(String, String)> = Vec::new();
    if !debezium {
        let sources: Vec<&str> = spec
            .columns
            .iter()
            .filter_map(|c| c.source_column())
            .collect();
        if let Some(lost) = lost_values(bronze, &sources) {
            for (field, column) in lost.schema().fields().iter().zip(lost.columns()) {
                let name = format!("__lake_raw_{}", recovered.len());
                recovered.push((field.name().clone(), name.clone()));
                fields.push(Field::new(name, DataType::Utf8, true));
                columns.push(Arc::clone(column));
            }
        }
    }
    fields.push(Field::new(ROW, DataType::UInt32, false));
    columns.push(Arc::new(UInt32Array::from_iter_values(0..n as u32)));
    // The SQL of the spec may name bronze columns that no record has had
    // yet (a delete flag before the first delete): they read as null too,
    // found by planning until no column is missing.
    let ctx = SessionContext::new();
    let (frame, parsed) = loop {
        let input = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns.clone())
            .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
        let frame = ctx.read_batch(input).map_err(fail)?;
        match parse_expressions(&ctx, spec, frame.schema()) {
            Ok(parsed) => break (frame, parsed),
            Err((field, message, missing)) => match missing {
                Some(name) if !fields.iter().any(|f| f.name() == &name) => {
                    // Of the null type, which SQL compares with anything.
                    fields.insert(fields.len() - 1, Field::new(name, DataType::Null, true));
                    columns.insert(columns.len() - 1, new_null_array(&DataType::Null, n));
                }
                _ => return Err(LakeError::config(field, format!("{target}: {message}"))),
            },
        }
    };
    let Parsed {
        columns: mut derived,
        condition,
    } = parsed;
    let mut select = Vec::new();
    // (column index, the select position of its cast-failure flag)
    let mut casts: Vec<(usize, usize)> = Vec::new();
    let mut flags = Vec::new();
    for (i, spec_column) in spec.columns.iter().enumerate() {
        let base = match (derived[i].take(), spec_column.source_column()) {
            (Some(expr), _) => expr,
            (None, Some(source)) if debezium => image_value(frame.schema().as_arrow(), source)?,
            (None, Some(source)) => column(source),
            (None, None) => unreachable!("a column without `expr` reads a bronze column"),
        };
        let raw = spec_column
            .source_column()
            .filter(|_| spec_column.expr.is_none())
            .and_then(|source| recovered.iter().find(|(from, _)| from == source))
            .map(|(_, raw)| column(raw));
        let value = match (spec_column.data_type, raw) {
            (Some(data_type), None) => {
                let cast = try_cast(base.clone(), data_type.data_type());
                flags.push((i, base.is_not_null().and(cast.clone().is_null())));
                cast
            }
            (None, None) => base,
            (data_type, Some(raw)) => {
                // The bronze value when there is one, else the text bronze
                // could not store; either failing the type is `bad_{column}`.
                let source = spec_column.source_column().unwrap_or_default();
                let data_type = match data_type {
                    Some(data_type) => data_type.data_type(),
                    None => frame
                        .schema()
                        .as_arrow()
                        .field_with_name(source)
                        .map(|f| f.data_type().clone())
                        .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?,
                };
                let value = when(
                    base.clone().is_not_null(),
                    try_cast(base.clone(), data_type.clone()),
                )
                .otherwise(try_cast(raw.clone(), data_type))
                .map_err(fail)?;
                let present = base.is_not_null().or(raw.is_not_null());
                flags.push((i, present.and(value.clone().is_null())));
                value
            }
        };
        select.push(value.alias(spec_column.name.as_str()));
    }
    for (i, flag) in flags {
        casts.push((i, select.len()));
        select.push(flag.alias(format!("__lake_bad_{i}")));
    }
    let op = match &spec.deletes {
        None if debezium => {
            // `r` (a snapshot read) is a create; anything else is `bad_op`.
            let op = envelope(frame.schema().as_arrow(), ENVELOPE_OP).map_or_else(
                || lit(ScalarValue::Utf8(None)),
                |(op, _)| try_cast(op, DataType::Utf8),
            );
            when(
                op.clone().eq(lit("c")).or(op.clone().eq(lit("r"))),
                lit("c"),
            )
            .when(op.clone().eq(lit("u")), lit("u"))
            .when(op.eq(lit("d")), lit("d"))
            .otherwise(lit(ScalarValue::Utf8(None)))
            .map_err(fail)?
        }
        None => lit("u"),
        Some(DeleteRule::Column {
            column: name,
            values,
        }) => {
            let text = try_cast(column(name), DataType::Utf8);
            when(
                text.clone()
                    .in_list(values.iter().map(lit).collect(), false),
                lit("d"),
            )
            .when(text.eq(lit("c")), lit("c"))
            .otherwise(lit("u"))
            .map_err(fail)?
        }
        Some(DeleteRule::Condition { .. }) => {
            let condition = condition.expect("parsed with the spec's condition");
            when(condition.is_true(), lit("d"))
                .otherwise(lit("u"))
                .map_err(fail)?
        }
    };
    select.push(op.alias(OP_COLUMN));
    select.push(column(ROW));
    let selected = frame.select(select).map_err(fail)?;
    let schema: arrow::datatypes::SchemaRef = Arc::new(selected.schema().as_arrow().clone());
    let batches = selected.collect().await.map_err(fail)?;
    let typed = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;

    // The rules, in order: (reason, whether each row breaks it).
    let index = |name: &str| spec.columns.iter().position(|c| c.name.as_str() == name);
    let bad = |i: usize| -> Option<BooleanArray> {
        casts
            .iter()
            .find(|(c, _)| *c == i)
            .map(|(_, at)| typed.column(*at).as_boolean().clone())
    };
    let mut rules: Vec<(QuarantineReason, BooleanArray)> = Vec::new();
    if debezium {
        let op = typed
            .column_by_name(OP_COLUMN)
            .ok_or_else(|| LakeError::other(format!("typing {target}"), "op lost"))?;
        let nulls = arrow::compute::is_null(op)
            .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
        rules.push((QuarantineReason::Bad(ENVELOPE_OP.to_string()), nulls));
    }
    for name in spec.keys.iter().chain(&spec.sequence_by) {
        let i = index(name.as_str()).expect("checked: keys and sequence are mapped");
        if let Some(flags) = bad(i) {
            rules.push((QuarantineReason::Bad(name.to_string()), flags));
        }
        let nulls = arrow::compute::is_null(typed.column(i))
            .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
        rules.push((QuarantineReason::Null(name.to_string()), nulls));
    }
    for (i, spec_column) in spec.columns.iter().enumerate() {
        let is_key =
            spec.keys.contains(&spec_column.name) || spec.sequence_by.contains(&spec_column.name);
        if !is_key && let Some(flags) = bad(i) {
            rules.push((QuarantineReason::Bad(spec_column.name.to_string()), flags));
        }
    }
    let bronze_row = typed
        .column_by_name(ROW)
        .map(|c| c.as_primitive::<arrow::datatypes::UInt32Type>().clone())
        .ok_or_else(|| LakeError::other(format!("typing {target}"), "row numbers lost"))?;
    let mut keep = vec![true; typed.num_rows()];
    let mut rejected = Vec::new();
    for (row, kept) in keep.iter_mut().enumerate() {
        // A flag is null only where its inputs are; null is not a failure.
        if let Some((reason, _)) = rules
            .iter()
            .find(|(_, broken)| broken.is_valid(row) && broken.value(row))
        {
            *kept = false;
            rejected.push((bronze_row.value(row), reason.clone()));
        }
    }
    let keep = BooleanArray::from(keep);
    let valid = arrow::compute::filter_record_batch(&typed, &keep)
        .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
    let rows: Vec<u32> = valid
        .column_by_name(ROW)
        .map(|c| {
            c.as_primitive::<arrow::datatypes::UInt32Type>()
                .values()
                .to_vec()
        })
        .unwrap_or_default();

    // The changes layout: business columns, op, sequence, bucket.
    // A column of the null type (SQL over columns bronze never had, with
    // no `type`) is stored as text: Delta has no null type.
    let named = |name: &str| {
        let column = valid
            .column_by_name(name)
            .expect("every mapped column is selected");
        let column = match column.data_type() {
            DataType::Null => new_null_array(&DataType::Utf8, column.len()),
            _ => Arc::clone(column),
        };
        (Field::new(name, column.data_type().clone(), true), column)
    };
    let mut layout: Vec<(Field, ArrayRef)> = spec
        .business_columns()
        .map(|c| named(c.name.as_str()))
        .collect();
    layout.push(named(OP_COLUMN));
    layout.extend(spec.sequence_by.iter().map(|s| named(s.as_str())));
    let keys: Vec<ArrayRef> = spec.keys.iter().map(|k| named(k.as_str()).1).collect();
    layout.push((
        Field::new(KEY_BUCKET, DataType::Int32, false),
        Arc::new(key_buckets(&keys, spec.buckets)?),
    ));
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = layout.into_iter().unzip();
    let events = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
    Ok(Typed::new(events, rows, rejected))
}
