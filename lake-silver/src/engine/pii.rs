//! The spec's personal-data tags (`pii = "hash" | "mask" | "drop"`),
//! applied to the typed events before anything is written, so the event
//! log and the history hold only what the tags leave (see
//! [`lake_core::pii`]). Each tag is a function of the value alone, so the
//! order independence of the history is kept: the history is the one of
//! the tagged events. Bronze and quarantine keep the records as delivered
//! (`_raw`); grant access to them accordingly.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use lake_core::pii::{PII_METADATA, PiiKey};
use lake_core::{LakeError, Result};

use crate::spec::SilverSpec;

/// Whether the spec tags a column.
pub(crate) fn tags_any(spec: &SilverSpec) -> bool {
    spec.columns.iter().any(|c| c.pii.is_some())
}

/// `events` with each tagged column as its tag says, and the tag in the
/// column's metadata ([`PII_METADATA`]).
pub(crate) fn protect(
    spec: &SilverSpec,
    events: RecordBatch,
    key: Option<&PiiKey>,
) -> Result<RecordBatch> {
    let schema = events.schema();
    let mut fields: Vec<Field> = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(events.columns()) {
        let tag = spec
            .columns
            .iter()
            .find(|c| c.name.as_str() == field.name())
            .and_then(|c| c.pii);
        let Some(tag) = tag else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
            continue;
        };
        let context = format!("{} column {}", spec.target, field.name());
        let Some(stored) = tag.apply(column, key, &context)? else {
            continue;
        };
        let mut metadata = field.metadata().clone();
        metadata.insert(PII_METADATA.to_string(), tag.to_string());
        fields.push(
            Field::new(
                field.name(),
                stored.data_type().clone(),
                field.is_nullable(),
            )
            .with_metadata(metadata),
        );
        columns.push(stored);
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    RecordBatch::try_new(schema, columns)
        .map_err(|e| LakeError::arrow(format!("personal data of {}", spec.target), e))
}
