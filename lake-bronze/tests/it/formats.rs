//! CSV, Parquet, Avro and Arrow batches into bronze, with schema reconciliation.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use lake_bronze::{BronzeOptions, BronzeWriter, CsvOptions, SchemaPolicy};
use lake_core::{IngestStage, InputFormat, LakeError, RawBatch, StorageExt};

use crate::support::{Lake, orders};

fn sample() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("quantity", DataType::Int32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("units", DataType::UInt32, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a", "b", "c"])),
        Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
        Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])),
        Arc::new(UInt32Array::from(vec![7, 8, 9])),
        Arc::new(
            TimestampNanosecondArray::from(vec![
                1_700_000_000_000_000_000,
                1_700_000_001_000_000_000,
                1_700_000_002_000_000_000,
            ])
            .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

async fn check_sample(lake: &Lake) {
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT order_id, quantity, amount, units, updated_at, _source_line, _raw IS NULL FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            "a|1|1.5|7|2023-11-14T22:13:20Z|1|true",
            "b||2.5|8|2023-11-14T22:13:21Z|2|true",
            "c|3|3.5|9|2023-11-14T22:13:22Z|3|true",
        ]
    );
    // Types Delta can hold: microsecond timestamps, signed integers.
    let delta = lake.storage.open_table(&table).await.unwrap();
    let schema = delta.snapshot().unwrap().snapshot().arrow_schema();
    let units = schema.field_with_name("units").unwrap();
    assert_eq!(units.data_type(), &DataType::Int64);
}

#[tokio::test]
async fn parquet_files_and_buffers() {
    let lake = Lake::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.parquet");
    let mut buffer = Vec::new();
    {
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut buffer, sample().schema(), None).unwrap();
        writer.write(&sample()).unwrap();
        writer.close().unwrap();
    }
    std::fs::write(&path, &buffer).unwrap();
    let report = BronzeWriter::new(orders())
        .unwrap()
        .ingest(&lake.context(), RawBatch::from_file(&path).unwrap())
        .await
        .unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.input_records, report.rows_written), (3, 3));
    check_sample(&lake).await;

    // The same bytes from memory are another delivery.
    let batch = RawBatch::from_bytes("again.parquet", InputFormat::Parquet, buffer).unwrap();
    let report = BronzeWriter::new(orders())
        .unwrap()
        .ingest(&lake.context(), batch)
        .await
        .unwrap();
    assert_eq!(report.rows_written, 3);

    // A corrupt file is an error naming it; nothing is committed.
    let broken = RawBatch::from_bytes(
        "broken.parquet",
        InputFormat::Parquet,
        &b"PAR1 not really"[..],
    )
    .unwrap();
    let err = BronzeWriter::new(orders())
        .unwrap()
        .ingest(&lake.context(), broken)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broken.parquet"), "{err}");
    let table = lake.location(&orders());
    assert_eq!(lake.scalar(&table, "SELECT count(*) FROM t").await, "6");
}

#[tokio::test]
async fn avro_files() {
    let lake = Lake::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.avro");
    let batch = sample();
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            arrow_avro::writer::AvroWriter::new(file, batch.schema().as_ref().clone()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
    }
    let report = BronzeWriter::new(orders())
        .unwrap()
        .ingest(&lake.context(), RawBatch::from_file(&path).unwrap())
        .await
        .unwrap();
    report.reconcile().unwrap();
    assert_eq!(report.rows_written, 3);
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT order_id, quantity, amount FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(rows, vec!["a|1|1.5", "b||2.5", "c|3|3.5"]);
}

#[tokio::test]
async fn csv_keeps_text_and_dead_letters_ragged_records() {
    let lake = Lake::new();
    let writer = BronzeWriter::new(orders()).unwrap().with_options(
        BronzeOptions::default().with_csv(
            CsvOptions::default()
                .with_delimiter(';')
                .with_null_values(["NULL"]),
        ),
    );
    let text = "order_id;amount;note\r\n\
                o1;12.50;plain\r\n\
                o2;NULL;\"semi;colon and\nnewline\"\n\
                o3;1;2;3\n\
                o4;007;\n";
    let batch = RawBatch::from_bytes("orders.csv", InputFormat::Csv, text).unwrap();
    let report = writer.ingest(&lake.context(), batch).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(
        (
            report.input_records,
            report.rows_written,
            report.dead_lettered
        ),
        (4, 3, 1)
    );
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT order_id, amount, note, _source_line FROM t ORDER BY order_id",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            "o1|12.50|plain|2",
            "o2||semi;colon and\nnewline|3",
            "o4|007||6"
        ]
    );
    let dlq = lake.dead_letter_location(&orders());
    let dead = lake
        .rows(&dlq, "SELECT reason, _source_line, raw_text FROM t")
        .await;
    assert_eq!(dead, vec!["invalid_csv|5|o3;1;2;3"]);
}

#[tokio::test]
async fn csv_streams_are_read_in_bounded_chunks() {
    let lake = Lake::new();
    let lines: Vec<String> = std::iter::once("id,value".to_string())
        .chain((0..10_000).map(|i| format!("{i},v{i}")))
        .collect();
    let text = lines.join("\n");
    // Deliver it in awkward 1,000-byte pieces.
    let chunks: Vec<lake_core::Result<Bytes>> = text
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures::stream::iter(chunks).boxed();
    let batch = RawBatch::from_stream("stream.csv", InputFormat::Csv, stream).unwrap();
    let writer = BronzeWriter::new(orders())
        .unwrap()
        .with_options(BronzeOptions::default().with_batch_rows(777));
    let report = writer.ingest(&lake.context(), batch).await.unwrap();
    assert_eq!(report.rows_written, 10_000);
    let table = lake.location(&orders());
    let row = lake
        .rows(
            &table,
            "SELECT count(DISTINCT id), max(_source_line) FROM t",
        )
        .await;
    assert_eq!(row, vec!["10000|10001"]);
}

use futures::StreamExt;

#[tokio::test]
async fn arrow_batches_widen_or_keep_conflicts_in_variant_columns() {
    let lake = Lake::new();
    let writer = BronzeWriter::new(orders()).unwrap();
    let first = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(Int64Array::from(vec![10])),
        ],
    )
    .unwrap();
    writer
        .ingest(
            &lake.context(),
            RawBatch::from_batches("b1", vec![first]).unwrap(),
        )
        .await
        .unwrap();
    // Int32 widens into the Int64 column.
    let widened = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Int32, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["b"])),
            Arc::new(Int32Array::from(vec![20])),
        ],
    )
    .unwrap();
    writer
        .ingest(
            &lake.context(),
            RawBatch::from_batches("b2", vec![widened]).unwrap(),
        )
        .await
        .unwrap();
    // Text cannot go into Int64: kept in a variant column.
    let conflicting = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["c"])),
            Arc::new(StringArray::from(vec!["12,5"])),
        ],
    )
    .unwrap();
    writer
        .ingest(
            &lake.context(),
            RawBatch::from_batches("b3", vec![conflicting.clone()]).unwrap(),
        )
        .await
        .unwrap();
    let table = lake.location(&orders());
    let rows = lake
        .rows(
            &table,
            "SELECT id, amount, amount__v_utf8 FROM t ORDER BY id",
        )
        .await;
    assert_eq!(rows, vec!["a|10|", "b|20|", "c||12,5"]);

    // Under the freeze policy the same conflict is refused, naming the column.
    let frozen = writer
        .clone()
        .with_options(BronzeOptions::default().with_schema_policy(SchemaPolicy::Freeze));
    let err = frozen
        .ingest(
            &lake.context(),
            RawBatch::from_batches("b4", vec![conflicting]).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::Schema { .. }), "{err:?}");
    assert!(err.to_string().contains("`amount`"), "{err}");
}
