//! Keys: the bucket each key hashes to, and sets of keys that scans and
//! the plan look rows up in.

use std::collections::HashMap;
use std::hash::BuildHasher;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, StringArray};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use lake_core::{LakeError, Result};

/// The bucket of each key: FNV-1a over the UTF-8 text of its columns
/// (stable across processes and versions, unlike the standard library's
/// hasher). A compound key's columns are separated by a byte that UTF-8
/// never holds, so ("a", "bc") and ("ab", "c") are hashed apart; a single
/// text key hashes exactly as the reference workload's `key_bucket`.
pub fn key_buckets(keys: &[ArrayRef], buckets: u32) -> Result<Int32Array> {
    let texts = keys
        .iter()
        .map(|k| {
            arrow::compute::cast(k, &DataType::Utf8).map_err(|e| LakeError::arrow("key bucket", e))
        })
        .collect::<Result<Vec<_>>>()?;
    let texts: Vec<&StringArray> = texts.iter().map(|t| t.as_string::<i32>()).collect();
    let n = keys.first().map_or(0, |k| k.len());
    Ok((0..n)
        .map(|i| {
            let mut hash = Fnv::new();
            for (c, text) in texts.iter().enumerate() {
                if c > 0 {
                    hash.write(&[0xff]);
                }
                hash.write(text.value(i).as_bytes());
            }
            hash.bucket(buckets)
        })
        .collect())
}

/// 64-bit FNV-1a.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn bucket(&self, buckets: u32) -> i32 {
        (self.0 % u64::from(buckets.max(1))) as i32
    }
}

/// A set of keys. A single text key (the common case, and every run reads
/// all rows of the buckets it replaces through here) is looked up by its
/// string in a table of row numbers into the key column; other keys are
/// compared column by column in Arrow's row format.
pub(crate) enum KeySet {
    Text {
        keys: StringArray,
        table: HashTable<u32>,
        hasher: RandomState,
    },
    Rows {
        converter: RowConverter,
        /// Each key's first row.
        keys: HashMap<Box<[u8]>, u32>,
    },
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, len) = match self {
            Self::Text { table, .. } => ("text", table.len()),
            Self::Rows { keys, .. } => ("rows", keys.len()),
        };
        f.debug_struct("KeySet")
            .field("kind", &kind)
            .field("keys", &len)
            .finish()
    }
}

impl KeySet {
    pub(crate) fn new(keys: &[ArrayRef]) -> Result<Self, arrow::error::ArrowError> {
        if let [key] = keys
            && let Some(text) = key.as_string_opt::<i32>()
        {
            let hasher = RandomState::default();
            let mut table = HashTable::with_capacity(text.len());
            for (i, key) in text.iter().enumerate() {
                let Some(key) = key else { continue };
                let hash = hasher.hash_one(key);
                let same = |j: &u32| text.value(*j as usize) == key;
                if table.find(hash, same).is_none() {
                    table.insert_unique(hash, i as u32, |j: &u32| {
                        hasher.hash_one(text.value(*j as usize))
                    });
                }
            }
            return Ok(Self::Text {
                keys: text.clone(),
                table,
                hasher,
            });
        }
        let converter = RowConverter::new(
            keys.iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(keys)?;
        let mut first = HashMap::with_capacity(rows.num_rows());
        for (i, row) in rows.iter().enumerate() {
            first.entry(row.data().into()).or_insert(i as u32);
        }
        Ok(Self::Rows {
            converter,
            keys: first,
        })
    }

    /// How many keys the set holds.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Text { table, .. } => table.len(),
            Self::Rows { keys, .. } => keys.len(),
        }
    }

    /// Which rows of `columns` hold a key of the set.
    pub(crate) fn mask(
        &self,
        columns: &[ArrayRef],
    ) -> Result<BooleanArray, arrow::error::ArrowError> {
        Ok(self
            .positions(columns)?
            .iter()
            .map(|p| Some(p.is_some()))
            .collect())
    }

    /// For each row of `columns`, the row its key has in the arrays the
    /// set was built from (its first), or `None` when it is not in the set.
    pub(crate) fn positions(
        &self,
        columns: &[ArrayRef],
    ) -> Result<Vec<Option<u32>>, arrow::error::ArrowError> {
        match self {
            Self::Text {
                keys,
                table,
                hasher,
            } => {
                let [column] = columns else {
                    return Err(arrow::error::ArrowError::InvalidArgumentError(
                        "one key column expected".to_string(),
                    ));
                };
                let column = column.as_string_opt::<i32>().ok_or_else(|| {
                    arrow::error::ArrowError::InvalidArgumentError(
                        "a text key column expected".to_string(),
                    )
                })?;
                Ok(column
                    .iter()
                    .map(|key| {
                        let key = key?;
                        table
                            .find(hasher.hash_one(key), |j: &u32| {
                                keys.value(*j as usize) == key
                            })
                            .copied()
                    })
                    .collect())
            }
            Self::Rows { converter, keys } => {
                let rows = converter.convert_columns(columns)?;
                Ok(rows.iter().map(|r| keys.get(r.data()).copied()).collect())
            }
        }
    }
}
