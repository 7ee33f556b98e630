//! Order independence through real Delta tables: random event streams split
//! into random batches, processed one by one, give the same silver table as
//! all events in one batch; reprocessing changes nothing.

use proptest::prelude::*;

use lake_core::TableId;
use lake_silver::{Mode, OrdersSilver};

use crate::support::{Lake, bronze, event};

fn arb_event() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("o1"), Just("o2"), Just("o3")],
        prop_oneof![Just("placed"), Just("paid")],
        prop_oneof![Just("1"), Just("\"1.0\""), Just("2")],
        prop_oneof![Just("c"), Just("u"), Just("u"), Just("d")],
        0u32..6,
    )
        .prop_map(|(order, status, amount, op, minute)| {
            event(
                order,
                status,
                amount,
                op,
                &format!("2025-11-04T10:0{minute}:00Z"),
            )
        })
}

/// `events` with one delivered twice, shuffled from `seed` (late
/// arrivals), and cut into batches at `cuts`.
fn late_batches(
    events: &[String],
    duplicate: prop::sample::Index,
    seed: u64,
    cuts: &[prop::sample::Index],
) -> Vec<Vec<String>> {
    let mut all = events.to_vec();
    all.push(duplicate.get(events).clone());
    let shuffled = lake_testing::shuffled(&all, seed);
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(shuffled.len())).collect();
    bounds.push(0);
    bounds.push(shuffled.len());
    bounds.sort();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|pair| shuffled[pair[0]..pair[1]].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn batches_in_any_split_and_order_give_the_same_table(
        events in prop::collection::vec(arb_event(), 1..14),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        seed in any::<u64>(),
        duplicate in any::<prop::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            // All at once.
            let whole = Lake::new();
            whole.ingest("all", &events).await;
            whole.refine().await;
            let expected = whole.history().await;

            // Shuffled (late arrivals), with a redelivery, in random batches.
            let batches = late_batches(&events, duplicate, seed, &cuts);
            let split = Lake::new();
            // The same batches also feed an SCD1 table of the same events.
            let latest = TableId::silver("sales", "orders_latest").unwrap();
            let scd1 = OrdersSilver::new(bronze(), latest.clone())
                .unwrap()
                .with_mode(Mode::Scd1);
            for (n, batch) in batches.iter().enumerate() {
                split.ingest(&format!("b{n}"), batch).await;
                split.refine().await;
                scd1.run(&split.storage).await.unwrap().reconcile().unwrap();
            }
            assert_eq!(split.history().await, expected);
            // SCD1 holds exactly SCD2's current rows.
            let columns = "order_id, customer_id, category, region, amount, status, order_date, \
                           metadata, valid_from, valid_to, is_current";
            let current: Vec<String> = expected
                .iter()
                .filter(|row| row.ends_with("|true"))
                .cloned()
                .collect();
            assert_eq!(
                split
                    .rows(&latest, &format!("SELECT {columns} FROM t ORDER BY order_id, valid_from"))
                    .await,
                current
            );
            // Reprocessing changes nothing.
            let report = split.refine().await;
            assert_eq!(report.rows_read, 0);
            assert_eq!(split.history().await, expected);
        });
    }
}

/// A declared spec with a compound key, an untracked column, a delete
/// condition and null-ignoring updates over a numeric sequence.
fn stock_spec(target: &str) -> lake_silver::SilverSpec {
    lake_silver::SilverSpec::from_toml(&format!(
        r#"
        source = "bronze.erp.stock"
        target = "{target}"
        keys = ["site", "sku"]
        sequence_by = "seq"
        track_history = {{ exclude = ["note"] }}
        deletes = {{ condition = "gone" }}
        ignore_null_updates = true
        columns = [
            {{ name = "site" }},
            {{ name = "sku", type = "int64" }},
            {{ name = "qty", type = "int64" }},
            {{ name = "note" }},
            {{ name = "seq", type = "int64" }},
        ]
        "#
    ))
    .unwrap()
}

fn arb_stock_event() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("a"), Just("b")],
        0u32..2,
        prop::option::of(0u32..3),
        prop::option::of(prop_oneof![Just("x"), Just("y")]),
        any::<bool>(),
        0u32..6,
    )
        .prop_map(|(site, sku, qty, note, gone, seq)| {
            let qty = qty.map_or("null".to_string(), |q| q.to_string());
            let note = note.map_or("null".to_string(), |n| format!("\"{n}\""));
            // `gone` is absent, not false, on most events.
            let gone = if gone { ",\"gone\":true" } else { "" };
            format!(
                r#"{{"site":"{site}","sku":{sku},"qty":{qty},"note":{note},"seq":{seq}{gone}}}"#
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The same property for a declared spec: with untracked columns and
    /// nulls carried forward, any split and order of the events gives the
    /// table one batch gives, and a rerun changes nothing.
    #[test]
    fn a_declared_spec_is_independent_of_batches_and_order(
        events in prop::collection::vec(arb_stock_event(), 1..14),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        seed in any::<u64>(),
        duplicate in any::<prop::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let whole = Lake::new();
            let spec = stock_spec("silver.erp.stock");
            let stage = lake_silver::SilverTable::new(spec.clone()).unwrap();
            let sql = "SELECT site, sku, qty, note, valid_from, valid_to, is_current FROM t \
                       ORDER BY site, sku, valid_from";
            whole.ingest_into(&spec.source, "all", &events).await;
            stage.run(&whole.storage).await.unwrap().reconcile().unwrap();
            let expected = whole.rows(&spec.target, sql).await;

            let batches = late_batches(&events, duplicate, seed, &cuts);
            let split = Lake::new();
            for (n, batch) in batches.iter().enumerate() {
                split.ingest_into(&spec.source, &format!("b{n}"), batch).await;
                stage.run(&split.storage).await.unwrap().reconcile().unwrap();
            }
            assert_eq!(split.rows(&spec.target, sql).await, expected);
            assert_eq!(stage.run(&split.storage).await.unwrap().rows_read, 0);
            assert_eq!(split.rows(&spec.target, sql).await, expected);
        });
    }
}
