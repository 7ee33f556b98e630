//! Names and values that would escape their zone or break out of a
//! predicate are refused at every public entry point, before any I/O.
//!
//! Each entry point is fed the same hostile inputs: path traversal (plain
//! and URL-encoded), absolute paths, separators, quotes that would close a
//! SQL literal, statement separators and control characters. Where an entry
//! point can touch storage, it is handed a store that counts requests, and
//! the count must stay at zero.

use std::sync::Arc;

use lake::config::PipelineConfig;
use lake_core::{
    Ident, LakeError, NamespaceId, ObjectStorage, PartitionValue, Storage, StorageRef, TableId,
    Zone,
};
use lake_gold::AggregationSpec;
use lake_testing::{FaultPlan, FaultyStore};

const HOSTILE: &[&str] = &[
    "..",
    "../etc",
    "..%2f..%2fetc",
    "%2e%2e%2fsecret",
    "%2E%2E",
    "/absolute",
    "C:\\windows",
    "a/b",
    "a\\b",
    "x' OR '1'='1",
    "x\" OR 1=1 --",
    "x;DROP TABLE t",
    "line\nbreak",
    "nul\0byte",
    "",
];

fn refused<T: std::fmt::Debug>(what: &str, input: &str, result: lake_core::Result<T>) {
    match result {
        Err(LakeError::InvalidIdentifier { .. } | LakeError::Config { .. }) => {}
        other => panic!("{what} accepted {input:?}: {other:?}"),
    }
}

#[test]
fn identifiers_and_partition_values_refuse_escapes() {
    for &h in HOSTILE {
        refused("Ident::new", h, Ident::new(h));
        refused("h.parse::<Ident>", h, h.parse::<Ident>());
        for zone in [Zone::Bronze, Zone::Silver, Zone::Gold] {
            refused("TableId::new namespace", h, TableId::new(zone, h, "orders"));
            refused("TableId::new name", h, TableId::new(zone, "shop", h));
            refused("NamespaceId::new", h, NamespaceId::new(zone, h));
        }
        refused("TableId::bronze", h, TableId::bronze(h, "orders"));
        refused("TableId::silver", h, TableId::silver("sales", h));
        refused("TableId::gold", h, TableId::gold(h, "daily"));
        refused(
            "TableId::from_str",
            h,
            format!("bronze.shop.{h}").parse::<TableId>(),
        );
        refused(
            "TableId::changes_table",
            h,
            TableId::silver(h, "orders").and_then(|t| t.changes_table()),
        );
        // Partition values may hold dates, numbers and names with spaces,
        // never separators, traversal or quotes.
        refused("PartitionValue::new", h, PartitionValue::new(h));
    }
    assert!(PartitionValue::new("2025-11-04").is_ok());
    assert!(PartitionValue::new("São Paulo").is_ok());
}

/// A lake whose store fails (and counts) every request.
fn counting_storage() -> (StorageRef, Arc<FaultyStore>) {
    let clean = ObjectStorage::from_url("memory:///lake").unwrap();
    let store = FaultyStore::new(clean.object_store());
    store.set_plan(FaultPlan::FailFraction {
        fraction: 1.0,
        seed: 1,
    });
    let storage: StorageRef = Arc::new(ObjectStorage::with_store(
        clean.layout().clone(),
        store.clone(),
        Default::default(),
    ));
    (storage, store)
}

/// Pipeline configurations naming `name` as a table.
fn configs(name: &str) -> Vec<String> {
    let quoted = toml_string(name);
    vec![
        format!("[[bronze]]\ntable = \"bronze.shop.{quoted}\""),
        format!(
            "[[silver]]\nstage = \"orders\"\nsource = \"bronze.shop.orders\"\ntarget = \"silver.{quoted}.orders\""
        ),
        format!(
            "[[gold]]\ndaily_summary = {{ source = \"silver.sales.orders\", target = \"gold.analytics.{quoted}\" }}"
        ),
    ]
}

/// Aggregation specs using `name` as the target, a column and a metric.
fn specs(name: &str) -> Vec<String> {
    let quoted = toml_string(name);
    let base = "source = \"silver.sales.orders\"\nfilter = \"is_current\"\npartition_by = \"order_date\"\n";
    vec![
        format!(
            "target = \"gold.analytics.{quoted}\"\n{base}group_by = [\"order_date\"]\nmetrics = [{{ name = \"n\", fn = \"count\" }}]"
        ),
        format!(
            "target = \"gold.analytics.daily\"\n{base}group_by = [\"order_date\", \"{quoted}\"]\nmetrics = [{{ name = \"n\", fn = \"count\" }}]"
        ),
        format!(
            "target = \"gold.analytics.daily\"\n{base}group_by = [\"order_date\"]\nmetrics = [{{ name = \"{quoted}\", fn = \"count\" }}]"
        ),
    ]
}

async fn build(text: &str, storage: &StorageRef) -> lake_core::Result<lake_core::Pipeline> {
    PipelineConfig::from_toml(text)?
        .builder_on(Arc::clone(storage))
        .await?
        .build()
}

#[tokio::test]
async fn configurations_and_specs_refuse_escapes_before_any_io() {
    let (storage, store) = counting_storage();
    // The templates are sound: a plain name passes everywhere.
    for text in configs("orders") {
        build(&text, &storage).await.unwrap();
    }
    for text in specs("orders") {
        AggregationSpec::from_toml(&text).unwrap();
    }
    for &h in HOSTILE {
        for text in configs(h) {
            refused("PipelineConfig", h, build(&text, &storage).await);
        }
        for text in specs(h) {
            refused(
                "AggregationSpec::from_toml",
                h,
                AggregationSpec::from_toml(&text),
            );
        }
    }
    assert_eq!(store.injected(), 0, "nothing reached the store");
}

/// `value` as the inside of a TOML basic string.
fn toml_string(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\0', "\\u0000")
}
