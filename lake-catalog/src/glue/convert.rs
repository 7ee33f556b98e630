//! Between lake definitions and Glue's: Hive types, storage descriptors,
//! parameters, partition expressions.

use super::*;

pub(super) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(super) fn enum_parse<T: serde::de::DeserializeOwned>(
    table: &TableId,
    key: &str,
    text: &str,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| {
        LakeError::config(
            key,
            format!("table {table} has an unreadable Glue parameter {key}={text:?}"),
        )
    })
}

/// The storage descriptor of a table (`table_level`) or of a partition.
pub(super) fn storage_descriptor(
    format: TableFormat,
    location: &str,
    table_level: bool,
) -> aws_sdk_glue::types::builders::StorageDescriptorBuilder {
    let mut serde = SerDeInfo::builder().serialization_library(PARQUET_SERDE);
    if table_level && format == TableFormat::Delta {
        // Spark's Delta catalog integration reads the location from `path`.
        serde = serde.parameters("path", location);
    }
    StorageDescriptor::builder()
        .location(location)
        .input_format(PARQUET_INPUT)
        .output_format(PARQUET_OUTPUT)
        .serde_info(serde.build())
}

pub(super) fn parameter<'a>(
    table: &TableId,
    glue: &'a aws_sdk_glue::types::Table,
    key: &str,
) -> Result<&'a str> {
    glue.parameters()
        .and_then(|p| p.get(key))
        .map(String::as_str)
        .ok_or_else(|| {
            LakeError::config(
                key,
                format!(
                    "Glue table {} has no parameter {key}: it was not registered by the lake",
                    table
                ),
            )
        })
}

pub(super) fn schema_created_at(glue: &aws_sdk_glue::types::Table) -> Result<DateTime<Utc>> {
    Ok(glue
        .parameters()
        .and_then(|p| p.get(P_SCHEMA_CREATED_AT))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now))
}

/// Reads a [`TableDefinition`] back from a Glue table the lake registered.
pub(super) fn definition_from_glue(
    table: &TableId,
    glue: &aws_sdk_glue::types::Table,
) -> Result<TableDefinition> {
    let schema: Schema = serde_json::from_str(parameter(table, glue, P_SCHEMA)?).map_err(|e| {
        LakeError::config(P_SCHEMA, format!("table {table}: unreadable schema: {e}"))
    })?;
    let schema_version = parameter(table, glue, P_SCHEMA_VERSION)?
        .parse::<u32>()
        .map_err(|e| LakeError::config(P_SCHEMA_VERSION, format!("table {table}: {e}")))?;
    let format = enum_parse(table, P_FORMAT, parameter(table, glue, P_FORMAT)?)?;
    let compatibility: SchemaCompatibility = enum_parse(
        table,
        P_COMPATIBILITY,
        parameter(table, glue, P_COMPATIBILITY)?,
    )?;
    let location = glue
        .storage_descriptor()
        .and_then(|sd| sd.location())
        .ok_or_else(|| {
            LakeError::config("location", format!("Glue table {table} has no location"))
        })?;
    let location = Url::parse(location).map_err(|e| {
        LakeError::config("location", format!("Glue table {table}: {location}: {e}"))
    })?;
    let partition_keys = glue
        .partition_keys()
        .iter()
        .map(|c| Ident::new(c.name()))
        .collect::<Result<Vec<_>>>()?;
    let properties = glue
        .parameters()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(TableDefinition::new(
        table.clone(),
        location,
        format,
        Arc::new(schema),
        partition_keys,
    )
    .with_properties(properties)
    .with_schema_version(schema_version)
    .with_compatibility(compatibility))
}

/// The Hive type Glue, Athena and Spark use for an Arrow field; the error
/// names the column and its type.
///
/// Unsigned integers take the next wider signed type (`UInt64` is
/// `decimal(20,0)`), dictionaries their value type, and every timestamp is
/// `timestamp` (Hive has no time zones or units).
pub fn hive_type(field: &Field) -> std::result::Result<String, String> {
    fn of(name: &str, data_type: &DataType) -> std::result::Result<String, String> {
        Ok(match data_type {
            DataType::Boolean => "boolean".into(),
            DataType::Int8 => "tinyint".into(),
            DataType::Int16 | DataType::UInt8 => "smallint".into(),
            DataType::Int32 | DataType::UInt16 => "int".into(),
            DataType::Int64 | DataType::UInt32 => "bigint".into(),
            DataType::UInt64 => "decimal(20,0)".into(),
            DataType::Float16 | DataType::Float32 => "float".into(),
            DataType::Float64 => "double".into(),
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => "binary".into(),
            DataType::Date32 | DataType::Date64 => "date".into(),
            DataType::Timestamp(_, _) => "timestamp".into(),
            DataType::Dictionary(_, value) => of(name, value)?,
            DataType::List(item)
            | DataType::LargeList(item)
            | DataType::ListView(item)
            | DataType::LargeListView(item)
            | DataType::FixedSizeList(item, _) => {
                format!("array<{}>", of(item.name(), item.data_type())?)
            }
            DataType::Struct(fields) => {
                let inner = fields
                    .iter()
                    .map(|f| Ok(format!("{}:{}", f.name(), of(f.name(), f.data_type())?)))
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                format!("struct<{}>", inner.join(","))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => format!(
                    "map<{},{}>",
                    of(kv[0].name(), kv[0].data_type())?,
                    of(kv[1].name(), kv[1].data_type())?
                ),
                other => return Err(format!("column `{name}`: map entries of type {other}")),
            },
            DataType::Time32(_)
            | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => {
                // Hive has no time of day; Athena reads it as text.
                "string".into()
            }
            other => {
                return Err(format!(
                    "column `{name}` has type {other}, which has no Hive type"
                ));
            }
        })
    }
    of(field.name(), field.data_type())
}

/// The Glue expression for the conditions on string-typed keys, or `None`
/// when there are none. Conditions on other keys are left to the client-side
/// check, because the catalog compares partition values as text and Glue
/// would compare a numeric key as a number.
pub(super) fn glue_expression(
    definition: &TableDefinition,
    filter: &PartitionFilter,
) -> Option<String> {
    let parts: Vec<String> = filter
        .conditions
        .iter()
        .filter(|c| {
            definition
                .schema
                .field_with_name(c.key.as_str())
                .is_ok_and(|f| {
                    matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    )
                })
        })
        .map(|c| {
            let op = match c.op {
                PartitionOp::Eq => "=",
                PartitionOp::NotEq => "<>",
                PartitionOp::Lt => "<",
                PartitionOp::LtEq => "<=",
                PartitionOp::Gt => ">",
                PartitionOp::GtEq => ">=",
            };
            // Keys are validated identifiers; values are quoted literals.
            format!("{} {op} {}", c.key, quote_literal(c.value.as_str()))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

pub(super) fn partition_from_glue(
    table: &TableId,
    glue: &aws_sdk_glue::types::Partition,
) -> Result<Partition> {
    let values = glue
        .values()
        .iter()
        .map(|v| PartitionValue::new(v.clone()))
        .collect::<Result<Vec<_>>>()?;
    let location = glue
        .storage_descriptor()
        .and_then(|sd| sd.location())
        .ok_or_else(|| {
            LakeError::config(
                "location",
                format!("a partition of {table} has no location"),
            )
        })?;
    let location = Url::parse(location)
        .map_err(|e| LakeError::config("location", format!("{table}: {location}: {e}")))?;
    let stat = |key: &str| {
        glue.parameters()
            .and_then(|p| p.get(key))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stats = match (stat("numRows"), stat("numFiles"), stat("totalSize")) {
        (Some(row_count), Some(file_count), Some(size_bytes)) => {
            Some(PartitionStats::new(row_count, file_count, size_bytes))
        }
        _ => None,
    };
    Ok(Partition::new(values, location).with_stats(stats))
}
