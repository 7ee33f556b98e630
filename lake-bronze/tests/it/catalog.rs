//! Bronze registers its table, schema versions and partitions in the catalog.

use std::sync::Arc;

use lake_bronze::BronzeWriter;
use lake_catalog::MemoryCatalog;
use lake_core::{
    CatalogRef, IngestStage, InputFormat, PartitionFilter, RawBatch, StorageExt, TableFormat,
};

use crate::support::{Lake, orders};

#[tokio::test]
async fn tables_schema_versions_and_partitions_are_registered() {
    let lake = Lake::new();
    let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
    let context = lake.context().with_catalog(Arc::clone(&catalog));
    let writer = BronzeWriter::new(orders()).unwrap();
    let batch = |id: &str, text: &str| {
        RawBatch::from_bytes(id, InputFormat::JsonLines, text.to_string()).unwrap()
    };
    writer
        .ingest(&context, batch("b1", "{\"order_id\":\"a\"}\n"))
        .await
        .unwrap();
    writer
        .ingest(
            &context,
            batch("b2", "{\"order_id\":\"b\",\"coupon\":\"X\"}\n"),
        )
        .await
        .unwrap();

    let definition = catalog.get_table(&orders()).await.unwrap();
    assert_eq!(definition.format, TableFormat::Delta);
    assert_eq!(definition.location, lake.location(&orders()));
    let keys: Vec<&str> = definition
        .partition_keys
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, vec!["year", "month", "day"]);
    assert!(definition.schema.field_with_name("coupon").is_ok());
    assert!(definition.schema.field_with_name("_raw").is_ok());

    let versions = catalog.schema_versions(&orders()).await.unwrap();
    assert_eq!(
        versions.len(),
        2,
        "the new column is a second schema version"
    );
    assert!(versions[0].schema.field_with_name("coupon").is_err());

    let partitions = catalog
        .list_partitions(&orders(), &PartitionFilter::all())
        .await
        .unwrap();
    assert_eq!(partitions.len(), 1);
    let today = chrono::Utc::now().format("%Y/%m/%d").to_string();
    let values: Vec<&str> = partitions[0].values.iter().map(|v| v.as_str()).collect();
    assert_eq!(values.join("/"), today);
    assert!(
        partitions[0].location.as_str().ends_with(&format!(
            "{}/",
            chrono::Utc::now().format("year=%Y/month=%m/day=%d")
        )),
        "{}",
        partitions[0].location
    );
}

#[tokio::test]
async fn a_redelivery_repairs_a_registration_that_failed() {
    let lake = Lake::new();
    let writer = BronzeWriter::new(orders()).unwrap();
    let batch = || {
        RawBatch::from_bytes(
            "b1",
            InputFormat::JsonLines,
            "{\"order_id\":\"a\"}\n{\"order_id\":\"b\"}\n",
        )
        .unwrap()
    };
    // Committed, but never registered (no catalog then, as after a crash).
    writer.ingest(&lake.context(), batch()).await.unwrap();

    let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
    let context = lake.context().with_catalog(Arc::clone(&catalog));
    let again = writer.ingest(&context, batch()).await.unwrap();
    assert!(again.already_ingested);
    let partitions = catalog
        .list_partitions(&orders(), &PartitionFilter::all())
        .await
        .unwrap();
    assert_eq!(partitions.len(), 1);
    let stats = partitions[0]
        .stats
        .clone()
        .expect("stats from the Delta log");
    assert_eq!((stats.row_count, stats.file_count), (2, 1));
    assert!(stats.size_bytes > 0);
    // Syncing again finds everything present.
    let outcome = writer.sync_catalog(&lake.storage, &catalog).await.unwrap();
    assert_eq!((outcome.added, outcome.already_present), (0, 1));
}

#[tokio::test]
async fn the_append_builder_commits_once_when_awaited_and_registers_with_a_catalog() {
    let lake = Lake::new();
    let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
    let writer = BronzeWriter::new(orders()).unwrap();
    let batch = || {
        RawBatch::from_bytes(
            "b1",
            InputFormat::JsonLines,
            "{\"order_id\":\"a\"}\nnot json\n",
        )
        .unwrap()
    };
    // Built and dropped: nothing runs.
    drop(writer.append(&lake.storage, batch()));
    assert!(catalog.get_table(&orders()).await.is_err());
    assert_eq!(
        lake.storage
            .open_table(&lake.location(&orders()))
            .await
            .unwrap()
            .version(),
        None
    );

    let report = writer
        .append(&lake.storage, batch())
        .with_catalog(Arc::clone(&catalog))
        .await
        .unwrap();
    assert_eq!((report.rows_written, report.dead_lettered), (1, 1));
    let version = report.table_version.expect("a commit");
    assert!(catalog.get_table(&orders()).await.is_ok());
    let again = writer.append(&lake.storage, batch()).await.unwrap();
    assert!(again.already_ingested, "{again:?}");
    let table = lake
        .storage
        .open_table(&lake.location(&orders()))
        .await
        .unwrap();
    assert_eq!(
        table.version(),
        Some(version),
        "the second append adds nothing"
    );
    assert_eq!(
        lake.scalar(&lake.location(&orders()), "SELECT count(*) FROM t")
            .await,
        "1"
    );
}
