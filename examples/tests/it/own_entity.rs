//! `own_entity`: a non-orders entity from Parquet through bronze, a silver
//! spec and a gold spec, checked against the tables its deliveries mean.

use std::sync::Arc;

use lake::{ObjectStorage, StorageRef, TableId};
use lake_examples::own_entity::{bronze, gold, run, silver};
use lake_testing::table_rows;

async fn rows(storage: &StorageRef, table: &TableId, sql: &str) -> Vec<String> {
    let location = storage.layout().table_location(table);
    table_rows(storage, &location, sql).await.unwrap()
}

#[tokio::test]
async fn shipments_land_versioned_and_aggregated_as_their_deliveries_say() {
    let dir = tempfile::tempdir().unwrap();
    let reports = run(dir.path()).await.unwrap();
    for report in &reports {
        report.reconcile().unwrap();
    }
    let totals: Vec<_> = reports.iter().map(|r| r.totals()).collect();
    assert_eq!((totals[0].bronze_rows, totals[1].bronze_rows), (3, 4));
    // "A-17" is no tracking number: quarantined, not dropped.
    assert_eq!(totals[1].quarantined, 1);
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
    assert_eq!(
        rows(&storage, &bronze().unwrap(), "SELECT count(*) FROM t").await,
        ["7"]
    );
    assert_eq!(
        rows(
            &storage,
            &silver().unwrap(),
            "SELECT carrier, tracking_no, status, weight_kg, valid_from, valid_to, is_current FROM t \
             ORDER BY carrier, tracking_no, valid_from"
        )
        .await,
        [
            // The late event (08:30, before the create seen first) opens
            // the first version, which the create at 09:00 ends.
            "DHL|1001|packed|2.3|2025-11-03T08:30:00Z|2025-11-03T09:00:00Z|false",
            "DHL|1001|packed|2.25|2025-11-03T09:00:00Z||true",
            "UPS|1001|packed|1.5|2025-11-03T08:00:00Z|2025-11-04T10:00:00Z|false",
            "UPS|1001|shipped|1.5|2025-11-04T10:00:00Z||true",
            "UPS|1002|packed|0.8|2025-11-03T08:05:00Z|2025-11-04T11:00:00Z|false",
        ]
    );
    assert_eq!(
        rows(
            &storage,
            &gold().unwrap(),
            "SELECT shipped_on, carrier, shipments, weight_kg FROM t ORDER BY shipped_on, carrier"
        )
        .await,
        ["2025-11-03|DHL|1|2.25", "2025-11-03|UPS|1|1.5"]
    );
}
