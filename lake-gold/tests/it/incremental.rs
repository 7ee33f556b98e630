//! Incremental refresh against a full rebuild, empty batches, reruns, errors.

use lake_core::{StorageExt, TableId};
use lake_gold::{AggregationSpec, Function, GoldAggregation, RefreshScope};

use crate::support::{Lake, assert_same, event, gold};

/// A small stream: 30 orders over 6 dates in 5 batches, with updates that
/// move orders between dates, late events (an earlier `updated_at` in a
/// later batch), redeliveries and deletes.
fn batches() -> Vec<Vec<String>> {
    let mut batches = vec![Vec::new(); 5];
    let mut seed: u64 = 7;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for step in 0..120u32 {
        let order = format!("o{}", next(30));
        let date = format!("2025-11-0{}", 1 + next(6));
        let customer = format!("c{}", next(8));
        let category = ["books", "toys"][next(2) as usize];
        let amount = (next(10) > 0).then(|| format!("{}.{}", next(100), next(10)));
        let op = ["c", "u", "u", "d"][next(4) as usize];
        let minute = step;
        let at = format!("2025-12-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60);
        let mut batch = (step / 24) as usize;
        if next(8) == 0 && batch > 0 {
            batch -= 1;
        } else if next(8) == 0 && batch < 4 {
            // Late: delivered a batch after events that follow it.
            batch += 1;
        }
        let line = event(
            &order,
            Some(&customer),
            category,
            amount.as_deref(),
            &date,
            op,
            &at,
        );
        if next(10) == 0 {
            batches[4.min(batch + 1)].push(line.clone());
        }
        batches[batch].push(line);
    }
    batches
}

#[tokio::test]
async fn refreshing_after_every_batch_equals_a_full_rebuild() {
    let lake = Lake::new();
    for (i, lines) in batches().iter().enumerate() {
        let outcome = lake.deliver(&format!("b{i}"), lines).await;
        if i > 0 {
            assert!(
                matches!(outcome.scope, RefreshScope::Partitions(_)),
                "batch {i}: {:?}",
                outcome.scope
            );
        }
        let rebuilt = lake
            .rebuilt
            .refresh(&lake.storage)
            .full_rebuild()
            .await
            .unwrap();
        assert!(matches!(rebuilt.scope, RefreshScope::Full { .. }));
        let incremental = lake.summary(&gold()).await;
        assert_same(
            &incremental,
            &lake.summary(&lake.rebuilt.spec().target).await,
            &format!("batch {i}: incremental vs rebuilt"),
        );
        assert_same(
            &incremental,
            &lake.expected().await,
            &format!("batch {i}: vs silver"),
        );
    }
    // Silver marked replaced current rows in deletion vectors, which the
    // refresh's scan applied (the comparisons above hold only then).
    let location = lake
        .storage
        .layout()
        .table_location(&crate::support::silver());
    let silver = lake.storage.open_table(&location).await.unwrap();
    let marked = silver
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .filter(|f| f.deletion_vector_descriptor().is_some())
        .count();
    assert!(marked > 0, "no silver file has a deletion vector");

    // A rebuild on request of the incremental table changes no value.
    let before = lake.summary(&gold()).await;
    lake.gold
        .refresh(&lake.storage)
        .full_rebuild()
        .await
        .unwrap();
    assert_same(&lake.summary(&gold()).await, &before, "rebuilt in place");
}

#[tokio::test]
async fn an_empty_batch_moves_only_the_bookmark_and_a_rerun_is_a_no_op() {
    let lake = Lake::new();
    lake.deliver(
        "b1",
        &[event(
            "o1",
            Some("c1"),
            "books",
            Some("3"),
            "2025-11-01",
            "c",
            "2025-12-01T10:00:00Z",
        )],
    )
    .await;
    let before = lake.summary(&gold()).await;
    // A broken line (dead-lettered) and an event without a key
    // (quarantined): silver commits, but no order changed.
    let empty = lake
        .deliver(
            "b2",
            &[
                "{not json".to_string(),
                "{\"customer_id\":\"c1\"}".to_string(),
            ],
        )
        .await;
    assert_eq!(empty.scope, RefreshScope::Partitions(Default::default()));
    assert_eq!(empty.report.rows_written, 0);
    assert!(empty.report.table_version.is_some(), "the bookmark moved");
    assert_eq!(lake.summary(&gold()).await, before);

    let rerun = lake.gold.refresh(&lake.storage).await.unwrap();
    assert_eq!(rerun.scope, RefreshScope::UpToDate);
    assert_eq!(rerun.report.table_version, None);
}

#[tokio::test]
async fn a_column_the_source_lacks_is_named_in_the_error() {
    let lake = Lake::new();
    lake.land(
        "b1",
        &[event(
            "o1",
            Some("c1"),
            "books",
            Some("3"),
            "2025-11-01",
            "c",
            "2025-12-01T10:00:00Z",
        )],
    )
    .await;
    let spec = AggregationSpec::new(
        TableId::gold("analytics", "by_channel").unwrap(),
        crate::support::silver(),
        &["order_date", "channel"],
        "order_date",
    )
    .unwrap()
    .metric("orders", Function::Count)
    .unwrap();
    let error = GoldAggregation::new(spec)
        .unwrap()
        .refresh(&lake.storage)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("`channel`"), "{error}");
    assert!(error.contains("silver.sales.orders"), "{error}");

    let spec = AggregationSpec::new(
        TableId::gold("analytics", "bad_metric").unwrap(),
        crate::support::silver(),
        &["order_date"],
        "order_date",
    )
    .unwrap()
    .metric(
        "x",
        Function::Sql {
            expr: "no_such_fn(amount)".into(),
        },
    )
    .unwrap();
    let error = GoldAggregation::new(spec)
        .unwrap()
        .refresh(&lake.storage)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no_such_fn"), "{error}");
    assert!(error.contains("gold.analytics.bad_metric"), "{error}");
}
