//! Hostile input never panics and always reconciles.

use lake_bronze::BronzeWriter;
use lake_core::{IngestStage, InputFormat, RawBatch};
use proptest::prelude::*;

use crate::support::{Lake, orders};

fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"{\"order_id\":\"a\",\"amount\":1}".to_vec()),
        Just(b"{\"order_id\":7,\"x\":{\"y\":[1,2]}}".to_vec()),
        Just(b"{\"_raw\":1,\"year\":\"2020\",\"a\":null}".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"   ".to_vec()),
        Just(b"[1]".to_vec()),
        Just(b"{\"a\":NaN}".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"{\"s\":\"\\ud800\"}".to_vec()),
        Just(b"{\"a\":1e999}".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bytes_reconcile(bytes in hostile_bytes()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let lake = Lake::new();
            let lines = if bytes.is_empty() {
                0
            } else {
                bytes.iter().filter(|b| **b == b'\n').count() as u64
                    + u64::from(*bytes.last().unwrap() != b'\n')
            };
            let batch = RawBatch::from_bytes("hostile", InputFormat::JsonLines, bytes).unwrap();
            let report = BronzeWriter::new(orders())
                .unwrap()
                .ingest(&lake.context(), batch)
                .await
                .unwrap();
            report.reconcile().unwrap();
            assert_eq!(report.input_records, lines);
            if report.rows_written > 0 {
                let table = lake.location(&orders());
                let count = lake.scalar(&table, "SELECT count(*) FROM t").await;
                assert_eq!(count, report.rows_written.to_string());
            }
        });
    }
}
