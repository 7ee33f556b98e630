//! Every metric function over a source that is not silver's orders: a
//! table partitioned by the gold partition column, whose commits say what
//! they touched through their partition values.

use std::collections::BTreeSet;
use std::sync::Arc;

use lake_core::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
};
use lake_core::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lake_core::deltalake::protocol::SaveMode;
use lake_core::{ObjectStorage, StorageExt, StorageRef, TableId};
use lake_gold::{AggregationSpec, Function, GoldAggregation, RefreshScope};

fn visits() -> TableId {
    TableId::silver("web", "visits").unwrap()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("user", DataType::Utf8, true),
        Field::new("ms", DataType::Float64, true),
        Field::new("is_current", DataType::Boolean, false),
    ]))
}

/// `rows` visits on `day` (days since the epoch), `users` distinct users.
fn batch(day: i32, rows: usize, users: usize) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![day; rows])),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| ["home", "cart"][i % 2]),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("u{}", i * 7_919 % users)),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| (i % 200) as f64),
        )),
        Arc::new(BooleanArray::from(vec![true; rows])),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

async fn append(storage: &StorageRef, batch: RecordBatch) {
    let location = storage.layout().table_location(&visits());
    let table = storage
        .ensure_table(&location, &schema(), &["day"])
        .await
        .unwrap();
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_partition_columns(["day"])
        .await
        .unwrap();
}

fn spec(name: &str) -> AggregationSpec {
    let column = |c: &str| lake_core::Ident::new(c).unwrap();
    AggregationSpec::new(
        TableId::gold("web", name).unwrap(),
        visits(),
        &["day", "page"],
        "day",
    )
    .unwrap()
    .metric("visits", Function::Count)
    .unwrap()
    .metric(
        "users",
        Function::CountDistinct {
            column: column("user"),
        },
    )
    .unwrap()
    .metric(
        "approx_users",
        Function::ApproxCountDistinct {
            column: column("user"),
        },
    )
    .unwrap()
    .metric(
        "timed",
        Function::CountNonNull {
            column: column("ms"),
        },
    )
    .unwrap()
    .metric(
        "total_ms",
        Function::Sum {
            column: column("ms"),
        },
    )
    .unwrap()
    .metric(
        "sd_pop",
        Function::StddevPop {
            column: column("ms"),
        },
    )
    .unwrap()
    .metric(
        "p50",
        Function::ApproxPercentile {
            column: column("ms"),
            percentile: 0.5,
        },
    )
    .unwrap()
    .metric(
        "slow",
        Function::Sql {
            expr: "count(*) FILTER (WHERE ms >= 100)".to_string(),
        },
    )
    .unwrap()
    .derived("ms_per_user", "total_ms / users")
    .unwrap()
    .derived("slow_share", "slow / (visits - visits)")
    .unwrap()
}

async fn rows(storage: &StorageRef, table: &TableId) -> Vec<String> {
    let location = storage.layout().table_location(table);
    lake_testing::table_rows(
        storage,
        &location,
        "SELECT day, page, visits, users, approx_users, timed, total_ms, sd_pop, p50, slow, \
         ms_per_user, slow_share FROM t ORDER BY day, page",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn every_metric_and_a_partitioned_source_refreshed_by_its_partition_values() {
    let dir = tempfile::tempdir().unwrap();
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
    for day in 0..3 {
        append(
            &storage,
            batch(20_000 + day, 40_000, 10_000 + 5_000 * day as usize),
        )
        .await;
    }
    let gold = GoldAggregation::new(spec("visits_daily")).unwrap();
    let first = gold.refresh(&storage).await.unwrap();
    assert!(matches!(first.scope, RefreshScope::Full { .. }));
    assert_eq!(first.report.partitions_refreshed, 3);

    for row in rows(&storage, &gold.spec().target).await {
        let cells: Vec<&str> = row.split('|').collect();
        let number = |i: usize| cells[i].parse::<f64>().unwrap();
        let (visits, users, approx) = (number(2), number(3), number(4));
        assert_eq!(visits, 20_000.0, "{row}");
        assert!(
            (approx - users).abs() <= 0.02 * users,
            "approximate distinct count within 2 %: {row}"
        );
        assert_eq!(number(5), 20_000.0, "non-null ms");
        // ms cycles through 0..200 over all rows; each page takes every
        // other value: 0, 2, …, 198 or 1, 3, …, 199, each 200 times.
        let even = cells[1] == "home";
        let values: Vec<f64> = (0..100)
            .map(|k| (2 * k + usize::from(!even)) as f64)
            .collect();
        let mean = values.iter().sum::<f64>() / 100.0;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 100.0).sqrt();
        assert!((number(6) - mean * 20_000.0).abs() < 1e-6, "{row}");
        assert!((number(7) - sd).abs() < 1e-9 * sd, "{row}");
        assert!(
            (number(8) - mean).abs() <= 2.0,
            "p50 near the median: {row}"
        );
        assert_eq!(number(9), 10_000.0, "half the visits take 100 ms or more");
        assert!((number(10) - mean * 20_000.0 / users).abs() < 1e-9 * number(10));
        assert_eq!(cells[11], "", "a zero divisor gives null: {row}");
    }

    // More visits on the second day only: the commit's partition values say
    // so, and only that partition is recomputed.
    append(&storage, batch(20_001, 1_000, 500)).await;
    let second = gold.refresh(&storage).await.unwrap();
    let expected: BTreeSet<Option<String>> = [Some("2024-10-05".to_string())].into();
    assert_eq!(second.scope, RefreshScope::Partitions(expected));
    let rebuilt = GoldAggregation::new(spec("visits_rebuilt")).unwrap();
    rebuilt.refresh(&storage).full_rebuild().await.unwrap();
    let incremental = rows(&storage, &gold.spec().target).await;
    let full = rows(&storage, &rebuilt.spec().target).await;
    assert_eq!(incremental.len(), full.len());
    for (a, b) in incremental.iter().zip(&full) {
        for (i, (x, y)) in a.split('|').zip(b.split('|')).enumerate() {
            // The sketches (columns 4 and 8) may depend on input order;
            // sums may differ in the last bits.
            let same = [4, 8].contains(&i)
                || x == y
                || matches!((x.parse::<f64>(), y.parse::<f64>()),
                    (Ok(x), Ok(y)) if (x - y).abs() <= 1e-9 * y.abs());
            assert!(same, "column {i}: {a} vs {b}");
        }
    }
}
