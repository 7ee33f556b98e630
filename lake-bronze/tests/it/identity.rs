//! Nothing lost in ordinary operations: reused file names, redeliveries
//! with other content, lakes written under base-name batch ids, records that
//! would make a schema unreadable, and columnar inputs whose column names
//! bronze reserves.

use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};
use lake_bronze::{BronzeOptions, BronzeWriter};
use lake_core::{IngestStage, InputFormat, LakeError, RawBatch, StorageExt};

use crate::support::{Lake, orders};

fn lines(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"order_id\":\"{prefix}-{i}\",\"amount\":{i}}}\n"))
        .collect()
}

async fn count(lake: &Lake) -> String {
    lake.scalar(&lake.location(&orders()), "SELECT count(*) FROM t")
        .await
}

#[tokio::test]
async fn files_of_one_name_in_two_folders_are_two_deliveries() {
    let lake = Lake::new();
    let inbox = tempfile::tempdir().unwrap();
    let writer = BronzeWriter::new(orders()).unwrap();
    let mut paths = Vec::new();
    for (day, n) in [("day1", 30), ("day2", 20)] {
        std::fs::create_dir(inbox.path().join(day)).unwrap();
        let path = inbox.path().join(day).join("export.jsonl");
        std::fs::write(&path, lines(day, n)).unwrap();
        paths.push(path);
    }
    for path in &paths {
        let report = writer
            .ingest(&lake.context(), RawBatch::from_file(path).unwrap())
            .await
            .unwrap();
        report.reconcile().unwrap();
        assert!(!report.already_ingested, "{report:?}");
        assert!(
            report.batch_id.ends_with("export.jsonl"),
            "{}",
            report.batch_id
        );
    }
    assert_eq!(count(&lake).await, "50");
    let ids = lake
        .rows(
            &lake.location(&orders()),
            "SELECT DISTINCT _batch_id FROM t ORDER BY 1",
        )
        .await;
    assert_eq!(ids.len(), 2, "{ids:?}");

    // The same file again, by another spelling of its path: nothing added.
    let again = inbox.path().join("day1/../day1/export.jsonl");
    let report = writer
        .ingest(&lake.context(), RawBatch::from_file(&again).unwrap())
        .await
        .unwrap();
    assert!(report.already_ingested, "{report:?}");
    assert_eq!(count(&lake).await, "50");
}

#[tokio::test]
async fn an_id_delivered_again_with_other_content_is_refused_naming_both() {
    let lake = Lake::new();
    let writer = BronzeWriter::new(orders()).unwrap();
    let first = RawBatch::from_bytes("key-1", InputFormat::JsonLines, lines("a", 5))
        .unwrap()
        .with_source_file("upload-a.jsonl");
    writer.ingest(&lake.context(), first).await.unwrap();

    let same = RawBatch::from_bytes("key-1", InputFormat::JsonLines, lines("a", 5)).unwrap();
    assert!(
        writer
            .ingest(&lake.context(), same)
            .await
            .unwrap()
            .already_ingested
    );

    let other = RawBatch::from_bytes("key-1", InputFormat::JsonLines, lines("b", 7))
        .unwrap()
        .with_source_file("upload-b.jsonl");
    let error = writer.ingest(&lake.context(), other).await.unwrap_err();
    let LakeError::BatchConflict(conflict) = &error else {
        panic!("expected a batch conflict, got {error}");
    };
    assert_eq!(conflict.batch_id, "key-1");
    assert_eq!(conflict.earlier_file, "upload-a.jsonl");
    assert_eq!(conflict.file, "upload-b.jsonl");
    assert_ne!(conflict.earlier_fingerprint, conflict.fingerprint);
    assert!(conflict.fingerprint.contains(" bytes, blake3 "), "{error}");
    assert_eq!(count(&lake).await, "5");

    // A stream is hashed as it is compared: same bytes pass, others fail.
    let stream = |text: String| {
        let chunks = text
            .into_bytes()
            .chunks(7)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>();
        Box::pin(futures::stream::iter(chunks)) as futures::stream::BoxStream<'static, _>
    };
    let again = RawBatch::from_stream("key-1", InputFormat::JsonLines, stream(lines("a", 5)));
    let report = writer
        .ingest(&lake.context(), again.unwrap())
        .await
        .unwrap();
    assert!(report.already_ingested);
    let other = RawBatch::from_stream("key-1", InputFormat::JsonLines, stream(lines("c", 5)));
    let error = writer.ingest(&lake.context(), other.unwrap()).await;
    assert!(
        matches!(error, Err(LakeError::BatchConflict(_))),
        "{error:?}"
    );

    // Dead letters only: the dead-letter table holds the delivery.
    let broken = RawBatch::from_bytes("key-2", InputFormat::JsonLines, "nope\n").unwrap();
    writer.ingest(&lake.context(), broken).await.unwrap();
    let other = RawBatch::from_bytes("key-2", InputFormat::JsonLines, "nah\n").unwrap();
    let error = writer.ingest(&lake.context(), other).await;
    assert!(
        matches!(error, Err(LakeError::BatchConflict(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_lake_written_under_base_name_ids_does_not_take_a_file_twice() {
    let lake = Lake::new();
    let inbox = tempfile::tempdir().unwrap();
    let path = inbox.path().join("batch-00001.jsonl");
    std::fs::write(&path, lines("old", 10)).unwrap();
    let path = std::fs::canonicalize(&path).unwrap();
    // What an earlier release wrote: the base name as the batch id, its
    // transaction at version 1, the path as the source file.
    let writer = BronzeWriter::new(orders()).unwrap();
    let legacy = RawBatch::from_bytes(
        "batch-00001.jsonl",
        InputFormat::JsonLines,
        lines("old", 10),
    )
    .unwrap()
    .with_source_file(path.to_str().unwrap());
    writer.ingest(&lake.context(), legacy).await.unwrap();
    let table = lake
        .storage
        .open_table(&lake.location(&orders()))
        .await
        .unwrap();
    CommitBuilder::from(
        CommitProperties::default()
            .with_application_transaction(Transaction::new("lake-bronze:batch-00001.jsonl", 1)),
    )
    .with_actions(Vec::new())
    .build(
        Some(table.snapshot().unwrap()),
        table.log_store(),
        DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        },
    )
    .await
    .unwrap();

    let report = writer
        .ingest(&lake.context(), RawBatch::from_file(&path).unwrap())
        .await
        .unwrap();
    assert!(report.already_ingested, "{report:?}");
    assert_eq!(count(&lake).await, "10");

    // Another folder's file of that name is another delivery.
    std::fs::create_dir(inbox.path().join("next")).unwrap();
    let next = inbox.path().join("next/batch-00001.jsonl");
    std::fs::write(&next, lines("new", 4)).unwrap();
    let report = writer
        .ingest(&lake.context(), RawBatch::from_file(&next).unwrap())
        .await
        .unwrap();
    assert!(!report.already_ingested);
    assert_eq!(count(&lake).await, "14");
}

#[tokio::test]
async fn deep_and_wide_records_leave_the_table_readable() {
    let lake = Lake::new();
    let writer = BronzeWriter::new(orders()).unwrap();
    let deep = (0..45).fold("1".to_string(), |inner, i| format!("{{\"l{i}\":{inner}}}"));
    let text = format!(
        "{{\"order_id\":\"a\",\"deep\":{deep}}}\n{{\"order_id\":\"b\",\"deep\":\"plain\"}}\n"
    );
    let report = lake.ingest(&writer, "deep", &text).await;
    assert_eq!(report.rows_written, 2);
    // Opened again, by deltalake, as any reader would.
    let table = lake
        .storage
        .open_table(&lake.location(&orders()))
        .await
        .unwrap();
    assert!(table.version().is_some());
    let rows = lake
        .rows(
            &lake.location(&orders()),
            "SELECT order_id, deep FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(rows, [format!("a|{deep}"), "b|plain".to_string()]);

    // A record of 100,000 keys: the table stops at its column limit, the
    // rest stays in `_raw`, and a later batch still evolves nothing past it.
    let wide: Vec<String> = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect();
    let text = format!("{{\"order_id\":\"w\",{}}}\n", wide.join(","));
    let report = lake.ingest(&writer, "wide", &text).await;
    assert_eq!(report.rows_written, 1);
    let limit = BronzeOptions::default().max_columns as u64;
    // `order_id` and `deep` are columns already.
    assert_eq!(report.keys_not_added, 100_000 - (limit - 2));
    let table = lake
        .storage
        .open_table(&lake.location(&orders()))
        .await
        .unwrap();
    let schema = table.snapshot().unwrap().snapshot().arrow_schema();
    let data_columns = schema
        .fields()
        .iter()
        .filter(|f| {
            !f.name().starts_with('_') && !["year", "month", "day"].contains(&f.name().as_str())
        })
        .count();
    assert_eq!(data_columns as u64, limit);
    let raw = lake
        .scalar(
            &lake.location(&orders()),
            "SELECT length(_raw) FROM t WHERE order_id = 'w'",
        )
        .await;
    assert_eq!(raw, (text.len() - 1).to_string());
}

#[tokio::test]
async fn columnar_input_keeps_columns_named_like_bronze_ones() {
    let lake = Lake::new();
    let writer = BronzeWriter::new(orders()).unwrap();
    let csv = "order_id,year,_raw,Month\nA,1999,original,07\nB,2001,,08\n";
    let batch = RawBatch::from_bytes("reserved.csv", InputFormat::Csv, csv).unwrap();
    writer
        .ingest(&lake.context(), batch)
        .await
        .unwrap()
        .reconcile()
        .unwrap();
    let rows = lake
        .rows(
            &lake.location(&orders()),
            "SELECT order_id, source_year, source__raw, \"source_Month\" FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(rows, ["A|1999|original|07", "B|2001||08"]);
}

#[test]
fn a_mistyped_option_is_an_error() {
    let typo = toml::from_str::<BronzeOptions>("batch_row = 10");
    assert!(typo.is_err(), "{typo:?}");
    let typo = toml::from_str::<BronzeOptions>("[csv]\ndelimeter = \";\"");
    assert!(typo.unwrap_err().to_string().contains("delimeter"));
    let fine = toml::from_str::<BronzeOptions>("batch_rows = 10\nmax_nesting_depth = 8").unwrap();
    assert_eq!((fine.batch_rows, fine.max_nesting_depth), (10, 8));
}
