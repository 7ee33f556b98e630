//! The daily summary of SEMANTICS.md against hand-computed values.

use std::collections::BTreeSet;

use lake_gold::RefreshScope;

use crate::support::{Lake, assert_same, event, gold};

fn at(minute: u32) -> String {
    format!("2025-12-01T10:{minute:02}:00Z")
}

#[tokio::test]
async fn aggregates_follow_sql_semantics_and_a_moved_order_refreshes_both_dates() {
    let lake = Lake::new();
    let first = lake
        .deliver(
            "b1",
            &[
                event(
                    "o1",
                    Some("c1"),
                    "books",
                    Some("10"),
                    "2025-11-01",
                    "c",
                    &at(0),
                ),
                event(
                    "o2",
                    Some("c2"),
                    "books",
                    Some("\"20.00\""),
                    "2025-11-01",
                    "c",
                    &at(1),
                ),
                // A null amount counts as an order but not in the amount metrics.
                event("o3", Some("c1"), "books", None, "2025-11-01", "c", &at(2)),
                // No customer: no users, so no value per user.
                event("o4", None, "toys", Some("5"), "2025-11-01", "c", &at(3)),
                // Only a null amount: sum, avg, min, max and stddev are null.
                event("o5", Some("c3"), "books", None, "2025-11-02", "c", &at(4)),
                // Created then deleted: its group has no row.
                event(
                    "o6",
                    Some("c4"),
                    "games",
                    Some("7"),
                    "2025-11-03",
                    "c",
                    &at(5),
                ),
                event(
                    "o6",
                    Some("c4"),
                    "games",
                    Some("7"),
                    "2025-11-03",
                    "d",
                    &at(6),
                ),
                // Not a date: a null order_date, its own group.
                event("o7", Some("c5"), "books", Some("1.5"), "soon", "c", &at(7)),
            ],
        )
        .await;
    assert!(
        matches!(first.scope, RefreshScope::Full { .. }),
        "{first:?}"
    );
    assert_eq!(first.report.rows_written, 4);
    assert_eq!(
        first.report.partitions_refreshed, 3,
        "11-01, 11-02 and null"
    );
    let summary = lake.summary(&gold()).await;
    let key = |d: &str, c: &str| [d.to_string(), c.to_string(), "eu".to_string()];
    let stddev = 50f64.sqrt();
    let hand: crate::support::Summary = [
        (
            key("", "books"),
            vec![
                Some(1.0),
                Some(1.5),
                Some(1.5),
                Some(1.5),
                Some(1.5),
                None,
                Some(1.0),
                Some(1.5),
            ],
        ),
        (
            key("2025-11-01", "books"),
            vec![
                Some(3.0),
                Some(30.0),
                Some(15.0),
                Some(10.0),
                Some(20.0),
                Some(stddev),
                Some(2.0),
                Some(15.0),
            ],
        ),
        (
            key("2025-11-01", "toys"),
            vec![
                Some(1.0),
                Some(5.0),
                Some(5.0),
                Some(5.0),
                Some(5.0),
                None,
                Some(0.0),
                None,
            ],
        ),
        (
            key("2025-11-02", "books"),
            vec![Some(1.0), None, None, None, None, None, Some(1.0), None],
        ),
    ]
    .into_iter()
    .collect();
    assert_same(&summary, &hand, "hand-computed");
    assert_same(&summary, &lake.expected().await, "computed from silver");
    assert_same(&summary, &lake.by_sql().await, "SQL over silver");

    // o2 moves to 11-02: both dates are refreshed, nothing else.
    let second = lake
        .deliver(
            "b2",
            &[event(
                "o2",
                Some("c2"),
                "books",
                Some("20"),
                "2025-11-02",
                "u",
                &at(10),
            )],
        )
        .await;
    let dates: BTreeSet<Option<String>> = ["2025-11-01", "2025-11-02"]
        .into_iter()
        .map(|d| Some(d.to_string()))
        .collect();
    assert_eq!(second.scope, RefreshScope::Partitions(dates));
    assert_eq!(second.report.partitions_refreshed, 2);
    let summary = lake.summary(&gold()).await;
    assert_eq!(
        summary[&key("2025-11-01", "books")][..3],
        [Some(2.0), Some(10.0), Some(10.0)]
    );
    assert_eq!(
        summary[&key("2025-11-02", "books")][..3],
        [Some(2.0), Some(20.0), Some(20.0)]
    );
    assert_same(&summary, &lake.expected().await, "after the move");

    // Every order of 11-02 deleted: its groups disappear.
    lake.deliver(
        "b3",
        &[
            event(
                "o2",
                Some("c2"),
                "books",
                Some("20"),
                "2025-11-02",
                "d",
                &at(20),
            ),
            event("o5", Some("c3"), "books", None, "2025-11-02", "d", &at(21)),
        ],
    )
    .await;
    let summary = lake.summary(&gold()).await;
    assert!(!summary.keys().any(|k| k[0] == "2025-11-02"), "{summary:?}");
    assert_same(&summary, &lake.expected().await, "after the deletes");
}
