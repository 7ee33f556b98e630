//! Validated identifiers: zones, names, table ids and partition values.
//!
//! Every path and every SQL predicate the lake builds is made from these
//! types, so the checks here are what keeps a hostile name (`../../etc`,
//! `x' OR '1'='1`) from escaping its zone or its quotes. Validation happens
//! once, at construction; a value of these types is safe everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{LakeError, Result};

/// The longest identifier accepted, in bytes (Glue's limit for names).
pub const MAX_IDENT_LEN: usize = 128;
/// The longest partition value accepted, in bytes.
pub const MAX_PARTITION_VALUE_LEN: usize = 256;

/// A zone of the medallion lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// Raw records as delivered, append-only.
    Bronze,
    /// Typed, validated, deduplicated and versioned records.
    Silver,
    /// Aggregates for consumers.
    Gold,
}

impl Zone {
    /// Every zone, in data-flow order.
    pub const ALL: [Zone; 3] = [Zone::Bronze, Zone::Silver, Zone::Gold];

    /// The zone's name, which is also its folder under the lake root.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Bronze => "bronze",
            Zone::Silver => "silver",
            Zone::Gold => "gold",
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Zone {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bronze" => Ok(Zone::Bronze),
            "silver" => Ok(Zone::Silver),
            "gold" => Ok(Zone::Gold),
            _ => Err(LakeError::InvalidIdentifier {
                kind: "zone",
                value: s.to_string(),
                reason: "expected `bronze`, `silver` or `gold`".to_string(),
            }),
        }
    }
}

/// A name usable as one path segment and as a SQL identifier: a namespace,
/// a table, a source system, a column used for partitioning.
///
/// Accepted: 1 to 128 ASCII letters, digits, `_` and `-`, not starting with
/// `-`. That excludes `.`, `/`, `\`, quotes, whitespace and control
/// characters, so no identifier can form `..` or leave its folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates `value` as an identifier; `kind` names it in the error.
    pub fn new_as(kind: &'static str, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let refuse = |reason: &str| LakeError::InvalidIdentifier {
            kind,
            value: value.clone(),
            reason: reason.to_string(),
        };
        if value.is_empty() {
            return Err(refuse("must not be empty"));
        }
        if value.len() > MAX_IDENT_LEN {
            return Err(refuse(&format!("longer than {MAX_IDENT_LEN} bytes")));
        }
        if value.starts_with('-') {
            return Err(refuse("must not start with `-`"));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(refuse(&format!(
                "character {c:?} is not allowed (only ASCII letters, digits, `_` and `-`)"
            )));
        }
        Ok(Self(value))
    }

    /// Validates `value` as an identifier.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        Self::new_as("identifier", value)
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This identifier followed by `suffix` (which must itself be valid).
    pub fn with_suffix(&self, suffix: &str) -> Result<Self> {
        Self::new(format!("{}{suffix}", self.0))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Ident {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A table: its zone, its namespace (source system, domain or area) and its name.
///
/// Written `zone.namespace.name`, for example `silver.sales.orders`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    /// The zone the table lives in.
    pub zone: Zone,
    /// The source system (bronze), domain (silver) or area (gold).
    pub namespace: Ident,
    /// The table's name within its namespace.
    pub name: Ident,
}

impl TableId {
    /// Builds a table id, validating both names.
    pub fn new(zone: Zone, namespace: &str, name: &str) -> Result<Self> {
        Ok(Self {
            zone,
            namespace: Ident::new_as("namespace", namespace)?,
            name: Ident::new_as("table name", name)?,
        })
    }

    /// `bronze/{source_system}/{table}`.
    pub fn bronze(source_system: &str, table: &str) -> Result<Self> {
        Self::new(Zone::Bronze, source_system, table)
    }

    /// `silver/{domain}/{entity}`.
    pub fn silver(domain: &str, entity: &str) -> Result<Self> {
        Self::new(Zone::Silver, domain, entity)
    }

    /// `gold/{area}/{name}`.
    pub fn gold(area: &str, name: &str) -> Result<Self> {
        Self::new(Zone::Gold, area, name)
    }

    /// The namespace this table belongs to.
    pub fn namespace_id(&self) -> NamespaceId {
        NamespaceId {
            zone: self.zone,
            name: self.namespace.clone(),
        }
    }

    /// The silver event log beside this table: `{entity}_changes`.
    pub fn changes_table(&self) -> Result<Self> {
        Ok(Self {
            zone: self.zone,
            namespace: self.namespace.clone(),
            name: self.name.with_suffix("_changes")?,
        })
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.zone, self.namespace, self.name)
    }
}

impl FromStr for TableId {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [zone, namespace, name] => Self::new(zone.parse()?, namespace, name),
            _ => Err(LakeError::InvalidIdentifier {
                kind: "table id",
                value: s.to_string(),
                reason: "expected `zone.namespace.name`".to_string(),
            }),
        }
    }
}

/// A namespace (database) of the catalog: a zone and a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespaceId {
    /// The zone of the namespace.
    pub zone: Zone,
    /// The source system, domain or area.
    pub name: Ident,
}

impl NamespaceId {
    /// Builds a namespace id, validating the name.
    pub fn new(zone: Zone, name: &str) -> Result<Self> {
        Ok(Self {
            zone,
            name: Ident::new_as("namespace", name)?,
        })
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone, self.name)
    }
}

impl FromStr for NamespaceId {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('.') {
            Some((zone, name)) => Self::new(zone.parse()?, name),
            None => Err(LakeError::InvalidIdentifier {
                kind: "namespace id",
                value: s.to_string(),
                reason: "expected `zone.namespace`".to_string(),
            }),
        }
    }
}

/// A value of a partition column, safe as a `key=value` path segment.
///
/// Accepted: 1 to 256 bytes of Unicode letters and digits, `_`, `-`, `.`,
/// `+`, `:` and inner spaces; no `..`, no leading `.`, no leading or
/// trailing space. Dates (`2025-11-04`), numbers (`-12.5`) and names
/// (`São Paulo`) pass; `/`, `\`, `=`, `%`, quotes and control characters
/// do not. Use [`quote_literal`] to put one in a SQL predicate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionValue(String);

impl PartitionValue {
    /// Validates `value` as a partition value.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let refuse = |reason: &str| LakeError::InvalidIdentifier {
            kind: "partition value",
            value: value.clone(),
            reason: reason.to_string(),
        };
        if value.is_empty() {
            return Err(refuse("must not be empty"));
        }
        if value.len() > MAX_PARTITION_VALUE_LEN {
            return Err(refuse(&format!(
                "longer than {MAX_PARTITION_VALUE_LEN} bytes"
            )));
        }
        if value.contains("..") {
            return Err(refuse("must not contain `..`"));
        }
        if value.starts_with('.') {
            return Err(refuse("must not start with `.`"));
        }
        if value.starts_with(' ') || value.ends_with(' ') {
            return Err(refuse("must not start or end with a space"));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | ':' | ' ')))
        {
            return Err(refuse(&format!("character {c:?} is not allowed")));
        }
        Ok(Self(value))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartitionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PartitionValue {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// Quotes `value` as a SQL string literal: `O'Brien` becomes `'O''Brien'`.
///
/// Works for any string, validated or not; the result always parses as one
/// literal whose value is `value`.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Quotes `name` as a SQL identifier: `order id` becomes `"order id"`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

macro_rules! serde_as_string {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_string!(Ident, TableId, NamespaceId, PartitionValue);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_unsafe_text() {
        for bad in [
            "", "..", "a/b", "a\\b", "a.b", "a b", "a'b", "a\"b", "a\nb", "-a", "é",
        ] {
            assert!(Ident::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Ident::new("x".repeat(129)).is_err());
        for good in ["orders", "shop-eu", "_tmp", "A1", &"x".repeat(128)] {
            assert_eq!(Ident::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn partition_values_refuse_unsafe_text() {
        for bad in [
            "", "..", "a..b", ".hidden", "a/b", "a\\b", "a=b", "a'b", "%2e%2e", " a", "a ",
            "a\u{0}b", "a\tb",
        ] {
            assert!(PartitionValue::new(bad).is_err(), "{bad:?} was accepted");
        }
        for good in [
            "2025-11-04",
            "-12.5",
            "São Paulo",
            "eu-west-1",
            "12:30",
            "1e+5",
        ] {
            assert_eq!(PartitionValue::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn table_ids_round_trip_through_text_and_serde() {
        let id: TableId = "silver.sales.orders".parse().unwrap();
        assert_eq!(id, TableId::silver("sales", "orders").unwrap());
        assert_eq!(id.to_string(), "silver.sales.orders");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"silver.sales.orders\"");
        assert_eq!(serde_json::from_str::<TableId>(&json).unwrap(), id);
        assert!("silver.sales".parse::<TableId>().is_err());
        assert!("platinum.sales.orders".parse::<TableId>().is_err());
        assert!(serde_json::from_str::<TableId>("\"silver.../x.orders\"").is_err());
        assert_eq!(
            id.changes_table().unwrap().to_string(),
            "silver.sales.orders_changes"
        );
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
