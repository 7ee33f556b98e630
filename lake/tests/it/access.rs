//! Table access: grants in the file catalog of a real lake on disk, checked
//! by SQL sessions opened for a principal, by pipelines run as one, and by
//! the `lake` binary (`grant`, `revoke`, `grants`, `--principal`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lake::catalogs::FileCatalog;
use lake::config::PipelineConfig;
use lake::gold::{LakeSession, TimeTravel};
use lake::{
    CatalogRef, Grant, LakeError, NamespaceId, ObjectStorage, Principal, RawBatch, StorageRef,
    TableId, Zone,
};
use lake_testing::table_rows;

use crate::support::lake;

fn deliveries() -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("examples/data/orders"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn storage(dir: &Path) -> StorageRef {
    Arc::new(ObjectStorage::from_url(dir.to_str().unwrap()).unwrap())
}

fn catalog(storage: &StorageRef) -> CatalogRef {
    Arc::new(FileCatalog::new(storage).unwrap())
}

/// The reference pipeline on `dir`, run as `principal` when given.
async fn pipeline(dir: &Path, principal: Option<&Principal>) -> lake::Pipeline {
    let mut config = PipelineConfig::reference().unwrap();
    config.principal = principal.cloned();
    config.build(Some(dir.to_str().unwrap())).await.unwrap()
}

/// The reference lake built from the first two deliveries, as nobody.
async fn built_lake(dir: &Path) {
    let pipeline = pipeline(dir, None).await;
    for file in deliveries().iter().take(2) {
        pipeline
            .run_batch(RawBatch::from_file(file).unwrap())
            .await
            .unwrap();
    }
}

fn principal(name: &str) -> Principal {
    Principal::new(name).unwrap()
}

fn table(id: &str) -> TableId {
    id.parse().unwrap()
}

/// The principal, action and table of an access refusal, wherever it sits
/// in the error (a stage wraps it).
fn denied(error: &LakeError) -> (String, &'static str, String) {
    match error {
        LakeError::AccessDenied {
            principal,
            action,
            table,
        } => (principal.clone(), action, table.clone()),
        LakeError::Stage { source, .. } => denied(source),
        other => panic!("not an access refusal: {other}"),
    }
}

async fn count(session: &LakeSession, sql: &str) -> Result<i64, LakeError> {
    let batches = session.sql(sql).await?.collect().await.unwrap();
    let column = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<lake::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    Ok(column)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_for_a_principal_lists_and_reads_only_what_its_grants_allow() {
    let dir = tempfile::tempdir().unwrap();
    built_lake(dir.path()).await;
    let storage = storage(dir.path());
    let catalog = catalog(&storage);
    let analyst = principal("arn:aws:iam::123456789012:role/analyst");
    catalog
        .grant(&Grant::read(analyst.clone(), Zone::Gold))
        .await
        .unwrap();
    catalog
        .grant(&Grant::read(analyst.clone(), table("silver.sales.orders")))
        .await
        .unwrap();

    let session = LakeSession::for_principal(Arc::clone(&storage), &catalog, &analyst)
        .await
        .unwrap();
    // What the session lists (DataFusion's synchronous listings).
    let mut names = Vec::new();
    for zone in ["bronze", "silver", "gold"] {
        let provider = session.context().catalog(zone).unwrap();
        for schema in provider.schema_names() {
            for name in provider.schema(&schema).unwrap().table_names() {
                names.push(format!("{zone}.{schema}.{name}"));
            }
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["gold.analytics.daily_summary", "silver.sales.orders"],
        "neither bronze nor the event log are listed"
    );

    let everyone = LakeSession::over_catalog(Arc::clone(&storage), &catalog)
        .await
        .unwrap();
    let gold = "SELECT count(*) FROM gold.analytics.daily_summary";
    assert!(count(&session, gold).await.unwrap() > 0);
    assert_eq!(
        count(&session, gold).await.unwrap(),
        count(&everyone, gold).await.unwrap(),
        "a readable table reads whole"
    );
    let silver = "SELECT count(*) FROM silver.sales.orders";
    assert_eq!(
        count(&session, silver).await.unwrap(),
        count(&everyone, silver).await.unwrap()
    );

    for (sql, refused) in [
        (
            "SELECT count(*) FROM bronze.shop.orders",
            "bronze.shop.orders",
        ),
        (
            "SELECT count(*) FROM silver.sales.orders_changes",
            "silver.sales.orders_changes",
        ),
        // A join is refused whole, and a table that does not exist is
        // refused the same way: a session does not reveal what exists.
        (
            "SELECT count(*) FROM gold.analytics.daily_summary g JOIN bronze.shop.orders b ON true",
            "bronze.shop.orders",
        ),
        (
            "SELECT count(*) FROM bronze.shop.secret",
            "bronze.shop.secret",
        ),
    ] {
        let error = count(&session, sql).await.unwrap_err();
        assert_eq!(
            denied(&error),
            (analyst.to_string(), "read", refused.to_string()),
            "{sql}"
        );
        assert_eq!(
            error.to_string(),
            format!("{analyst} may not read {refused}: no grant allows it")
        );
    }
    let error = session
        .table_at(&table("bronze.shop.orders"), TimeTravel::Version(0))
        .await
        .unwrap_err();
    assert_eq!(denied(&error).2, "bronze.shop.orders");
    let error = session
        .register_at(
            "first",
            &table("bronze.shop.orders"),
            TimeTravel::Version(0),
        )
        .await
        .unwrap_err();
    assert_eq!(denied(&error).1, "read");
    // Time travel on a readable table works.
    session
        .table_at(&table("silver.sales.orders"), TimeTravel::Version(1))
        .await
        .unwrap();

    // A revocation applies to the sessions opened after it.
    catalog
        .revoke(&Grant::read(analyst.clone(), Zone::Gold))
        .await
        .unwrap();
    let after = LakeSession::for_principal(Arc::clone(&storage), &catalog, &analyst)
        .await
        .unwrap();
    assert_eq!(
        denied(&count(&after, gold).await.unwrap_err()).2,
        "gold.analytics.daily_summary"
    );
    assert!(
        count(&session, gold).await.is_ok(),
        "the earlier session keeps its snapshot"
    );
    let nobody = LakeSession::for_principal(storage, &catalog, &principal("nobody"))
        .await
        .unwrap();
    assert!(count(&nobody, silver).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_as_a_principal_checks_read_and_write_before_each_stage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(dir.path());
    let catalog = catalog(&storage);
    let service = principal("orders-pipeline");
    let files = deliveries();

    // No grant: the ingest stage refuses before writing anything.
    let run_as = pipeline(dir.path(), Some(&service)).await;
    let error = run_as
        .run_batch(RawBatch::from_file(&files[0]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        denied(&error),
        (
            service.to_string(),
            "write",
            "bronze.shop.orders".to_string()
        )
    );
    assert!(
        !dir.path().join("bronze/shop/orders/_delta_log").exists(),
        "nothing was written"
    );

    // Write on bronze only: bronze is ingested, silver's stage refuses
    // (it may not read bronze), and gold is not reached.
    catalog
        .grant(&Grant::write(
            service.clone(),
            NamespaceId::new(Zone::Bronze, "shop").unwrap(),
        ))
        .await
        .unwrap();
    let error = run_as
        .run_batch(RawBatch::from_file(&files[0]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        denied(&error),
        (
            service.to_string(),
            "read",
            "bronze.shop.orders".to_string()
        )
    );
    let layout = lake::Storage::layout(storage.as_ref());
    let bronze = layout.table_location(&table("bronze.shop.orders"));
    let ingested = table_rows(&storage, &bronze, "SELECT count(*) FROM t")
        .await
        .unwrap();
    assert_ne!(ingested, vec!["0".to_string()]);
    assert!(!dir.path().join("silver/sales/orders/_delta_log").exists());

    // Every grant the stages need: the rest of the run catches up, and the
    // tables equal those of the same deliveries run as nobody.
    for grant in [
        Grant::read(service.clone(), table("bronze.shop.orders")),
        Grant::write(service.clone(), Zone::Silver),
        Grant::read(service.clone(), Zone::Silver),
        Grant::write(service.clone(), Zone::Gold),
    ] {
        catalog.grant(&grant).await.unwrap();
    }
    run_as.run_pending().await.unwrap();
    for file in &files[1..] {
        run_as
            .run_batch(RawBatch::from_file(file).unwrap())
            .await
            .unwrap();
    }
    let reference = tempfile::tempdir().unwrap();
    let as_nobody = pipeline(reference.path(), None).await;
    for file in &files {
        as_nobody
            .run_batch(RawBatch::from_file(file).unwrap())
            .await
            .unwrap();
    }
    let reference_storage = self::storage(reference.path());
    for (id, sql) in [
        (
            "silver.sales.orders",
            "SELECT order_id, status, amount, valid_from, valid_to, is_current FROM t ORDER BY 1, 4",
        ),
        (
            "gold.analytics.daily_summary",
            "SELECT order_date, category, region, total_count, total_value, unique_users, \
             value_per_user FROM t ORDER BY 1, 2, 3",
        ),
    ] {
        let location = layout.table_location(&table(id));
        let ours = table_rows(&storage, &location, sql).await.unwrap();
        let theirs = table_rows(
            &reference_storage,
            &lake::Storage::layout(reference_storage.as_ref()).table_location(&table(id)),
            sql,
        )
        .await
        .unwrap();
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs, "{id}");
    }

    // Erasure changes every zone: without write on gold it changes nothing.
    catalog
        .revoke(&Grant::write(service.clone(), Zone::Gold))
        .await
        .unwrap();
    let before = table_rows(&storage, &bronze, "SELECT count(*) FROM t")
        .await
        .unwrap();
    let error = run_as
        .erase(lake::erasure::Subject::new("customer_id", ["C001"]).unwrap())
        .with_key(lake::pii::PiiKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        denied(&error),
        (
            service.to_string(),
            "write",
            "gold.analytics.daily_summary".to_string()
        )
    );
    assert_eq!(
        table_rows(&storage, &bronze, "SELECT count(*) FROM t")
            .await
            .unwrap(),
        before
    );
    let error = run_as.maintain().await.unwrap_err();
    assert_eq!(denied(&error).1, "write");

    // A principal needs a catalog to hold its grants.
    let mut config = PipelineConfig::reference().unwrap();
    config.catalog = lake::config::CatalogKind::None;
    config.principal = Some(service.clone());
    let error = config
        .build(Some(dir.path().to_str().unwrap()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("with_catalog"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_grants_revokes_lists_and_runs_as_a_principal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let lake_root = root.to_str().unwrap();
    let input = deliveries()[0].to_str().unwrap().to_string();

    let ran = lake(
        dir.path(),
        &[
            "run",
            "--lake",
            lake_root,
            "--principal",
            "nightly",
            "--input",
            &input,
        ],
    )
    .expect(1);
    ran.readable_error("nightly may not write bronze.shop.orders: no grant allows it");

    for (privilege, scope) in [
        ("write", "bronze"),
        ("read", "bronze.shop.orders"),
        ("write", "silver"),
        ("read", "silver"),
        ("write", "gold"),
    ] {
        let ran = lake(
            dir.path(),
            &["grant", privilege, scope, "nightly", "--lake", lake_root],
        )
        .expect(0);
        assert_eq!(
            ran.stdout,
            format!("granted {privilege} on {scope} to nightly\n")
        );
    }
    let again = lake(
        dir.path(),
        &["grant", "write", "gold", "nightly", "--lake", lake_root],
    )
    .expect(0);
    assert!(
        again.stdout.contains("was granted already"),
        "{}",
        again.stdout
    );
    lake(
        dir.path(),
        &[
            "grant",
            "read",
            "gold.analytics",
            "analyst",
            "--lake",
            lake_root,
        ],
    )
    .expect(0);
    lake(
        dir.path(),
        &[
            "run",
            "--lake",
            lake_root,
            "--principal",
            "nightly",
            "--input",
            &input,
        ],
    )
    .expect(0);

    let listed = lake(dir.path(), &["grants", "--lake", lake_root, "--json"])
        .expect(0)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 6, "{listed}");
    let of_analyst = lake(
        dir.path(),
        &["grants", "--of", "analyst", "--lake", lake_root, "--json"],
    )
    .expect(0)
    .json();
    assert_eq!(
        of_analyst,
        serde_json::json!([{"principal": "analyst", "privilege": "read", "scope": "gold.analytics"}])
    );

    let gold = "SELECT count(*) AS n FROM gold.analytics.daily_summary";
    let rows = lake(
        dir.path(),
        &[
            "sql",
            "--lake",
            lake_root,
            "--principal",
            "analyst",
            "--json",
            gold,
        ],
    )
    .expect(0)
    .json();
    assert!(rows[0]["n"].as_i64().unwrap() > 0, "{rows}");
    let refused = lake(
        dir.path(),
        &[
            "sql",
            "--lake",
            lake_root,
            "--principal",
            "analyst",
            "SELECT count(*) FROM silver.sales.orders",
        ],
    );
    assert_ne!(refused.code, 0);
    refused.readable_error("analyst may not read silver.sales.orders: no grant allows it");
    // LAKE_PRINCIPAL is the same as --principal.
    let by_env = crate::support::lake_with_env(
        dir.path(),
        &[("LAKE_PRINCIPAL".to_string(), "analyst".to_string())],
        &[
            "sql",
            "--lake",
            lake_root,
            "SELECT count(*) FROM silver.sales.orders",
        ],
    );
    by_env.readable_error("analyst may not read silver.sales.orders");

    let ran = lake(
        dir.path(),
        &[
            "revoke",
            "read",
            "gold.analytics",
            "analyst",
            "--lake",
            lake_root,
        ],
    )
    .expect(0);
    assert_eq!(ran.stdout, "revoked read on gold.analytics to analyst\n");
    let ran = lake(
        dir.path(),
        &[
            "revoke",
            "read",
            "gold.analytics",
            "analyst",
            "--lake",
            lake_root,
        ],
    )
    .expect(0);
    assert!(ran.stdout.contains("nothing to revoke"), "{}", ran.stdout);
    lake(
        dir.path(),
        &["sql", "--lake", lake_root, "--principal", "analyst", gold],
    )
    .readable_error("analyst may not read gold.analytics.daily_summary");

    // Bad input is a usage error naming what is wrong.
    lake(
        dir.path(),
        &["grant", "read", "platinum", "x", "--lake", lake_root],
    )
    .expect(2)
    .readable_error("platinum");
    lake(
        dir.path(),
        &["grant", "own", "silver", "x", "--lake", lake_root],
    )
    .expect(2);
    #[cfg(not(feature = "glue"))]
    lake(
        dir.path(),
        &["grants", "--sync-lake-formation", "--lake", lake_root],
    )
    .expect(2)
    .readable_error("glue");
    #[cfg(feature = "glue")]
    lake(
        dir.path(),
        &["grants", "--sync-lake-formation", "--lake", lake_root],
    )
    .expect(2)
    .readable_error("catalog = \"glue\"");
}
