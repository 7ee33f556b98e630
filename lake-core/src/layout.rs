//! Where everything lives under the lake root.
//!
//! ```text
//! {root}/
//!   bronze/{source_system}/{table}/          Delta, append-only, year=/month=/day=
//!   silver/{domain}/{entity}/                Delta, SCD2 history
//!   silver/{domain}/{entity}_changes/        Delta, the silver event log
//!   gold/{area}/{name}/                      Delta, partitioned by its date column
//!   _dlq/{zone}/{source_or_domain}/{table}/  records that could not be read
//!   _quarantine/{domain}/{entity}/           records that failed validation or typing
//!   _metadata/                               run records, quality metrics, lineage
//!   _catalog/                                the file catalog
//!   temp/                                    scratch space, safe to delete
//! ```
//!
//! Every location is built from validated [`Ident`]s, so a location is
//! always inside the root and inside its zone. Locations are URLs ending in
//! `/` (directories), as deltalake and object_store expect.

use std::path::Path;

use chrono::{Datelike, NaiveDate};
use url::Url;

use crate::error::{LakeError, Result};
use crate::ident::{Ident, PartitionValue, TableId, Zone};

/// The schemes a lake root may use.
pub const SUPPORTED_SCHEMES: [&str; 3] = ["file", "memory", "s3"];

/// The path conventions of the lake, from its root URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeLayout {
    root: Url,
}

impl LakeLayout {
    /// A layout rooted at `root` (`file://`, `memory://` or `s3://`).
    pub fn new(root: Url) -> Result<Self> {
        if !SUPPORTED_SCHEMES.contains(&root.scheme()) {
            return Err(LakeError::config(
                "root",
                format!(
                    "unsupported scheme `{}` in {root} (expected one of file, memory, s3)",
                    root.scheme()
                ),
            ));
        }
        if root.query().is_some() || root.fragment().is_some() {
            return Err(LakeError::config(
                "root",
                format!("{root} must not have a query or fragment"),
            ));
        }
        if root
            .path_segments()
            .is_some_and(|mut s| s.any(|s| s == ".." || s == "."))
        {
            return Err(LakeError::config(
                "root",
                format!("{root} must not contain `.` or `..` segments"),
            ));
        }
        let mut root = root;
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        Ok(Self { root })
    }

    /// A layout from a URL or a local path (relative paths are made absolute).
    pub fn parse(root: &str) -> Result<Self> {
        Self::new(parse_root_url(root)?)
    }

    /// The lake root, ending in `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// `{root}/{zone}/`.
    pub fn zone_root(&self, zone: Zone) -> Url {
        self.dir(&[zone.as_str()])
    }

    /// Where a table's Delta log and files live.
    pub fn table_location(&self, table: &TableId) -> Url {
        self.dir(&[
            table.zone.as_str(),
            table.namespace.as_str(),
            table.name.as_str(),
        ])
    }

    /// `bronze/{source_system}/{table}/`.
    pub fn bronze_table(&self, source_system: &Ident, table: &Ident) -> Url {
        self.dir(&["bronze", source_system.as_str(), table.as_str()])
    }

    /// `silver/{domain}/{entity}/`.
    pub fn silver_table(&self, domain: &Ident, entity: &Ident) -> Url {
        self.dir(&["silver", domain.as_str(), entity.as_str()])
    }

    /// `silver/{domain}/{entity}_changes/`, the silver event log.
    pub fn silver_changes_table(&self, domain: &Ident, entity: &Ident) -> Url {
        let name = format!("{entity}_changes");
        self.dir(&["silver", domain.as_str(), &name])
    }

    /// `gold/{area}/{name}/`.
    pub fn gold_table(&self, area: &Ident, name: &Ident) -> Url {
        self.dir(&["gold", area.as_str(), name.as_str()])
    }

    /// `_dlq/{zone}/{source_or_domain}/{table}/`: records of `table` that could not be read.
    pub fn dead_letter(&self, table: &TableId) -> Url {
        self.dir(&[
            "_dlq",
            table.zone.as_str(),
            table.namespace.as_str(),
            table.name.as_str(),
        ])
    }

    /// `_quarantine/{domain}/{entity}/`: records of `table` that failed validation or typing.
    pub fn quarantine(&self, table: &TableId) -> Url {
        self.dir(&["_quarantine", table.namespace.as_str(), table.name.as_str()])
    }

    /// `_metadata/`.
    pub fn metadata_root(&self) -> Url {
        self.dir(&["_metadata"])
    }

    /// `_metadata/{name}/`, for example `_metadata/runs/` or `_metadata/quality/`.
    pub fn metadata(&self, name: &Ident) -> Url {
        self.dir(&["_metadata", name.as_str()])
    }

    /// `_catalog/`, where the embedded file catalog keeps its documents.
    pub fn catalog_root(&self) -> Url {
        self.dir(&["_catalog"])
    }

    /// `temp/`, scratch space that is safe to delete.
    pub fn temp(&self) -> Url {
        self.dir(&["temp"])
    }

    fn dir(&self, segments: &[&str]) -> Url {
        let mut url = self.root.clone();
        {
            // Segments are validated identifiers, so pushing them can neither
            // add separators nor climb out of the root.
            let mut path = url
                .path_segments_mut()
                .expect("lake roots are hierarchical URLs");
            path.pop_if_empty();
            path.extend(segments);
            path.push("");
        }
        url
    }
}

/// Parses a lake root given as a URL (`s3://bucket/prefix`) or a local path.
pub fn parse_root_url(root: &str) -> Result<Url> {
    if root.is_empty() {
        return Err(LakeError::config("root", "must not be empty"));
    }
    if root.contains("://") {
        return Url::parse(root)
            .map_err(|e| LakeError::config("root", format!("{root:?} is not a valid URL: {e}")));
    }
    // `s3:bucket/x` or `memory:` without `//` is a mistyped URL, not a
    // folder of that name: a scheme-like prefix is refused. (A Windows
    // drive letter, `C:\lake`, is one letter.)
    if let Some((scheme, _)) = root.split_once(':')
        && scheme.len() > 1
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(LakeError::config(
            "root",
            format!(
                "{root:?} looks like a URL without `//` after `{scheme}:` (write {scheme}://...)"
            ),
        ));
    }
    let absolute = std::path::absolute(Path::new(root)).map_err(|e| LakeError::Io {
        path: root.to_string(),
        source: e,
    })?;
    Url::from_directory_path(&absolute).map_err(|()| {
        LakeError::config(
            "root",
            format!("{} cannot be expressed as a file URL", absolute.display()),
        )
    })
}

/// The ingestion-date partition path of bronze: `year=2025/month=11/day=04`.
pub fn ingestion_date_path(date: NaiveDate) -> String {
    format!(
        "year={:04}/month={:02}/day={:02}",
        date.year(),
        date.month(),
        date.day()
    )
}

/// A date partition path: `date=2025-11-04` (the column name is yours).
pub fn date_partition_path(column: &Ident, date: NaiveDate) -> String {
    format!("{column}={}", date.format("%Y-%m-%d"))
}

/// A Hive-style partition path from validated keys and values: `k1=v1/k2=v2`.
pub fn partition_path(values: &[(Ident, PartitionValue)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> LakeLayout {
        LakeLayout::parse("s3://bucket/lake").unwrap()
    }

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    #[test]
    fn every_zone_matches_the_design() {
        let l = layout();
        assert_eq!(l.root().as_str(), "s3://bucket/lake/");
        assert_eq!(
            l.bronze_table(&id("shop"), &id("orders")).as_str(),
            "s3://bucket/lake/bronze/shop/orders/"
        );
        assert_eq!(
            l.silver_table(&id("sales"), &id("orders")).as_str(),
            "s3://bucket/lake/silver/sales/orders/"
        );
        assert_eq!(
            l.silver_changes_table(&id("sales"), &id("orders")).as_str(),
            "s3://bucket/lake/silver/sales/orders_changes/"
        );
        assert_eq!(
            l.gold_table(&id("analytics"), &id("daily_summary"))
                .as_str(),
            "s3://bucket/lake/gold/analytics/daily_summary/"
        );
        let bronze = TableId::bronze("shop", "orders").unwrap();
        let silver = TableId::silver("sales", "orders").unwrap();
        assert_eq!(
            l.dead_letter(&bronze).as_str(),
            "s3://bucket/lake/_dlq/bronze/shop/orders/"
        );
        assert_eq!(
            l.quarantine(&silver).as_str(),
            "s3://bucket/lake/_quarantine/sales/orders/"
        );
        assert_eq!(
            l.metadata(&id("runs")).as_str(),
            "s3://bucket/lake/_metadata/runs/"
        );
        assert_eq!(l.metadata_root().as_str(), "s3://bucket/lake/_metadata/");
        assert_eq!(l.catalog_root().as_str(), "s3://bucket/lake/_catalog/");
        assert_eq!(l.temp().as_str(), "s3://bucket/lake/temp/");
        assert_eq!(
            l.table_location(&silver),
            l.silver_table(&id("sales"), &id("orders"))
        );
        assert_eq!(
            l.table_location(&silver.changes_table().unwrap()),
            l.silver_changes_table(&id("sales"), &id("orders"))
        );
        assert_eq!(l.zone_root(Zone::Gold).as_str(), "s3://bucket/lake/gold/");
    }

    #[test]
    fn a_url_without_slashes_is_refused_not_taken_as_a_folder() {
        for typo in ["s3:bucket/x", "memory:lake", "file:tmp/lake"] {
            let error = parse_root_url(typo).unwrap_err().to_string();
            assert!(error.contains("without `//`"), "{typo}: {error}");
        }
        assert!(parse_root_url("s3://bucket/x").is_ok());
        assert!(parse_root_url("lake-demo").is_ok());
        assert!(parse_root_url("./a:b").is_ok());
    }

    #[test]
    fn roots_are_normalised_and_checked() {
        assert_eq!(
            LakeLayout::parse("memory:///").unwrap().root().as_str(),
            "memory:///"
        );
        assert_eq!(
            LakeLayout::parse("file:///tmp/lake")
                .unwrap()
                .root()
                .as_str(),
            "file:///tmp/lake/"
        );
        let local = LakeLayout::parse("relative/lake").unwrap();
        assert_eq!(local.root().scheme(), "file");
        assert!(local.root().path().ends_with("/relative/lake/"));
        assert!(LakeLayout::parse("ftp://host/x").is_err());
        assert!(LakeLayout::parse("").is_err());
        assert!(LakeLayout::parse("s3://bucket/a?x=1").is_err());
    }

    #[test]
    fn partition_paths() {
        let date = NaiveDate::from_ymd_opt(2025, 11, 4).unwrap();
        assert_eq!(ingestion_date_path(date), "year=2025/month=11/day=04");
        assert_eq!(date_partition_path(&id("date"), date), "date=2025-11-04");
        assert_eq!(
            partition_path(&[
                (id("region"), PartitionValue::new("eu-west").unwrap()),
                (id("day"), PartitionValue::new("04").unwrap()),
            ]),
            "region=eu-west/day=04"
        );
    }
}
