//! Bronze rows to typed events: the reference workload's rules over `_raw`
//! ([`Typing::Orders`](crate::spec::Typing::Orders)), or the spec's column
//! mapping over bronze's parsed columns, through DataFusion.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, DataFusionError, ScalarValue, SchemaError};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{Expr, lit, try_cast, when};
use datafusion::prelude::SessionContext;
use lake_core::{LakeError, Result};

use super::{cores, in_parallel, key_buckets};
use crate::orders::{CdcFormat, events_batch_in};
use crate::rules::{Invalid, OrderEvent};
use crate::spec::{DeleteRule, KEY_BUCKET, OP_COLUMN, SilverSpec};

/// Typed events and what became of every bronze row.
#[derive(Debug)]
pub(crate) struct Typed {
    /// The events in the changes table's layout: business columns, the op,
    /// the sequence columns, the key bucket.
    pub events: RecordBatch,
    /// The bronze row each event came from.
    pub rows: Vec<u32>,
    /// The bronze rows refused, with the reason.
    pub rejected: Vec<(u32, String)>,
}

/// Types the reference workload's records from their `_raw` text.
/// Parsing is most of a small run's CPU time, so the rows are split over
/// the cores.
pub(crate) fn type_orders(bronze: &RecordBatch, format: CdcFormat, buckets: u32) -> Result<Typed> {
    let raw = bronze
        .column_by_name("_raw")
        .map(|c| arrow::compute::cast(c, &DataType::Utf8))
        .transpose()
        .map_err(|e| LakeError::arrow("bronze `_raw`", e))?;
    let raw = raw.as_ref().map(|r| r.as_string::<i32>());
    let typer = format.typer();
    let type_range = |range: Range<usize>| {
        let mut events: Vec<OrderEvent> = Vec::with_capacity(range.len());
        let mut rows = Vec::with_capacity(range.len());
        let mut rejected = Vec::new();
        for i in range {
            let typed = raw.filter(|r| r.is_valid(i)).map(|r| typer(r.value(i)));
            match typed {
                Some(Ok(event)) => {
                    events.push(event);
                    rows.push(i as u32);
                }
                Some(Err(reason)) => rejected.push((i as u32, reason.as_str().to_string())),
                None => rejected.push((i as u32, Invalid::NotAnObject.as_str().to_string())),
            }
        }
        (events, rows, rejected)
    };
    let n = bronze.num_rows();
    let threads = cores();
    // Below a few thousand rows a thread costs more than it saves.
    let parts = if threads < 2 || n < 8_192 {
        vec![type_range(0..n)]
    } else {
        let chunk = n.div_ceil(threads);
        let ranges = (0..n)
            .step_by(chunk)
            .map(|s| s..(s + chunk).min(n))
            .collect();
        in_parallel(ranges, type_range)
    };
    let mut events = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    let mut rejected = Vec::new();
    // In range order, so events keep the order of the bronze rows.
    for (e, r, q) in parts {
        events.extend(e);
        rows.extend(r);
        rejected.extend(q);
    }
    Ok(Typed {
        events: events_batch_in(&events, buckets)?,
        rows,
        rejected,
    })
}

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
    let op = envelope(schema, "op").map_or_else(
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
pub(crate) async fn type_columns(spec: &SilverSpec, bronze: &RecordBatch) -> Result<Typed> {
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
            let op = envelope(frame.schema().as_arrow(), "op").map_or_else(
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
    let mut rules: Vec<(String, BooleanArray)> = Vec::new();
    if debezium {
        let op = typed
            .column_by_name(OP_COLUMN)
            .ok_or_else(|| LakeError::other(format!("typing {target}"), "op lost"))?;
        let nulls = arrow::compute::is_null(op)
            .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
        rules.push(("bad_op".to_string(), nulls));
    }
    for name in spec.keys.iter().chain(&spec.sequence_by) {
        let i = index(name.as_str()).expect("checked: keys and sequence are mapped");
        if let Some(flags) = bad(i) {
            rules.push((format!("bad_{name}"), flags));
        }
        let nulls = arrow::compute::is_null(typed.column(i))
            .map_err(|e| LakeError::arrow(format!("typing {target}"), e))?;
        rules.push((format!("null_{name}"), nulls));
    }
    for (i, spec_column) in spec.columns.iter().enumerate() {
        let is_key =
            spec.keys.contains(&spec_column.name) || spec.sequence_by.contains(&spec_column.name);
        if !is_key && let Some(flags) = bad(i) {
            rules.push((format!("bad_{}", spec_column.name), flags));
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
    Ok(Typed {
        events,
        rows,
        rejected,
    })
}
