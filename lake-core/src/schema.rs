//! Schema compatibility, as the Glue Schema Registry defines the modes, and
//! the check that a schema can be read back from the Delta log.
//!
//! Every catalog implementation calls [`check_compatibility`] before it
//! records a new schema version, so all of them accept and refuse the
//! same changes. Every table creation and column addition calls
//! [`check_readable`] before its commit.

use arrow::datatypes::{DataType, Schema};

use crate::catalog::SchemaCompatibility;
use crate::error::{LakeError, Result};

/// Whether a value of type `from` can be read as `to` without loss.
pub fn widens_to(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    from == to
        || matches!(
            (from, to),
            (Int8, Int16 | Int32 | Int64)
                | (Int16, Int32 | Int64)
                | (Int32, Int64)
                | (Float32, Float64)
                | (Int8 | Int16 | Int32, Float64)
        )
}

/// Checks that `new` may replace `old` as the schema of `table` under `mode`.
///
/// - `Backward`: readers of `new` read data written with `old`: no column
///   dropped (a rename is a drop), types only widen, added columns nullable.
/// - `Forward`: readers of `old` read data written with `new`: no required
///   column dropped, types only narrow into what `old` reads.
/// - `Full`: both. `None`: anything.
///
/// The error names the first offending column.
pub fn check_compatibility(
    table: &str,
    old: &Schema,
    new: &Schema,
    mode: SchemaCompatibility,
) -> Result<()> {
    let refuse = |message: String| LakeError::Schema {
        table: table.to_string(),
        message: format!("{message} (compatibility {mode:?})"),
    };
    let backward = matches!(
        mode,
        SchemaCompatibility::Backward | SchemaCompatibility::Full
    );
    let forward = matches!(
        mode,
        SchemaCompatibility::Forward | SchemaCompatibility::Full
    );
    for old_field in old.fields() {
        match new.field_with_name(old_field.name()) {
            Err(_) => {
                if backward || (forward && !old_field.is_nullable()) {
                    return Err(refuse(format!(
                        "column `{}` would be dropped or renamed",
                        old_field.name()
                    )));
                }
            }
            Ok(new_field) => {
                let (from, to) = (old_field.data_type(), new_field.data_type());
                if backward && !widens_to(from, to) {
                    return Err(refuse(format!(
                        "column `{}` would change from {from} to {to}",
                        old_field.name()
                    )));
                }
                if forward && !widens_to(to, from) {
                    return Err(refuse(format!(
                        "column `{}` would change from {from} to {to}",
                        old_field.name()
                    )));
                }
                if backward && old_field.is_nullable() && !new_field.is_nullable() {
                    return Err(refuse(format!(
                        "column `{}` would become required",
                        old_field.name()
                    )));
                }
            }
        }
    }
    if backward {
        for new_field in new.fields() {
            if old.field_with_name(new_field.name()).is_err() && !new_field.is_nullable() {
                return Err(refuse(format!(
                    "added column `{}` must be nullable",
                    new_field.name()
                )));
            }
        }
    }
    Ok(())
}

/// Checks that the Delta log could hold `schema` for `table`: serialises it
/// as the `schemaString` of a `metaData` action and parses it back as every
/// reader does (the Delta kernel and delta-rs with serde_json, whose
/// recursion limit a struct nested about 40 deep exceeds). A schema that
/// fails here would make the table unreadable for good once committed, so
/// the commit is refused instead.
pub fn check_readable(table: &str, schema: &Schema) -> Result<()> {
    use deltalake::kernel::StructType;
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let refuse = |message: String| LakeError::Schema {
        table: table.to_string(),
        message,
    };
    let structure: StructType = schema
        .try_into_kernel()
        .map_err(|e| refuse(format!("no Delta type for it: {e}")))?;
    let text = serde_json::to_string(&structure)
        .map_err(|e| refuse(format!("cannot be written to the Delta log: {e}")))?;
    serde_json::from_str::<StructType>(&text).map_err(|e| {
        refuse(format!(
            "Delta readers could not parse it back from the log ({e}); \
             it is refused before its commit"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;

    use super::*;
    use SchemaCompatibility::*;

    fn schema(fields: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn modes_accept_and_refuse_what_glue_does() {
        let old = schema(&[("id", DataType::Utf8, false), ("n", DataType::Int32, true)]);
        let added = schema(&[
            ("id", DataType::Utf8, false),
            ("n", DataType::Int32, true),
            ("x", DataType::Float32, true),
        ]);
        let widened = schema(&[("id", DataType::Utf8, false), ("n", DataType::Int64, true)]);
        let dropped = schema(&[("id", DataType::Utf8, false)]);
        let renamed = schema(&[("id", DataType::Utf8, false), ("m", DataType::Int32, true)]);
        let narrowed = schema(&[("id", DataType::Utf8, false), ("n", DataType::Int16, true)]);

        assert!(check_compatibility("t", &old, &added, Backward).is_ok());
        assert!(check_compatibility("t", &old, &widened, Backward).is_ok());
        let err = check_compatibility("t", &old, &dropped, Backward)
            .unwrap_err()
            .to_string();
        assert!(err.contains("column `n` would be dropped"), "{err}");
        let err = check_compatibility("t", &old, &renamed, Backward)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`n`"), "{err}");
        let err = check_compatibility("t", &old, &narrowed, Backward)
            .unwrap_err()
            .to_string();
        assert!(err.contains("from Int32 to Int16"), "{err}");

        assert!(check_compatibility("t", &old, &dropped, Forward).is_ok());
        assert!(check_compatibility("t", &old, &narrowed, Forward).is_ok());
        assert!(check_compatibility("t", &old, &widened, Forward).is_err());
        assert!(check_compatibility("t", &old, &added, Full).is_ok());
        assert!(check_compatibility("t", &old, &widened, Full).is_err());
        assert!(check_compatibility("t", &old, &dropped, Full).is_err());
        for new in [&added, &widened, &dropped, &renamed, &narrowed] {
            assert!(check_compatibility("t", &old, new, None).is_ok());
        }
        let required = schema(&[
            ("id", DataType::Utf8, false),
            ("n", DataType::Int32, true),
            ("r", DataType::Utf8, false),
        ]);
        assert!(check_compatibility("t", &old, &required, Backward).is_err());
    }
}
