//! The parts of a spec: columns and their types, tracked columns, the
//! delete rule and the names of the validity columns.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, TimeUnit};
use lake_core::pii::Pii;
use lake_core::{Ident, LakeError, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One silver column: a bronze column (renamed, cast) or a SQL expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ColumnSpec {
    /// The silver name.
    pub name: Ident,
    /// The bronze column read (default: `name`); not with `expr`.
    #[serde(default)]
    pub from: Option<String>,
    /// A DataFusion SQL expression over the bronze columns; not with `from`.
    #[serde(default)]
    pub expr: Option<String>,
    /// The type cast to (safely); the bronze type when absent.
    #[serde(default, rename = "type")]
    pub data_type: Option<ColumnType>,
    /// Personal data: stored as a keyed hash, masked, or not at all (see
    /// [`lake_core::pii`]); none: stored as typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<Pii>,
}

impl ColumnSpec {
    /// `name` read from the bronze column of the same name, as it is.
    pub fn new(name: &str) -> Result<Self> {
        Ok(Self {
            name: Ident::new_as("column", name)?,
            from: None,
            expr: None,
            data_type: None,
            pii: None,
        })
    }

    /// Tags the column as personal data: silver stores it as `pii` says.
    #[must_use]
    pub fn pii(mut self, pii: Pii) -> Self {
        self.pii = Some(pii);
        self
    }

    /// Reads the bronze column `from`.
    #[must_use]
    pub fn from(mut self, from: &str) -> Self {
        self.from = Some(from.to_string());
        self
    }

    /// Computes the column with a SQL expression over bronze columns.
    #[must_use]
    pub fn expr(mut self, expr: &str) -> Self {
        self.expr = Some(expr.to_string());
        self
    }

    /// Casts the column to `data_type`; a failed cast quarantines the row.
    #[must_use]
    pub fn cast(mut self, data_type: ColumnType) -> Self {
        self.data_type = Some(data_type);
        self
    }

    /// The bronze column read, when the column is not derived.
    pub fn source_column(&self) -> Option<&str> {
        match (&self.expr, &self.from) {
            (Some(_), _) => None,
            (None, Some(from)) => Some(from),
            (None, None) => Some(self.name.as_str()),
        }
    }
}

/// The types a column can be cast to. In TOML: `string`, `boolean`,
/// `int32`, `int64`, `float64`, `date`, `timestamp` (microseconds, UTC),
/// `decimal(p,s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// `true` / `false`.
    Boolean,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// A calendar date.
    Date,
    /// Microseconds since the epoch, UTC.
    Timestamp,
    /// A decimal of the given precision and scale.
    Decimal(u8, i8),
}

impl ColumnType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Decimal(p, s) => DataType::Decimal128(p, s),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Boolean => f.write_str("boolean"),
            Self::Int32 => f.write_str("int32"),
            Self::Int64 => f.write_str("int64"),
            Self::Float64 => f.write_str("float64"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Decimal(p, s) => write!(f, "decimal({p},{s})"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = LakeError;

    fn from_str(text: &str) -> Result<Self> {
        let lower = text.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "string" | "utf8" | "text" | "varchar" => Self::String,
            "boolean" | "bool" => Self::Boolean,
            "int32" | "int" | "integer" => Self::Int32,
            "int64" | "bigint" | "long" => Self::Int64,
            "float64" | "double" => Self::Float64,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            other => {
                let decimal = other
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .and_then(|args| args.split_once(','))
                    .and_then(|(p, s)| Some((p.trim().parse().ok()?, s.trim().parse().ok()?)));
                match decimal {
                    Some((p, s)) if (1..=38).contains(&p) && s >= 0 && s as u8 <= p => {
                        Self::Decimal(p, s)
                    }
                    _ => {
                        return Err(LakeError::config(
                            "type",
                            format!(
                                "unknown type `{text}` (expected string, boolean, int32, int64, \
                                 float64, date, timestamp or decimal(p,s) with 1 <= p <= 38, 0 <= s <= p)"
                            ),
                        ));
                    }
                }
            }
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which columns make a new version (Delta Live Tables'
/// `track_history_column_list` / `track_history_except_column_list`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TrackHistory {
    /// Every silver column except the keys.
    #[default]
    All,
    /// Only these.
    Include(Vec<Ident>),
    /// All but these.
    Exclude(Vec<Ident>),
}

/// How a delete is recognised (Delta Live Tables' `apply_as_deletes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum DeleteRule {
    /// A bronze column whose value is one of `values`; the column's value
    /// `c` marks a create, any other value an update.
    Column {
        /// The bronze column holding the operation.
        column: String,
        /// The values meaning delete.
        values: Vec<String>,
    },
    /// A DataFusion SQL condition over the bronze columns.
    Condition {
        /// True for a delete.
        condition: String,
    },
}

/// The names of the validity columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidityColumns {
    /// When the version took effect (default `valid_from`).
    #[serde(default = "ValidityColumns::default_from")]
    pub from: Ident,
    /// When it ended; null while current (default `valid_to`).
    #[serde(default = "ValidityColumns::default_to")]
    pub to: Ident,
    /// True for the version in force (default `is_current`).
    #[serde(default = "ValidityColumns::default_current")]
    pub current: Ident,
}

impl ValidityColumns {
    fn default_from() -> Ident {
        Ident::new("valid_from").expect("a valid identifier")
    }
    fn default_to() -> Ident {
        Ident::new("valid_to").expect("a valid identifier")
    }
    fn default_current() -> Ident {
        Ident::new("is_current").expect("a valid identifier")
    }
}

impl Default for ValidityColumns {
    fn default() -> Self {
        Self {
            from: Self::default_from(),
            to: Self::default_to(),
            current: Self::default_current(),
        }
    }
}
