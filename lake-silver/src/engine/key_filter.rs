//! A scan filter that keeps the rows of a [`KeySet`]'s keys.
//!
//! A run needs the logged events of its own keys only, a small part of
//! the event log of the buckets it touches. Given as a filter to the log
//! scan with `pushdown_filters` on, DataFusion's Parquet row filter decodes
//! the key columns of every row but the other columns only of the rows
//! whose key is in the set. An `IN (...)` list of the keys would do the
//! same work through a hash set of scalars built from SQL text; this looks
//! the keys up in the set the run has built already.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::KeySet;

/// `lake_key_in_set(key columns...)`: whether the key is in the set.
#[derive(Debug)]
struct KeyInSet {
    keys: Arc<KeySet>,
    /// The key columns' types, as the set was built from.
    types: Vec<DataType>,
    signature: Signature,
}

// One function per set: two filters are the same only over the same set.
impl PartialEq for KeyInSet {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.keys, &other.keys)
    }
}

impl Eq for KeyInSet {}

impl Hash for KeyInSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.keys).hash(state);
    }
}

impl ScalarUDFImpl for KeyInSet {
    fn name(&self) -> &str {
        "lake_key_in_set"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        // A reader may hand the keys over in another string layout
        // (views, large offsets); the set compares them as it was built.
        let columns = columns
            .iter()
            .zip(&self.types)
            .map(|(column, wanted)| {
                if column.data_type() == wanted {
                    Ok(Arc::clone(column))
                } else {
                    arrow::compute::cast(column, wanted)
                }
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(ColumnarValue::Array(Arc::new(self.keys.mask(&columns)?)))
    }
}

/// The filter `lake_key_in_set(key columns)` over `keys`, whose columns
/// have `types` (the types of the arrays the set was built from).
pub(crate) fn key_in_set(keys: Arc<KeySet>, types: Vec<DataType>, columns: Vec<Expr>) -> Expr {
    let function = KeyInSet {
        keys,
        types,
        signature: Signature::variadic_any(Volatility::Immutable),
    };
    ScalarUDF::new_from_impl(function).call(columns)
}
