//! Unit tests of the Glue mapping.

use super::convert::*;
use super::*;

fn field(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true)
}

#[test]
fn hive_types_cover_nested_and_wide_types() {
    use lake_core::arrow::datatypes::Fields;
    let item = Arc::new(field("item", DataType::Int64));
    let nested = DataType::Struct(Fields::from(vec![
        field("city", DataType::Utf8),
        field("tags", DataType::List(item)),
    ]));
    assert_eq!(
        hive_type(&field("address", nested)).unwrap(),
        "struct<city:string,tags:array<bigint>>"
    );
    assert_eq!(
        hive_type(&field("n", DataType::UInt64)).unwrap(),
        "decimal(20,0)"
    );
    assert_eq!(
        hive_type(&field(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ))
        .unwrap(),
        "timestamp"
    );
    assert_eq!(
        hive_type(&field("amount", DataType::Decimal128(18, 2))).unwrap(),
        "decimal(18,2)"
    );
    let err = hive_type(&field("span", DataType::Duration(TimeUnit::Second))).unwrap_err();
    assert!(err.contains("`span`"), "{err}");
}

#[test]
fn templates_need_the_zone() {
    assert!(check_template("{zone}_{namespace}").is_ok());
    assert!(check_template("lake_{zone}").is_ok());
    assert!(check_template("lake_{namespace}").is_err());
}
