//! Grants in Glue, and their sync to AWS Lake Formation.
//!
//! # Where grants live
//! Glue has no place for a grant on a lake zone or namespace, so each grant
//! is a Glue table of type `LAKE_GRANT` in a database of its own
//! (`lake_grants` unless [`GlueCatalogBuilder::grants_database`] names
//! another), named `grant_{key}` after [`Grant::key`], with the principal,
//! privilege and scope as its parameters. `CreateTable` refuses a name that
//! exists, so granting twice finds the first and concurrent grants from
//! several processes lose nothing; revoking is `DeleteTable`. The database
//! carries no `lake.zone` parameter, so namespace listings skip it.
//!
//! # Lake Formation
//! [`GlueCatalog::sync_lake_formation`] makes Lake Formation hold the
//! permissions the grants imply, on the Glue databases and tables of the
//! lake:
//! - read is `SELECT` and `DESCRIBE`; write is `INSERT`, `DELETE`, `ALTER`
//!   and `DESCRIBE`;
//! - a table grant is a permission on the Glue table;
//! - a zone grant is one on every table (`TableWildcard`) of the zone's
//!   database, or, with a database per namespace, of the databases of the
//!   zone's namespaces when the sync runs;
//! - a namespace grant is one on every table of its database, or, with one
//!   database per zone (where several namespaces share a database), one on
//!   each table the namespace has when the sync runs.
//!
//! So sync again after creating namespaces or tables; the grants the lake
//! itself checks need no sync.
//!
//! The grants are the source of truth for those permission kinds on the
//! lake's databases: the sync grants what is missing and revokes what no
//! grant implies any longer (a revoked grant, a principal given `SELECT` by
//! hand), and leaves alone other permissions (`DROP`, grant options) and
//! other databases. [`SyncLakeFormation::with_dry_run`] reports the changes
//! without making them.

use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use aws_sdk_glue::types::TableInput;
use aws_sdk_lakeformation::types::{
    DataLakePrincipal, DataLakeResourceType, Permission, Resource, TableResource, TableWildcard,
};
use lake_core::access::select_grants;
use lake_core::{Grant, GrantScope, Principal, Privilege};

use super::*;

/// The table type of a grant's Glue table.
const GRANT_TABLE_TYPE: &str = "LAKE_GRANT";
const P_PRINCIPAL: &str = "lake.principal";
const P_PRIVILEGE: &str = "lake.privilege";
const P_SCOPE: &str = "lake.scope";
/// The database of grants unless the builder names another.
pub const DEFAULT_GRANTS_DATABASE: &str = "lake_grants";

/// The Lake Formation permissions a privilege implies.
fn lf_permissions(privilege: Privilege) -> &'static [Permission] {
    match privilege {
        Privilege::Read => &[Permission::Select, Permission::Describe],
        Privilege::Write => &[
            Permission::Insert,
            Permission::Delete,
            Permission::Alter,
            Permission::Describe,
        ],
    }
}

/// Whether the sync manages `permission` (it leaves the others alone).
fn managed(permission: &Permission) -> bool {
    matches!(
        permission,
        Permission::Select
            | Permission::Insert
            | Permission::Delete
            | Permission::Alter
            | Permission::Describe
    )
}

/// One Lake Formation permission of one principal on one table, or on
/// every table of a database (`table` `None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct LakeFormationPermission {
    /// The principal's identifier (an IAM ARN).
    pub principal: String,
    /// The Glue database.
    pub database: String,
    /// The Glue table; `None` for every table of the database.
    pub table: Option<String>,
    /// `SELECT`, `INSERT`, `DELETE`, `ALTER` or `DESCRIBE`.
    pub permission: String,
}

impl std::fmt::Display for LakeFormationPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {}.{} to {}",
            self.permission,
            self.database,
            self.table.as_deref().unwrap_or("*"),
            self.principal
        )
    }
}

/// What a Lake Formation sync changed (or, in a dry run, would change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LakeFormationReport {
    /// Permissions granted.
    pub granted: Vec<LakeFormationPermission>,
    /// Permissions revoked.
    pub revoked: Vec<LakeFormationPermission>,
    /// Permissions that were in place already.
    pub unchanged: usize,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// The sync of a Glue catalog's grants to Lake Formation; await it.
#[derive(Debug)]
#[must_use = "a sync does nothing until awaited"]
pub struct SyncLakeFormation<'a> {
    catalog: &'a GlueCatalog,
    dry_run: bool,
}

impl SyncLakeFormation<'_> {
    /// Reports the changes without making them.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

impl<'a> IntoFuture for SyncLakeFormation<'a> {
    type Output = Result<LakeFormationReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.catalog.sync(self.dry_run).await })
    }
}

/// Wraps a Lake Formation SDK error.
fn lf_error<E>(operation: &str, subject: impl std::fmt::Display, error: E) -> LakeError
where
    E: std::error::Error + Send + Sync + 'static,
{
    LakeError::other(
        "lake formation",
        format!(
            "{operation} {subject}: {}",
            aws_sdk_lakeformation::error::DisplayErrorContext(error)
        ),
    )
}

impl GlueCatalog {
    /// The Glue database grants are kept in.
    pub fn grants_database(&self) -> &str {
        &self.grants_database
    }

    /// Makes Lake Formation hold the permissions this catalog's grants
    /// imply (see the module docs of the mapping); needs a Lake Formation
    /// client (made by [`GlueCatalogBuilder::build`], or given with
    /// [`GlueCatalog::with_lake_formation_client`]).
    pub fn sync_lake_formation(&self) -> SyncLakeFormation<'_> {
        SyncLakeFormation {
            catalog: self,
            dry_run: false,
        }
    }

    fn grant_table_name(grant: &Grant) -> String {
        format!("grant_{}", grant.key())
    }

    pub(super) async fn glue_grant(&self, grant: &Grant) -> Result<bool> {
        let mut marker = HashMap::new();
        marker.insert("lake.grants".to_string(), "true".to_string());
        self.create_glue_database(glue_name("grants database", &self.grants_database)?, marker)
            .await?;
        let mut parameters = HashMap::new();
        parameters.insert(P_PRINCIPAL.to_string(), grant.principal.to_string());
        parameters.insert(P_PRIVILEGE.to_string(), grant.privilege.to_string());
        parameters.insert(P_SCOPE.to_string(), grant.scope.to_string());
        let input = TableInput::builder()
            .name(Self::grant_table_name(grant))
            .table_type(GRANT_TABLE_TYPE)
            .description(grant.to_string())
            .set_parameters(Some(parameters))
            .build()
            .map_err(|e| glue_error("CreateTable", grant, e))?;
        match self
            .client
            .create_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&self.grants_database)
            .table_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error("CreateTable", grant, e)),
        }
    }

    pub(super) async fn glue_revoke(&self, grant: &Grant) -> Result<bool> {
        match self
            .client
            .delete_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&self.grants_database)
            .name(Self::grant_table_name(grant))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error("DeleteTable", grant, e)),
        }
    }

    pub(super) async fn glue_list_grants(
        &self,
        principal: Option<&Principal>,
    ) -> Result<Vec<Grant>> {
        let mut pages = self
            .client
            .get_tables()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&self.grants_database)
            .into_paginator()
            .send();
        let mut grants = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // No grant was ever recorded.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(glue_error("GetTables", &self.grants_database, e)),
            };
            for table in page.table_list() {
                if table.table_type() != Some(GRANT_TABLE_TYPE) {
                    continue;
                }
                grants.push(grant_from_glue(&self.grants_database, table)?);
            }
        }
        Ok(select_grants(grants, principal))
    }

    /// The Lake Formation permissions the grants imply now.
    async fn wanted_permissions(&self) -> Result<BTreeSet<LakeFormationPermission>> {
        let grants = self.glue_list_grants(None).await?;
        let mut wanted = BTreeSet::new();
        // Tables per namespace, listed once, for namespace grants with a
        // database per zone.
        let mut tables: BTreeMap<NamespaceId, Vec<TableId>> = BTreeMap::new();
        for grant in &grants {
            let mut targets: Vec<LfTable> = Vec::new();
            match &grant.scope {
                GrantScope::Table(table) => targets.push((
                    self.database_name(&table.namespace_id())?,
                    Some(self.table_name(table)?),
                )),
                GrantScope::Namespace(namespace) if self.per_zone() => {
                    if !tables.contains_key(namespace) {
                        let listed = match self.list_tables(namespace).await {
                            Ok(listed) => listed,
                            Err(LakeError::NotFound { .. }) => Vec::new(),
                            Err(e) => return Err(e),
                        };
                        tables.insert(namespace.clone(), listed);
                    }
                    for table in &tables[namespace] {
                        targets.push((
                            self.database_name(namespace)?,
                            Some(self.table_name(table)?),
                        ));
                    }
                }
                GrantScope::Namespace(namespace) => {
                    targets.push((self.database_name(namespace)?, None));
                }
                GrantScope::Zone(zone) if self.per_zone() => {
                    // The template has no `{namespace}`: any name gives the zone's database.
                    let any = NamespaceId::new(*zone, "any")?;
                    targets.push((self.database_name(&any)?, None));
                }
                GrantScope::Zone(zone) => {
                    for namespace in self.list_namespaces(Some(*zone)).await? {
                        targets.push((self.database_name(&namespace)?, None));
                    }
                }
            }
            for (database, table) in targets {
                for permission in lf_permissions(grant.privilege) {
                    wanted.insert(LakeFormationPermission {
                        principal: grant.principal.to_string(),
                        database: database.clone(),
                        table: table.clone(),
                        permission: permission.as_str().to_string(),
                    });
                }
            }
        }
        Ok(wanted)
    }

    /// The Glue databases whose permissions the sync manages: every
    /// database of the lake's namespaces, and those the grants name.
    async fn lake_databases(
        &self,
        wanted: &BTreeSet<LakeFormationPermission>,
    ) -> Result<BTreeSet<String>> {
        let mut databases: BTreeSet<String> = wanted.iter().map(|p| p.database.clone()).collect();
        for namespace in self.list_namespaces(None).await? {
            databases.insert(self.database_name(&namespace)?);
        }
        Ok(databases)
    }

    /// The managed Lake Formation permissions held now on `databases`.
    async fn held_permissions(
        &self,
        client: &aws_sdk_lakeformation::Client,
        databases: &BTreeSet<String>,
    ) -> Result<BTreeSet<LakeFormationPermission>> {
        let mut pages = client
            .list_permissions()
            .set_catalog_id(self.catalog_id.clone())
            .resource_type(DataLakeResourceType::Table)
            .into_paginator()
            .send();
        let mut held = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| lf_error("ListPermissions", "TABLE", e))?;
            for entry in page.principal_resource_permissions() {
                let Some(principal) = entry
                    .principal()
                    .and_then(|p| p.data_lake_principal_identifier())
                else {
                    continue;
                };
                let Some(resource) = entry.resource() else {
                    continue;
                };
                // A SELECT on every column is listed as a table-with-columns resource.
                let (database, table) = if let Some(table) = resource.table() {
                    (
                        table.database_name().to_string(),
                        table.name().map(str::to_string),
                    )
                } else if let Some(columns) = resource.table_with_columns() {
                    if columns.column_wildcard().is_none() {
                        continue;
                    }
                    (
                        columns.database_name().to_string(),
                        Some(columns.name().to_string()),
                    )
                } else {
                    continue;
                };
                if !databases.contains(&database) {
                    continue;
                }
                for permission in entry.permissions().iter().filter(|p| managed(p)) {
                    held.insert(LakeFormationPermission {
                        principal: principal.to_string(),
                        database: database.clone(),
                        table: table.clone(),
                        permission: permission.as_str().to_string(),
                    });
                }
            }
        }
        Ok(held)
    }

    async fn sync(&self, dry_run: bool) -> Result<LakeFormationReport> {
        let client = self.lake_formation.as_ref().ok_or_else(|| {
            LakeError::config(
                "lake formation",
                "this GlueCatalog has no Lake Formation client: build it with \
                 GlueCatalog::builder() or give one with with_lake_formation_client",
            )
        })?;
        let wanted = self.wanted_permissions().await?;
        let databases = self.lake_databases(&wanted).await?;
        let held = self.held_permissions(client, &databases).await?;
        let report = LakeFormationReport {
            granted: wanted.difference(&held).cloned().collect(),
            revoked: held.difference(&wanted).cloned().collect(),
            unchanged: wanted.intersection(&held).count(),
            dry_run,
        };
        if dry_run {
            return Ok(report);
        }
        for (principal, resource, permissions) in grouped(&report.granted) {
            client
                .grant_permissions()
                .set_catalog_id(self.catalog_id.clone())
                .principal(lf_principal(&principal))
                .resource(self.lf_resource(&resource)?)
                .set_permissions(Some(permissions))
                .send()
                .await
                .map_err(|e| lf_error("GrantPermissions", &principal, e))?;
        }
        for (principal, resource, permissions) in grouped(&report.revoked) {
            client
                .revoke_permissions()
                .set_catalog_id(self.catalog_id.clone())
                .principal(lf_principal(&principal))
                .resource(self.lf_resource(&resource)?)
                .set_permissions(Some(permissions))
                .send()
                .await
                .map_err(|e| lf_error("RevokePermissions", &principal, e))?;
        }
        Ok(report)
    }

    fn lf_resource(&self, (database, table): &LfTable) -> Result<Resource> {
        let mut builder = TableResource::builder()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(database);
        builder = match table {
            Some(name) => builder.name(name),
            None => builder.table_wildcard(TableWildcard::builder().build()),
        };
        let table = builder
            .build()
            .map_err(|e| lf_error("TableResource", database, e))?;
        Ok(Resource::builder().table(table).build())
    }
}

fn lf_principal(principal: &str) -> DataLakePrincipal {
    DataLakePrincipal::builder()
        .data_lake_principal_identifier(principal)
        .build()
}

/// A Glue database and one of its tables, or all of them (`None`).
type LfTable = (String, Option<String>);

/// The permissions of `entries` grouped per principal and resource: one
/// request each.
fn grouped(entries: &[LakeFormationPermission]) -> Vec<(String, LfTable, Vec<Permission>)> {
    let mut groups: BTreeMap<(String, LfTable), Vec<Permission>> = BTreeMap::new();
    for entry in entries {
        groups
            .entry((
                entry.principal.clone(),
                (entry.database.clone(), entry.table.clone()),
            ))
            .or_default()
            .push(Permission::from(entry.permission.as_str()));
    }
    groups
        .into_iter()
        .map(|((principal, resource), permissions)| (principal, resource, permissions))
        .collect()
}

/// The grant a `LAKE_GRANT` Glue table records.
fn grant_from_glue(database: &str, table: &aws_sdk_glue::types::Table) -> Result<Grant> {
    let parameters = table.parameters();
    let get = |key: &str| {
        parameters
            .and_then(|p| p.get(key))
            .map(String::as_str)
            .ok_or_else(|| {
                LakeError::config(
                    "glue grant",
                    format!(
                        "{database}.{}: a {GRANT_TABLE_TYPE} table without the `{key}` parameter",
                        table.name()
                    ),
                )
            })
    };
    let principal: Principal = get(P_PRINCIPAL)?.parse()?;
    let privilege: Privilege = get(P_PRIVILEGE)?.parse()?;
    let scope: GrantScope = get(P_SCOPE)?.parse()?;
    Ok(Grant::new(principal, privilege, scope))
}
