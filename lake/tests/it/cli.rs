//! The `lake` binary against real files: what a new user does, and what
//! an operator's scripts rely on (exit codes, JSON, one-line errors).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lake::config::PipelineConfig;
use lake::{ObjectStorage, RawBatch, StorageRef, TableId};
use lake_testing::table_rows;

use crate::support::lake;

const SILVER_ORDERS: &str = "SELECT order_id, customer_id, category, region, amount, status, \
     order_date, valid_from, valid_to, is_current FROM t ORDER BY order_id, valid_from";
const GOLD_SUMMARY: &str = "SELECT order_date, category, region, total_count, total_value, \
     unique_users, value_per_user FROM t ORDER BY order_date, category, region";

fn storage(root: &Path) -> StorageRef {
    Arc::new(ObjectStorage::from_url(root.to_str().unwrap()).unwrap())
}

async fn rows(root: &Path, table: &str, sql: &str) -> Vec<String> {
    let storage = storage(root);
    let id: TableId = table.parse().unwrap();
    let location = lake::Storage::layout(storage.as_ref()).table_location(&id);
    table_rows(&storage, &location, sql).await.unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the command lines `lake init` printed under "next:", as a user
/// would paste them.
fn follow(dir: &Path, printed: &str) -> Vec<String> {
    let mut outputs = Vec::new();
    for line in printed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("lake "))
    {
        // The printed lines quote the SQL with double quotes.
        let mut args: Vec<String> = Vec::new();
        let mut rest = line;
        while !rest.is_empty() {
            rest = rest.trim_start();
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').expect("closing quote");
                args.push(quoted[..end].to_string());
                rest = &quoted[end + 1..];
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                args.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        outputs.push(lake(dir, &args).expect(0).stdout);
    }
    outputs
}

#[test]
fn help_lists_every_command_and_every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let help = lake(dir.path(), &["--help"]).expect(0).stdout;
    for command in ["init", "run", "pending", "status", "sql"] {
        assert!(help.contains(command), "{command} in:\n{help}");
        let own = lake(dir.path(), &[command, "--help"]).expect(0).stdout;
        assert!(
            own.contains("Example"),
            "{command} --help shows an example:\n{own}"
        );
    }
    // Bad usage exits 2 with clap's message.
    let ran = lake(dir.path(), &["frobnicate"]).expect(2);
    assert!(ran.stderr.contains("frobnicate"), "{}", ran.stderr);
    lake(dir.path(), &["run"]).expect(2);
}

#[tokio::test]
async fn init_then_the_commands_it_prints_work_and_build_both_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let printed = lake(dir.path(), &["init", "demo"]).expect(0).stdout;
    let outputs = follow(dir.path(), &printed);
    assert_eq!(outputs.len(), 4, "{printed}");
    assert!(outputs[0].contains("reconciles"), "{}", outputs[0]);
    assert!(outputs[1].contains("up to date"), "{}", outputs[1]);
    assert!(outputs[2].contains("total_value"), "{}", outputs[2]);
    // The lake is where lake.toml says, relative to the file.
    let root = dir.path().join("demo/lake");
    let silver = rows(&root, "silver.crm.customers", "SELECT customer_id, plan, monthly_fee, valid_from, valid_to FROM t ORDER BY customer_id, valid_from").await;
    assert_eq!(
        silver,
        [
            "1|pro|49.0|2025-11-01T09:00:00Z|2025-11-02T10:00:00Z",
            "1|enterprise|199.0|2025-11-02T10:00:00Z|",
            "2|basic|9.0|2025-11-01T09:05:00Z|",
            "3|basic|9.0|2025-11-01T09:10:00Z|2025-11-02T10:10:00Z",
            "4|pro|49.0|2025-11-02T10:15:00Z|",
        ]
    );
    // init refuses to overwrite what a user may have edited.
    let ran = lake(dir.path(), &["init", "demo"]).expect(2);
    ran.readable_error("--force");
    lake(dir.path(), &["init", "demo", "--force"]).expect(0);
}

#[tokio::test]
async fn lake_run_without_a_config_gives_the_tables_lake_bench_run_gives() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), &["init", "w"]).expect(0);
    let input = dir.path().join("w/incoming/orders");
    let cli_root = dir.path().join("cli");
    let ran = lake(
        dir.path(),
        &[
            "run",
            "--input",
            path(&input),
            "--lake",
            path(&cli_root),
            "--json",
        ],
    )
    .expect(0);
    let summary = &ran.json()["summary"];
    assert_eq!(summary["batches"], 3);
    assert_eq!(summary["reconciles"], true);

    // What `lake-bench run` does: the reference configuration, one run per
    // file in name order.
    let lib_root = dir.path().join("lib");
    let pipeline = PipelineConfig::reference()
        .unwrap()
        .build(Some(path(&lib_root)))
        .await
        .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&input)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        pipeline
            .run_batch(RawBatch::from_file(file).unwrap())
            .await
            .unwrap();
    }
    for (table, sql) in [
        ("silver.sales.orders", SILVER_ORDERS),
        ("gold.analytics.daily_summary", GOLD_SUMMARY),
        (
            "bronze.shop.orders",
            "SELECT _batch_id, count(*) FROM t GROUP BY 1 ORDER BY 1",
        ),
    ] {
        let cli = rows(&cli_root, table, sql).await;
        assert!(!cli.is_empty(), "{table}");
        assert_eq!(cli, rows(&lib_root, table, sql).await, "{table}");
    }
    assert_eq!(summary["totals"]["bronze_rows"], 1203);
    assert_eq!(summary["totals"]["dead_lettered"], 3);

    // Running again finds every batch done and adds nothing.
    let again = lake(
        dir.path(),
        &[
            "run",
            "--input",
            path(&input),
            "--lake",
            path(&cli_root),
            "--json",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(again["summary"]["batches_already_ingested"], 3);
    assert_eq!(again["summary"]["totals"]["bronze_rows"], 0);
}

/// Two bronze tables of different formats in one configuration, with a
/// user's own silver and gold specs: one `lake run` over one folder.
const TWO_SOURCES: &str = r#"
lake = "lake"

[[bronze]]
table = "bronze.shop.orders"
inputs = ["*.jsonl"]

[[bronze]]
table = "bronze.crm.customers"
inputs = ["*.csv"]
options = { csv = { null_values = [""] } }

[[silver]]
stage = "orders"
source = "bronze.shop.orders"
target = "silver.sales.orders"

[[silver]]
[silver.spec]
source = "bronze.crm.customers"
target = "silver.crm.customers"
keys = ["tenant", "customer_id"]
sequence_by = "updated_at"
deletes = { column = "op", values = ["d"] }
columns = [
    { name = "tenant" },
    { name = "customer_id", from = "id", type = "int64" },
    { name = "country", expr = "upper(country)" },
    { name = "fee", type = "float64" },
    { name = "updated_at", type = "timestamp" },
]

[[gold]]
daily_summary = { source = "silver.sales.orders", target = "gold.analytics.daily_summary" }

[[gold]]
[gold.spec]
target = "gold.crm.fees"
source = "silver.crm.customers"
group_by = ["tenant", "country"]
partition_by = "tenant"
metrics = [{ name = "customers", fn = "count" }, { name = "fees", fn = "sum", column = "fee" }]
"#;

#[tokio::test]
async fn two_bronze_tables_of_different_formats_and_own_specs_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), &["init", "w"]).expect(0);
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(
        dir.path().join("w/incoming/orders/batch-00001.jsonl"),
        mixed.join("a-orders.jsonl"),
    )
    .unwrap();
    std::fs::write(
        mixed.join("b-customers.csv"),
        "tenant,id,country,fee,updated_at,op\n\
         t1,1,fr,10.5,2025-11-01T09:00:00Z,c\n\
         t1,2,us,7,2025-11-01T09:00:00Z,c\n\
         t2,1,de,oops,2025-11-01T09:00:00Z,c\n",
    )
    .unwrap();
    std::fs::write(
        mixed.join("c-customers.csv"),
        "tenant,id,country,fee,updated_at,op\n\
         t1,1,fr,12,2025-11-02T09:00:00Z,u\n\
         t1,2,us,7,2025-11-02T09:00:00Z,d\n\
         t2,1,de,3,2025-11-02T09:00:00Z,c\n",
    )
    .unwrap();
    std::fs::write(mixed.join("_SUCCESS"), "").unwrap();
    std::fs::write(dir.path().join("two.toml"), TWO_SOURCES).unwrap();
    let ran = lake(
        dir.path(),
        &["run", "--config", "two.toml", "--input", "mixed", "--json"],
    )
    .expect(0);
    // A file with no input format is reported, never silently skipped.
    assert!(ran.stderr.contains("_SUCCESS"), "{}", ran.stderr);
    let out = ran.json();
    assert_eq!(out["not_read"].as_array().unwrap().len(), 1);
    let tables: Vec<_> = out["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["table"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tables,
        [
            "bronze.shop.orders",
            "bronze.crm.customers",
            "bronze.crm.customers"
        ]
    );
    assert_eq!(out["summary"]["reconciles"], true);
    assert_eq!(out["summary"]["totals"]["quarantined"], 1, "{out}");

    let root = dir.path().join("lake");
    assert_eq!(
        rows(
            &root,
            "silver.crm.customers",
            "SELECT tenant, customer_id, country, fee, valid_from, valid_to, is_current FROM t \
             ORDER BY tenant, customer_id, valid_from"
        )
        .await,
        [
            "t1|1|FR|10.5|2025-11-01T09:00:00Z|2025-11-02T09:00:00Z|false",
            "t1|1|FR|12.0|2025-11-02T09:00:00Z||true",
            "t1|2|US|7.0|2025-11-01T09:00:00Z|2025-11-02T09:00:00Z|false",
            "t2|1|DE|3.0|2025-11-02T09:00:00Z||true",
        ]
    );
    assert_eq!(
        rows(
            &root,
            "gold.crm.fees",
            "SELECT tenant, country, customers, fees FROM t ORDER BY tenant, country"
        )
        .await,
        ["t1|FR|1|12.0", "t2|DE|1|3.0"]
    );
    let orders = rows(&root, "silver.sales.orders", "SELECT count(*) FROM t").await;
    assert_ne!(orders, ["0"]);
    // The quarantined row is there, with its reason.
    let storage = storage(&root);
    let quarantine = lake::Storage::layout(storage.as_ref())
        .quarantine(&"silver.crm.customers".parse().unwrap());
    let reasons = table_rows(&storage, &quarantine, "SELECT reason FROM t")
        .await
        .unwrap();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("fee"), "{reasons:?}");

    // SQL across zones, as JSON and CSV, and time travel.
    let json = lake(
        dir.path(),
        &[
            "sql",
            "--config",
            "two.toml",
            "--json",
            "SELECT tenant, customers, (SELECT count(*) FROM silver.sales.orders) > 0 AS orders \
             FROM gold.crm.fees ORDER BY tenant",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(json[0]["tenant"], "t1");
    assert_eq!(json[1]["customers"], 1);
    assert_eq!(json[1]["orders"], true);
    let csv = lake(
        dir.path(),
        &[
            "sql",
            "-c",
            "two.toml",
            "--format",
            "csv",
            "SELECT tenant, fees FROM gold.crm.fees ORDER BY tenant",
        ],
    )
    .expect(0)
    .stdout;
    assert_eq!(csv, "tenant,fees\nt1,12.0\nt2,3.0\n");
    let first = lake(
        dir.path(),
        &[
            "sql",
            "-c",
            "two.toml",
            "--format",
            "csv",
            "--at",
            "first=silver.crm.customers@1",
            "SELECT count(*) AS n FROM first",
        ],
    )
    .expect(0)
    .stdout;
    assert_eq!(first, "n\n2\n");
    // Queries only.
    lake(
        dir.path(),
        &["sql", "-c", "two.toml", "DROP TABLE gold.crm.fees"],
    )
    .expect(2)
    .readable_error("DDL");
    lake(
        dir.path(),
        &["sql", "-c", "two.toml", "--at", "x=nope", "SELECT 1"],
    )
    .expect(2)
    .readable_error("--at");
}

#[tokio::test]
async fn status_shows_what_each_stage_has_not_processed_and_pending_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), &["init", "w"]).expect(0);
    // Another service ingests: a pipeline with bronze only.
    std::fs::write(
        dir.path().join("bronze.toml"),
        "lake = \"lake\"\n[[bronze]]\ntable = \"bronze.shop.orders\"\n",
    )
    .unwrap();
    lake(
        dir.path(),
        &["run", "-c", "bronze.toml", "--input", "w/incoming/orders"],
    )
    .expect(0);
    let status = lake(dir.path(), &["status", "--lake", "lake", "--json"])
        .expect(0)
        .json();
    let bronze = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "bronze.shop.orders")
        .unwrap();
    assert_eq!(bronze["version"], 3);
    assert_eq!(bronze["rows"], 1203);
    assert_eq!(status["stages"][0]["state"], "never run");
    assert_eq!(status["stages"][0]["versions_behind"], 4);

    let pending = lake(dir.path(), &["pending", "--lake", "lake", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        pending["stages"][0]["outcome"]["rows_read"], 1203,
        "{pending}"
    );
    let status = lake(dir.path(), &["status", "--lake", "lake", "--json"])
        .expect(0)
        .json();
    for stage in status["stages"].as_array().unwrap() {
        assert_eq!(stage["state"], "up to date", "{stage}");
        assert_eq!(stage["versions_behind"], 0);
    }
    let silver = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "silver.sales.orders")
        .unwrap();
    let expected = rows(
        &dir.path().join("lake"),
        "silver.sales.orders",
        "SELECT count(*) FROM t",
    )
    .await;
    assert_eq!(silver["rows"].to_string(), expected[0]);
    // People get a table.
    let text = lake(dir.path(), &["status", "--lake", "lake"])
        .expect(0)
        .stdout;
    assert!(
        text.contains("silver.sales.orders") && text.contains("up to date"),
        "{text}"
    );
}

#[test]
fn bad_configuration_and_bad_input_exit_non_zero_with_one_readable_line_per_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.jsonl"), "{\"order_id\":\"o1\"}\n").unwrap();
    std::fs::write(d.join("typo.toml"), "catalogue = \"file\"\n").unwrap();
    lake(d, &["run", "-c", "typo.toml", "--input", "a.jsonl"])
        .expect(2)
        .readable_error("catalogue");
    lake(d, &["run", "-c", "missing.toml", "--input", "a.jsonl"])
        .expect(2)
        .readable_error("missing.toml");
    lake(d, &["run", "--input", "no-such-dir", "--lake", "l"])
        .expect(2)
        .readable_error("no-such-dir");
    std::fs::write(
        d.join("two.toml"),
        "[[bronze]]\ntable = \"bronze.a.b\"\ninputs = [\"*.csv\"]\n[[bronze]]\ntable = \"bronze.a.c\"\ninputs = [\"x/\"]\n",
    )
    .unwrap();
    lake(d, &["run", "-c", "two.toml", "--input", "a.jsonl"])
        .expect(2)
        .readable_error("a.jsonl");
    // The same file again with other bytes: a failed run naming the file,
    // and nothing of the second delivery in bronze.
    lake(d, &["run", "--input", "a.jsonl", "--lake", "l"]).expect(0);
    std::fs::write(d.join("a.jsonl"), "{\"order_id\":\"o2\"}\n").unwrap();
    lake(d, &["run", "--input", "a.jsonl", "--lake", "l"])
        .expect(1)
        .readable_error("a.jsonl");
    let status = lake(d, &["status", "--lake", "l", "--json"])
        .expect(0)
        .json();
    let bronze = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "bronze.shop.orders")
        .unwrap()
        .clone();
    assert_eq!(bronze["rows"], 1, "{bronze}");
}

/// `lake run --input s3://bucket/prefix/` into a lake on S3 (moto_server).
#[cfg(feature = "aws")]
#[tokio::test]
async fn an_s3_prefix_is_listed_routed_and_ingested_once() {
    use lake::Storage;
    use lake::object_store::{ObjectStoreExt, PutPayload, path::Path as ObjectPath};

    let endpoint = lake_testing::moto_endpoint();
    let bucket = lake_testing::moto_bucket(&endpoint);
    let options = lake_testing::moto_s3_options(&endpoint);
    let store = ObjectStorage::from_url_opts(&format!("s3://{bucket}/"), options.clone())
        .unwrap()
        .object_store();
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), &["init", "w"]).expect(0);
    for name in ["batch-00001.jsonl", "batch-00002.jsonl"] {
        let bytes = std::fs::read(dir.path().join("w/incoming/orders").join(name)).unwrap();
        store
            .put(
                &ObjectPath::from(format!("incoming/orders/{name}")),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
    }
    store
        .put(
            &ObjectPath::from("incoming/orders/_SUCCESS"),
            PutPayload::from_static(b""),
        )
        .await
        .unwrap();
    let mut config = format!("lake = \"s3://{bucket}/lake\"\n[storage]\n");
    for (key, value) in &options {
        config.push_str(&format!("{key} = \"{value}\"\n"));
    }
    config.push_str("[[bronze]]\ntable = \"bronze.shop.orders\"\ninputs = [\"s3://");
    config.push_str(&bucket);
    config.push_str("/incoming/orders/\"]\n[[silver]]\nstage = \"orders\"\nsource = \"bronze.shop.orders\"\ntarget = \"silver.sales.orders\"\n");
    std::fs::write(dir.path().join("s3.toml"), config).unwrap();
    let input = format!("s3://{bucket}/incoming/orders/");
    let ran = lake(
        dir.path(),
        &["run", "-c", "s3.toml", "--input", &input, "--json"],
    )
    .expect(0);
    assert!(ran.stderr.contains("_SUCCESS"), "{}", ran.stderr);
    let out = ran.json();
    assert_eq!(out["summary"]["batches_ingested"], 2, "{out}");
    assert_eq!(out["summary"]["totals"]["bronze_rows"], 802);
    assert_eq!(out["summary"]["reconciles"], true);
    // The same objects again: their ETags match, nothing is added.
    let again = lake(
        dir.path(),
        &["run", "-c", "s3.toml", "--input", &input, "--json"],
    )
    .expect(0)
    .json();
    assert_eq!(again["summary"]["batches_already_ingested"], 2);
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url_opts(&format!("s3://{bucket}/lake"), options).unwrap());
    let location = storage
        .layout()
        .table_location(&"silver.sales.orders".parse().unwrap());
    let silver = table_rows(
        &storage,
        &location,
        "SELECT count(DISTINCT order_id) FROM t",
    )
    .await
    .unwrap();
    assert_eq!(silver, ["300"]);
}
