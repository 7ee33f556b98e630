//! Declarative silver specs (`SilverSpec`) over real bronze and silver
//! tables: mapping, casts, derived columns, quarantine, compound keys,
//! tracked-column lists, delete rules, null-ignoring updates, struct
//! sequences and validity names.

use lake_core::{RefineReport, StorageExt, TableId};
use lake_silver::{ColumnSpec, ColumnType, DeleteRule, SilverSpec, SilverTable};

use crate::support::Lake;

fn customers_bronze() -> TableId {
    TableId::bronze("crm", "customers").unwrap()
}

const CUSTOMERS: &str = r#"
source = "bronze.crm.customers"
target = "silver.crm.customers"
keys = ["tenant", "customer_id"]
sequence_by = "updated_at"
track_history = { exclude = ["last_seen"] }
deletes = { column = "op", values = ["D"] }
validity = { from = "start_at", to = "end_at", current = "current" }

[[columns]]
name = "tenant"
type = "string"

[[columns]]
name = "customer_id"
from = "id"
type = "int64"

[[columns]]
name = "email_domain"
expr = "lower(split_part(email, '@', 2))"

[[columns]]
name = "tier"

[[columns]]
name = "age"
type = "int32"

[[columns]]
name = "last_seen"

[[columns]]
name = "updated_at"
type = "timestamp"
"#;

fn customer(tenant: &str, id: &str, rest: &str, at: &str) -> String {
    format!("{{\"tenant\":{tenant},\"id\":{id},{rest},\"updated_at\":\"2025-11-04T{at}:00Z\"}}")
}

async fn run(lake: &Lake, spec: &SilverSpec) -> RefineReport {
    let report = SilverTable::new(spec.clone())
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap();
    report.reconcile().unwrap();
    report
}

const CUSTOMER_ROWS: &str = "SELECT tenant, customer_id, email_domain, tier, age, last_seen, \
     start_at, end_at, current FROM t ORDER BY tenant, customer_id, start_at";

#[tokio::test]
async fn a_toml_spec_maps_casts_derives_quarantines_and_keeps_untracked_columns_in_place() {
    let lake = Lake::new();
    let spec = SilverSpec::from_toml(CUSTOMERS).unwrap();
    let gold = r#""email":"A@Example.com","tier":"gold""#;
    lake.ingest_into(
        &customers_bronze(),
        "b1",
        &[
            customer(
                "\"t1\"",
                "1",
                &format!(r#"{gold},"age":30,"last_seen":"mon","op":"I""#),
                "10:00",
            ),
            // Only the untracked `last_seen` changes: no new version.
            customer(
                "\"t1\"",
                "1",
                &format!(r#"{gold},"age":30,"last_seen":"tue","op":"U""#),
                "11:00",
            ),
            customer(
                "\"t2\"",
                "1",
                r#""email":"b@x.org","age":"x","op":"I""#,
                "10:00",
            ),
            customer("null", "2", r#""email":"c@x.org","op":"I""#, "10:00"),
            customer("\"t1\"", "\"two\"", r#""op":"I""#, "10:00"),
            r#"{"tenant":"t1","id":3,"updated_at":"yesterday","op":"I"}"#.to_string(),
            customer(
                "\"t1\"",
                "1",
                r#""email":"a@example.com","tier":"platinum","age":31,"last_seen":"wed","op":"U""#,
                "12:00",
            ),
            customer(
                "\"t2\"",
                "5",
                r#""email":"e@x.org","tier":"gold","op":"I""#,
                "09:00",
            ),
            customer("\"t2\"", "5", r#""op":"D""#, "13:00"),
        ],
    )
    .await;
    let report = run(&lake, &spec).await;
    assert_eq!(
        (report.rows_read, report.valid, report.quarantined),
        (9, 5, 4)
    );
    let silver = spec.target.clone();
    let history = vec![
        "t1|1|example.com|gold|30|tue|2025-11-04T10:00:00Z|2025-11-04T12:00:00Z|false",
        "t1|1|example.com|platinum|31|wed|2025-11-04T12:00:00Z||true",
        "t2|5|x.org|gold|||2025-11-04T09:00:00Z|2025-11-04T13:00:00Z|false",
    ];
    assert_eq!(lake.rows(&silver, CUSTOMER_ROWS).await, history);
    let quarantine = lake
        .rows_at(
            &lake.storage.layout().quarantine(&silver),
            "SELECT reason, _source_line FROM t ORDER BY _source_line",
        )
        .await;
    assert_eq!(
        quarantine,
        [
            "bad_age|3",
            "null_tenant|4",
            "bad_customer_id|5",
            "bad_updated_at|6"
        ]
    );
    // The event log keeps the delivered events with their operation.
    let changes = lake
        .rows(
            &silver.changes_table().unwrap(),
            "SELECT customer_id, _op FROM t ORDER BY updated_at, customer_id",
        )
        .await;
    // Only the op value `c` is a create; `I` is an upsert like `U`.
    assert_eq!(changes, ["5|u", "1|u", "1|u", "1|u", "5|d"]);

    // Late events that change only `last_seen` update the version they fall
    // in when they are its latest event, and nothing else; a rerun is a no-op.
    lake.ingest_into(
        &customers_bronze(),
        "b2",
        &[
            customer(
                "\"t1\"",
                "1",
                &format!(r#"{gold},"age":30,"last_seen":"late","op":"U""#),
                "10:30",
            ),
            customer(
                "\"t1\"",
                "1",
                &format!(r#"{gold},"age":30,"last_seen":"later","op":"U""#),
                "11:30",
            ),
        ],
    )
    .await;
    let report = run(&lake, &spec).await;
    assert_eq!((report.valid, report.quarantined), (2, 0));
    let mut history = history;
    history[0] = "t1|1|example.com|gold|30|later|2025-11-04T10:00:00Z|2025-11-04T12:00:00Z|false";
    assert_eq!(lake.rows(&silver, CUSTOMER_ROWS).await, history);
    let rerun = run(&lake, &spec).await;
    assert_eq!(rerun.rows_read, 0);
    assert_eq!(lake.rows(&silver, CUSTOMER_ROWS).await, history);
}

fn stock_spec(target: &str) -> SilverSpec {
    let column = |name: &str, data_type| ColumnSpec::new(name).unwrap().cast(data_type);
    SilverSpec::new(
        TableId::bronze("erp", "stock").unwrap(),
        target.parse().unwrap(),
        &["sku"],
        &["epoch", "lsn"],
    )
    .unwrap()
    .column(column("sku", ColumnType::String))
    .column(column("price", ColumnType::Float64))
    .column(column("stock", ColumnType::Int64))
    .column(column("epoch", ColumnType::Int64))
    .column(column("lsn", ColumnType::Int64))
    .with_deletes(DeleteRule::Condition {
        condition: "deleted = true".to_string(),
    })
    .with_ignore_null_updates(true)
}

fn stock(epoch: i64, lsn: i64, rest: &str) -> String {
    format!("{{\"sku\":\"a\",\"epoch\":{epoch},\"lsn\":{lsn},{rest}}}")
}

#[tokio::test]
async fn null_updates_carry_values_over_struct_sequences_in_any_batch_order() {
    let lake = Lake::new();
    let bronze = TableId::bronze("erp", "stock").unwrap();
    let events = [
        stock(1, 5, r#""price":10,"stock":3"#),
        // A null price keeps 10; lsn 10 sorts after 5 as a number, not as text.
        stock(1, 10, r#""price":null,"stock":4"#),
        // A new epoch outranks any lsn; the absent stock keeps 4.
        stock(2, 1, r#""price":12"#),
        stock(2, 2, r#""deleted":true"#),
        // After a delete nothing is in force: its nulls stay null.
        stock(2, 3, r#""stock":1"#),
    ];
    let one = stock_spec("silver.erp.stock_at_once");
    let split = stock_spec("silver.erp.stock");
    // Batches out of order, the lsn-10 event last (late), processed one by one.
    for (i, batch) in [vec![4, 0], vec![2, 3], vec![1]].into_iter().enumerate() {
        let lines: Vec<String> = batch.iter().map(|&e| events[e].clone()).collect();
        lake.ingest_into(&bronze, &format!("b{i}"), &lines).await;
        run(&lake, &split).await;
    }
    // The same events all at once.
    run(&lake, &one).await;
    let sql = "SELECT sku, price, stock, valid_from.epoch, valid_from.lsn, valid_to.epoch, \
               valid_to.lsn, is_current FROM t ORDER BY valid_from.epoch, valid_from.lsn";
    let want = [
        "a|10.0|3|1|5|1|10|false",
        "a|10.0|4|1|10|2|1|false",
        "a|12.0|4|2|1|2|2|false",
        "a||1|2|3|||true",
    ];
    assert_eq!(lake.rows(&split.target, sql).await, want);
    assert_eq!(lake.rows(&one.target, sql).await, want);
}

#[tokio::test]
async fn scd1_from_a_spec_keeps_the_latest_state_and_drops_deleted_keys() {
    let lake = Lake::new();
    let bronze = TableId::bronze("erp", "stock").unwrap();
    let spec = stock_spec("silver.erp.stock_now").with_mode(lake_silver::Mode::Scd1);
    lake.ingest_into(
        &bronze,
        "b1",
        &[
            stock(1, 5, r#""price":10,"stock":3"#),
            stock(1, 10, r#""stock":4"#),
            r#"{"sku":"b","epoch":1,"lsn":1,"price":1,"stock":1}"#.to_string(),
        ],
    )
    .await;
    run(&lake, &spec).await;
    let delete = r#"{"sku":"b","epoch":1,"lsn":2,"deleted":true}"#.to_string();
    lake.ingest_into(&bronze, "b2", &[delete]).await;
    run(&lake, &spec).await;
    let rows = lake
        .rows(
            &spec.target,
            "SELECT sku, price, stock, valid_to IS NULL, is_current FROM t ORDER BY sku",
        )
        .await;
    assert_eq!(rows, ["a|10.0|4|true|true"]);
}

#[test]
fn a_bad_spec_names_the_field() {
    let error = |text: &str| SilverSpec::from_toml(text).unwrap_err().to_string();
    let base = |extra: &str| {
        format!(
            "source = \"bronze.a.b\"\ntarget = \"silver.a.b\"\nkeys = [\"k\"]\nsequence_by = \"s\"\n{extra}\n\
             [[columns]]\nname = \"k\"\n[[columns]]\nname = \"s\"\ntype = \"timestamp\"\n[[columns]]\nname = \"v\"\n"
        )
    };
    assert!(SilverSpec::from_toml(&base("")).is_ok());
    assert!(error(&base("track_history = { include = [\"k\"] }")).contains("track_history"));
    assert!(
        error(&base("track_history = { include = [\"w\"] }"))
            .contains("`w` is not one of the columns")
    );
    assert!(error(&base("cluster_by = \"s\"")).contains("cluster_by"));
    assert!(error(&base("validity = { from = \"v\" }")).contains("validity"));
    assert!(error(&base("deletes = { column = \"op\", values = [] }")).contains("deletes"));
    // The spec parses; the reference typer refuses it when the stage is built.
    let reference = SilverSpec::from_toml(&base("typing = \"orders\"")).unwrap();
    let refused = SilverTable::new(reference).unwrap_err().to_string();
    assert!(refused.contains("typing"), "{refused}");
    assert!(error(&base("surprise = 1")).contains("surprise"));
    let bad_type = base("").replace("type = \"timestamp\"", "type = \"timestamptz\"");
    assert!(error(&bad_type).contains("unknown type `timestamptz`"));
    let twice = base("").replace("name = \"v\"", "name = \"k\"");
    assert!(error(&twice).contains("`k` appears twice"));
    let both = base("").replace("name = \"v\"", "name = \"v\"\nfrom = \"x\"\nexpr = \"1\"");
    assert!(error(&both).contains("sets both `from` and `expr`"));
    let technical = base("").replace("name = \"v\"", "name = \"_v\"");
    assert!(error(&technical).contains("technical"));
    // Personal-data tags that would break the table are refused.
    let tagged = |column: &str, tag: &str| {
        base("").replace(
            &format!("name = \"{column}\"\n"),
            &format!("name = \"{column}\"\npii = \"{tag}\"\n"),
        )
    };
    assert!(SilverSpec::from_toml(&tagged("k", "hash")).is_ok());
    assert!(SilverSpec::from_toml(&tagged("v", "drop")).is_ok());
    assert!(error(&tagged("k", "mask")).contains("a key can only be hashed"));
    assert!(error(&tagged("s", "hash")).contains("sequence column"));
    assert!(error(&tagged("v", "blur")).contains("blur"));
    let tracked = tagged("v", "drop").replace(
        "sequence_by = \"s\"\n",
        "sequence_by = \"s\"\ntrack_history = { include = [\"v\"] }\n",
    );
    assert!(error(&tracked).contains("dropped column"));
}

const PEOPLE: &str = r#"
source = "bronze.crm.people"
target = "silver.crm.people"
keys = ["person"]
sequence_by = "updated_at"

[[columns]]
name = "person"
pii = "hash"

[[columns]]
name = "email"
pii = "mask"

[[columns]]
name = "phone"
pii = "drop"

[[columns]]
name = "city"

[[columns]]
name = "updated_at"
type = "timestamp"
"#;

#[tokio::test]
async fn personal_data_is_hashed_masked_or_dropped_before_anything_is_written() {
    use lake_core::pii::{PII_METADATA, PiiKey};
    let lake = Lake::new();
    let spec = SilverSpec::from_toml(PEOPLE).unwrap();
    let person = |id: &str, email: &str, city: &str, at: &str| {
        format!(
            "{{\"person\":\"{id}\",\"email\":\"{email}\",\"phone\":\"+44 20 7946 0{at}\",\"city\":\"{city}\",\"updated_at\":\"2025-11-04T10:{at}:00Z\"}}"
        )
    };
    let bronze = TableId::bronze("crm", "people").unwrap();
    lake.ingest_into(
        &bronze,
        "b1",
        &[
            person("p1", "ann@example.com", "Leeds", "00"),
            person("p2", "bo@x.io", "York", "01"),
            // p1 moves: a new version, found under the pseudonym.
            person("p1", "ann@example.com", "Hull", "02"),
        ],
    )
    .await;
    let key = PiiKey::new(b"the key of the pii test".to_vec()).unwrap();
    let stage = SilverTable::new(spec.clone())
        .unwrap()
        .with_pii_key(key.clone());
    stage.run(&lake.storage).await.unwrap().reconcile().unwrap();
    // A later delivery keys p1's events to the same pseudonym.
    lake.ingest_into(
        &bronze,
        "b2",
        &[person("p1", "ann@example.com", "Bath", "03")],
    )
    .await;
    stage.run(&lake.storage).await.unwrap().reconcile().unwrap();

    let (p1, p2) = (key.hash("p1"), key.hash("p2"));
    let mut rows = lake
        .rows(
            &spec.target,
            "SELECT person, email, city, valid_from, is_current FROM t",
        )
        .await;
    rows.sort();
    let mut want = vec![
        format!("{p1}|***********.com|Leeds|2025-11-04T10:00:00Z|false"),
        format!("{p1}|***********.com|Hull|2025-11-04T10:02:00Z|false"),
        format!("{p1}|***********.com|Bath|2025-11-04T10:03:00Z|true"),
        format!("{p2}|*******|York|2025-11-04T10:01:00Z|true"),
    ];
    want.sort();
    assert_eq!(rows, want);
    // Neither table keeps the phone, and both record the tags.
    for table in [spec.target.clone(), spec.target.changes_table().unwrap()] {
        let location = lake.storage.layout().table_location(&table);
        let delta = lake.storage.open_table(&location).await.unwrap();
        let schema = delta.snapshot().unwrap().snapshot().arrow_schema();
        assert!(
            schema.field_with_name("phone").is_err(),
            "{table}: {schema:?}"
        );
        let tag = |name: &str| {
            schema
                .field_with_name(name)
                .unwrap()
                .metadata()
                .get(PII_METADATA)
                .cloned()
        };
        assert_eq!(tag("person").as_deref(), Some("hash"), "{table}");
        assert_eq!(tag("email").as_deref(), Some("mask"), "{table}");
        assert_eq!(tag("city"), None, "{table}");
    }
    let logged = lake
        .rows(
            &spec.target.changes_table().unwrap(),
            "SELECT DISTINCT person FROM t ORDER BY 1",
        )
        .await;
    let mut pseudonyms = vec![p1, p2];
    pseudonyms.sort();
    assert_eq!(logged, pseudonyms);

    // Without a key (none given, none in LAKE_PII_KEY) a hash cannot be made.
    if std::env::var(lake_core::pii::KEY_ENV).is_err() {
        let other = Lake::new();
        other
            .ingest_into(&bronze, "b1", &[person("p1", "a@b.cd", "Leeds", "00")])
            .await;
        let error = SilverTable::new(spec.clone())
            .unwrap()
            .run(&other.storage)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("person") && error.contains("LAKE_PII_KEY"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_bad_expression_names_the_column() {
    let lake = Lake::new();
    let bronze = TableId::bronze("erp", "stock").unwrap();
    lake.ingest_into(&bronze, "b1", &[stock(1, 1, r#""price":1"#)])
        .await;
    let spec = stock_spec("silver.erp.bad").column(
        ColumnSpec::new("half")
            .unwrap()
            .expr("no_such_function(price)"),
    );
    let error = SilverTable::new(spec)
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("columns[5].expr"), "{error}");
    assert!(error.to_string().contains("`half`"), "{error}");

    // SQL over a column bronze never had, with no type, is stored as text.
    let spec = stock_spec("silver.erp.later")
        .column(ColumnSpec::new("later").unwrap().expr("not_yet_seen"));
    run(&lake, &spec).await;
    let rows = lake
        .rows(&spec.target, "SELECT sku, later IS NULL FROM t")
        .await;
    assert_eq!(rows, ["a|true"]);
}

#[tokio::test]
async fn a_rebuild_replays_bronze_under_a_changed_spec_and_runs_stay_incremental_after() {
    let lake = Lake::new();
    let spec = SilverSpec::from_toml(CUSTOMERS).unwrap();
    let line = |last_seen: &str, at: &str| {
        customer(
            "\"t1\"",
            "1",
            &format!(
                r#""email":"a@x.org","tier":"gold","age":30,"last_seen":"{last_seen}","op":"U""#
            ),
            at,
        )
    };
    lake.ingest_into(
        &customers_bronze(),
        "b1",
        &[
            line("mon", "10:00"),
            line("tue", "11:00"),
            "{\"id\":1}".to_string(),
        ],
    )
    .await;
    run(&lake, &spec).await;
    let silver = spec.target.clone();
    let versions = "SELECT last_seen, start_at FROM t ORDER BY start_at";
    assert_eq!(
        lake.rows(&silver, versions).await,
        ["tue|2025-11-04T10:00:00Z"]
    );

    // Now `last_seen` is tracked and a derived column is added.
    let changed = SilverSpec::from_toml(
        &CUSTOMERS
            .replace("track_history = { exclude = [\"last_seen\"] }\n", "")
            .replace(
                "[[columns]]\nname = \"tier\"",
                "[[columns]]\nname = \"senior\"\nexpr = \"age >= 30\"\n\n[[columns]]\nname = \"tier\"",
            ),
    )
    .unwrap();
    let stage = SilverTable::new(changed.clone()).unwrap();
    let report = stage.rebuild(&lake.storage).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!(
        (report.rows_read, report.valid, report.quarantined),
        (3, 2, 1)
    );
    let versions = "SELECT last_seen, senior, start_at FROM t ORDER BY start_at";
    let rebuilt = [
        "mon|true|2025-11-04T10:00:00Z",
        "tue|true|2025-11-04T11:00:00Z",
    ];
    assert_eq!(lake.rows(&silver, versions).await, rebuilt);
    // The quarantine and the event log were replaced, not appended to.
    let quarantine = lake.storage.layout().quarantine(&silver);
    assert_eq!(
        lake.rows_at(&quarantine, "SELECT count(*) FROM t").await,
        ["1"]
    );
    let log = silver.changes_table().unwrap();
    assert_eq!(
        lake.rows(&log, "SELECT count(*), count(senior) FROM t")
            .await,
        ["2|2"]
    );

    // A run after it is incremental, under the new spec.
    assert_eq!(stage.run(&lake.storage).await.unwrap().rows_read, 0);
    lake.ingest_into(&customers_bronze(), "b2", &[line("wed", "12:00")])
        .await;
    let report = stage.run(&lake.storage).await.unwrap();
    assert_eq!(report.rows_read, 1);
    let mut want = rebuilt.to_vec();
    want.push("wed|true|2025-11-04T12:00:00Z");
    assert_eq!(lake.rows(&silver, versions).await, want);
}

const ACCOUNTS: &str = r#"
source = "bronze.pg.accounts"
target = "silver.pg.accounts"
keys = ["id"]
sequence_by = "lsn"
cdc = "debezium"

[[columns]]
name = "id"
type = "int64"

[[columns]]
name = "owner"

[[columns]]
name = "balance"
type = "float64"

[[columns]]
name = "lsn"
expr = "source['lsn']"
type = "int64"
"#;

/// Debezium envelopes through a spec: columns come from `after` (`before`
/// for a delete), `r` is a create, an unknown op is `bad_op`, and the
/// sequence comes from the envelope, so a delete closes the last version
/// instead of tying with it. Kafka Connect's `payload` wrapper is read too.
#[tokio::test]
async fn debezium_envelopes_through_a_spec() {
    let lake = Lake::new();
    let spec = SilverSpec::from_toml(ACCOUNTS).unwrap();
    let row = |id: u32, owner: &str, balance: u32| {
        format!(r#"{{"id":{id},"owner":"{owner}","balance":{balance}}}"#)
    };
    let envelope = |op: &str, before: &str, after: &str, lsn: u32| {
        format!(
            r#"{{"op":"{op}","before":{before},"after":{after},"source":{{"lsn":{lsn}}},"ts_ms":{lsn}}}"#
        )
    };
    lake.ingest_into(
        &spec.source,
        "b1",
        &[
            envelope("c", "null", &row(1, "ann", 10), 100),
            envelope("u", &row(1, "ann", 10), &row(1, "ann", 25), 200),
            envelope("r", "null", &row(2, "bob", 5), 50),
            envelope("d", &row(2, "bob", 5), "null", 300),
            envelope("x", "null", &row(3, "cy", 1), 1),
        ],
    )
    .await;
    let report = run(&lake, &spec).await;
    assert_eq!((report.valid, report.quarantined), (4, 1));
    let sql = "SELECT id, owner, balance, valid_from, valid_to, is_current FROM t ORDER BY id, valid_from";
    assert_eq!(
        lake.rows(&spec.target, sql).await,
        [
            "1|ann|10.0|100|200|false",
            "1|ann|25.0|200||true",
            "2|bob|5.0|50|300|false"
        ]
    );
    let quarantine = lake.storage.layout().quarantine(&spec.target);
    assert_eq!(
        lake.rows_at(&quarantine, "SELECT reason FROM t").await,
        ["bad_op"]
    );

    let wrapped = SilverSpec::from_toml(
        &ACCOUNTS
            .replace("bronze.pg.accounts", "bronze.pg.wrapped")
            .replace("silver.pg.accounts", "silver.pg.wrapped")
            .replace("source['lsn']", "payload['source']['lsn']"),
    )
    .unwrap();
    let line = format!(
        r#"{{"schema":{{"type":"struct"}},"payload":{}}}"#,
        envelope("c", "null", &row(7, "zed", 1), 10)
    );
    lake.ingest_into(&wrapped.source, "b1", &[line]).await;
    run(&lake, &wrapped).await;
    assert_eq!(
        lake.rows(&wrapped.target, sql).await,
        ["7|zed|1.0|10||true"]
    );

    // A sequence read from the image is refused, and so are delete rules.
    let image_sequence = ACCOUNTS.replace("expr = \"source['lsn']\"", "");
    let error = SilverSpec::from_toml(&image_sequence)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sequence_by") && error.contains("before"),
        "{error}"
    );
    let deletes = format!("deletes = {{ condition = \"op = 'd'\" }}\n{ACCOUNTS}");
    let error = SilverSpec::from_toml(&deletes).unwrap_err().to_string();
    assert!(error.contains("deletes"), "{error}");
}

/// Under bronze's `evolve` policy a value that does not fit the column
/// bronze inferred is null there and kept in `_raw`; silver reads it from
/// `_raw` again, so a bad value is quarantined instead of read as null,
/// and a value of the right meaning but another JSON kind keeps it.
#[tokio::test]
async fn values_bronze_could_not_store_are_typed_from_raw() {
    let lake = Lake::new();
    let spec = SilverSpec::from_toml(CUSTOMERS).unwrap();
    let with_age = |id: u32, age: &str, at: &str| {
        customer(
            "\"t1\"",
            &id.to_string(),
            &format!(r#""age":{age},"op":"U""#),
            at,
        )
    };
    // Bronze infers `age` as a number from this batch.
    lake.ingest_into(&customers_bronze(), "b1", &[with_age(1, "30", "10:00")])
        .await;
    run(&lake, &spec).await;
    lake.ingest_into(
        &customers_bronze(),
        "b2",
        &[
            with_age(2, "\"thirty\"", "10:00"),
            with_age(3, "\"31\"", "10:00"),
            with_age(4, "null", "10:00"),
        ],
    )
    .await;
    let report = run(&lake, &spec).await;
    assert_eq!((report.valid, report.quarantined), (2, 1));
    let ages = lake
        .rows(
            &spec.target,
            "SELECT customer_id, age FROM t ORDER BY customer_id",
        )
        .await;
    assert_eq!(ages, ["1|30", "3|31", "4|"]);
    let quarantine = lake.storage.layout().quarantine(&spec.target);
    assert_eq!(
        lake.rows_at(&quarantine, "SELECT reason, _source_line FROM t")
            .await,
        ["bad_age|1"]
    );
}

/// A typer of the caller's: the column mapping, then a rule of its own
/// (tier `banned` is refused), or one that loses a row.
#[derive(Debug)]
struct BannedTiers {
    lose_a_row: bool,
}

#[async_trait::async_trait]
impl lake_silver::Typer for BannedTiers {
    async fn type_rows(
        &self,
        spec: &SilverSpec,
        bronze: arrow::array::RecordBatch,
    ) -> lake_core::Result<lake_silver::Typed> {
        use arrow::array::{Array, AsArray};
        let bronze_tiers = bronze.column_by_name("tier").cloned();
        let typed = lake_silver::ColumnMapping.type_rows(spec, bronze).await?;
        let tiers = bronze_tiers.expect("tier is in every record");
        let tiers = arrow::compute::cast(&tiers, &arrow::datatypes::DataType::Utf8).unwrap();
        let tiers = tiers.as_string::<i32>();
        let banned =
            |row: u32| tiers.is_valid(row as usize) && tiers.value(row as usize) == "banned";
        let keep: arrow::array::BooleanArray =
            typed.rows.iter().map(|&row| Some(!banned(row))).collect();
        let events = arrow::compute::filter_record_batch(&typed.events, &keep).unwrap();
        let mut rows: Vec<u32> = typed.rows.iter().copied().filter(|&r| !banned(r)).collect();
        let mut rejected = typed.rejected;
        rejected.extend(
            typed
                .rows
                .iter()
                .filter(|&&r| banned(r))
                .map(|&r| (r, lake_silver::QuarantineReason::Bad("tier".to_string()))),
        );
        let events = if self.lose_a_row {
            rows.pop();
            events.slice(0, events.num_rows() - 1)
        } else {
            events
        };
        Ok(lake_silver::Typed::new(events, rows, rejected))
    }
}

#[tokio::test]
async fn a_typer_of_the_callers_types_the_rows_and_one_that_loses_a_row_is_refused() {
    let lake = Lake::new();
    let spec = SilverSpec::from_toml(CUSTOMERS).unwrap();
    lake.ingest_into(
        &customers_bronze(),
        "b1",
        &[
            customer("\"t\"", "1", r#""tier":"gold","op":"I""#, "10:00"),
            customer("\"t\"", "2", r#""tier":"banned","op":"I""#, "10:00"),
            customer("\"t\"", "3", r#""tier":"gold","op":"I""#, "10:00"),
        ],
    )
    .await;

    // Every row must be accounted for: one lost is refused before any commit.
    let losing = SilverTable::with_typer(
        spec.clone(),
        std::sync::Arc::new(BannedTiers { lose_a_row: true }),
    )
    .unwrap();
    let error = losing.run(&lake.storage).await.unwrap_err().to_string();
    assert!(error.contains("breaks its contract"), "{error}");
    assert!(error.contains("neither typed nor refused"), "{error}");
    assert!(
        lake.storage
            .open_table(&lake.storage.layout().table_location(&spec.target))
            .await
            .unwrap()
            .version()
            .is_none(),
        "nothing committed"
    );

    let stage: std::sync::Arc<dyn lake_core::RefineStage> = std::sync::Arc::new(
        SilverTable::with_typer(
            spec.clone(),
            std::sync::Arc::new(BannedTiers { lose_a_row: false }),
        )
        .unwrap(),
    );
    let context = lake_core::StageContext::new(std::sync::Arc::clone(&lake.storage));
    let report = stage.refine(&context).await.unwrap();
    report.reconcile().unwrap();
    assert_eq!((report.valid, report.quarantined), (2, 1));
    assert_eq!(
        lake.rows(
            &spec.target,
            "SELECT customer_id, tier FROM t ORDER BY customer_id"
        )
        .await,
        ["1|gold", "3|gold"]
    );
    let quarantine = lake.storage.layout().quarantine(&spec.target);
    assert_eq!(
        lake.rows_at(&quarantine, "SELECT reason FROM t").await,
        ["bad_tier"]
    );
}
