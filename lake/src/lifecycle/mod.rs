//! S3 lifecycle rules that match the lake: what S3 may expire or move on
//! its own, without a commit.
//!
//! Only objects that are not live table data are expired by S3: the
//! scratch space (`temp/`) and multipart uploads a crashed writer left
//! unfinished (invisible, yet billed). Expired dead letters, quarantined
//! records and run records are **not** given age rules: they live in Delta
//! tables, and an age rule deletes an object whatever the log says, so it
//! would delete files the current version still references (and log
//! entries), and break the table. Retention (`[retention]`, a commit) and
//! vacuum expire them instead; see [`lake_core::maintenance`].
//!
//! Storage-class transitions are for data a user marks cold, and only to
//! classes whose objects a plain `GET` reads (Standard-IA, One Zone-IA,
//! Intelligent-Tiering, Glacier Instant Retrieval). Glacier Flexible
//! Retrieval and Deep Archive are refused: their objects need a restore
//! before they can be read, so Athena skips them and Spark, Trino and
//! DuckDB fail on them, and a Delta table whose referenced files sit there
//! cannot be read. Transitions skip objects under 128 KiB, which the
//! infrequent-access classes bill as 128 KiB (most Delta log entries).
//!
//! [`rules`] generates the rules (their ids start with `lake-`);
//! `apply` (feature `aws`) merges them into the bucket's configuration,
//! keeping every rule of the bucket that is not the lake's.

use serde::{Deserialize, Serialize};

use lake_core::{LakeError, LakeLayout, Result};

/// The prefix of the ids of the rules the lake generates.
pub const RULE_PREFIX: &str = "lake-";

/// Smallest object a transition moves: the infrequent-access classes bill
/// smaller objects as 128 KiB.
pub const MIN_TRANSITION_BYTES: u64 = 128 * 1024;

/// The storage classes a transition may move table data to: those read
/// with a plain `GET`.
pub const READABLE_CLASSES: [&str; 4] = [
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
];

/// `[lifecycle]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LifecycleConfig {
    /// Days after which objects under `temp/` expire (default 7).
    #[serde(default = "seven")]
    pub temp_days: u32,
    /// Days after which unfinished multipart uploads under the lake root
    /// are aborted (default 7).
    #[serde(default = "seven")]
    pub abort_incomplete_upload_days: u32,
    /// Prefixes (relative to the lake root) whose objects move to a cheaper
    /// class after some days.
    #[serde(default)]
    pub cold: Vec<ColdData>,
}

fn seven() -> u32 {
    7
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            temp_days: 7,
            abort_incomplete_upload_days: 7,
            cold: Vec::new(),
        }
    }
}

/// Data a user marks cold: objects under `prefix` move to `storage_class`
/// `days` after they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ColdData {
    /// Relative to the lake root (`bronze/`, `silver/sales/orders/`).
    pub prefix: String,
    /// Days after writing.
    pub days: u32,
    /// One of [`READABLE_CLASSES`].
    pub storage_class: String,
}

impl ColdData {
    /// Objects under `prefix` move to `storage_class` after `days`.
    pub fn new(prefix: impl Into<String>, days: u32, storage_class: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            days,
            storage_class: storage_class.into(),
        }
    }
}

/// One lifecycle rule, in the shape of S3's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LifecycleRule {
    /// `lake-…`.
    pub id: String,
    /// The key prefix it applies to (within the bucket).
    pub prefix: String,
    /// Objects expire this many days after they were written.
    pub expiration_days: Option<u32>,
    /// Objects move to a class this many days after they were written.
    pub transition: Option<(u32, String)>,
    /// Only objects larger than this.
    pub min_size: Option<u64>,
    /// Unfinished multipart uploads are aborted after this many days.
    pub abort_incomplete_upload_days: Option<u32>,
}

impl LifecycleRule {
    /// A rule `id` that expires objects under `prefix` (a key prefix of
    /// the bucket) `days` after they were written.
    pub fn expiring(id: impl Into<String>, prefix: impl Into<String>, days: u32) -> Self {
        Self {
            id: id.into(),
            prefix: prefix.into(),
            expiration_days: Some(days),
            transition: None,
            min_size: None,
            abort_incomplete_upload_days: None,
        }
    }
}

/// The rules `config` asks for on the lake laid out as `layout` (an
/// `s3://bucket/prefix` root): the bucket, and the rules. A cold prefix
/// that leaves the lake or a class that cannot be read directly is refused.
pub fn rules(
    layout: &LakeLayout,
    config: &LifecycleConfig,
) -> Result<(String, Vec<LifecycleRule>)> {
    let root = layout.root();
    if root.scheme() != "s3" {
        return Err(LakeError::config(
            "lifecycle",
            format!("lifecycle rules are for S3 lakes; {root} is not one"),
        ));
    }
    let bucket = root
        .host_str()
        .ok_or_else(|| LakeError::config("lifecycle", format!("{root} names no bucket")))?
        .to_string();
    let base = root.path().trim_start_matches('/').to_string();
    let key = |relative: &str| format!("{base}{relative}");
    let temp = layout.temp().path().trim_start_matches('/').to_string();
    let mut out = vec![
        LifecycleRule {
            id: format!("{RULE_PREFIX}temp"),
            prefix: temp,
            expiration_days: Some(config.temp_days.max(1)),
            transition: None,
            min_size: None,
            abort_incomplete_upload_days: None,
        },
        LifecycleRule {
            id: format!("{RULE_PREFIX}abort-incomplete-uploads"),
            prefix: key(""),
            expiration_days: None,
            transition: None,
            min_size: None,
            abort_incomplete_upload_days: Some(config.abort_incomplete_upload_days.max(1)),
        },
    ];
    for (i, cold) in config.cold.iter().enumerate() {
        let field = format!("lifecycle.cold[{i}]");
        let class = cold.storage_class.to_ascii_uppercase();
        if !READABLE_CLASSES.contains(&class.as_str()) {
            return Err(LakeError::config(
                format!("{field}.storage_class"),
                format!(
                    "`{}` is not read by a plain GET (objects there need a restore first), so Athena, Spark, Trino and DuckDB could not read the Delta files moved there; use one of {}",
                    cold.storage_class,
                    READABLE_CLASSES.join(", ")
                ),
            ));
        }
        let prefix = cold.prefix.trim_start_matches('/');
        if prefix.split('/').any(|part| part == ".." || part == ".") {
            return Err(LakeError::config(
                format!("{field}.prefix"),
                format!("`{}` leaves the lake root", cold.prefix),
            ));
        }
        out.push(LifecycleRule {
            id: format!(
                "{RULE_PREFIX}cold-{}",
                prefix.trim_end_matches('/').replace('/', "-")
            ),
            prefix: key(prefix),
            expiration_days: None,
            transition: Some((cold.days, class)),
            min_size: Some(MIN_TRANSITION_BYTES),
            abort_incomplete_upload_days: None,
        });
    }
    Ok((bucket, out))
}

/// `rules` as the JSON `aws s3api put-bucket-lifecycle-configuration
/// --lifecycle-configuration` takes (the bucket's other rules not included).
pub fn to_json(rules: &[LifecycleRule]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|rule| {
            let filter = match rule.min_size {
                Some(size) => serde_json::json!({ "And": { "Prefix": rule.prefix, "ObjectSizeGreaterThan": size } }),
                None => serde_json::json!({ "Prefix": rule.prefix }),
            };
            let mut value = serde_json::json!({ "ID": rule.id, "Filter": filter, "Status": "Enabled" });
            if let Some(days) = rule.expiration_days {
                value["Expiration"] = serde_json::json!({ "Days": days });
            }
            if let Some((days, class)) = &rule.transition {
                value["Transitions"] = serde_json::json!([{ "Days": days, "StorageClass": class }]);
            }
            if let Some(days) = rule.abort_incomplete_upload_days {
                value["AbortIncompleteMultipartUpload"] = serde_json::json!({ "DaysAfterInitiation": days });
            }
            value
        })
        .collect();
    serde_json::json!({ "Rules": rules })
}

#[cfg(feature = "aws")]
mod apply;
#[cfg(feature = "aws")]
pub use apply::{apply, bucket_rules};

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> LakeLayout {
        LakeLayout::parse("s3://bucket/lakes/prod").unwrap()
    }

    #[test]
    fn the_rules_expire_only_scratch_space_and_unfinished_uploads() {
        let (bucket, rules) = rules(&layout(), &LifecycleConfig::default()).unwrap();
        assert_eq!(bucket, "bucket");
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (rules[0].prefix.as_str(), rules[0].expiration_days),
            ("lakes/prod/temp/", Some(7))
        );
        assert_eq!(
            (
                rules[1].prefix.as_str(),
                rules[1].abort_incomplete_upload_days
            ),
            ("lakes/prod/", Some(7))
        );
        assert!(rules.iter().all(|r| r.id.starts_with(RULE_PREFIX)));
        let json = to_json(&rules);
        assert_eq!(json["Rules"][0]["Expiration"]["Days"], 7);
        assert_eq!(
            json["Rules"][1]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
            7
        );
    }

    #[test]
    fn cold_data_moves_only_to_classes_read_directly() {
        let mut config = LifecycleConfig::default();
        config
            .cold
            .push(ColdData::new("bronze/", 90, "standard_ia"));
        let (_, rules) = rules(&layout(), &config).unwrap();
        assert_eq!(rules[2].prefix, "lakes/prod/bronze/");
        assert_eq!(rules[2].transition, Some((90, "STANDARD_IA".to_string())));
        assert_eq!(rules[2].min_size, Some(MIN_TRANSITION_BYTES));
        for class in ["GLACIER", "DEEP_ARCHIVE"] {
            config.cold[0].storage_class = class.to_string();
            let error = super::rules(&layout(), &config).unwrap_err().to_string();
            assert!(error.contains("restore"), "{error}");
        }
        config.cold[0] = ColdData::new("../other/", 1, "STANDARD_IA");
        assert!(super::rules(&layout(), &config).is_err());
        let local = LakeLayout::parse("/tmp/lake").unwrap();
        assert!(super::rules(&local, &LifecycleConfig::default()).is_err());
    }
}
