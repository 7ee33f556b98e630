//! Embedding just the SCD2 engine of `lake-silver` in a service.
//!
//! `lake_silver::scd2::history` is a pure function: all valid events of
//! one key, in any order, in; its versions out. That is what makes silver
//! independent of arrival order, and it is usable on its own, say in a
//! service that keeps history in its own store. Here one order is created,
//! updated, sent twice, updated late (an event older than one already
//! seen), deleted and re-created.
//!
//! Usage: `cargo run -p lake-examples --example scd2_only`

use lake_silver::scd2::{Cell, Event, Op, history};

fn at(hour: i64) -> i64 {
    // Microseconds since the epoch: 2025-11-04T{hour}:00:00Z.
    (1_762_214_400 + hour * 3600) * 1_000_000
}

fn event(hour: i64, op: Op, status: &str, amount: f64) -> Event {
    Event {
        sequence: at(hour),
        op,
        tracked: vec![Cell::Str(status.to_string()), Cell::number(amount)],
    }
}

fn main() {
    // Arrival order: nothing here is sorted, and one event comes twice.
    let arrived = vec![
        event(12, Op::Update, "shipped", 12.5),
        event(10, Op::Create, "placed", 12.5),
        event(12, Op::Update, "shipped", 12.5), // a redelivery
        event(15, Op::Delete, "shipped", 12.5),
        event(11, Op::Update, "paid", 12.5), // late: splits 10:00-12:00
        event(16, Op::Create, "placed", 30.0), // re-created after the delete
        event(13, Op::Update, "shipped", 12.5), // changes nothing: no version
    ];
    let h = history(arrived);
    println!(
        "{:<12} {:<12} {:<10} {:>7} current",
        "valid_from", "valid_to", "status", "amount"
    );
    for version in &h.versions {
        let hour = |t: i64| format!("{:02}:00", (t / 1_000_000 - 1_762_214_400) / 3600);
        let cell = |c: &Cell| match c {
            Cell::Str(s) => s.clone(),
            Cell::F64(x) => x.to_string(),
            other => format!("{other:?}"),
        };
        println!(
            "{:<12} {:<12} {:<10} {:>7} {}",
            hour(version.valid_from),
            version
                .valid_to
                .map(hour)
                .unwrap_or_else(|| "-".to_string()),
            cell(&version.tracked[0]),
            cell(&version.tracked[1]),
            version.is_current()
        );
    }
    println!(
        "{} versions, {} duplicate dropped, {} sequence conflicts",
        h.versions.len(),
        h.duplicates,
        h.conflicts.len()
    );
    assert_eq!(h.versions.len(), 4);
}
