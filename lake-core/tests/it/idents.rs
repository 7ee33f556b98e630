//! Property tests: no accepted identifier or partition value escapes its zone
//! or its quotes.

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use lake_core::{
    Ident, LakeLayout, ObjectStorage, PartitionValue, Storage, StorageExt, TableId, Zone,
    partition_path, quote_ident, quote_literal,
};
use proptest::prelude::*;
use url::Url;

/// Strings rich in the characters attacks are made of, plus arbitrary text.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z./\\\\'\"%=_ \\-\\x00-\\x1f\\u{202e}]{0,12}",
        "(\\.\\./|%2e%2e%2f|/|\\\\|'|--|;)*[a-z]{0,4}",
        any::<String>(),
    ]
}

fn layout() -> LakeLayout {
    LakeLayout::parse("s3://bucket/lake").unwrap()
}

fn zone() -> impl Strategy<Value = Zone> {
    prop_oneof![Just(Zone::Bronze), Just(Zone::Silver), Just(Zone::Gold)]
}

/// The location as another client would resolve it: re-parsed, dot segments
/// removed by the URL parser.
fn resolved(url: &Url) -> Url {
    Url::parse(url.as_str()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_table_ids_stay_inside_their_zone(zone in zone(), ns in hostile(), name in hostile()) {
        let Ok(id) = TableId::new(zone, &ns, &name) else { return Ok(()); };
        let layout = layout();
        let zone_root = layout.zone_root(zone);
        for location in [layout.table_location(&id), layout.dead_letter(&id)] {
            let location = resolved(&location);
            let root = if location.path().contains("/_dlq/") {
                resolved(&layout.root().join("_dlq/").unwrap())
            } else {
                zone_root.clone()
            };
            prop_assert!(location.as_str().starts_with(root.as_str()), "{location} escapes {root}");
            let rest = &location.as_str()[root.as_str().len()..];
            let depth = if root == zone_root { 2 } else { 3 };
            prop_assert_eq!(rest.trim_end_matches('/').split('/').count(), depth, "{}", location);
        }
        // The object path is the same folder, as object_store sees it.
        let storage = ObjectStorage::from_url("memory:///lake").unwrap();
        let path = storage.object_path(&storage.layout().table_location(&id)).unwrap();
        prop_assert_eq!(path.as_ref(), format!("lake/{zone}/{ns}/{name}"));
    }

    #[test]
    fn accepted_partition_values_stay_one_segment(value in hostile()) {
        let Ok(value) = PartitionValue::new(value.clone()) else { return Ok(()); };
        let key = Ident::new("day").unwrap();
        let segment = partition_path(&[(key, value.clone())]);
        prop_assert!(!segment.contains('/') && !segment.contains('\\'));
        prop_assert_eq!(segment.matches('=').count(), 1);
        let table = layout().table_location(&TableId::gold("area", "t").unwrap());
        let partition = resolved(&table.join(&format!("{segment}/")).unwrap());
        prop_assert!(partition.as_str().starts_with(table.as_str()), "{partition} escapes {table}");
    }

    #[test]
    fn quoted_literals_never_break_out(value in hostile()) {
        let sql = format!("day = {}", quote_literal(&value));
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| TestCaseError::fail(format!("{sql:?} did not parse: {e}")))?;
        match expr {
            Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
                prop_assert!(matches!(*left, Expr::Identifier(ref i) if i.value == "day"));
                match *right {
                    Expr::Value(v) => prop_assert_eq!(v.value, Value::SingleQuotedString(value)),
                    other => prop_assert!(false, "right side is {other:?}"),
                }
            }
            other => prop_assert!(false, "{sql:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn quoted_identifiers_never_break_out(name in hostile()) {
        let sql = format!("{} = 1", quote_ident(&name));
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| TestCaseError::fail(format!("{sql:?} did not parse: {e}")))?;
        match expr {
            Expr::BinaryOp { left, op: BinaryOperator::Eq, .. } => match *left {
                Expr::Identifier(ident) => prop_assert_eq!(ident.value, name),
                other => prop_assert!(false, "left side is {other:?}"),
            },
            other => prop_assert!(false, "{sql:?} parsed as {other:?}"),
        }
    }
}

#[test]
fn classic_attacks_are_refused_before_any_path_is_built() {
    for attack in [
        "..",
        "../etc",
        "a/../../b",
        "%2e%2e",
        "..\\x",
        "x'; DROP TABLE t; --",
        "a\u{0}",
    ] {
        assert!(TableId::bronze("shop", attack).is_err(), "{attack:?}");
        assert!(TableId::bronze(attack, "orders").is_err(), "{attack:?}");
        assert!(PartitionValue::new(attack).is_err(), "{attack:?}");
    }
}
