//! SQL across zones through the catalog: pruning, time travel, registration.

use std::sync::Arc;

use lake_catalog::MemoryCatalog;
use lake_core::arrow::util::pretty::pretty_format_batches;
use lake_core::{AggregateStage, CatalogRef};
use lake_gold::{LakeSession, TimeTravel};

use crate::support::{Lake, event, gold, silver};

fn at(minute: u32) -> String {
    format!("2025-12-01T10:{minute:02}:00Z")
}

fn text(batches: &[lake_core::arrow::array::RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

#[tokio::test]
async fn sql_over_the_catalog_prunes_partitions_and_travels_in_time() {
    let lake = Lake::new();
    let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
    let context = lake.context().with_catalog(Arc::clone(&catalog));
    let lines: Vec<String> = (1..=4)
        .map(|day| {
            event(
                &format!("o{day}"),
                Some("c1"),
                "books",
                Some("10"),
                &format!("2025-11-0{day}"),
                "c",
                &at(day),
            )
        })
        .collect();
    lake.land("b1", &lines).await;
    lake_silver::OrdersSilver::new(crate::support::bronze(), silver())
        .unwrap()
        .register(&lake.storage, &catalog)
        .await
        .unwrap();
    let first = lake.gold.aggregate(&context).await.unwrap();
    let first_version = first.table_version.unwrap();

    let definition = catalog.get_table(&gold()).await.unwrap();
    assert_eq!(definition.partition_keys[0].as_str(), "order_date");
    assert_eq!(definition.properties["table_type"], "DELTA");
    assert_eq!(definition.properties["spark.sql.sources.provider"], "delta");

    let session = LakeSession::from_catalog(Arc::clone(&lake.storage), &catalog)
        .await
        .unwrap();
    // The whole table: one file per date partition.
    let all = session
        .sql("SELECT order_date, total_count FROM gold.analytics.daily_summary")
        .await
        .unwrap();
    let (batches, scanned) = session.collect_with_metrics(all).await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    assert_eq!(scanned.files, 4);
    // A filter on the partition column reads only the matching partitions.
    let recent = session
        .sql(
            "SELECT order_date, total_count, total_value FROM gold.analytics.daily_summary \
             WHERE order_date >= '2025-11-03' ORDER BY order_date",
        )
        .await
        .unwrap();
    let (batches, scanned) = session.collect_with_metrics(recent).await.unwrap();
    assert_eq!(scanned.files, 2, "two of four partitions");
    assert_eq!(
        text(&batches),
        "+------------+-------------+-------------+\n\
         | order_date | total_count | total_value |\n\
         +------------+-------------+-------------+\n\
         | 2025-11-03 | 1           | 10.0        |\n\
         | 2025-11-04 | 1           | 10.0        |\n\
         +------------+-------------+-------------+"
    );
    // Silver is in the same session, under its own zone.
    let joined = session
        .sql(
            "SELECT count(*) AS n FROM silver.sales.orders s \
             JOIN gold.analytics.daily_summary g ON s.order_date = g.order_date \
             WHERE s.is_current",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(text(&joined).contains("| 4 |"), "{}", text(&joined));

    // A second batch changes 11-04; the old version is still readable.
    let before_second = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    lake.land(
        "b2",
        &[event(
            "o4",
            Some("c1"),
            "books",
            Some("99"),
            "2025-11-04",
            "u",
            &at(30),
        )],
    )
    .await;
    lake.gold.aggregate(&context).await.unwrap();
    let value_on_11_04 = |version: TimeTravel| {
        let session = &session;
        async move {
            let frame = session.table_at(&gold(), version).await.unwrap();
            let batches = frame
                .filter(lake_core::datafusion::prelude::col("order_date").eq(
                    lake_core::datafusion::prelude::lit(
                        lake_core::datafusion::common::ScalarValue::Date32(Some(20_396)),
                    ),
                ))
                .unwrap()
                .select_columns(&["total_value"])
                .unwrap()
                .collect()
                .await
                .unwrap();
            text(&batches)
        }
    };
    assert!(value_on_11_04(TimeTravel::Latest).await.contains("99.0"));
    assert!(
        value_on_11_04(TimeTravel::Version(first_version))
            .await
            .contains("10.0")
    );
    assert!(
        value_on_11_04(TimeTravel::Timestamp(before_second))
            .await
            .contains("10.0")
    );
    // The session loaded the catalog before the second batch: `register`
    // moves it to the latest version.
    session.register(&gold()).await.unwrap();
    let latest = session
        .sql("SELECT max(total_value) AS m FROM gold.analytics.daily_summary")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(text(&latest).contains("99.0"), "{}", text(&latest));
    // Time travel registered under a plain name, for SQL.
    session
        .register_at("summary_v1", &gold(), TimeTravel::Version(first_version))
        .await
        .unwrap();
    let old = session
        .sql("SELECT max(total_value) AS m FROM summary_v1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(text(&old).contains("| 10.0 |"), "{}", text(&old));
}

/// The catalog provider reads the catalog when a query is planned: a table
/// registered after the session was made is found, and a new version is
/// read without rebuilding the session.
#[tokio::test]
async fn a_session_over_the_catalog_sees_tables_and_versions_as_they_are_now() {
    let lake = Lake::new();
    let catalog: CatalogRef = Arc::new(MemoryCatalog::new());
    let context = lake.context().with_catalog(Arc::clone(&catalog));
    let session = LakeSession::over_catalog(Arc::clone(&lake.storage), &catalog)
        .await
        .unwrap();
    let total = "SELECT sum(total_value) AS v FROM gold.analytics.daily_summary";
    let err = session.sql(total).await.unwrap_err().to_string();
    assert!(err.contains("daily_summary"), "no table yet: {err}");

    let order = |amount: &str, minute| {
        event(
            "o1",
            Some("c1"),
            "books",
            Some(amount),
            "2025-11-01",
            "c",
            &at(minute),
        )
    };
    lake.land("b1", &[order("10", 1)]).await;
    lake.gold.aggregate(&context).await.unwrap();
    let read = |sql: &'static str| {
        let session = &session;
        async move { text(&session.sql(sql).await.unwrap().collect().await.unwrap()) }
    };
    assert!(
        read(total).await.contains("| 10.0 |"),
        "{}",
        read(total).await
    );

    lake.land("b2", &[order("25", 2)]).await;
    lake.gold.aggregate(&context).await.unwrap();
    assert!(
        read(total).await.contains("| 25.0 |"),
        "{}",
        read(total).await
    );
    // A hostile name is no table, and reaches no path.
    assert!(
        session
            .sql("SELECT * FROM gold.analytics.\"../silver\"")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_session_is_read_only_unless_asked() {
    let lake = Lake::new();
    let session = LakeSession::new(Arc::clone(&lake.storage));
    for statement in [
        "CREATE TABLE x AS SELECT 1 AS one",
        "DROP TABLE IF EXISTS gold.analytics.daily_summary",
        "COPY (SELECT 1 AS one) TO '/tmp/lake-copy-refused.csv'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let refused = session.sql(statement).await;
        assert!(refused.is_err(), "{statement} was allowed");
    }
    let one = session.sql("SELECT 1 AS one").await.unwrap();
    assert_eq!(one.collect().await.unwrap()[0].num_rows(), 1);
    let allowed = lake_core::datafusion::execution::context::SQLOptions::new();
    session
        .sql_with_options("CREATE TABLE x AS SELECT 1 AS one", allowed)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
}
