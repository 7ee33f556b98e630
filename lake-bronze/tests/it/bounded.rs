//! Bounded input: overlong lines and records are dead letters holding a
//! prefix, and more dead-letter text than a 32-bit offset holds is written,
//! not a panic.

use bytes::Bytes;
use futures::StreamExt;
use lake_bronze::{BronzeOptions, BronzeWriter};
use lake_core::{IngestStage, InputFormat, RawBatch, StorageExt};

use crate::support::{Lake, orders};

fn writer(max_line_bytes: usize) -> BronzeWriter {
    BronzeWriter::new(orders())
        .unwrap()
        .with_options(BronzeOptions::default().with_max_line_bytes(max_line_bytes))
}

#[tokio::test]
async fn a_line_over_the_limit_is_a_dead_letter_with_its_prefix() {
    let lake = Lake::new();
    let long = format!(
        "{{\"order_id\":\"big\",\"note\":\"{}\"}}",
        "x".repeat(300_000)
    );
    let text = format!("{{\"order_id\":\"a\"}}\n{long}\n{{\"order_id\":\"b\"}}\n");
    // Fed in small pieces, so the long line is never whole in one of them.
    let chunks: Vec<lake_core::Result<Bytes>> = text
        .as_bytes()
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let batch = RawBatch::from_stream(
        "long",
        InputFormat::JsonLines,
        futures::stream::iter(chunks).boxed(),
    )
    .unwrap();
    let report = writer(100_000)
        .ingest(&lake.context(), batch)
        .await
        .unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.rows_written, report.dead_lettered), (2, 1));
    let dlq = lake.dead_letter_location(&orders());
    let row = lake
        .scalar(
            &dlq,
            "SELECT reason || '|' || _source_line || '|' || length(raw_text) || '|' || error FROM t",
        )
        .await;
    assert_eq!(
        row,
        format!(
            "line_too_long|2|65536|a line of {} bytes, longer than max_line_bytes (100000); \
             its first 65536 bytes are kept",
            long.len()
        )
    );
}

#[tokio::test]
async fn a_csv_record_over_the_limit_is_a_dead_letter() {
    let lake = Lake::new();
    let csv = format!("order_id,note\na,short\nb,{}\nc,short\n", "y".repeat(5000));
    let batch = RawBatch::from_bytes("long.csv", InputFormat::Csv, csv).unwrap();
    let report = writer(1000).ingest(&lake.context(), batch).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.rows_written, report.dead_lettered), (2, 1));
    let dlq = lake.dead_letter_location(&orders());
    let reason = lake.scalar(&dlq, "SELECT reason FROM t").await;
    assert_eq!(reason, "line_too_long");
}

#[tokio::test]
async fn more_dead_letter_text_than_two_gib_is_written_in_chunks() {
    let lake = Lake::new();
    // 520 unreadable lines of 4 MiB: 2.03 GiB of dead-letter text, made
    // here as it is read, never stored.
    let line = Bytes::from(format!("{}\n", "z".repeat(4 << 20)));
    let lines = 520u64;
    let stream = futures::stream::iter((0..lines).map(move |_| Ok(line.clone()))).boxed();
    let batch = RawBatch::from_stream("junk", InputFormat::JsonLines, stream).unwrap();
    let report = writer(8 << 20)
        .ingest(&lake.context(), batch)
        .await
        .unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.rows_written, report.dead_lettered), (0, lines));
    let table = lake
        .storage
        .open_table(&lake.dead_letter_location(&orders()))
        .await
        .unwrap();
    let snapshot = table.snapshot().unwrap();
    let rows: i64 = snapshot
        .log_data()
        .iter()
        .map(|file| file.num_records().unwrap_or_default() as i64)
        .sum();
    assert_eq!(rows, lines as i64);
}
