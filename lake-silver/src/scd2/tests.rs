//! Every rule of SEMANTICS.md's SCD2 section, and order independence as a
//! property over random event sets, splits and duplicates.

use proptest::prelude::*;

use super::*;

fn ev(sequence: i64, op: Op, status: &str) -> Event {
    Event {
        sequence,
        op,
        tracked: vec![Cell::Str(status.to_string())],
    }
}

fn spans(h: &History) -> Vec<(i64, Option<i64>, String)> {
    h.versions
        .iter()
        .map(|v| {
            let status = match &v.tracked[0] {
                Cell::Str(s) => s.clone(),
                other => format!("{other:?}"),
            };
            (v.valid_from, v.valid_to, status)
        })
        .collect()
}

use Op::{Create as C, Delete as D, Update as U};

/// `events` with the ones `dup` picks delivered again, in an order
/// shuffled deterministically from `seed`.
fn redelivered_shuffled<T: Clone>(events: &[T], dup: &[prop::sample::Index], seed: u64) -> Vec<T> {
    let mut all = events.to_vec();
    if !events.is_empty() {
        all.extend(dup.iter().map(|index| index.get(events).clone()));
    }
    lake_testing::shuffled(&all, seed)
}

#[test]
fn create_update_delete_recreate() {
    let h = history(vec![
        ev(1, C, "a"),
        ev(2, U, "b"),
        ev(3, D, "b"),
        ev(4, C, "c"),
    ]);
    assert_eq!(
        spans(&h),
        vec![
            (1, Some(2), "a".into()),
            (2, Some(3), "b".into()),
            (4, None, "c".into())
        ]
    );
    assert_eq!(h.versions.iter().filter(|v| v.is_current()).count(), 1);
}

#[test]
fn a_late_arrival_splits_an_interval() {
    let h = history(vec![ev(1, C, "a"), ev(5, U, "c"), ev(3, U, "b")]);
    assert_eq!(
        spans(&h),
        vec![
            (1, Some(3), "a".into()),
            (3, Some(5), "b".into()),
            (5, None, "c".into())
        ]
    );
}

#[test]
fn a_no_op_update_opens_nothing_until_a_late_event_lands_before_it() {
    let h = history(vec![ev(1, C, "a"), ev(3, U, "a")]);
    assert_eq!(spans(&h), vec![(1, None, "a".into())]);
    // A late change at 2 makes the update at 3 a real change back to "a".
    let h = history(vec![ev(1, C, "a"), ev(3, U, "a"), ev(2, U, "b")]);
    assert_eq!(
        spans(&h),
        vec![
            (1, Some(2), "a".into()),
            (2, Some(3), "b".into()),
            (3, None, "a".into())
        ]
    );
}

#[test]
fn exact_duplicates_count_once() {
    let h = history(vec![
        ev(1, C, "a"),
        ev(1, C, "a"),
        ev(2, U, "b"),
        ev(2, U, "b"),
    ]);
    assert_eq!(h.duplicates, 2);
    assert!(h.conflicts.is_empty());
    assert_eq!(h.versions.len(), 2);
}

#[test]
fn sequence_conflicts_pick_the_greatest_and_are_reported() {
    // d > u > c, then the tracked values.
    let h = history(vec![
        ev(1, C, "a"),
        ev(2, U, "x"),
        ev(2, U, "y"),
        ev(2, C, "z"),
    ]);
    assert_eq!(h.conflicts.len(), 1);
    let conflict = &h.conflicts[0];
    assert_eq!(conflict.winner, ev(2, U, "y"));
    assert_eq!(conflict.losers, vec![ev(2, U, "x"), ev(2, C, "z")]);
    assert_eq!(
        spans(&h),
        vec![(1, Some(2), "a".into()), (2, None, "y".into())]
    );

    let h = history(vec![ev(1, C, "a"), ev(2, U, "b"), ev(2, D, "b")]);
    assert_eq!(spans(&h), vec![(1, Some(2), "a".into())]);
    // Null is the lowest value.
    let null = Event {
        sequence: 2,
        op: U,
        tracked: vec![Cell::Null],
    };
    let h = history(vec![ev(1, C, "a"), null.clone(), ev(2, U, "")]);
    assert_eq!(h.conflicts[0].winner, ev(2, U, ""));
    assert_eq!(h.conflicts[0].losers, vec![null]);
}

#[test]
fn deletes_with_nothing_in_force_change_nothing_but_still_close_late_creates() {
    let h = history(vec![ev(5, D, "a")]);
    assert!(h.versions.is_empty());
    assert_eq!(h.events.len(), 1, "the delete is kept");
    // A create arriving later but sequenced before the delete is closed by it.
    let h = history(vec![ev(5, D, "a"), ev(3, C, "a")]);
    assert_eq!(spans(&h), vec![(3, Some(5), "a".into())]);
    // A second delete changes nothing.
    let h = history(vec![ev(1, C, "a"), ev(2, D, "a"), ev(3, D, "a")]);
    assert_eq!(spans(&h), vec![(1, Some(2), "a".into())]);
}

#[test]
fn updates_without_a_version_open_one_and_creates_over_a_live_version_update_it() {
    let h = history(vec![ev(1, U, "a"), ev(2, C, "b"), ev(3, C, "b")]);
    assert_eq!(
        spans(&h),
        vec![(1, Some(2), "a".into()), (2, None, "b".into())]
    );
}

#[test]
fn a_recreate_equal_to_the_deleted_version_still_opens_one() {
    let h = history(vec![ev(1, C, "a"), ev(2, D, "a"), ev(3, C, "a")]);
    assert_eq!(
        spans(&h),
        vec![(1, Some(2), "a".into()), (3, None, "a".into())]
    );
}

#[test]
fn numbers_compare_by_value() {
    let amount = |s, v| Event {
        sequence: s,
        op: U,
        tracked: vec![Cell::number(v)],
    };
    let h = history(vec![
        amount(1, 12.5),
        amount(2, 12.50),
        amount(3, -0.0),
        amount(4, 0.0),
    ]);
    assert_eq!(h.versions.len(), 2);
}

fn arb_event() -> impl Strategy<Value = Event> {
    (
        0i64..12,
        prop_oneof![Just(C), Just(U), Just(D)],
        prop_oneof![Just(Cell::Null), "[ab]{0,1}".prop_map(Cell::Str)],
    )
        .prop_map(|(sequence, op, status)| Event {
            sequence,
            op,
            tracked: vec![status],
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any order, any duplication: the same history.
    #[test]
    fn history_depends_only_on_the_set_of_events(
        events in prop::collection::vec(arb_event(), 0..24),
        seed in any::<u64>(),
        dup in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let reference = history(events.clone());
        let other = history(redelivered_shuffled(&events, &dup, seed));
        prop_assert_eq!(&other.versions, &reference.versions);
        prop_assert_eq!(&other.events, &reference.events);
        prop_assert_eq!(&other.conflicts, &reference.conflicts);
    }

    /// At most one current version, intervals in order and never overlapping,
    /// `valid_from` unique.
    #[test]
    fn versions_form_a_proper_timeline(events in prop::collection::vec(arb_event(), 0..24)) {
        let h = history(events);
        prop_assert!(h.versions.iter().filter(|v| v.is_current()).count() <= 1);
        for pair in h.versions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let end = a.valid_to.expect("only the last version may be open");
            prop_assert!(a.valid_from < end);
            prop_assert!(end <= b.valid_from);
        }
        if let Some(end) = h.versions.last().and_then(|last| last.valid_to) {
            prop_assert!(h.versions.last().unwrap().valid_from < end);
        }
    }

    /// Recomputing from the surviving events gives the same versions: the
    /// event log is a faithful record of the history.
    #[test]
    fn the_event_log_reproduces_the_history(events in prop::collection::vec(arb_event(), 0..24)) {
        let h = history(events);
        let again = history(h.events.clone());
        prop_assert_eq!(again.versions, h.versions);
        prop_assert!(again.conflicts.is_empty());
        prop_assert_eq!(again.duplicates, 0);
    }
}

/// Keyed events with a string and a number column, `-0.0` included.
fn arb_keyed() -> impl Strategy<Value = (u8, i64, Op, Option<String>, Option<f64>)> {
    (
        0u8..4,
        0i64..8,
        prop_oneof![Just(C), Just(U), Just(D)],
        prop::option::of("[ab]{0,1}"),
        prop::option::of(prop_oneof![Just(0.0), Just(-0.0), Just(1.5)]),
    )
}

fn cells(status: &Option<String>, amount: Option<f64>) -> Vec<Cell> {
    vec![
        status.clone().map_or(Cell::Null, Cell::Str),
        amount.map_or(Cell::Null, Cell::number),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The columnar plan gives every key the versions `history` gives it,
    /// and counts duplicates and conflicts of the new rows as the silver
    /// stage reports them.
    #[test]
    fn the_columnar_plan_agrees_with_history(
        events in prop::collection::vec(arb_keyed(), 0..40),
        split in any::<prop::sample::Index>(),
    ) {
        use std::sync::Arc;
        use arrow::array::{ArrayRef, Float64Array, StringArray};

        let first_new = if events.is_empty() { 0 } else { split.index(events.len() + 1) };
        let keys: ArrayRef = Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.0.to_string())));
        let status: ArrayRef = Arc::new(events.iter().map(|e| e.3.clone()).collect::<StringArray>());
        let amount: ArrayRef = Arc::new(events.iter().map(|e| e.4).collect::<Float64Array>());
        let sequence: Vec<i64> = events.iter().map(|e| e.1).collect();
        let ops: Vec<Op> = events.iter().map(|e| e.2).collect();
        let tracked = [status, columnar::normalize_zero(&amount)];
        let plan = plan(&EventColumns {
            keys: &[keys],
            sequence: &sequence,
            ops: &ops,
            tracked: &tracked,
            untracked: &[],
            first_new,
        }).unwrap();

        let event = |i: usize| Event { sequence: events[i].1, op: events[i].2, tracked: cells(&events[i].3, events[i].4) };
        let mut got: Vec<(u8, i64, Option<i64>, Vec<Cell>)> = plan.versions.iter().map(|v| {
            let o = v.opener as usize;
            (events[o].0, events[o].1, v.closer.map(|c| events[c as usize].1), cells(&events[o].3, events[o].4))
        }).collect();
        got.sort_by_key(|v| (v.0, v.1));
        let mut want = Vec::new();
        let (mut duplicates, mut conflicts, mut fresh) = (0u64, 0u64, 0usize);
        for key in 0u8..4 {
            let mine: Vec<usize> = (0..events.len()).filter(|&i| events[i].0 == key).collect();
            let h = history(mine.iter().map(|&i| event(i)).collect());
            want.extend(h.versions.iter().map(|v| (key, v.valid_from, v.valid_to, v.tracked.clone())));
            // What the stage reports: new rows already known, and conflicts
            // involving a new row.
            let mut known: Vec<Event> = mine.iter().filter(|&&i| i < first_new).map(|&i| event(i)).collect();
            let mut new_events = Vec::new();
            for &i in mine.iter().filter(|&&i| i >= first_new) {
                if known.contains(&event(i)) { duplicates += 1; } else { fresh += 1; known.push(event(i)); }
                new_events.push(event(i));
            }
            conflicts += h.conflicts.iter().filter(|c| {
                new_events.contains(&c.winner) || c.losers.iter().any(|l| new_events.contains(l))
            }).count() as u64;
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(plan.duplicates, duplicates);
        prop_assert_eq!(plan.conflicts, conflicts);
        prop_assert_eq!(plan.fresh.len(), fresh);
        prop_assert!(plan.fresh.iter().all(|&r| r as usize >= first_new));
    }
}

/// The versions of a plan as (key row, opener row, closer row).
fn plan_rows(
    keys: &[arrow::array::ArrayRef],
    sequence: &[i64],
    ops: &[Op],
    status: &[&str],
) -> Vec<(u32, Option<u32>)> {
    use std::sync::Arc;
    let tracked: arrow::array::ArrayRef = Arc::new(arrow::array::StringArray::from_iter_values(
        status.iter().copied(),
    ));
    let plan = plan(&EventColumns {
        keys,
        sequence,
        ops,
        tracked: &[tracked],
        untracked: &[],
        first_new: 0,
    })
    .unwrap();
    plan.versions.iter().map(|v| (v.opener, v.closer)).collect()
}

#[test]
fn compound_keys_compare_column_by_column() {
    use arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;
    // ("a", "bc") and ("ab", "c") concatenate to the same text: two keys all the same.
    let first: ArrayRef = Arc::new(StringArray::from(vec!["a", "ab", "a"]));
    let second: ArrayRef = Arc::new(StringArray::from(vec!["bc", "c", "bc"]));
    let versions = plan_rows(&[first, second], &[1, 2, 3], &[C, C, U], &["x", "y", "z"]);
    assert_eq!(versions, [(0, Some(2)), (2, None), (1, None)]);
}

#[test]
fn struct_sequences_order_lexicographically() {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;
    // (epoch, lsn): (1, 2) < (1, 10) < (2, 1); as text "12" > "110".
    let epoch: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 1]));
    let lsn: ArrayRef = Arc::new(Int64Array::from(vec![10, 1, 2]));
    let ranks = columnar::sequence_ranks(&[epoch, lsn]).unwrap();
    assert_eq!(ranks, [1, 2, 0]);
    let key: ArrayRef = Arc::new(StringArray::from(vec!["k", "k", "k"]));
    let versions = plan_rows(&[key], &ranks, &[U, U, C], &["x", "y", "w"]);
    // w (row 2) opens, x (row 0) follows, y (row 1) is current.
    assert_eq!(versions, [(2, Some(0)), (0, Some(1)), (1, None)]);
}

/// (key, sequence, op, tracked, untracked)
type Spec2Event = (u8, i64, Op, Option<u8>, Option<u8>);

fn arb_spec_event() -> impl Strategy<Value = Spec2Event> {
    (
        0u8..3,
        0i64..6,
        prop_oneof![Just(C), Just(U), Just(U), Just(D)],
        prop::option::of(0u8..2),
        prop::option::of(0u8..2),
    )
}

/// The versions of `events` as values: (key, from, to, tracked of the
/// opener, untracked of the latest event), with nulls carried forward when
/// `ignore_nulls`.
#[allow(clippy::type_complexity)]
fn spec_versions(
    events: &[Spec2Event],
    ignore_nulls: bool,
) -> Vec<(u8, i64, Option<i64>, Option<u8>, Option<u8>)> {
    use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt8Array};
    use arrow::datatypes::UInt8Type;
    use std::sync::Arc;
    let keys: ArrayRef = Arc::new(StringArray::from_iter_values(
        events.iter().map(|e| e.0.to_string()),
    ));
    let tracked: ArrayRef = Arc::new(events.iter().map(|e| e.3).collect::<UInt8Array>());
    let untracked: ArrayRef = Arc::new(events.iter().map(|e| e.4).collect::<UInt8Array>());
    let sequence: Vec<i64> = events.iter().map(|e| e.1).collect();
    let ops: Vec<Op> = events.iter().map(|e| e.2).collect();
    let mut columns = EventColumns {
        keys: &[keys],
        sequence: &sequence,
        ops: &ops,
        tracked: &[tracked],
        untracked: &[untracked],
        first_new: 0,
    };
    let filled;
    if ignore_nulls {
        filled = columnar::carry_forward(&columns).unwrap();
        columns.tracked = &filled.0;
        columns.untracked = &filled.1;
    }
    let plan = plan(&columns).unwrap();
    let value = |column: &ArrayRef, row: u32| {
        let column = column.as_primitive::<UInt8Type>();
        column
            .is_valid(row as usize)
            .then(|| column.value(row as usize))
    };
    let mut versions: Vec<_> = plan
        .versions
        .iter()
        .map(|v| {
            (
                events[v.opener as usize].0,
                events[v.opener as usize].1,
                v.closer.map(|c| events[c as usize].1),
                value(&columns.tracked[0], v.opener),
                value(&columns.untracked[0], v.latest),
            )
        })
        .collect();
    versions.sort_unstable();
    versions
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With untracked columns and with nulls carried forward, the versions
    /// depend only on the set of events: any order, any redelivery.
    #[test]
    fn untracked_columns_and_carried_nulls_keep_order_independence(
        events in prop::collection::vec(arb_spec_event(), 0..30),
        seed in any::<u64>(),
        dup in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ignore_nulls in any::<bool>(),
    ) {
        let reference = spec_versions(&events, ignore_nulls);
        let shuffled = redelivered_shuffled(&events, &dup, seed);
        prop_assert_eq!(spec_versions(&shuffled, ignore_nulls), reference.clone());
        // Tracked values change at every version boundary that is not a delete.
        for pair in reference.windows(2) {
            if pair[0].0 == pair[1].0 && pair[0].2 == Some(pair[1].1) {
                prop_assert_ne!(pair[0].3, pair[1].3);
            }
        }
        if ignore_nulls {
            // A version opened while another was in force never has a null
            // tracked value where the one before it had a value.
            for pair in reference.windows(2) {
                if pair[0].0 == pair[1].0 && pair[0].2 == Some(pair[1].1) && pair[0].3.is_some() {
                    prop_assert!(pair[1].3.is_some());
                }
            }
        }
    }
}

#[test]
fn untracked_values_come_from_the_latest_event_of_the_version() {
    // k: 1 opens (a=0, b=0); 2 changes only b (absorbed); 3 changes a.
    let events = [
        (0, 1, C, Some(0), Some(0)),
        (0, 2, U, Some(0), Some(1)),
        (0, 3, U, Some(1), None),
    ];
    assert_eq!(
        spec_versions(&events, false),
        [
            (0, 1, Some(3), Some(0), Some(1)),
            (0, 3, None, Some(1), None)
        ]
    );
    // Carried forward, the null b of 3 keeps 1, and a null a keeps 1 too:
    // then 4 is a no-op and its b (0) becomes the version's.
    let mut events = events.to_vec();
    events.push((0, 4, U, None, Some(0)));
    assert_eq!(
        spec_versions(&events, true),
        [
            (0, 1, Some(3), Some(0), Some(1)),
            (0, 3, None, Some(1), Some(0))
        ]
    );
}
