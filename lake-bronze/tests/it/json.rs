//! Newline-delimited JSON into bronze: messy input, dead letters,
//! reconciliation, exactly-once, schema evolution, concurrency.

use std::sync::Arc;

use lake_bronze::{BronzeOptions, BronzeWriter, SchemaPolicy};
use lake_core::{IngestStage, InputFormat, LakeError, RawBatch, StorageExt};

use crate::support::{Lake, orders};

fn writer() -> BronzeWriter {
    BronzeWriter::new(orders()).unwrap()
}

#[tokio::test]
async fn messy_lines_reconcile_and_land_where_they_belong() {
    let lake = Lake::new();
    let huge = "x".repeat(10 * 1024 * 1024);
    let input = [
        r#"{"order_id":"o1","amount":12.5,"status":"new","metadata":{"a":{"b":1}}}"#.to_string(),
        "\r".to_string(), // blank after CR stripping
        r#"{"order_id":"o2","amount":"12.50","status":"ünïcødé ✓","extra":true}"#.to_string()
            + "\r",
        "{\"order_id\":\"o3\",\"amount\":NaN}".to_string(),
        "   ".to_string(),
        "[1,2]".to_string(),
        "{\"order_id\":\"o4\",\"amount\":1,}".to_string(),
        format!("{{\"order_id\":\"o5\",\"status\":\"{huge}\"}}"),
        r#"{"order_id":12345,"amount":1e999}"#.to_string(),
        "{'order_id':'single'}".to_string(),
        "{\"s\":\"\\ud800\"}".to_string(),
        "".to_string(),
        r#"{"order_id":"last-without-lf"}"#.to_string(),
    ]
    .join("\n");
    // An invalid UTF-8 line, spliced in as bytes.
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(b"\n{\"order_id\":\"\xff\"}");
    let batch = RawBatch::from_bytes("batch-1.jsonl", InputFormat::JsonLines, bytes).unwrap();
    let report = writer().ingest(&lake.context(), batch).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(report.input_records, 14);
    assert_eq!(report.rows_written, 5, "{report:?}");
    assert_eq!(report.dead_lettered, 6, "{report:?}");
    assert_eq!(report.blank_lines, 3, "{report:?}");
    // Version 0 creates the table; the batch is version 1.
    assert_eq!(report.table_version, Some(1));

    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT _source_line, order_id, length(_raw) FROM t ORDER BY _source_line",
        )
        .await;
    assert_eq!(rows.len(), 5);
    assert!(rows[0].starts_with("1|o1|"), "{rows:?}");
    assert!(rows[1].starts_with("3|o2|"), "{rows:?}");
    assert!(rows[2].starts_with("8|o5|"), "{rows:?}");
    // A number where a string was: kept as its JSON text.
    assert!(rows[3].starts_with("9|12345|"), "{rows:?}");
    assert!(rows[4].starts_with("13|last-without-lf|"), "{rows:?}");
    // The 10 MB string survives whole.
    let long = lake
        .scalar(&table, "SELECT length(status) FROM t WHERE order_id = 'o5'")
        .await;
    assert_eq!(long, (10 * 1024 * 1024).to_string());
    // The original text is kept exactly (minus the CR of the line end).
    let raw = lake
        .scalar(&table, "SELECT _raw FROM t WHERE _source_line = 3")
        .await;
    assert_eq!(
        raw,
        r#"{"order_id":"o2","amount":"12.50","status":"ünïcødé ✓","extra":true}"#
    );
    let lineage = lake
        .rows(
            &table,
            "SELECT DISTINCT _source_system, _batch_id, _source_file FROM t",
        )
        .await;
    assert_eq!(lineage, vec!["shop|batch-1.jsonl|batch-1.jsonl"]);

    let dlq = lake.dead_letter_location(&orders());
    let dead = lake
        .rows(
            &dlq,
            "SELECT _source_line, reason FROM t ORDER BY _source_line",
        )
        .await;
    assert_eq!(
        dead,
        vec![
            "4|invalid_json",
            "6|not_an_object",
            "7|invalid_json",
            "10|invalid_json",
            "11|invalid_json",
            "14|invalid_utf8",
        ]
    );
    let text = lake
        .scalar(&dlq, "SELECT raw_text FROM t WHERE _source_line = 4")
        .await;
    assert_eq!(text, "{\"order_id\":\"o3\",\"amount\":NaN}");
    let error = lake
        .scalar(&dlq, "SELECT error FROM t WHERE _source_line = 4")
        .await;
    assert!(error.contains("byte 26"), "{error}");
}

#[tokio::test]
async fn an_empty_file_has_no_lines() {
    let lake = Lake::new();
    let report = lake.ingest(&writer(), "empty.jsonl", "").await;
    assert_eq!(
        (
            report.input_records,
            report.rows_written,
            report.dead_lettered
        ),
        (0, 0, 0)
    );
    assert_eq!(report.table_version, None);
}

#[tokio::test]
async fn reingesting_a_batch_adds_nothing() {
    let lake = Lake::new();
    let w = writer();
    let text = "{\"order_id\":\"a\"}\nbroken\n{\"order_id\":\"b\"}\n";
    let first = lake.ingest(&w, "batch-7", text).await;
    assert_eq!((first.rows_written, first.dead_lettered), (2, 1));
    let again = lake.ingest(&w, "batch-7", text).await;
    assert!(again.already_ingested);
    assert_eq!((again.rows_written, again.dead_lettered), (0, 0));
    assert_eq!(again.table_version, first.table_version);
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "2");
    let dlq = lake.dead_letter_location(&orders());
    assert_eq!(lake.scalar(&dlq, "SELECT count(*) FROM t").await, "1");
    // Another batch id is a new delivery.
    let other = lake.ingest(&w, "batch-8", text).await;
    assert!(!other.already_ingested);
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "4");
}

// Two workers: chunks are decoded on the blocking pool and files encoded on
// a task of their own, as in a service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_lands_in_the_partition_of_its_ingestion_date() {
    let lake = Lake::new();
    // Chunks of two records, so one delivery is several decodes and writes.
    let w = writer().with_options(BronzeOptions::default().with_batch_rows(2));
    let text: String = (0..7)
        .map(|i| format!("{{\"order_id\":\"o{}\"}}\n", i + 1))
        .collect();
    lake.ingest(&w, "b1", &text).await;
    let table = lake.location(&orders());
    // Each row keeps its own text and line number, whichever chunk it was in.
    let astray = lake
        .scalar(
            &table,
            "SELECT count(*) FROM t WHERE _raw <> concat('{\"order_id\":\"', order_id, '\"}') \
             OR concat('o', CAST(_source_line AS VARCHAR)) <> order_id",
        )
        .await;
    assert_eq!(astray, "0");
    let partitions = lake
        .rows(
            &table,
            "SELECT year, month, day, to_char(_ingested_at, '%Y|%m|%d') = \
             concat(year, '|', month, '|', day), count(*) FROM t GROUP BY 1, 2, 3, 4",
        )
        .await;
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    assert!(partitions[0].ends_with("|true|7"), "{partitions:?}");
    // The Delta log names the partition of every file, and the files sit
    // under its path, so engines that prune by path see the same date.
    let delta = lake.storage.open_table(&table).await.unwrap();
    let files: Vec<String> = delta.get_file_uris().unwrap().collect();
    assert!(!files.is_empty());
    let path = partitions[0].split('|').take(3).collect::<Vec<_>>();
    let path = format!("year={}/month={}/day={}/", path[0], path[1], path[2]);
    assert!(
        files.iter().all(|f| f.contains(&path)),
        "{files:?} outside {path}"
    );
}

#[tokio::test]
async fn a_batch_of_only_dead_letters_is_ingested_once() {
    let lake = Lake::new();
    let w = writer();
    let first = lake.ingest(&w, "bad", "nope\n[1]\n").await;
    assert_eq!(first.dead_lettered, 2);
    let again = lake.ingest(&w, "bad", "nope\n[1]\n").await;
    assert!(again.already_ingested, "{again:?}");
    let dlq = lake.dead_letter_location(&orders());
    assert_eq!(lake.scalar(&dlq, "SELECT count(*) FROM t").await, "2");
}

#[tokio::test]
async fn new_fields_evolve_the_schema_across_batches() {
    let lake = Lake::new();
    let w = writer();
    lake.ingest(&w, "b1", "{\"order_id\":\"a\",\"amount\":1.5}\n")
        .await;
    lake.ingest(
        &w,
        "b2",
        "{\"order_id\":\"b\",\"amount\":2,\"coupon\":\"X1\",\"tags\":[\"t\"]}\n",
    )
    .await;
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT order_id, amount, coupon FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(rows, vec!["a|1.5|", "b|2.0|X1"]);
    // A value whose type conflicts with its column is null there, and kept in `_raw`.
    lake.ingest(&w, "b3", "{\"order_id\":\"c\",\"amount\":{\"v\":3}}\n")
        .await;
    let row = lake
        .rows(
            &table,
            "SELECT amount IS NULL, _raw FROM t WHERE order_id = 'c'",
        )
        .await;
    assert_eq!(row, vec!["true|{\"order_id\":\"c\",\"amount\":{\"v\":3}}"]);
}

#[tokio::test]
async fn new_fields_in_the_middle_of_a_batch_are_kept() {
    let lake = Lake::new();
    let w = writer().with_options(
        BronzeOptions::default()
            .with_batch_rows(2)
            .with_infer_records(1),
    );
    let text = "{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"b\":\"x\"}\n{\"a\":4}\n";
    let report = lake.ingest(&w, "b1", text).await;
    assert_eq!(report.rows_written, 4);
    let table = lake.location(&orders());
    let rows = lake.rows(&table, "SELECT a, b FROM t ORDER BY a").await;
    assert_eq!(rows, vec!["1|", "2|", "3|x", "4|"]);
}

#[tokio::test]
async fn the_freeze_policy_names_the_line_and_column() {
    let lake = Lake::new();
    let w =
        writer().with_options(BronzeOptions::default().with_schema_policy(SchemaPolicy::Freeze));
    lake.ingest(&w, "b1", "{\"order_id\":\"a\"}\n").await;
    let batch = RawBatch::from_bytes(
        "b2.jsonl",
        InputFormat::JsonLines,
        "{\"order_id\":\"b\"}\n{\"order_id\":\"c\",\"rogue\":1}\n",
    )
    .unwrap();
    let err = w.ingest(&lake.context(), batch).await.unwrap_err();
    assert!(matches!(err, LakeError::Schema { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("bronze.shop.orders"), "{message}");
    assert!(message.contains("`rogue`"), "{message}");
    assert!(message.contains("line 2 of b2.jsonl"), "{message}");
    // Nothing of the refused batch was committed.
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_freeze_policy_refuses_names_its_line_in_a_later_chunk() {
    let lake = Lake::new();
    let w = writer().with_options(
        BronzeOptions::default()
            .with_schema_policy(SchemaPolicy::Freeze)
            .with_batch_rows(2),
    );
    lake.ingest(&w, "b1", "{\"order_id\":\"a\",\"amount\":1.5}\n")
        .await;
    let mut text: String = (0..7)
        .map(|i| format!("{{\"order_id\":\"o{i}\",\"amount\":{i}}}\n"))
        .collect();
    text.push_str("{\"order_id\":\"x\",\"amount\":{\"v\":1}}\n");
    let batch = RawBatch::from_bytes("b2.jsonl", InputFormat::JsonLines, text).unwrap();
    let err = w.ingest(&lake.context(), batch).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LakeError::Schema { .. }), "{err:?}");
    assert!(message.contains("line 8 of b2.jsonl"), "{message}");
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "1");
}

#[tokio::test]
async fn files_are_read_in_chunks_with_lineage() {
    let lake = Lake::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch-00001.jsonl");
    let lines: String = (0..5000)
        .map(|i| format!("{{\"order_id\":\"o{i}\",\"amount\":{i}}}\r\n"))
        .collect();
    std::fs::write(&path, lines).unwrap();
    let batch = RawBatch::from_file(&path).unwrap();
    let absolute = std::fs::canonicalize(&path).unwrap();
    assert_eq!(batch.batch_id, absolute.to_str().unwrap());
    let report = writer().ingest(&lake.context(), batch).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(report.rows_written, 5000);
    let table = lake.location(&orders());
    let row = lake
        .rows(
            &table,
            "SELECT count(*), max(_source_line), sum(amount) FROM t",
        )
        .await;
    assert_eq!(row, vec![format!("5000|5000|{}", (0..5000).sum::<i64>())]);
    // Partitioned by ingestion date.
    let partitions = lake
        .rows(&table, "SELECT DISTINCT year, month, day FROM t")
        .await;
    assert_eq!(partitions.len(), 1);
    let today = chrono::Utc::now().format("%Y|%m|%d").to_string();
    assert_eq!(partitions[0], today);
}

/// 4 tasks append 25 batches each to one table: every optimistic-concurrency
/// conflict is retried, so nothing is lost or doubled.
async fn concurrent_writers_lose_nothing(lake: Lake) {
    let w = Arc::new(writer());
    let mut tasks = Vec::new();
    for task in 0..4 {
        let w = Arc::clone(&w);
        let context = lake.context();
        tasks.push(tokio::spawn(async move {
            for batch in 0..25 {
                let text = format!(
                    "{{\"task\":{task},\"batch\":{batch}}}\n{{\"task\":{task},\"batch\":{batch}}}\n"
                );
                let raw = RawBatch::from_bytes(
                    &format!("t{task}-b{batch}"),
                    InputFormat::JsonLines,
                    text,
                )
                .unwrap();
                let report = w.ingest(&context, raw).await.unwrap();
                assert_eq!(report.rows_written, 2);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let table = lake.location(&orders());
    let row = lake
        .rows(&table, "SELECT count(*), count(DISTINCT _batch_id) FROM t")
        .await;
    assert_eq!(row, vec!["200|100"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_on_local_files() {
    concurrent_writers_lose_nothing(Lake::new()).await;
}

/// The same through S3 conditional writes (moto enforces `If-None-Match`).
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_on_s3() {
    concurrent_writers_lose_nothing(Lake::on_s3()).await;
}

#[tokio::test]
async fn the_same_batch_delivered_twice_at_once_lands_once() {
    let lake = Lake::new();
    let w = Arc::new(writer());
    let text = "{\"order_id\":\"a\"}\nbroken\n{\"order_id\":\"b\"}\n";
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let w = Arc::clone(&w);
        let context = lake.context();
        tasks.push(tokio::spawn(async move {
            let raw = RawBatch::from_bytes("same", InputFormat::JsonLines, text).unwrap();
            let report = w.ingest(&context, raw).await.unwrap();
            report.reconcile().unwrap();
            report.already_ingested
        }));
    }
    let mut fresh = 0;
    for task in tasks {
        if !task.await.unwrap() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one delivery is not a duplicate");
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "2");
    let dlq = lake.dead_letter_location(&orders());
    assert_eq!(lake.scalar(&dlq, "SELECT count(*) FROM t").await, "1");
}

/// A key whose values differ in kind inside one batch (an object, a string,
/// a list; or deeper down) becomes a text column instead of failing the
/// batch: text-like values land there, objects and arrays as their JSON
/// text, and every record is whole in `_raw`. Other keys keep their
/// inferred types.
#[tokio::test]
async fn keys_whose_values_differ_in_kind_become_text_and_nothing_is_lost() {
    let lake = Lake::new();
    let w = writer();
    let lines = [
        r#"{"order_id":"o1","amount":1.5,"metadata":{"a":1}}"#,
        r#"{"order_id":"o2","amount":2,"metadata":"plain text"}"#,
        r#"{"order_id":"o3","amount":3,"metadata":[1,2]}"#,
        r#"{"order_id":"o4","amount":4,"nested":{"x":{"y":1}}}"#,
        r#"{"order_id":"o5","amount":5,"nested":{"x":7}}"#,
    ];
    let report = lake.ingest(&w, "b1", &(lines.join("\n") + "\n")).await;
    assert_eq!((report.rows_written, report.dead_lettered), (5, 0));
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT order_id, amount, metadata, nested, _raw FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            format!("o1|1.5|{{\"a\":1}}||{}", lines[0]),
            format!("o2|2.0|plain text||{}", lines[1]),
            format!("o3|3.0|[1,2]||{}", lines[2]),
            format!("o4|4.0||{{\"x\":{{\"y\":1}}}}|{}", lines[3]),
            format!("o5|5.0||{{\"x\":7}}|{}", lines[4]),
        ]
    );
}

/// Delta compares column names ignoring case, so a key that differs from a
/// column, another key or a partition name only in case would make the
/// table unwritable. Such a key gets no column (the first spelling seen
/// does); its values stay in `_raw`, and the batch lands.
#[tokio::test]
async fn keys_that_differ_only_in_case_share_one_column_and_lose_nothing() {
    let lake = Lake::new();
    let w = writer();
    let first = r#"{"order_id":"o1","A":1,"a":2,"Year":3}"#;
    let report = lake.ingest(&w, "b1", &format!("{first}\n")).await;
    assert_eq!(report.rows_written, 1);
    let second = r#"{"order_id":"o2","a":5,"NEW":6,"new":7}"#;
    let report = lake.ingest(&w, "b2", &format!("{second}\n")).await;
    assert_eq!(report.rows_written, 1);
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT order_id, \"A\", \"NEW\", _raw FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(
        rows,
        vec![format!("o1|1||{first}"), format!("o2||6|{second}")]
    );
    use lake_core::StorageExt;
    let delta = lake.storage.open_table(&table).await.unwrap();
    let schema = delta.snapshot().unwrap().snapshot().arrow_schema();
    let mut columns: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| ["a", "new", "year"].contains(&n.to_lowercase().as_str()))
        .collect();
    columns.sort();
    assert_eq!(columns, ["A", "NEW", "year"]);
}
