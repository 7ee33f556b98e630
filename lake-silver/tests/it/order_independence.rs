//! Order independence through real Delta tables: random event streams split
//! into random batches, processed one by one, give the same silver table as
//! all events in one batch; reprocessing changes nothing.

use proptest::prelude::*;

use lake_core::TableId;
use lake_silver::{Mode, OrdersSilver};

use crate::support::{Lake, bronze, event, t};

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

/// One change of an in-order stream: the key, values, op and how the
/// stream delivers it (on time, one batch late, or twice).
fn arb_change() -> impl Strategy<Value = (usize, &'static str, &'static str, &'static str, u8)> {
    (
        0usize..5,
        prop_oneof![Just("placed"), Just("paid"), Just("sent")],
        prop_oneof![Just("1"), Just("\"1.0\""), Just("2")],
        prop_oneof![Just("c"), Just("u"), Just("u"), Just("u"), Just("d")],
        // 0..=6 on time, 7 one batch late, 8 delivered again a batch later,
        // 9 at the same instant as the change before it (a conflict or a
        // duplicate).
        0u8..10,
    )
}

/// A stream that mostly arrives in order, as services deliver it: each
/// change one minute after the one before, cut into batches at `cuts`, with
/// some changes one batch late, some delivered again a batch later and some
/// at the instant of the change before them. The batches, and for each the
/// greatest instant delivered before it.
fn in_order_batches(
    changes: &[(usize, &str, &str, &str, u8)],
    cuts: &[prop::sample::Index],
) -> Vec<Vec<(u32, String)>> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(changes.len())).collect();
    bounds.extend([0, changes.len()]);
    bounds.sort();
    bounds.dedup();
    let mut batches: Vec<Vec<(u32, String)>> = vec![Vec::new(); bounds.len() - 1];
    let mut minute = 0u32;
    for (at, &(key, status, amount, op, how)) in changes.iter().enumerate() {
        if how != 9 {
            minute += 1;
        }
        let batch = bounds.windows(2).position(|w| at < w[1]).unwrap();
        let line = event(
            &format!("o{key}"),
            status,
            amount,
            op,
            &format!("2025-11-04T{:02}:{:02}:00Z", minute / 60, minute % 60),
        );
        let last = batches.len() - 1;
        match how {
            7 => batches[(batch + 1).min(last)].push((minute, line)),
            8 => {
                batches[batch].push((minute, line.clone()));
                batches[(batch + 1).min(last)].push((minute, line));
            }
            _ => batches[batch].push((minute, line)),
        }
    }
    batches
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The fast path: keys whose new events all follow their logged ones
    /// are planned from their version in force, without their log, and the
    /// table is the one all events at once give. A run whose events all
    /// follow every event delivered before reads no key's log.
    #[test]
    fn an_in_order_stream_is_planned_from_the_versions_in_force(
        changes in prop::collection::vec(arb_change(), 1..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let batches = in_order_batches(&changes, &cuts);
            let every: Vec<String> =
                batches.iter().flatten().map(|(_, line)| line.clone()).collect();
            let whole = Lake::new();
            whole.ingest("all", &every).await;
            whole.refine().await;
            let expected = whole.history().await;

            let split = Lake::new();
            let mut latest_delivered = None::<u32>;
            for (n, batch) in batches.iter().enumerate() {
                let lines: Vec<String> = batch.iter().map(|(_, line)| line.clone()).collect();
                split.ingest(&format!("b{n}"), &lines).await;
                let report = split.refine().await;
                let earliest = batch.iter().map(|(minute, _)| *minute).min();
                if let (Some(earliest), Some(latest)) = (earliest, latest_delivered)
                    && earliest > latest
                {
                    prop_assert_eq!(report.keys_from_log, 0, "batch {} is in order", n);
                }
                prop_assert!(report.keys_from_log <= report.keys);
                let greatest = batch.iter().map(|(minute, _)| *minute).max();
                latest_delivered = latest_delivered.max(greatest);
            }
            prop_assert_eq!(split.history().await, expected.clone());
            // Reprocessing changes nothing.
            prop_assert_eq!(split.refine().await.rows_read, 0);
            prop_assert_eq!(split.history().await, expected);
            Ok(())
        })?;
    }

    /// The same with an untracked column: a key is replanned from the
    /// opening of its version in force, whose untracked values may come
    /// from events after the new ones.
    #[test]
    fn an_in_order_stream_with_untracked_columns_gives_the_same_table(
        changes in prop::collection::vec(arb_change(), 1..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let spec = lake_silver::SilverSpec::from_toml(
                r#"
                source = "bronze.erp.stock"
                target = "silver.erp.stock"
                keys = ["sku"]
                sequence_by = "seq"
                track_history = { exclude = ["note"] }
                deletes = { column = "op", values = ["d"] }
                columns = [
                    { name = "sku" },
                    { name = "qty", type = "int64" },
                    { name = "note" },
                    { name = "seq", type = "int64" },
                ]
                "#,
            )
            .unwrap();
            let stage = lake_silver::SilverTable::new(spec.clone()).unwrap();
            // The orders stream's changes as stock changes: the status
            // becomes the untracked note, the amount the quantity.
            let batches: Vec<Vec<String>> = in_order_batches(&changes, &cuts)
                .into_iter()
                .map(|batch| {
                    batch
                        .into_iter()
                        .map(|(minute, line)| {
                            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                            let qty = match event["amount"].to_string().as_str() {
                                "2" => 2,
                                _ => 1,
                            };
                            serde_json::json!({
                                "sku": event["order_id"],
                                "qty": qty,
                                "note": event["status"],
                                "seq": minute,
                                "op": event["op"],
                            })
                            .to_string()
                        })
                        .collect()
                })
                .collect();
            let sql = "SELECT sku, qty, note, valid_from, valid_to, is_current FROM t \
                       ORDER BY sku, valid_from";
            let whole = Lake::new();
            whole.ingest_into(&spec.source, "all", &batches.concat()).await;
            stage.run(&whole.storage).await.unwrap().reconcile().unwrap();
            let expected = whole.rows(&spec.target, sql).await;

            let split = Lake::new();
            for (n, batch) in batches.iter().enumerate() {
                split.ingest_into(&spec.source, &format!("b{n}"), batch).await;
                let report = stage.run(&split.storage).await.unwrap();
                report.reconcile().unwrap();
                prop_assert!(report.keys_from_log <= report.keys);
            }
            prop_assert_eq!(split.rows(&spec.target, sql).await, expected);
            prop_assert_eq!(stage.run(&split.storage).await.unwrap().rows_read, 0);
            Ok(())
        })?;
    }
}

/// Of a batch's keys, only the one with a late event reads its log; the
/// table is the one all events at once give.
#[tokio::test]
async fn only_keys_with_late_events_read_their_log() {
    let first = vec![
        event("o1", "placed", "1", "c", &t(10, 0)),
        event("o2", "placed", "1", "c", &t(10, 1)),
        event("o3", "placed", "1", "c", &t(10, 2)),
    ];
    let second = vec![
        event("o1", "paid", "1", "u", &t(11, 0)),
        event("o2", "placed", "1", "d", &t(11, 1)),
        // Before o3's create: opens a version the create then closes.
        event("o3", "draft", "1", "u", &t(9, 0)),
        event("o4", "placed", "2", "c", &t(11, 2)),
    ];
    let split = Lake::new();
    split.ingest("b1", &first).await;
    let report = split.refine().await;
    assert_eq!((report.keys, report.keys_from_log), (3, 0));
    split.ingest("b2", &second).await;
    let report = split.refine().await;
    assert_eq!((report.keys, report.keys_from_log), (4, 1));

    let whole = Lake::new();
    whole.ingest("all", &[first, second].concat()).await;
    whole.refine().await;
    let expected = whole.history().await;
    assert_eq!(split.history().await, expected);
    assert_eq!(expected.len(), 6, "{expected:#?}");
}
