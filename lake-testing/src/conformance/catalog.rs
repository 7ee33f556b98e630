//! The catalog conformance suite: what every [`Catalog`] implementation
//! must do, as public test bodies a third-party catalog runs too.
//!
//! Each function takes a fresh, empty catalog and panics on a violation.
//! [`run_all`] runs every one, each on a catalog of its own:
//! ```no_run
//! # fn my_catalog() -> lake_core::CatalogRef { unimplemented!() }
//! # async fn demo() {
//! // In a test of your crate, with lake-testing's `conformance` feature:
//! lake_testing::conformance::catalog::run_all(|| async { my_catalog() }).await;
//! # }
//! ```
//!
//! [`Catalog`]: lake_core::Catalog

use std::future::Future;
use std::sync::Arc;

use lake_core::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lake_core::{
    CatalogExt, CatalogRef, Grant, Ident, LakeError, NamespaceId, Partition, PartitionFilter,
    PartitionOp, PartitionStats, PartitionValue, Principal, Privilege, Properties,
    SchemaCompatibility, TableDefinition, TableId, TableUpdate, Zone,
};
use url::Url;

/// Runs every test of the suite, each on a catalog `fresh` makes.
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CatalogRef>,
{
    namespaces(fresh().await).await;
    tables(fresh().await).await;
    schema_versions(fresh().await).await;
    compatibility_modes(fresh().await).await;
    partitions(fresh().await).await;
    many_partitions(fresh().await).await;
    concurrent_writers(fresh().await).await;
    grants(fresh().await).await;
}

fn schema(fields: &[(&str, DataType, bool)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
            .collect::<Vec<_>>(),
    ))
}

fn orders() -> TableId {
    TableId::silver("sales", "orders").unwrap()
}

fn definition(id: &TableId, keys: &[&str]) -> TableDefinition {
    TableDefinition::delta(
        id.clone(),
        Url::parse(&format!(
            "memory:///lake/{}/{}/{}/",
            id.zone, id.namespace, id.name
        ))
        .unwrap(),
        schema_with_keys(
            &[
                ("order_id", DataType::Utf8, false),
                ("amount", DataType::Float64, true),
            ],
            keys,
        ),
        keys.iter().map(|k| Ident::new(*k).unwrap()).collect(),
    )
}

/// The fields, then one string column per partition key.
fn schema_with_keys(fields: &[(&str, DataType, bool)], keys: &[&str]) -> SchemaRef {
    let mut fields = fields.to_vec();
    fields.extend(keys.iter().map(|k| (*k, DataType::Utf8, false)));
    schema(&fields)
}

fn partition(table: &TableDefinition, values: &[&str]) -> Partition {
    let values: Vec<PartitionValue> = values
        .iter()
        .map(|v| PartitionValue::new(*v).unwrap())
        .collect();
    let path: Vec<String> = table
        .partition_keys
        .iter()
        .zip(&values)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Partition::new(
        values,
        table
            .location
            .join(&format!("{}/", path.join("/")))
            .unwrap(),
    )
    .with_stats(Some(PartitionStats::new(10, 1, 100)))
}

/// Conformance: namespaces.
pub async fn namespaces(catalog: CatalogRef) {
    let sales = NamespaceId::new(Zone::Silver, "sales").unwrap();
    let shop = NamespaceId::new(Zone::Bronze, "shop").unwrap();
    catalog
        .create_namespace(&sales, Properties::new())
        .await
        .unwrap();
    catalog
        .create_namespace(&shop, Properties::new())
        .await
        .unwrap();
    assert!(matches!(
        catalog.create_namespace(&sales, Properties::new()).await,
        Err(LakeError::AlreadyExists { .. })
    ));
    assert_eq!(catalog.list_namespaces(None).await.unwrap().len(), 2);
    assert_eq!(
        catalog.list_namespaces(Some(Zone::Bronze)).await.unwrap(),
        vec![shop.clone()]
    );
    catalog
        .create_table(definition(&orders(), &[]))
        .await
        .unwrap();
    assert!(
        catalog.drop_namespace(&sales).await.is_err(),
        "a namespace with tables stays"
    );
    catalog.drop_namespace(&shop).await.unwrap();
    assert!(catalog.drop_namespace(&shop).await.is_err());
    assert_eq!(catalog.list_namespaces(None).await.unwrap(), vec![sales]);
}

/// Conformance: tables.
pub async fn tables(catalog: CatalogRef) {
    let mut keyless = definition(&orders(), &["day"]);
    keyless.schema = schema(&[("order_id", DataType::Utf8, false)]);
    let err = catalog.create_table(keyless).await.unwrap_err();
    assert!(
        matches!(err, LakeError::Schema { .. }) && err.to_string().contains("`day`"),
        "a partition key must be a column: {err}"
    );
    let created = catalog
        .create_table(definition(&orders(), &["day"]))
        .await
        .unwrap();
    assert_eq!(created.schema_version, 1);
    assert_eq!(catalog.get_table(&orders()).await.unwrap(), created);
    assert!(matches!(
        catalog.create_table(definition(&orders(), &["day"])).await,
        Err(LakeError::AlreadyExists { .. })
    ));
    // Creating a table creates its namespace.
    let namespace = orders().namespace_id();
    assert_eq!(
        catalog.list_tables(&namespace).await.unwrap(),
        vec![orders()]
    );
    let other = TableId::silver("sales", "orders_changes").unwrap();
    catalog.create_table(definition(&other, &[])).await.unwrap();
    assert_eq!(catalog.list_tables(&namespace).await.unwrap().len(), 2);
    assert!(catalog.table_exists(&other).await.unwrap());

    let table = catalog.get_table(&orders()).await.unwrap();
    catalog
        .add_partitions(&orders(), vec![partition(&table, &["01"])])
        .await
        .unwrap();
    catalog.drop_table(&orders()).await.unwrap();
    assert!(matches!(
        catalog.get_table(&orders()).await,
        Err(LakeError::NotFound { .. })
    ));
    assert!(matches!(
        catalog.drop_table(&orders()).await,
        Err(LakeError::NotFound { .. })
    ));
    assert_eq!(catalog.list_tables(&namespace).await.unwrap(), vec![other]);
    // A re-created table starts afresh.
    catalog
        .create_table(definition(&orders(), &["day"]))
        .await
        .unwrap();
    assert_eq!(catalog.schema_versions(&orders()).await.unwrap().len(), 1);
    assert!(
        catalog
            .list_partitions(&orders(), &PartitionFilter::all())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Conformance: schema versions.
pub async fn schema_versions(catalog: CatalogRef) {
    catalog
        .create_table(definition(&orders(), &[]))
        .await
        .unwrap();
    let mut properties = Properties::new();
    properties.insert("owner".into(), "sales".into());
    let updated = catalog
        .update_table(&orders(), TableUpdate::properties(properties))
        .await
        .unwrap();
    assert_eq!(updated.properties["owner"], "sales");
    assert_eq!(
        updated.schema_version, 1,
        "properties are not a schema change"
    );

    let added = schema(&[
        ("order_id", DataType::Utf8, false),
        ("amount", DataType::Float64, true),
        ("coupon", DataType::Utf8, true),
    ]);
    let v2 = catalog
        .update_table(&orders(), TableUpdate::schema(added.clone()))
        .await
        .unwrap();
    assert_eq!(v2.schema_version, 2);
    // The same schema again is not a new version.
    let same = catalog
        .update_table(&orders(), TableUpdate::schema(added))
        .await
        .unwrap();
    assert_eq!(same.schema_version, 2);

    let dropped = schema(&[
        ("order_id", DataType::Utf8, false),
        ("coupon", DataType::Utf8, true),
    ]);
    let err = catalog
        .update_table(&orders(), TableUpdate::schema(dropped.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::Schema { .. }), "{err:?}");
    assert!(err.to_string().contains("`amount`"), "{err}");
    let narrowed = schema(&[
        ("order_id", DataType::Utf8, false),
        ("amount", DataType::Float32, true),
        ("coupon", DataType::Utf8, true),
    ]);
    assert!(
        catalog
            .update_table(&orders(), TableUpdate::schema(narrowed))
            .await
            .is_err()
    );

    let v3 = catalog
        .update_table(
            &orders(),
            TableUpdate::schema(dropped).with_compatibility(SchemaCompatibility::None),
        )
        .await
        .unwrap();
    assert_eq!(v3.schema_version, 3);
    let versions = catalog.schema_versions(&orders()).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        catalog.get_table(&orders()).await.unwrap().properties["owner"],
        "sales"
    );
}

/// FORWARD and FULL, as the Glue Schema Registry defines them.
/// Conformance: compatibility modes.
pub async fn compatibility_modes(catalog: CatalogRef) {
    catalog
        .create_table(definition(&orders(), &[]))
        .await
        .unwrap();
    let forward = TableUpdate::default().with_compatibility(SchemaCompatibility::Forward);
    let table = catalog.update_table(&orders(), forward).await.unwrap();
    assert_eq!(table.compatibility, SchemaCompatibility::Forward);
    assert_eq!(
        catalog.get_table(&orders()).await.unwrap().compatibility,
        SchemaCompatibility::Forward,
        "the mode is kept"
    );
    // Old readers still read new data without a nullable column...
    let without_amount = schema(&[("order_id", DataType::Utf8, false)]);
    let v2 = catalog
        .update_table(&orders(), TableUpdate::schema(without_amount))
        .await
        .unwrap();
    assert_eq!(v2.schema_version, 2);
    // ... but not without a required one.
    let err = catalog
        .update_table(
            &orders(),
            TableUpdate::schema(schema(&[("note", DataType::Utf8, true)])),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`order_id`"), "{err}");

    let full = TableUpdate::schema(schema(&[
        ("order_id", DataType::Utf8, false),
        ("coupon", DataType::Utf8, true),
    ]))
    .with_compatibility(SchemaCompatibility::Full);
    let v3 = catalog.update_table(&orders(), full).await.unwrap();
    assert_eq!(
        (v3.schema_version, v3.compatibility),
        (3, SchemaCompatibility::Full)
    );
    let err = catalog
        .update_table(
            &orders(),
            TableUpdate::schema(schema(&[("order_id", DataType::Utf8, false)])),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LakeError::Schema { .. }) && err.to_string().contains("`coupon`"),
        "FULL refuses a drop: {err}"
    );
    assert_eq!(catalog.schema_versions(&orders()).await.unwrap().len(), 3);
}

/// Conformance: partitions.
pub async fn partitions(catalog: CatalogRef) {
    let table = catalog
        .create_table(definition(&orders(), &["region", "day"]))
        .await
        .unwrap();
    let first = catalog
        .add_partitions(
            &orders(),
            vec![
                partition(&table, &["eu", "01"]),
                partition(&table, &["eu", "02"]),
            ],
        )
        .await
        .unwrap();
    assert_eq!((first.added, first.already_present), (2, 0));
    let again = catalog
        .add_partitions(
            &orders(),
            vec![
                partition(&table, &["eu", "02"]),
                partition(&table, &["us", "01"]),
            ],
        )
        .await
        .unwrap();
    assert_eq!((again.added, again.already_present), (1, 1));
    assert!(
        catalog
            .add_partitions(
                &orders(),
                vec![partition(&definition(&orders(), &["day"]), &["01"])]
            )
            .await
            .is_err()
    );

    let all = catalog
        .list_partitions(&orders(), &PartitionFilter::all())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[0],
        partition(&table, &["eu", "01"]),
        "partitions come back whole"
    );
    let key = |k: &str| Ident::new(k).unwrap();
    let value = |v: &str| PartitionValue::new(v).unwrap();
    let eu = PartitionFilter::all().and(key("region"), PartitionOp::Eq, value("eu"));
    assert_eq!(
        catalog.list_partitions(&orders(), &eu).await.unwrap().len(),
        2
    );
    let later = eu.clone().and(key("day"), PartitionOp::Gt, value("01"));
    let later = catalog.list_partitions(&orders(), &later).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].values[1].as_str(), "02");
    let bad = PartitionFilter::all().and(key("month"), PartitionOp::Eq, value("1"));
    assert!(catalog.list_partitions(&orders(), &bad).await.is_err());

    catalog
        .drop_partitions(
            &orders(),
            &[
                vec![value("eu"), value("01")],
                vec![value("xx"), value("99")],
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        catalog
            .list_partitions(&orders(), &PartitionFilter::all())
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Conformance: many partitions.
pub async fn many_partitions(catalog: CatalogRef) {
    let table = catalog
        .create_table(definition(&orders(), &["day"]))
        .await
        .unwrap();
    let days: Vec<String> = (0..1_200).map(|d| format!("{d:05}")).collect();
    let batch: Vec<Partition> = days.iter().map(|d| partition(&table, &[d])).collect();
    let added = catalog.add_partitions(&orders(), batch).await.unwrap();
    assert_eq!(added.added, 1_200);
    let all = catalog
        .list_partitions(&orders(), &PartitionFilter::all())
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        1_200,
        "listings are complete beyond 100 and 1,000"
    );
    let filter = PartitionFilter::all().and(
        Ident::new("day").unwrap(),
        PartitionOp::GtEq,
        PartitionValue::new("01100").unwrap(),
    );
    assert_eq!(
        catalog
            .list_partitions(&orders(), &filter)
            .await
            .unwrap()
            .len(),
        100
    );
}

/// Conformance: concurrent writers.
pub async fn concurrent_writers(catalog: CatalogRef) {
    let table = catalog
        .create_table(definition(&orders(), &["day"]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..8u32 {
        let catalog = Arc::clone(&catalog);
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            // Every task adds the shared days 0..5 and five days of its own.
            let mut days: Vec<String> = (0..5).map(|d| format!("shared{d}")).collect();
            days.extend((0..5).map(|d| format!("t{task}d{d}")));
            let batch = days.iter().map(|d| partition(&table, &[d])).collect();
            let added = catalog.add_partitions(&orders(), batch).await.unwrap();
            let mut properties = Properties::new();
            properties.insert(format!("writer{task}"), "yes".into());
            catalog
                .update_table(&orders(), TableUpdate::properties(properties))
                .await
                .unwrap();
            added
        }));
    }
    let mut added = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        assert_eq!(outcome.added + outcome.already_present, 10);
        added += outcome.added;
    }
    assert_eq!(
        added,
        5 + 8 * 5,
        "each shared partition was added exactly once"
    );
    let all = catalog
        .list_partitions(&orders(), &PartitionFilter::all())
        .await
        .unwrap();
    assert_eq!(all.len(), 45);
    let properties = catalog.get_table(&orders()).await.unwrap().properties;
    let writers = properties
        .keys()
        .filter(|k| k.starts_with("writer"))
        .count();
    assert_eq!(writers, 8, "no update was lost: {properties:?}");
}

/// Conformance: grants are recorded once, listed sorted, revoked, and
/// concurrent grants lose nothing.
pub async fn grants(catalog: CatalogRef) {
    let analyst = Principal::new("arn:aws:iam::123456789012:role/analyst").unwrap();
    let service = Principal::new("ingest-service").unwrap();
    assert!(catalog.list_grants(None).await.unwrap().is_empty());
    let read_silver = Grant::read(analyst.clone(), Zone::Silver);
    // A table that does not exist (yet) can be granted.
    let write_daily = Grant::write(
        analyst.clone(),
        TableId::gold("analytics", "daily").unwrap(),
    );
    let write_shop = Grant::write(
        service.clone(),
        NamespaceId::new(Zone::Bronze, "shop").unwrap(),
    );
    assert!(catalog.grant(&read_silver).await.unwrap(), "a new grant");
    assert!(!catalog.grant(&read_silver).await.unwrap(), "held already");
    assert!(catalog.grant(&write_daily).await.unwrap());
    assert!(catalog.grant(&write_shop).await.unwrap());
    let mut all = vec![read_silver.clone(), write_daily.clone(), write_shop.clone()];
    all.sort();
    assert_eq!(catalog.list_grants(None).await.unwrap(), all);
    let mut of_analyst = vec![read_silver.clone(), write_daily.clone()];
    of_analyst.sort();
    assert_eq!(
        catalog.list_grants(Some(&analyst)).await.unwrap(),
        of_analyst
    );

    let access = catalog.access(&analyst).await.unwrap();
    assert!(access.allows(Privilege::Read, &orders()));
    assert!(!access.allows(Privilege::Write, &orders()));
    assert!(!access.allows(
        Privilege::Write,
        &TableId::bronze("shop", "orders").unwrap()
    ));
    assert!(matches!(
        access.check(Privilege::Write, &orders()),
        Err(LakeError::AccessDenied { .. })
    ));

    assert!(catalog.revoke(&read_silver).await.unwrap(), "it was held");
    assert!(
        !catalog.revoke(&read_silver).await.unwrap(),
        "no longer held"
    );
    assert_eq!(
        catalog.list_grants(Some(&analyst)).await.unwrap(),
        vec![write_daily.clone()]
    );
    let access = catalog.access(&analyst).await.unwrap();
    assert!(!access.allows(Privilege::Read, &orders()), "revoked");

    // Eight tasks grant a shared grant and one of their own at once.
    let shared = Grant::read(service.clone(), Zone::Gold);
    let mut tasks = Vec::new();
    for task in 0..8u32 {
        let catalog = Arc::clone(&catalog);
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = Grant::read(
                Principal::new(format!("reader-{task}")).unwrap(),
                TableId::silver("sales", &format!("t{task}")).unwrap(),
            );
            let own_new = catalog.grant(&own).await.unwrap();
            let shared_new = catalog.grant(&shared).await.unwrap();
            (own_new, shared_new)
        }));
    }
    let mut shared_new = 0;
    for task in tasks {
        let (own, shared) = task.await.unwrap();
        assert!(own, "each task's own grant was new");
        shared_new += usize::from(shared);
    }
    assert_eq!(shared_new, 1, "the shared grant was new exactly once");
    let listed = catalog.list_grants(None).await.unwrap();
    assert_eq!(listed.len(), 2 + 1 + 8, "{listed:?}");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "listed in order");
}
