//! A source table deleted and created again (an operator rebuilding it):
//! the stages reading it notice from its Delta table id and rebuild,
//! instead of reporting "up to date" over data they never read.

use lake_core::TableId;
use lake_gold::RefreshScope;
use lake_silver::OrdersSilver;

use crate::support::{Lake, assert_same, bronze, event, gold, silver};

/// Batch `b` of a small stream: new orders, and updates of earlier ones.
fn batch(b: usize) -> Vec<String> {
    (0..20)
        .map(|i| {
            let order = format!("o{}", (b * 7 + i) % 45);
            let amount = format!("{}.5", b * 10 + i);
            let date = format!("2026-01-{:02}", 1 + (b + i) % 5);
            let at = format!("2026-02-01T{:02}:{:02}:00Z", b, i);
            let op = if i % 9 == 8 { "d" } else { "u" };
            event(&order, Some("c1"), "books", Some(&amount), &date, op, &at)
        })
        .collect()
}

fn remove_table(lake: &Lake, table: &TableId) {
    let location = lake.storage.layout().table_location(table);
    std::fs::remove_dir_all(location.to_file_path().unwrap()).unwrap();
}

#[tokio::test]
async fn gold_refreshes_fully_after_silver_is_created_again() {
    let lake = Lake::new();
    for b in 0..6 {
        lake.deliver(&format!("b{b}"), &batch(b)).await;
    }
    remove_table(&lake, &silver());
    remove_table(&lake, &silver().changes_table().unwrap());
    let mut reports = Vec::new();
    for b in 6..10 {
        reports.push(lake.deliver(&format!("b{b}"), &batch(b)).await);
    }
    assert!(
        matches!(&reports[0].scope, RefreshScope::Full { reason } if reason.contains("created again")),
        "{:?}",
        reports[0].scope
    );
    let expected = lake.expected().await;
    assert_same(
        &lake.summary(&gold()).await,
        &expected,
        "after silver was recreated",
    );
    lake.rebuilt
        .refresh(&lake.storage)
        .full_rebuild()
        .await
        .unwrap();
    let rebuilt = TableId::gold("analytics", "daily_summary_rebuilt").unwrap();
    assert_same(&lake.summary(&rebuilt).await, &expected, "full rebuild");
}

#[tokio::test]
async fn silver_rebuilds_after_bronze_is_created_again() {
    let lake = Lake::new();
    for b in 0..4 {
        lake.deliver(&format!("b{b}"), &batch(b)).await;
    }
    remove_table(&lake, &bronze());
    // The new bronze holds other deliveries only.
    for b in 4..7 {
        lake.deliver(&format!("n{b}"), &batch(b + 10)).await;
    }
    let columns = "SELECT order_id, amount, order_date, valid_from, valid_to, is_current \
                   FROM t ORDER BY order_id, valid_from";
    let after = lake.rows(&silver(), columns).await;
    // Silver computed once from the new bronze, into a table of its own.
    let check = TableId::silver("sales", "orders_check").unwrap();
    OrdersSilver::new(bronze(), check.clone())
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap();
    assert_eq!(after, lake.rows(&check, columns).await);
    assert!(!after.is_empty());
    assert_same(
        &lake.summary(&gold()).await,
        &lake.expected().await,
        "gold over the rebuilt silver",
    );
}
