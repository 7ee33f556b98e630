//! The SEMANTICS.md cases through real bronze and silver tables.

use crate::support::{Lake, bronze, event, silver, t};

#[tokio::test]
async fn history_quarantine_late_arrivals_and_reruns() {
    let lake = Lake::new();
    lake.ingest(
        "b1",
        &[
            event("o1", "placed", "12.5", "c", &t(10, 0)),
            event("o1", "paid", "\"12.50\"", "u", &t(11, 0)),
            event("o2", "placed", "5", "c", &t(10, 0)),
            // A no-op update: same tracked values, written differently.
            event("o2", "placed", "5.0", "u", &t(10, 30)),
            "{\"customer_id\":\"c9\",\"updated_at\":\"2025-11-04T10:00:00Z\",\"op\":\"c\"}".to_string(),
            "{\"order_id\":\"o3\",\"updated_at\":\"2025-11-04 10:00:00Z\",\"op\":\"c\"}".to_string(),
            "{\"order_id\":\"o3\",\"updated_at\":\"2025-11-04T10:00:00Z\",\"amount\":\"12,5\",\"op\":\"c\"}".to_string(),
            "{\"order_id\":\"o3\",\"updated_at\":\"2025-11-04T10:00:00Z\",\"op\":\"x\"}".to_string(),
        ],
    )
    .await;
    let report = lake.refine().await;
    assert_eq!(
        (report.rows_read, report.valid, report.quarantined),
        (8, 4, 4)
    );
    assert_eq!(
        lake.history().await,
        vec![
            "o1|c1|books|eu|12.5|placed|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T10:00:00Z|2025-11-04T11:00:00Z|false",
            "o1|c1|books|eu|12.5|paid|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T11:00:00Z||true",
            "o2|c1|books|eu|5.0|placed|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T10:00:00Z||true",
        ]
    );
    let quarantine = lake
        .rows_at(
            &lake.storage.layout().quarantine(&silver()),
            "SELECT reason, _batch_id, _source_line FROM t ORDER BY _source_line",
        )
        .await;
    assert_eq!(
        quarantine,
        vec![
            "null_order_id|b1|5",
            "bad_updated_at|b1|6",
            "bad_amount|b1|7",
            "bad_op|b1|8"
        ]
    );

    // A late update splits o1's first interval; a redelivery changes nothing;
    // o2 is deleted with an offset timestamp for 11:00Z.
    lake.ingest(
        "b2",
        &[
            event("o1", "confirmed", "12.5", "u", &t(10, 30)),
            event("o1", "paid", "12.5", "u", &t(11, 0)),
            event("o2", "placed", "5", "d", "2025-11-04T12:00:00+01:00"),
        ],
    )
    .await;
    let report = lake.refine().await;
    assert_eq!(
        (report.rows_read, report.valid, report.duplicates),
        (3, 3, 1)
    );
    assert_eq!(
        lake.history().await,
        vec![
            "o1|c1|books|eu|12.5|placed|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T10:00:00Z|2025-11-04T10:30:00Z|false",
            "o1|c1|books|eu|12.5|confirmed|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T10:30:00Z|2025-11-04T11:00:00Z|false",
            "o1|c1|books|eu|12.5|paid|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T11:00:00Z||true",
            "o2|c1|books|eu|5.0|placed|2025-11-04|{\"a\":2,\"b\":1}|2025-11-04T10:00:00Z|2025-11-04T11:00:00Z|false",
        ]
    );

    // Nothing new: a rerun reads nothing and writes nothing.
    let before = lake.history().await;
    let report = lake.refine().await;
    assert_eq!(report.rows_read, 0);
    assert!(report.table_versions.is_empty());
    assert_eq!(lake.history().await, before);

    // A full rebuild from bronze gives the same tables, counts every bronze
    // row once, and leaves the next run incremental.
    let stage = lake_silver::OrdersSilver::new(bronze(), silver()).unwrap();
    let report = stage.rebuild(&lake.storage).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.rows_read, report.quarantined), (11, 4));
    assert_eq!(lake.history().await, before);
    let quarantine = lake.storage.layout().quarantine(&silver());
    assert_eq!(
        lake.rows_at(&quarantine, "SELECT count(*) FROM t").await,
        ["4"]
    );
    assert_eq!(lake.refine().await.rows_read, 0);
}

#[tokio::test]
async fn sequence_conflicts_are_deterministic_and_reported() {
    let lake = Lake::new();
    lake.ingest("b1", &[event("o1", "a", "1", "u", &t(10, 0))])
        .await;
    lake.refine().await;
    lake.ingest("b2", &[event("o1", "b", "1", "u", &t(10, 0))])
        .await;
    let report = lake.refine().await;
    assert_eq!(report.sequence_conflicts, 1);
    let rows = lake
        .rows(&silver(), "SELECT status, is_current FROM t")
        .await;
    assert_eq!(
        rows,
        vec!["b|true"],
        "the greatest status wins, whatever arrived first"
    );
}

/// Debezium envelopes give the silver table the equivalent flat events give.
/// A delete happens at the source's commit time (`source.ts_ms`, else
/// `ts_ms`), never before one microsecond after the write its `before`
/// image shows, so it closes that write's version instead of conflicting
/// with it. An envelope without the image its op needs is `bad_envelope`; a
/// delete with no time at all is `bad_updated_at`.
#[tokio::test]
async fn debezium_envelopes_match_flat_events() {
    use lake_silver::{CdcFormat, OrdersSilver};

    let image = |order: &str, status: &str, at: &str| {
        format!(
            r#"{{"order_id":"{order}","customer_id":"c1","amount":"12.50","status":"{status}","order_date":"2025-11-01","updated_at":"{at}"}}"#
        )
    };
    let millis = |at: &str| {
        chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .timestamp_millis()
    };
    let (a, b, c) = (t(10, 0), t(11, 0), t(12, 0));
    let envelopes = vec![
        format!(
            r#"{{"op":"r","before":null,"after":{},"source":{{"lsn":1}},"ts_ms":1}}"#,
            image("o1", "placed", &a)
        ),
        // Wrapped by Kafka Connect's JSON converter with schemas on.
        format!(
            r#"{{"schema":{{"type":"struct"}},"payload":{{"op":"u","before":{},"after":{},"ts_ms":2}}}}"#,
            image("o1", "placed", &a),
            image("o1", "paid", &b)
        ),
        // As Debezium writes it: `before` is the row the update left (its
        // `updated_at` is b), the delete's time is the source's commit
        // time, and the connector saw it 5 ms later.
        format!(
            r#"{{"op":"d","before":{},"after":null,"source":{{"ts_ms":{}}},"ts_ms":{}}}"#,
            image("o1", "paid", &b),
            millis(&c),
            millis(&c) + 5
        ),
        r#"{"op":"d","before":null,"after":null}"#.to_string(),
        r#"{"op":"x","after":{"order_id":"o2"}}"#.to_string(),
        r#"{"schema":{},"payload":"not an envelope"}"#.to_string(),
        // A key-only `before` (Postgres' default replica identity) and the
        // envelope's time.
        format!(
            r#"{{"op":"r","before":null,"after":{}}}"#,
            image("o2", "placed", &a)
        ),
        format!(
            r#"{{"op":"d","before":{{"order_id":"o2"}},"after":null,"ts_ms":{}}}"#,
            millis(&b)
        ),
        // No time in the envelope: one microsecond after the last write.
        format!(
            r#"{{"op":"r","before":null,"after":{}}}"#,
            image("o3", "placed", &a)
        ),
        format!(
            r#"{{"op":"d","before":{},"after":null}}"#,
            image("o3", "placed", &a)
        ),
        // No time anywhere.
        r#"{"op":"d","before":{"order_id":"o4"},"after":null}"#.to_string(),
    ];
    let flat = vec![
        image("o1", "placed", &a).replacen('{', r#"{"op":"c","#, 1),
        image("o1", "paid", &b).replacen('{', r#"{"op":"u","#, 1),
        image("o1", "paid", &c).replacen('{', r#"{"op":"d","#, 1),
    ];

    let debezium = Lake::new();
    debezium.ingest("envelopes", &envelopes).await;
    let report = OrdersSilver::new(bronze(), silver())
        .unwrap()
        .with_cdc_format(CdcFormat::Debezium)
        .run(&debezium.storage)
        .await
        .unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.valid, report.quarantined), (7, 4));
    assert_eq!(
        report.sequence_conflicts, 0,
        "a delete never ties its last write"
    );

    let plain = Lake::new();
    plain.ingest("flat", &flat).await;
    plain.refine().await;

    let sql = "SELECT order_id, customer_id, amount, status, order_date, valid_from, valid_to, is_current \
               FROM t WHERE order_id = 'o1' ORDER BY valid_from";
    let rows = debezium.rows(&silver(), sql).await;
    assert_eq!(
        rows.len(),
        2,
        "both versions of o1 survive its delete: {rows:?}"
    );
    assert_eq!(rows, plain.rows(&silver(), sql).await);
    let closed = |order: &str| {
        format!("SELECT CAST(valid_to AS VARCHAR) AS v FROM t WHERE order_id = '{order}'")
    };
    assert_eq!(
        debezium.rows(&silver(), &closed("o2")).await,
        ["2025-11-04T11:00:00Z"],
        "o2 closed at the envelope's ts_ms"
    );
    assert_eq!(
        debezium.rows(&silver(), &closed("o3")).await,
        ["2025-11-04T10:00:00.000001Z"],
        "o3 closed one microsecond after its last write"
    );
    let quarantine = debezium.storage.layout().quarantine(&silver());
    assert_eq!(
        debezium
            .rows_at(&quarantine, "SELECT reason FROM t ORDER BY reason")
            .await,
        [
            "bad_envelope",
            "bad_envelope",
            "bad_envelope",
            "bad_updated_at"
        ]
    );
}

/// CPU-heavy phases run on tokio's blocking pool, so a run works on a
/// current-thread runtime too (an embedding service's choice), with enough
/// rows that typing splits them over threads.
#[tokio::test(flavor = "current_thread")]
async fn a_run_works_on_a_current_thread_runtime() {
    let lake = Lake::new();
    let lines: Vec<String> = (0..10_000)
        .map(|i| {
            event(
                &format!("o{}", i % 4_000),
                "placed",
                "1",
                "u",
                &t(10, (i / 4_000) as u32),
            )
        })
        .collect();
    lake.ingest("b1", &lines).await;
    let report = lake.refine().await;
    assert_eq!((report.valid, report.quarantined), (10_000, 0));
    let current = lake
        .rows(
            &silver(),
            "SELECT count(*), count(DISTINCT order_id) FROM t WHERE is_current",
        )
        .await;
    assert_eq!(current, ["4000|4000"]);
    let versions = lake.rows(&silver(), "SELECT count(*) FROM t").await;
    assert_eq!(versions, ["4000"], "same tracked values open no version");
}
