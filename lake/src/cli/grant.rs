//! `lake grant`, `lake revoke`, `lake grants`: table access, kept in the catalog.

use clap::{Args, ValueEnum};
use lake::{Grant, GrantScope, Principal, Privilege};

use super::output::{json, table};
use super::{Failure, LakeArgs, Outcome};

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrivilegeArg {
    /// Query the tables, read them as a stage's source.
    Read,
    /// Ingest, refine, aggregate, erase and maintain them.
    Write,
}

impl From<PrivilegeArg> for Privilege {
    fn from(p: PrivilegeArg) -> Self {
        match p {
            PrivilegeArg::Read => Privilege::Read,
            PrivilegeArg::Write => Privilege::Write,
        }
    }
}

/// One grant, as the commands take it.
#[derive(Debug, Clone, Args)]
struct GrantSpec {
    /// `read` or `write`.
    #[arg(value_enum)]
    privilege: PrivilegeArg,
    /// A zone (`silver`), a namespace (`silver.sales`) or a table
    /// (`silver.sales.orders`).
    scope: String,
    /// Who: a service name, a team, an IAM role's ARN.
    to: String,
}

impl GrantSpec {
    fn grant(&self) -> Result<Grant, Failure> {
        let usage = |e: lake::LakeError| Failure::Usage(Box::new(e));
        let scope: GrantScope = self.scope.parse().map_err(usage)?;
        let principal: Principal = self.to.parse().map_err(usage)?;
        Ok(Grant::new(principal, self.privilege.into(), scope))
    }
}

/// Grants a principal read or write on a zone, namespace or table.
///
/// The grant is kept in the catalog. Sessions (`lake sql --principal`) and
/// pipelines run as that principal (`principal` in the configuration,
/// `--principal`, `LAKE_PRINCIPAL`) check it; with Glue, `lake grants
/// --sync-lake-formation` carries it to Lake Formation. A zone or
/// namespace grant covers tables created later. Granting twice is a no-op.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    lake grant read silver analyst\n  \
    lake grant write bronze.shop ingest-service\n  \
    lake grant read gold.analytics.daily_summary arn:aws:iam::123456789012:role/bi")]
pub(crate) struct GrantArgs {
    #[command(flatten)]
    lake: LakeArgs,
    #[command(flatten)]
    spec: GrantSpec,
}

/// Revokes a grant made with `lake grant`.
///
/// Revokes exactly that grant: a principal granted a zone keeps reading its
/// tables after a revoke of one table's grant.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  lake revoke read silver analyst")]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    lake: LakeArgs,
    #[command(flatten)]
    spec: GrantSpec,
}

/// Lists the grants (of one principal, or all), and syncs them to Lake Formation.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    lake grants\n  \
    lake grants --of analyst\n  \
    lake grants --config glue.toml --sync-lake-formation --dry-run")]
pub(crate) struct GrantsArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Only this principal's grants.
    #[arg(long, value_name = "PRINCIPAL")]
    of: Option<String>,
    /// With the Glue catalog: make Lake Formation hold the permissions the
    /// grants imply (SELECT and DESCRIBE for read; INSERT, DELETE, ALTER and
    /// DESCRIBE for write), granting what is missing and revoking what no
    /// grant implies on the lake's databases.
    #[arg(long)]
    sync_lake_formation: bool,
    /// With --sync-lake-formation: print the changes, make none.
    #[arg(long, requires = "sync_lake_formation")]
    dry_run: bool,
}

async fn catalog(lake: &LakeArgs) -> Result<lake::CatalogRef, Failure> {
    let config = lake.config()?;
    let storage = config.storage(None)?;
    config.catalog(&storage).await?.ok_or_else(|| {
        Failure::Usage(
            "grants are kept in the catalog, and this configuration has none (catalog = \"none\")"
                .into(),
        )
    })
}

pub(crate) async fn grant(args: GrantArgs) -> Outcome {
    let grant = args.spec.grant()?;
    let new = catalog(&args.lake).await?.grant(&grant).await?;
    if args.lake.json {
        json(&serde_json::json!({ "grant": grant, "new": new }));
    } else if new {
        println!("granted {grant}");
    } else {
        println!("{grant} was granted already");
    }
    Ok(())
}

pub(crate) async fn revoke(args: RevokeArgs) -> Outcome {
    let grant = args.spec.grant()?;
    let held = catalog(&args.lake).await?.revoke(&grant).await?;
    if args.lake.json {
        json(&serde_json::json!({ "grant": grant, "revoked": held }));
    } else if held {
        println!("revoked {grant}");
    } else {
        println!("{grant} was not granted: nothing to revoke");
    }
    Ok(())
}

pub(crate) async fn grants(args: GrantsArgs) -> Outcome {
    if args.sync_lake_formation {
        return sync(&args).await;
    }
    let of = match &args.of {
        Some(name) => Some(
            name.parse::<Principal>()
                .map_err(|e| Failure::Usage(Box::new(e)))?,
        ),
        None => None,
    };
    let grants = catalog(&args.lake).await?.list_grants(of.as_ref()).await?;
    if args.lake.json {
        json(&serde_json::to_value(&grants).map_err(|e| Failure::Run(Box::new(e)))?);
        return Ok(());
    }
    if grants.is_empty() {
        println!("no grants");
        return Ok(());
    }
    let rows = grants
        .iter()
        .map(|g| {
            vec![
                g.principal.to_string(),
                g.privilege.to_string(),
                g.scope.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["principal", "privilege", "scope"], rows));
    Ok(())
}

#[cfg(feature = "glue")]
async fn sync(args: &GrantsArgs) -> Outcome {
    let config = args.lake.config()?;
    let catalog = config.glue_catalog().await?;
    let report = catalog
        .sync_lake_formation()
        .with_dry_run(args.dry_run)
        .await?;
    let lines = |entries: &[lake::catalogs::LakeFormationPermission]| -> Vec<String> {
        entries.iter().map(ToString::to_string).collect()
    };
    if args.lake.json {
        json(&serde_json::json!({
            "dry_run": report.dry_run,
            "granted": lines(&report.granted),
            "revoked": lines(&report.revoked),
            "unchanged": report.unchanged,
        }));
        return Ok(());
    }
    let (grant, revoke) = match report.dry_run {
        true => ("would grant", "would revoke"),
        false => ("granted", "revoked"),
    };
    for line in lines(&report.granted) {
        println!("{grant} {line}");
    }
    for line in lines(&report.revoked) {
        println!("{revoke} {line}");
    }
    println!(
        "Lake Formation: {} {grant}, {} {revoke}, {} unchanged",
        report.granted.len(),
        report.revoked.len(),
        report.unchanged
    );
    Ok(())
}

#[cfg(not(feature = "glue"))]
async fn sync(_: &GrantsArgs) -> Outcome {
    Err(Failure::Usage(
        "this lake binary was built without the `glue` feature: build with --features aws,glue to sync grants to Lake Formation".into(),
    ))
}
