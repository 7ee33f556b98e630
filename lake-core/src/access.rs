//! Table access: grants of read or write, on a zone, a namespace or a
//! table, to a principal, kept in the catalog.
//!
//! A [`Grant`] says that a [`Principal`] (a service, a team, an IAM role's
//! ARN: any name the deployment uses) may read or write every table of a
//! [`GrantScope`]. Grants are recorded with
//! [`Catalog::grant`](crate::Catalog::grant) and removed with
//! [`Catalog::revoke`](crate::Catalog::revoke);
//! [`CatalogExt::access`](crate::CatalogExt::access) reads one principal's
//! grants as an [`Access`], which answers whether it may read or write a
//! table.
//!
//! Who checks:
//! - `lake_gold::LakeSession::for_principal` opens a SQL session that lists
//!   only the tables the principal may read and refuses the others with
//!   [`LakeError::AccessDenied`].
//! - A [`Pipeline`](crate::Pipeline) built
//!   [`with_principal`](crate::PipelineBuilder::with_principal) checks,
//!   before each stage runs, that the principal may read the stage's source
//!   tables and write its target; erasure and maintenance check write on
//!   every table they would change.
//! - With Glue, `lake_catalog::GlueCatalog::sync_lake_formation` grants the
//!   same permissions in AWS Lake Formation, which Athena, Redshift and EMR
//!   enforce.
//!
//! # Semantics
//! - Read and write are separate grants. A stage is checked for read on its
//!   sources and write on its target; the target's own dead-letter store,
//!   event log and quarantine belong to it (a stage that writes a table may
//!   read what it wrote).
//! - A grant on a zone or namespace covers tables created after it.
//! - Grants name tables by id, so they outlive a table that is dropped and
//!   apply to a table created again under the same id.
//! - Without a principal, nothing is checked: the embedded default, where
//!   the process owns its lake.
//!
//! # What this is not
//! These checks are made by the library for the code that uses it: they
//! keep a service or an analyst's session to the tables it is meant to
//! touch. They do not stop a process that holds the storage credentials
//! from reading the files directly. Where that matters, the storage's own
//! access control (IAM policies on the bucket prefixes of
//! [`LakeLayout`](crate::LakeLayout), or Lake Formation's credential
//! vending) is the boundary; the grants here are the one place to declare
//! it, and the Lake Formation sync carries them there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{LakeError, Result};
use crate::ident::{NamespaceId, TableId, Zone};

/// The longest principal name (Lake Formation's limit for a principal ARN).
pub const MAX_PRINCIPAL_LEN: usize = 255;

/// Who is granted access: a service, a team, an IAM role's ARN.
///
/// 1 to 255 characters, none of them a control character, no leading or
/// trailing space.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Principal(String);

impl Principal {
    /// A principal named `name`, validated.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("is empty")
        } else if name.chars().count() > MAX_PRINCIPAL_LEN {
            Some("is longer than 255 characters")
        } else if name.chars().any(char::is_control) {
            Some("holds a control character")
        } else if name.trim() != name {
            Some("starts or ends with a space")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(LakeError::InvalidIdentifier {
                kind: "principal",
                value: name,
                reason: reason.to_string(),
            }),
            None => Ok(Self(name)),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Principal {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// Query the table, and read it as a stage's source.
    Read,
    /// Commit to the table: ingest, refine, aggregate, erase, maintain.
    Write,
}

impl Privilege {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Privilege {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            other => Err(LakeError::InvalidIdentifier {
                kind: "privilege",
                value: other.to_string(),
                reason: "expected `read` or `write`".to_string(),
            }),
        }
    }
}

/// The tables a grant covers: a zone, a namespace or one table.
///
/// Written as the id it names: `silver`, `silver.sales`, `silver.sales.orders`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantScope {
    /// Every table of a zone.
    Zone(Zone),
    /// Every table of a namespace.
    Namespace(NamespaceId),
    /// One table.
    Table(TableId),
}

impl GrantScope {
    /// Whether the scope holds `table`.
    pub fn covers(&self, table: &TableId) -> bool {
        match self {
            Self::Zone(zone) => table.zone == *zone,
            Self::Namespace(namespace) => {
                table.zone == namespace.zone && table.namespace == namespace.name
            }
            Self::Table(id) => id == table,
        }
    }

    /// The zone the scope lies in.
    pub fn zone(&self) -> Zone {
        match self {
            Self::Zone(zone) => *zone,
            Self::Namespace(namespace) => namespace.zone,
            Self::Table(table) => table.zone,
        }
    }
}

impl fmt::Display for GrantScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zone(zone) => zone.fmt(f),
            Self::Namespace(namespace) => namespace.fmt(f),
            Self::Table(table) => table.fmt(f),
        }
    }
}

impl FromStr for GrantScope {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        match s.matches('.').count() {
            0 => Ok(Self::Zone(s.parse()?)),
            1 => Ok(Self::Namespace(s.parse()?)),
            _ => Ok(Self::Table(s.parse()?)),
        }
    }
}

impl From<Zone> for GrantScope {
    fn from(zone: Zone) -> Self {
        Self::Zone(zone)
    }
}

impl From<NamespaceId> for GrantScope {
    fn from(namespace: NamespaceId) -> Self {
        Self::Namespace(namespace)
    }
}

impl From<TableId> for GrantScope {
    fn from(table: TableId) -> Self {
        Self::Table(table)
    }
}

impl Serialize for GrantScope {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GrantScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// One grant: `principal` may `privilege` every table of `scope`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Grant {
    /// Who.
    pub principal: Principal,
    /// Read or write.
    pub privilege: Privilege,
    /// Which tables.
    pub scope: GrantScope,
}

impl Grant {
    /// `principal` may `privilege` the tables of `scope`.
    pub fn new(principal: Principal, privilege: Privilege, scope: impl Into<GrantScope>) -> Self {
        Self {
            principal,
            privilege,
            scope: scope.into(),
        }
    }

    /// `principal` may read the tables of `scope`.
    pub fn read(principal: Principal, scope: impl Into<GrantScope>) -> Self {
        Self::new(principal, Privilege::Read, scope)
    }

    /// `principal` may write the tables of `scope`.
    pub fn write(principal: Principal, scope: impl Into<GrantScope>) -> Self {
        Self::new(principal, Privilege::Write, scope)
    }

    /// Whether the grant lets its principal `privilege` `table`.
    pub fn allows(&self, privilege: Privilege, table: &TableId) -> bool {
        self.privilege == privilege && self.scope.covers(table)
    }

    /// A stable name for the grant, the same in every process: a UUID v5
    /// of principal, privilege and scope, in lower-case hex without dashes.
    /// Catalogs name the grant's document (or Glue table) after it, so
    /// recording a grant twice finds the first.
    pub fn key(&self) -> String {
        let text = format!("{}\n{}\n{}", self.principal, self.privilege, self.scope);
        uuid::Uuid::new_v5(&GRANT_KEY_NAMESPACE, text.as_bytes())
            .simple()
            .to_string()
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} to {}",
            self.privilege, self.scope, self.principal
        )
    }
}

/// The UUID namespace of [`Grant::key`]: fixed, since changing it would
/// rename every recorded grant.
const GRANT_KEY_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x1e7c_41c4_6b2f_5a4e_9d1f_0a6b_8c3e_2d57);

/// What one principal may do: its grants, read from the catalog once.
///
/// A snapshot: a grant recorded or revoked later applies to the next
/// read of the grants, not to this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    principal: Principal,
    grants: Vec<Grant>,
}

impl Access {
    /// `principal` with `grants` (those of other principals are ignored).
    pub fn new(principal: Principal, grants: impl IntoIterator<Item = Grant>) -> Self {
        let grants = grants
            .into_iter()
            .filter(|g| g.principal == principal)
            .collect();
        Self { principal, grants }
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Its grants.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether a grant lets the principal `privilege` `table`.
    pub fn allows(&self, privilege: Privilege, table: &TableId) -> bool {
        self.grants.iter().any(|g| g.allows(privilege, table))
    }

    /// `Ok` when the principal may `privilege` `table`, else
    /// [`LakeError::AccessDenied`] naming principal, privilege and table.
    pub fn check(&self, privilege: Privilege, table: &TableId) -> Result<()> {
        if self.allows(privilege, table) {
            Ok(())
        } else {
            Err(LakeError::AccessDenied {
                principal: self.principal.to_string(),
                action: privilege.as_str(),
                table: table.to_string(),
            })
        }
    }
}

/// Keeps the grants that `principal` (all, when `None`) holds, sorted:
/// the order every catalog returns them in.
pub fn select_grants(
    grants: impl IntoIterator<Item = Grant>,
    principal: Option<&Principal>,
) -> Vec<Grant> {
    let mut out: Vec<Grant> = grants
        .into_iter()
        .filter(|g| principal.is_none_or(|p| g.principal == *p))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyst() -> Principal {
        Principal::new("arn:aws:iam::123456789012:role/analyst").unwrap()
    }

    #[test]
    fn scopes_cover_their_tables_only() {
        let orders = TableId::silver("sales", "orders").unwrap();
        let customers = TableId::silver("crm", "customers").unwrap();
        let raw = TableId::bronze("sales", "orders").unwrap();
        let zone = GrantScope::Zone(Zone::Silver);
        let namespace: GrantScope = "silver.sales".parse().unwrap();
        let table: GrantScope = "silver.sales.orders".parse().unwrap();
        assert!(zone.covers(&orders) && zone.covers(&customers) && !zone.covers(&raw));
        assert!(namespace.covers(&orders) && !namespace.covers(&customers));
        assert!(!namespace.covers(&raw), "same namespace name, other zone");
        assert!(table.covers(&orders) && !table.covers(&customers));
        assert_eq!(namespace.to_string(), "silver.sales");
        assert!("platinum".parse::<GrantScope>().is_err());
        assert!("silver.sales.orders.x".parse::<GrantScope>().is_err());
    }

    #[test]
    fn access_allows_by_privilege_and_scope() {
        let orders = TableId::silver("sales", "orders").unwrap();
        let daily = TableId::gold("analytics", "daily").unwrap();
        let other = Principal::new("ingest-service").unwrap();
        let access = Access::new(
            analyst(),
            [
                Grant::read(analyst(), Zone::Silver),
                Grant::write(other.clone(), Zone::Gold),
            ],
        );
        assert!(access.allows(Privilege::Read, &orders));
        assert!(
            !access.allows(Privilege::Write, &orders),
            "read is not write"
        );
        assert!(!access.allows(Privilege::Read, &daily), "another's grant");
        let denied = access.check(Privilege::Read, &daily).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "arn:aws:iam::123456789012:role/analyst may not read gold.analytics.daily: no grant allows it"
        );
    }

    #[test]
    fn principals_are_validated_and_grants_round_trip() {
        assert!(Principal::new("").is_err());
        assert!(Principal::new(" padded").is_err());
        assert!(Principal::new("line\nbreak").is_err());
        assert!(Principal::new("x".repeat(256)).is_err());
        let grant = Grant::write(analyst(), TableId::gold("analytics", "daily").unwrap());
        let json = serde_json::to_string(&grant).unwrap();
        assert_eq!(
            json,
            r#"{"principal":"arn:aws:iam::123456789012:role/analyst","privilege":"write","scope":"gold.analytics.daily"}"#
        );
        assert_eq!(serde_json::from_str::<Grant>(&json).unwrap(), grant);
        assert!(serde_json::from_str::<Grant>(&json.replace("gold.", "lead.")).is_err());
        let read = Grant::read(analyst(), TableId::gold("analytics", "daily").unwrap());
        assert_ne!(grant.key(), read.key());
        assert_eq!(grant.key(), grant.clone().key());
        assert_eq!(grant.key().len(), 32);
    }
}
