//! Personal data: columns that silver stores pseudonymised, masked or not
//! at all, and the key of the keyed hashes (which also hashes the subjects
//! of [erasure records](crate::erasure)).
//!
//! A column tagged [`Pii::Hash`] holds the HMAC-SHA256 of its value's text
//! under a [`PiiKey`], as 64 lowercase hex digits: the same value gives the
//! same pseudonym under the same key, so joins and counts of distinct
//! values on the pseudonym still work, and nobody without the key can tell
//! which value it stands for, even for short identifiers (a plain hash of
//! a customer number is reversed by hashing every number). [`Pii::Mask`]
//! keeps only what a support desk needs to recognise a value (its last
//! four characters, for values of eight or more), and [`Pii::Drop`] keeps
//! nothing: the column is not written at all. Nulls stay null.
//!
//! The tag is recorded on the column, as the field metadata
//! [`PII_METADATA`] of the table's schema (so in the Delta log, and in the
//! catalog, which stores the schema), for anyone who reads the table to see
//! what it holds.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, Result};

/// The field metadata key that records a column's [`Pii`] tag.
pub const PII_METADATA: &str = "lake.pii";

/// The environment variable [`PiiKey::from_env`] reads.
pub const KEY_ENV: &str = "LAKE_PII_KEY";

/// What silver stores of a column that holds personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pii {
    /// HMAC-SHA256 of the value's text under the [`PiiKey`], as hex.
    Hash,
    /// `*` for every character but the last four (for a value of eight
    /// characters or more; all of them otherwise).
    Mask,
    /// Nothing: the column is left out.
    Drop,
}

impl Pii {
    /// The tag as written in specs and metadata: `hash`, `mask`, `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Mask => "mask",
            Self::Drop => "drop",
        }
    }

    /// `column` as the tag stores it (none for [`Pii::Drop`]); a column of
    /// another type than text is hashed or masked as its text (its cast to
    /// a string). `key` is needed for [`Pii::Hash`].
    pub fn apply(
        self,
        column: &ArrayRef,
        key: Option<&PiiKey>,
        context: &str,
    ) -> Result<Option<ArrayRef>> {
        if self == Self::Drop {
            return Ok(None);
        }
        let text = arrow::compute::cast(column, &DataType::Utf8)
            .map_err(|e| LakeError::arrow(context, e))?;
        let text = text.as_string::<i32>();
        let out: StringArray = match self {
            Self::Hash => {
                let Some(key) = key else {
                    return Err(LakeError::config(
                        KEY_ENV,
                        format!(
                            "{context} is tagged pii = \"hash\" and no key was given: set {KEY_ENV} to a secret of at least {} bytes kept outside the lake",
                            PiiKey::MIN_BYTES
                        ),
                    ));
                };
                text.iter().map(|v| v.map(|v| key.hash(v))).collect()
            }
            _ => text.iter().map(|v| v.map(mask)).collect(),
        };
        Ok(Some(Arc::new(out) as ArrayRef))
    }
}

impl std::fmt::Display for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `value` masked: `*` for each character but the last four, when it has
/// at least eight; all `*` otherwise.
pub fn mask(value: &str) -> String {
    let chars = value.chars().count();
    let shown = if chars >= 8 { 4 } else { 0 };
    let mut out: String = "*".repeat(chars - shown);
    out.extend(value.chars().skip(chars - shown));
    out
}

/// The key of the keyed hashes of pseudonymised columns and erasure
/// records. Keep it outside the lake (a secret store, an environment
/// variable): with it, a pseudonym or a record can be checked against a
/// value; without it, neither can be reversed by trying every value.
/// Change it and the pseudonyms of new rows change with it.
#[derive(Clone)]
pub struct PiiKey(Vec<u8>);

impl std::fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiKey(..)")
    }
}

impl PiiKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_BYTES: usize = 16;

    /// The key `bytes`; refused under [`Self::MIN_BYTES`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(LakeError::config(
                KEY_ENV,
                format!(
                    "the key is {} bytes; it needs at least {}",
                    bytes.len(),
                    Self::MIN_BYTES
                ),
            ));
        }
        Ok(Self(bytes))
    }

    /// The key in the environment variable [`KEY_ENV`] (its UTF-8 bytes).
    pub fn from_env() -> Result<Self> {
        match std::env::var(KEY_ENV) {
            Ok(text) => Self::new(text.into_bytes()),
            Err(_) => Err(LakeError::config(
                KEY_ENV,
                format!(
                    "not set: set {KEY_ENV} to a secret of at least {} bytes kept outside the lake",
                    Self::MIN_BYTES
                ),
            )),
        }
    }

    /// The key in [`KEY_ENV`] when it is set (an error when it is set but
    /// too short), none otherwise.
    pub fn from_env_if_set() -> Result<Option<Self>> {
        match std::env::var_os(KEY_ENV) {
            Some(_) => Self::from_env().map(Some),
            None => Ok(None),
        }
    }

    /// HMAC-SHA256 of `value` under the key, as lowercase hex.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(value.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};

    fn key(text: &str) -> PiiKey {
        PiiKey::new(text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn the_hash_is_keyed_hmac_sha256() {
        let (a, b) = (key("0123456789abcdef"), key("fedcba9876543210"));
        assert_eq!(a.hash("C-10"), a.hash("C-10"));
        assert_ne!(a.hash("C-10"), b.hash("C-10"));
        assert_ne!(a.hash("C-10"), a.hash("C-11"));
        assert_eq!(a.hash("C-10").len(), 64);
        assert!(PiiKey::new(b"short".to_vec()).is_err());
        // RFC 4231, test case 2 ("Jefe" is under the minimum, so the MAC
        // is checked directly).
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tags_hash_mask_and_drop_keeping_nulls() {
        let k = key("0123456789abcdef");
        let column: ArrayRef = Arc::new(StringArray::from(vec![
            Some("alice@example.com"),
            None,
            Some("bob"),
        ]));
        let hashed = Pii::Hash.apply(&column, Some(&k), "c").unwrap().unwrap();
        let hashed = hashed.as_string::<i32>();
        assert_eq!(hashed.value(0), k.hash("alice@example.com"));
        assert!(hashed.is_null(1));
        let masked = Pii::Mask.apply(&column, None, "c").unwrap().unwrap();
        let masked = masked.as_string::<i32>();
        assert_eq!(masked.value(0), "*************.com");
        assert!(masked.is_null(1));
        assert_eq!(masked.value(2), "***");
        assert!(Pii::Drop.apply(&column, None, "c").unwrap().is_none());
        // A hash needs the key; a number is hashed as its text.
        let error = Pii::Hash
            .apply(&column, None, "silver.x column email")
            .unwrap_err();
        assert!(error.to_string().contains(KEY_ENV), "{error}");
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![12345]));
        let hashed = Pii::Hash.apply(&numbers, Some(&k), "c").unwrap().unwrap();
        assert_eq!(hashed.as_string::<i32>().value(0), k.hash("12345"));
        assert_eq!(mask("4111111111111111"), "************1111");
        assert_eq!(mask("ünïcödé!"), "****ödé!");
    }
}
