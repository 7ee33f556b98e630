//! Erasure of a data subject through real tables on a real filesystem: no
//! byte of the subject is left anywhere under the lake root (data files,
//! Delta logs and checkpoints, dead letters, quarantine, run records), and
//! silver and gold equal a lake that never received the subject's records.

use std::path::Path;

use lake::erasure::Subject;
use lake::pii::PiiKey;
use lake::{InputFormat, Pipeline, RawBatch, StorageExt, StorageRef};
use lake_testing::table_rows;

use crate::maintain::{deliveries, pipeline_at};

/// The subject: a customer id no hexadecimal name (a file's uuid, a hash)
/// can hold by chance, so any occurrence of its bytes is a leak.
const SUBJECT: &str = "cust-zq7";

/// The columns two lakes fed the same records agree on (floats to nine
/// places: sums in another order differ in the last bits).
const COMPARED: [(&str, &str); 3] = [
    (
        "bronze.shop.orders",
        "SELECT _batch_id, _source_line, _raw FROM t ORDER BY _batch_id, _source_line",
    ),
    (
        "silver.sales.orders",
        "SELECT order_id, customer_id, category, region, amount, status, order_date, metadata, \
         valid_from, valid_to, is_current FROM t ORDER BY order_id, valid_from",
    ),
    (
        "gold.analytics.daily_summary",
        "SELECT order_date, category, region, total_count, total_value, round(avg_value, 9), \
         min_value, max_value, round(stddev_value, 9), unique_users, round(value_per_user, 9) \
         FROM t ORDER BY order_date, category, region",
    ),
];

fn key() -> PiiKey {
    PiiKey::new(b"a test key of the erasure test".to_vec()).unwrap()
}

/// The reference deliveries with customer `c017` renamed to the subject,
/// plus what names the subject elsewhere: another customer's order whose
/// metadata mentions it, a line bronze cannot read, an event silver
/// quarantines, and a redelivery under another batch id.
fn subject_deliveries() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = deliveries(8)
        .into_iter()
        .map(|(id, text)| {
            let text = text.replace("\"c017\"", &format!("\"{SUBJECT}\""));
            (id, text)
        })
        .collect();
    out[2].1.push_str(&format!(
        "{{\"order_id\":\"m9001\",\"customer_id\":\"c001\",\"category\":\"toys\",\"region\":\"eu\",\"amount\":3,\"status\":\"placed\",\"order_date\":\"2025-11-02\",\"op\":\"c\",\"updated_at\":\"2025-11-20T05:00:00Z\",\"metadata\":{{\"referred_by\":\"{SUBJECT}\"}}}}\n"
    ));
    out[3].1.push_str(&format!(
        "{{\"order_id\":\"m9002\",\"customer_id\":\"{SUBJECT}\", oops\n"
    ));
    out[4].1.push_str(&format!(
        "{{\"order_id\":\"m9003\",\"customer_id\":\"{SUBJECT}\",\"op\":\"c\",\"updated_at\":\"yesterday\"}}\n"
    ));
    let again = (format!("{}-again", out[3].0), out[3].1.clone());
    out.push(again);
    out
}

/// `deliveries` without the lines that name the subject (each made a
/// blank line, so the other lines keep their numbers).
fn without_subject(deliveries: &[(String, String)]) -> Vec<(String, String)> {
    let subject = Subject::new("customer_id", [SUBJECT]).unwrap();
    deliveries
        .iter()
        .map(|(id, text)| {
            let kept: String = text
                .lines()
                .map(|line| match subject.named_in(line.as_bytes()) {
                    true => "\n".to_string(),
                    false => format!("{line}\n"),
                })
                .collect();
            (id.clone(), kept)
        })
        .collect()
}

async fn run(pipeline: &Pipeline, deliveries: &[(String, String)]) {
    for (id, text) in deliveries {
        let batch = RawBatch::from_bytes(id, InputFormat::JsonLines, text.clone()).unwrap();
        pipeline.run_batch(batch).await.unwrap();
    }
}

async fn compared(storage: &StorageRef) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for (table, sql) in COMPARED {
        let location = storage.layout().table_location(&table.parse().unwrap());
        all.push(table_rows(storage, &location, sql).await.unwrap());
    }
    all
}

/// Every file under `root` whose bytes hold `needle`, or, for a Parquet
/// file (whose pages may be compressed), any of whose decoded values does.
fn files_holding(root: &Path, needle: &str) -> Vec<String> {
    use lake::arrow::util::display::array_value_to_string;
    use lake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let raw = memchr_find(&bytes, needle.as_bytes());
            let decoded = path.extension().is_some_and(|e| e == "parquet")
                && ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap()
                    .any(|batch| {
                        let batch = batch.unwrap();
                        batch.columns().iter().any(|column| {
                            (0..batch.num_rows()).any(|row| {
                                array_value_to_string(column, row).unwrap().contains(needle)
                            })
                        })
                    });
            if raw || decoded {
                found.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// Panics with the rows only one side has, per table.
#[track_caller]
fn assert_same(got: &[Vec<String>], want: &[Vec<String>]) {
    for ((table, _), (got, want)) in COMPARED.iter().zip(got.iter().zip(want)) {
        let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
        let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).collect();
        assert!(
            extra.is_empty() && missing.is_empty() && got.len() == want.len(),
            "{table}: {} rows, {} wanted\nonly here: {extra:#?}\nmissing: {missing:#?}",
            got.len(),
            want.len()
        );
    }
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customer_leaves_no_byte_behind_and_the_lake_equals_one_that_never_saw_them() {
    let deliveries = subject_deliveries();
    let (dir, expected_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (storage, pipeline) = pipeline_at(dir.path()).await;
    let (expected_storage, expected) = pipeline_at(expected_dir.path()).await;
    run(&pipeline, &deliveries).await;
    run(&expected, &without_subject(&deliveries)).await;
    // Maintenance before the erasure: bronze compacted, earlier files
    // waiting for vacuum (still holding the subject).
    pipeline.maintain().await.unwrap();
    let leaks = files_holding(dir.path(), SUBJECT);
    for zone in ["bronze/", "silver/", "_dlq/", "_quarantine/"] {
        assert!(
            leaks.iter().any(|f| f.starts_with(zone)),
            "the workload should put the subject in {zone}: {leaks:#?}"
        );
    }
    let bronze_id: lake::TableId = "bronze.shop.orders".parse().unwrap();
    let bronze_location = storage.layout().table_location(&bronze_id);
    let bronze_before = table_rows(&storage, &bronze_location, "SELECT _raw FROM t")
        .await
        .unwrap();
    let subject = Subject::new("customer_id", [SUBJECT]).unwrap();

    // A dry run counts and writes nothing.
    let version = || async {
        storage
            .open_table(&bronze_location)
            .await
            .unwrap()
            .version()
    };
    let before = version().await;
    let plan = pipeline
        .erase(subject.clone())
        .with_key(key())
        .with_dry_run(true)
        .await
        .unwrap();
    assert_eq!(version().await, before);
    assert_eq!(files_holding(dir.path(), SUBJECT), leaks);
    let planned_bronze = plan
        .erased
        .iter()
        .find(|t| t.table == "bronze.shop.orders")
        .unwrap();
    let named = bronze_before
        .iter()
        .filter(|raw| subject.named_in(raw.as_bytes()))
        .count() as u64;
    assert!(named > 10, "{named}");
    assert_eq!(planned_bronze.rows, named);

    let report = pipeline
        .erase(subject.clone())
        .with_key(key())
        .with_requested_by("ticket 7731")
        .await
        .unwrap();

    // Nothing of the subject is left, in any file.
    assert_eq!(files_holding(dir.path(), SUBJECT), Vec::<String>::new());
    // Bronze lost exactly the subject's rows; silver and gold are those of
    // a lake that never received them.
    let bronze_after = table_rows(
        &storage,
        &storage.layout().table_location(&bronze_id),
        "SELECT _raw FROM t",
    )
    .await
    .unwrap();
    assert_eq!(
        bronze_before.len() as u64 - bronze_after.len() as u64,
        named
    );
    let want = compared(&expected_storage).await;
    assert!(!want[1].is_empty() && !want[2].is_empty());
    assert_same(&compared(&storage).await, &want);

    // The record counts what went, and holds the subject only as a hash.
    let record_path = dir.path().join(report.record.as_deref().unwrap());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(record["requested_by"], "ticket 7731");
    assert_eq!(record["subject_hashes"][0], key().hash(SUBJECT));
    let rows_of = |table: &str| {
        record["erased"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows_of("bronze.shop.orders"), named);
    assert_eq!(
        rows_of("bronze.shop.orders (dead letters)"),
        2,
        "{record:#}"
    );
    assert_eq!(
        report.rows_erased(),
        record["erased"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["rows"].as_u64().unwrap())
            .sum::<u64>()
    );

    // A rerun brings nothing back.
    pipeline.run_pending().await.unwrap();
    assert_same(&compared(&storage).await, &want);
    assert_eq!(files_holding(dir.path(), SUBJECT), Vec::<String>::new());

    // A later event of the subject is new data, processed as usual.
    let late = vec![(
        "after-erasure".to_string(),
        format!(
            "{{\"order_id\":\"m7000\",\"customer_id\":\"{SUBJECT}\",\"category\":\"toys\",\"region\":\"eu\",\"amount\":9,\"status\":\"placed\",\"order_date\":\"2025-11-03\",\"op\":\"c\",\"updated_at\":\"2025-11-21T00:00:00Z\"}}\n"
        ),
    )];
    run(&pipeline, &late).await;
    run(&expected, &late).await;
    assert_same(
        &compared(&storage).await,
        &compared(&expected_storage).await,
    );
    // And a rebuild after all this finds every batch's remaining rows.
    let silver = &pipeline.refine_stages()[0];
    let context = lake::StageContext::new(storage.clone());
    silver.rebuild(&context).await.unwrap();
    assert_eq!(
        compared(&storage).await[1],
        compared(&expected_storage).await[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_needs_a_key_and_a_subject_that_names_something() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pipeline) = pipeline_at(dir.path()).await;
    let subject = Subject::new("customer_id", [SUBJECT]).unwrap();
    // Without a key passed, the environment's is needed.
    if std::env::var(lake::pii::KEY_ENV).is_err() {
        let error = pipeline.erase(subject).await.unwrap_err().to_string();
        assert!(error.contains(lake::pii::KEY_ENV), "{error}");
    }
    assert!(Subject::new("customer_id", [" "]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_erase_plans_refuses_unknown_tables_and_needs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pipeline) = pipeline_at(dir.path()).await;
    run(&pipeline, &subject_deliveries()[..4]).await;
    let root = dir.path().to_str().unwrap();
    let key = [(
        lake::pii::KEY_ENV.to_string(),
        "a test key of the cli test".to_string(),
    )];
    let erase = |extra: &[&str]| {
        let mut args = vec![
            "erase",
            "--lake",
            root,
            "--column",
            "customer_id",
            "--value",
            SUBJECT,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = erase(&["--dry-run", "--json", "--tables", "bronze.shop.orders"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plan = crate::support::lake_with_env(dir.path(), &key, &args)
        .expect(0)
        .json();
    assert_eq!(plan["dry_run"], true);
    let bronze = plan["erased"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "bronze.shop.orders")
        .unwrap();
    assert!(bronze["rows"].as_u64().unwrap() > 0, "{plan:#}");
    assert!(bronze["version"].is_null());
    // Nothing was written: the subject is still there.
    assert!(!files_holding(dir.path(), SUBJECT).is_empty());

    let args = erase(&["--tables", "silver.sales.orders"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = crate::support::lake_with_env(dir.path(), &key, &args).expect(2);
    ran.readable_error("bronze.shop.orders");
    if std::env::var(lake::pii::KEY_ENV).is_err() {
        let args = erase(&[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = crate::support::lake_with_env(dir.path(), &[], &args).expect(2);
        ran.readable_error(lake::pii::KEY_ENV);
    }
}
