//! Every expectation on its edge cases, compared with hand-computed results.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use lake_core::{Action, Validator};

use crate::{Check, Expectation, Suite};

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn amounts(values: Vec<Option<f64>>) -> RecordBatch {
    batch(vec![(
        "amount",
        Arc::new(Float64Array::from(values)) as ArrayRef,
    )])
}

fn between(min: f64, max: f64) -> Expectation {
    Expectation::new(Check::Between {
        column: "amount".into(),
        min: Some(min.into()),
        max: Some(max.into()),
        exclusive: false,
    })
}

#[test]
fn not_null_counts_nulls_as_unexpected() {
    let e = Expectation::new(Check::NotNull {
        column: "amount".into(),
    });
    let r = e
        .evaluate(&amounts(vec![Some(1.0), None, Some(2.0), None]))
        .unwrap();
    assert_eq!(
        (r.element_count, r.missing_count, r.unexpected_count),
        (4, 0, 2)
    );
    assert!(!r.success);
    assert_eq!(r.partial_unexpected_list, vec![serde_json::Value::Null; 2]);
    assert!(
        e.with_mostly(0.5)
            .evaluate(&amounts(vec![Some(1.0), None]))
            .unwrap()
            .success
    );
}

#[test]
fn between_leaves_nulls_out_and_honours_mostly_at_the_boundary() {
    // 4 non-null values, one outside: exactly 0.75 pass.
    let data = amounts(vec![Some(1.0), Some(5.0), None, Some(10.0), Some(11.0)]);
    let r = between(1.0, 10.0)
        .with_mostly(0.75)
        .evaluate(&data)
        .unwrap();
    assert_eq!(
        (r.element_count, r.missing_count, r.unexpected_count),
        (5, 1, 1)
    );
    assert!(r.success, "0.75 of the non-null values pass, mostly = 0.75");
    assert_eq!(r.unexpected_percent(), 25.0);
    assert_eq!(
        r.observed_value, None,
        "a column check observes no single value"
    );
    assert_eq!(r.partial_unexpected_list, vec![serde_json::json!("11.0")]);
    assert!(
        !between(1.0, 10.0)
            .with_mostly(0.76)
            .evaluate(&data)
            .unwrap()
            .success
    );
    // Exclusive bounds put 1 and 10 outside.
    let exclusive = Expectation::new(Check::Between {
        column: "amount".into(),
        min: Some(1.0.into()),
        max: Some(10.0.into()),
        exclusive: true,
    });
    assert_eq!(exclusive.evaluate(&data).unwrap().unexpected_count, 3);
    // NaN is in no range.
    let nan = between(f64::MIN, f64::MAX)
        .evaluate(&amounts(vec![Some(f64::NAN), Some(0.0)]))
        .unwrap();
    assert_eq!(nan.unexpected_count, 1);
}

#[test]
fn empty_batches_pass_column_checks() {
    let r = between(0.0, 1.0).evaluate(&amounts(vec![])).unwrap();
    assert!(r.success);
    assert_eq!(r.element_count, 0);
    let all_null = between(0.0, 1.0)
        .evaluate(&amounts(vec![None, None]))
        .unwrap();
    assert!(all_null.success);
    assert_eq!(all_null.missing_count, 2);
}

#[test]
fn in_set_compares_exact_code_points() {
    let data = batch(vec![(
        "region",
        Arc::new(StringArray::from(vec![
            Some("São Paulo"),
            Some("Sao Paulo"),
            None,
            Some("eu"),
        ])) as ArrayRef,
    )]);
    let e = Expectation::new(Check::InSet {
        column: "region".into(),
        values: vec!["São Paulo".into(), "eu".into()],
    });
    let r = e.evaluate(&data).unwrap();
    assert_eq!((r.missing_count, r.unexpected_count), (1, 1));
    assert_eq!(
        r.partial_unexpected_list,
        vec![serde_json::json!("Sao Paulo")]
    );
}

#[test]
fn unique_flags_every_repeated_row_and_handles_compound_keys() {
    let data = batch(vec![
        (
            "a",
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(1),
                Some(2),
                None,
                Some(2),
            ])) as ArrayRef,
        ),
        (
            "b",
            Arc::new(StringArray::from(vec![
                Some("x"),
                Some("x"),
                Some("x"),
                Some("x"),
                Some("y"),
            ])) as ArrayRef,
        ),
    ]);
    let single = Expectation::new(Check::Unique {
        columns: vec!["a".into()],
    })
    .evaluate(&data)
    .unwrap();
    assert_eq!((single.missing_count, single.unexpected_count), (1, 4));
    let compound = Expectation::new(Check::Unique {
        columns: vec!["a".into(), "b".into()],
    })
    .evaluate(&data)
    .unwrap();
    assert_eq!(compound.unexpected_count, 2, "only (1, x) repeats");
}

#[test]
fn row_count_is_a_table_level_check() {
    let e = Expectation::new(Check::RowCountBetween {
        min: Some(3),
        max: None,
    });
    let r = e.evaluate(&amounts(vec![Some(1.0), Some(2.0)])).unwrap();
    assert!(!r.success);
    assert!(r.failed_rows.is_none());
    assert_eq!(r.observed_value, Some(serde_json::json!(2)));
}

#[test]
fn a_missing_column_is_an_error_naming_rule_and_column() {
    let err = Expectation::new(Check::NotNull {
        column: "nope".into(),
    })
    .evaluate(&amounts(vec![Some(1.0)]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`nope_not_null`") && err.contains("`nope`"),
        "{err}"
    );
}

#[tokio::test]
async fn suites_load_from_toml_and_json_and_validate() {
    let suite = Suite::from_toml(
        r#"
        name = "orders"
        [[expectation]]
        expect = "between"
        column = "amount"
        min = 0.0
        action = "drop"
        name = "amount_positive"
        "#,
    )
    .unwrap();
    let json = serde_json::to_string(&suite).unwrap();
    assert_eq!(Suite::from_json(&json).unwrap(), suite);
    let validation = suite
        .validate(&amounts(vec![Some(-1.0), Some(2.0)]))
        .await
        .unwrap();
    assert_eq!(validation.rules[0].rule, "amount_positive");
    assert_eq!(validation.rules[0].action, Action::Drop);
    assert_eq!(
        validation.drop_mask(2).values().iter().collect::<Vec<_>>(),
        vec![true, false]
    );

    let unknown =
        Suite::from_toml("name = \"x\"\n[[expectation]]\nexpect = \"telepathy\"\ncolumn = \"a\"\n")
            .unwrap_err();
    assert!(unknown.to_string().contains("telepathy"), "{unknown}");
    let typo =
        Suite::from_toml("name = \"x\"\n[[expectation]]\nexpect = \"not_null\"\ncolum = \"a\"\n")
            .unwrap_err();
    assert!(typo.to_string().contains("colum"), "{typo}");
    let mostly = Suite::from_toml(
        "name = \"x\"\n[[expectation]]\nexpect = \"not_null\"\ncolumn = \"a\"\nmostly = 1.5\n",
    )
    .unwrap_err();
    assert!(mostly.to_string().contains("mostly"), "{mostly}");
}

fn names(values: Vec<Option<&str>>) -> RecordBatch {
    batch(vec![(
        "name",
        Arc::new(StringArray::from(values)) as ArrayRef,
    )])
}

#[test]
fn regex_is_unanchored_leaves_nulls_out_and_reports_a_bad_pattern() {
    let e = Expectation::new(Check::MatchesRegex {
        column: "name".into(),
        pattern: "^o[0-9]+$".into(),
    });
    let r = e
        .evaluate(&names(vec![
            Some("o12"),
            Some("x12"),
            None,
            Some("o1 "),
            Some("ö1"),
        ]))
        .unwrap();
    assert_eq!(
        (r.element_count, r.missing_count, r.unexpected_count),
        (5, 1, 3)
    );
    assert_eq!(r.partial_unexpected_list, ["x12", "o1 ", "ö1"]);
    assert!(!r.success);
    // Compiled once: a second batch reuses it.
    assert!(e.evaluate(&names(vec![Some("o7")])).unwrap().success);
    let bad = Expectation::new(Check::MatchesRegex {
        column: "name".into(),
        pattern: "([".into(),
    });
    let error = bad
        .evaluate(&names(vec![Some("a")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("name_matches_regex") && error.contains("(["),
        "{error}"
    );
}

#[test]
fn length_counts_code_points_with_inclusive_bounds() {
    let e = Expectation::new(Check::LengthBetween {
        column: "name".into(),
        min: Some(2),
        max: Some(3),
    });
    // "éé" is 2 code points (4 bytes); "日本語x" is 4.
    let r = e
        .evaluate(&names(vec![
            Some("éé"),
            Some("abc"),
            Some("a"),
            Some("日本語x"),
            None,
        ]))
        .unwrap();
    assert_eq!((r.missing_count, r.unexpected_count), (1, 2));
    assert_eq!(r.partial_unexpected_list, ["a", "日本語x"]);
    let empty = e.evaluate(&names(vec![])).unwrap();
    assert!(empty.success, "an empty batch passes a column check");
}

#[test]
fn column_existence_and_type_are_table_level() {
    let data = amounts(vec![Some(1.0)]);
    let exists = |c: &str| {
        Expectation::new(Check::ColumnExists { column: c.into() })
            .evaluate(&data)
            .unwrap()
            .success
    };
    assert!(exists("amount"));
    assert!(
        !exists("price"),
        "a missing column fails, it does not error"
    );
    let typed = |t: &str| {
        Expectation::new(Check::ColumnType {
            column: "amount".into(),
            data_type: t.into(),
        })
        .evaluate(&data)
        .unwrap()
    };
    assert!(typed("Float64").success);
    let wrong = typed("Int64");
    assert!(!wrong.success);
    assert_eq!(wrong.observed_value, Some(serde_json::json!("Float64")));
}

#[test]
fn statistics_skip_nulls_and_fail_on_nothing_or_nan() {
    let stat = |stat: crate::Stat, min: f64, max: f64, values: Vec<Option<f64>>| {
        Expectation::new(Check::StatBetween {
            column: "amount".into(),
            stat,
            min: Some(min),
            max: Some(max),
        })
        .evaluate(&amounts(values))
        .unwrap()
    };
    let values = || vec![Some(1.0), None, Some(2.0), Some(6.0)];
    let mean = stat(crate::Stat::Mean, 3.0, 3.0, values());
    assert!(mean.success, "mean of 1, 2, 6 is exactly 3: {mean:?}");
    assert_eq!(mean.observed_value, Some(serde_json::json!(3.0)));
    assert!(stat(crate::Stat::Sum, 9.0, 9.0, values()).success);
    assert!(stat(crate::Stat::Min, 1.0, 1.0, values()).success);
    assert!(!stat(crate::Stat::Max, 0.0, 5.9, values()).success);
    let none = stat(crate::Stat::Mean, 0.0, 10.0, vec![None, None]);
    assert!(!none.success);
    assert_eq!(none.observed_value, Some(serde_json::Value::Null));
    assert!(!stat(crate::Stat::Sum, 0.0, 10.0, vec![Some(1.0), Some(f64::NAN)]).success);
}

#[test]
fn new_checks_read_from_toml() {
    let suite = Suite::from_toml(
        r#"
        name = "orders"
        [[expectation]]
        expect = "matches_regex"
        column = "order_id"
        pattern = "^o[0-9]{7}$"
        action = "drop"
        [[expectation]]
        expect = "stat_between"
        column = "amount"
        stat = "mean"
        min = 1.0
        [[expectation]]
        expect = "length_between"
        column = "region"
        max = 16
        "#,
    )
    .unwrap();
    assert_eq!(suite.expectations.len(), 3);
    assert_eq!(suite.expectations[1].rule(), "amount_mean_between");
}

mod anomalies {
    use std::sync::Arc;

    use chrono::{Duration, TimeZone, Utc};
    use lake_core::{
        Action, ExpectationSummary, ObjectStorage, RefineReport, RuleResult, RunReport,
        StageOutcome, StageRun, StorageRef, TableId, record_run,
    };

    use crate::{AnomalyCheck, AnomalyMetric};

    fn orders() -> TableId {
        TableId::silver("sales", "orders").unwrap()
    }

    /// Records one run whose `customer_id_not_null` rule saw `rows` rows,
    /// `nulls` of them null.
    async fn record(storage: &StorageRef, run: i64, rows: u64, nulls: u64) {
        let mut refine = RefineReport::empty(orders());
        refine.rows_read = rows;
        refine.valid = rows;
        let mut rule = RuleResult::table_level(
            "customer_id_not_null",
            Action::Warn,
            nulls == 0,
            rows as usize,
            None,
        );
        rule.unexpected_count = nulls as usize;
        refine.expectations.push(ExpectationSummary::from(&rule));
        let at = Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap() + Duration::hours(run);
        let report = RunReport::new(
            format!("run-{run:03}"),
            at,
            at,
            vec![StageRun::new(
                "silver orders",
                1.0,
                StageOutcome::Refine(refine),
            )],
        );
        record_run(storage, &report, None, None).await.unwrap();
    }

    fn check(metric: AnomalyMetric) -> AnomalyCheck {
        AnomalyCheck {
            table: orders(),
            metric,
            window: 3,
            max_relative_change: 0.5,
        }
    }

    #[tokio::test]
    async fn a_row_count_or_null_rate_far_from_the_recent_mean_is_an_anomaly() {
        let storage: StorageRef = Arc::new(ObjectStorage::from_url("memory:///").unwrap());
        let rows = AnomalyMetric::RowCount {
            rule: "customer_id_not_null".into(),
        };
        let nulls = AnomalyMetric::UnexpectedRate {
            rule: "customer_id_not_null".into(),
        };
        // No history yet, then a single run: nothing to compare with.
        assert_eq!(
            check(rows.clone()).evaluate(&storage).await.unwrap().latest,
            None
        );
        record(&storage, 0, 1000, 10).await;
        let first = check(rows.clone()).evaluate(&storage).await.unwrap();
        assert_eq!(
            (first.latest, first.baseline, first.anomalous),
            (Some(1000.0), None, false)
        );

        // 1000, 1040, 960 then 1010: within 50 % of the mean of the last three.
        record(&storage, 1, 1040, 10).await;
        record(&storage, 2, 960, 10).await;
        record(&storage, 3, 1010, 10).await;
        let normal = check(rows.clone()).evaluate(&storage).await.unwrap();
        assert_eq!(normal.baseline, Some(1000.0));
        assert_eq!(normal.runs_compared, 3);
        assert!(!normal.anomalous);

        // 400 rows, a null rate of 5 % against 1 %: both anomalous.
        record(&storage, 4, 400, 20).await;
        let dropped = check(rows).evaluate(&storage).await.unwrap();
        // Baseline: the three runs before it (1040, 960, 1010).
        assert!((dropped.baseline.unwrap() - 3010.0 / 3.0).abs() < 1e-6);
        assert!(dropped.anomalous, "{dropped:?}");
        let rate = check(nulls).evaluate(&storage).await.unwrap();
        assert_eq!(rate.latest, Some(0.05));
        assert!(rate.anomalous, "{rate:?}");
        // Another table's history is not mixed in.
        let other = AnomalyCheck {
            table: TableId::silver("sales", "returns").unwrap(),
            ..check(AnomalyMetric::RowCount {
                rule: "customer_id_not_null".into(),
            })
        };
        assert_eq!(other.evaluate(&storage).await.unwrap().latest, None);
    }
}

#[test]
fn a_sql_expectation_fails_false_rows_and_lets_null_pass() {
    let data = batch(vec![
        (
            "amount",
            Arc::new(Float64Array::from(vec![
                Some(5.0),
                Some(-1.0),
                None,
                Some(-2.0),
            ])) as ArrayRef,
        ),
        (
            "status",
            Arc::new(StringArray::from(vec!["paid", "paid", "paid", "refunded"])) as ArrayRef,
        ),
    ]);
    let e = Expectation::new(Check::Sql {
        expr: "amount >= 0 OR status = 'refunded'".into(),
    })
    .with_action(Action::Drop);
    let r = e.evaluate(&data).unwrap();
    assert_eq!(r.rule, "expect amount >= 0 OR status = 'refunded'");
    // Row 1 is false; row 2 is null OR false = null, which passes.
    assert_eq!((r.element_count, r.unexpected_count), (4, 1));
    assert_eq!(r.partial_unexpected_list, [serde_json::json!("1")]);
    let not_boolean = Expectation::new(Check::Sql {
        expr: "amount + 1".into(),
    })
    .evaluate(&data)
    .unwrap_err()
    .to_string();
    assert!(not_boolean.contains("not a boolean"), "{not_boolean}");
    let unknown = Expectation::new(Check::Sql {
        expr: "price > 0".into(),
    })
    .evaluate(&data)
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("price"), "{unknown}");
}

#[test]
fn freshness_compares_the_latest_timestamp_with_now() {
    use arrow::array::TimestampMicrosecondArray;
    let now = chrono::Utc::now().timestamp_micros();
    let data = |ages_seconds: Vec<Option<i64>>| {
        batch(vec![(
            "updated_at",
            Arc::new(
                TimestampMicrosecondArray::from(
                    ages_seconds
                        .into_iter()
                        .map(|a| a.map(|a| now - a * 1_000_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ) as ArrayRef,
        )])
    };
    let fresh = |max_age: &str, ages: Vec<Option<i64>>| {
        Expectation::new(Check::Freshness {
            column: "updated_at".into(),
            max_age: max_age.into(),
        })
        .evaluate(&data(ages))
    };
    // The latest value (10 minutes old) decides, not the oldest.
    assert!(
        fresh("15m", vec![Some(7200), Some(600), None])
            .unwrap()
            .success
    );
    assert!(!fresh("5m", vec![Some(7200), Some(600)]).unwrap().success);
    assert!(fresh("1d", vec![Some(3600)]).unwrap().success);
    assert!(
        !fresh("1d", vec![None, None]).unwrap().success,
        "no value is not fresh"
    );
    let error = fresh("soon", vec![Some(1)]).unwrap_err().to_string();
    assert!(
        error.contains("updated_at_freshness") && error.contains("soon"),
        "{error}"
    );
}

#[test]
fn in_set_gives_the_same_answer_for_long_and_short_lists() {
    let values: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    let data = names(vec![Some("v3"), Some("v39"), Some("v40"), None, Some("")]);
    for allowed in [values[..5].to_vec(), values.clone()] {
        let r = Expectation::new(Check::InSet {
            column: "name".into(),
            values: allowed.clone(),
        })
        .evaluate(&data)
        .unwrap();
        let expected = if allowed.len() == 5 { 3 } else { 2 };
        assert_eq!(
            r.unexpected_count,
            expected,
            "{} allowed values",
            allowed.len()
        );
        assert_eq!(r.missing_count, 1);
    }
}

#[test]
fn unique_on_one_string_column_counts_exact_code_points() {
    let data = names(vec![
        Some("é"),
        Some("e\u{301}"),
        Some("x"),
        None,
        Some("x"),
        None,
        Some(""),
    ]);
    let r = Expectation::new(Check::Unique {
        columns: vec!["name".into()],
    })
    .evaluate(&data)
    .unwrap();
    // The two spellings of é differ; the nulls are left out; both x fail.
    assert_eq!((r.missing_count, r.unexpected_count), (2, 2));
    assert_eq!(r.partial_unexpected_list, ["x", "x"]);
}

#[test]
fn between_lets_infinities_pass_a_missing_bound_even_when_exclusive() {
    let data = amounts(vec![
        Some(f64::NEG_INFINITY),
        Some(0.0),
        Some(f64::INFINITY),
        Some(f64::NAN),
        None,
    ]);
    let at_most = |exclusive| {
        Expectation::new(Check::Between {
            column: "amount".into(),
            min: None,
            max: Some(0.0.into()),
            exclusive,
        })
        .evaluate(&data)
        .unwrap()
    };
    // -inf <= 0 and -inf < 0; 0 fails only the exclusive bound; +inf and NaN always fail.
    let inclusive = at_most(false);
    assert_eq!(
        inclusive.failed_rows.unwrap().iter().collect::<Vec<_>>(),
        [
            Some(false),
            Some(false),
            Some(true),
            Some(true),
            Some(false)
        ]
    );
    assert_eq!(at_most(true).unexpected_count, 3);
    let unbounded = Expectation::new(Check::Between {
        column: "amount".into(),
        min: None,
        max: None,
        exclusive: true,
    })
    .evaluate(&data)
    .unwrap();
    assert_eq!(unbounded.unexpected_count, 1, "only NaN is outside");
}

#[test]
fn unique_flags_the_first_row_of_a_key_seen_three_times() {
    let data = names(vec![
        Some("a"),
        Some("b"),
        None,
        Some("a"),
        None,
        Some("a"),
        Some(""),
    ]);
    let r = Expectation::new(Check::Unique {
        columns: vec!["name".into()],
    })
    .evaluate(&data)
    .unwrap();
    assert_eq!(
        r.failed_rows.unwrap().iter().collect::<Vec<_>>(),
        [true, false, false, true, false, true, false].map(Some)
    );
    assert_eq!((r.missing_count, r.unexpected_count), (2, 3));
    assert_eq!(r.partial_unexpected_list, ["a", "a", "a"]);
}

#[test]
fn regex_agrees_with_the_regex_crate_on_unicode_and_word_boundaries() {
    let values = [
        "o12345678",
        "straße",
        "STRASSE",
        "föo foo",
        "foo",
        "é",
        "",
        "a\nb",
        "日本語テキスト",
        "x foo_bar",
    ];
    let patterns = [
        r"^o[0-9]{8}$",
        r"(?i)straße",
        r"\bfoo\b",
        r"\w+$",
        r"^$",
        r"",
        r"(?m)^b$",
        r"\p{Han}{2}",
        r"(?-u:\b)foo",
        r"[[:alpha:]]{3,}",
    ];
    let data = names(values.iter().map(|v| Some(*v)).collect());
    for pattern in patterns {
        let expected: Vec<Option<bool>> = {
            let regex = regex::Regex::new(pattern).unwrap();
            values.iter().map(|v| Some(!regex.is_match(v))).collect()
        };
        let r = Expectation::new(Check::MatchesRegex {
            column: "name".into(),
            pattern: pattern.into(),
        })
        .evaluate(&data)
        .unwrap();
        assert_eq!(
            r.failed_rows.unwrap().iter().collect::<Vec<_>>(),
            expected,
            "{pattern}"
        );
    }
}

#[test]
fn length_counts_code_points_in_a_slice_of_mixed_text() {
    use arrow::array::Array;
    let text = StringArray::from(vec!["ééé", "abc", "abcd", "日本"]);
    let check = Expectation::new(Check::LengthBetween {
        column: "name".into(),
        min: Some(3),
        max: Some(3),
    });
    // The slice holds only ASCII values, over a buffer that does not.
    let ascii = text.slice(1, 2);
    let r = check
        .evaluate(&batch(vec![("name", Arc::new(ascii) as ArrayRef)]))
        .unwrap();
    assert_eq!(r.partial_unexpected_list, ["abcd"]);
    let all = check
        .evaluate(&batch(vec![("name", Arc::new(text.clone()) as ArrayRef)]))
        .unwrap();
    assert_eq!(all.partial_unexpected_list, ["abcd", "日本"]);
    assert_eq!(text.len(), all.element_count);
}

#[test]
fn between_compares_dates_and_timestamps_as_instants() {
    use arrow::array::{Date32Array, TimestampMicrosecondArray};
    let day = |d: &str| {
        (chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    let dates = batch(vec![(
        "order_date",
        Arc::new(Date32Array::from(vec![
            Some(day("2024-12-31")),
            Some(day("2025-01-01")),
            None,
            Some(day("2025-06-30")),
            Some(day("2025-07-01")),
        ])) as ArrayRef,
    )]);
    let first_half = |exclusive| {
        Expectation::new(Check::Between {
            column: "order_date".into(),
            min: Some("2025-01-01".into()),
            max: Some("2025-06-30".into()),
            exclusive,
        })
    };
    let r = first_half(false).evaluate(&dates).unwrap();
    assert_eq!(
        (r.missing_count, r.unexpected_count),
        (1, 2),
        "both bounds are inside"
    );
    assert_eq!(r.partial_unexpected_list, ["2024-12-31", "2025-07-01"]);
    assert_eq!(
        first_half(true).evaluate(&dates).unwrap().unexpected_count,
        4
    );

    // Against a bound written at +02:00 (10:00Z): 10:00Z passes, a
    // microsecond earlier fails, noon passes.
    let micros = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_micros()
    };
    let times = batch(vec![(
        "updated_at",
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                micros("2025-01-01T10:00:00Z"),
                micros("2025-01-01T09:59:59.999999Z"),
                micros("2025-01-01T12:00:00Z"),
            ])
            .with_timezone("UTC"),
        ) as ArrayRef,
    )]);
    let r = Expectation::new(Check::Between {
        column: "updated_at".into(),
        min: Some("2025-01-01T12:00:00+02:00".into()),
        max: None,
        exclusive: false,
    })
    .evaluate(&times)
    .unwrap();
    assert_eq!(
        r.failed_rows.unwrap().iter().collect::<Vec<_>>(),
        [false, true, false].map(Some)
    );

    // A number bound on a date column, a date bound on a number column, or
    // text that is no date, is an error naming the rule and the column.
    let error = |column: &str, min: crate::Bound, data: &RecordBatch| {
        Expectation::new(Check::Between {
            column: column.into(),
            min: Some(min),
            max: None,
            exclusive: false,
        })
        .evaluate(data)
        .unwrap_err()
        .to_string()
    };
    let err = error("order_date", 0.0.into(), &dates);
    assert!(
        err.contains("order_date_between") && err.contains("Date32"),
        "{err}"
    );
    let err = error("amount", "2025-01-01".into(), &amounts(vec![Some(1.0)]));
    assert!(err.contains("number bounds"), "{err}");
    let err = error("order_date", "yesterday".into(), &dates);
    assert!(err.contains("yesterday"), "{err}");

    // The same from TOML: a date bound and a number bound.
    let suite = Suite::from_toml(
        r#"
        name = "s"
        [[expectation]]
        expect = "between"
        column = "order_date"
        min = "2025-01-01"
        [[expectation]]
        expect = "between"
        column = "amount"
        max = 10
        "#,
    )
    .unwrap();
    assert!(matches!(
        &suite.expectations[0].check,
        Check::Between { min: Some(crate::Bound::Instant(d)), .. } if d == "2025-01-01"
    ));
    assert!(matches!(
        &suite.expectations[1].check,
        Check::Between { max: Some(crate::Bound::Number(n)), .. } if *n == 10.0
    ));
}
