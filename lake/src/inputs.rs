//! The inputs of `lake run`: files, folders and object-store prefixes,
//! each routed to a bronze table by the configuration.
//!
//! A folder is walked recursively and its files taken in name order; an
//! `s3://bucket/prefix` is listed the same way. A file found in a folder
//! whose name gives no input format (`_SUCCESS`, `README.txt`) is not read
//! and is listed in [`Inputs::not_read`], so a caller reports it; a file
//! named explicitly with no format is an error. Routing is
//! [`PipelineConfig::route`]: an input no bronze entry takes is an error
//! naming it, before anything is ingested.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use lake_core::TableId;
use lake_core::object_store::path::Path as ObjectPath;
use lake_core::object_store::{ObjectStore, ObjectStoreExt};
use lake_core::{InputFormat, LakeError, ObjectStorage, ObjectStoreRef, RawBatch, Result, Storage};
use url::Url;

use crate::config::PipelineConfig;

/// One input file or object and the bronze table it goes to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Input {
    /// The path or URL, as found.
    pub location: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The bronze table it is routed to.
    pub table: TableId,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Object { store: ObjectStoreRef, url: Url },
}

impl Input {
    /// The raw batch to ingest, aimed at [`table`](Self::table). A local
    /// file's batch id is its canonical path, an object's its URL (see
    /// [`RawBatch::from_file`] and [`RawBatch::from_object`]).
    pub async fn batch(&self) -> Result<RawBatch> {
        let batch = match &self.source {
            Source::File(path) => RawBatch::from_file(path)?,
            Source::Object { store, url } => RawBatch::from_object(store, url).await?,
        };
        Ok(batch.with_target(self.table.clone()))
    }
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Inputs {
    /// The inputs to ingest, in order: the paths as given, each folder's
    /// files in name order.
    pub inputs: Vec<Input>,
    /// Files found in folders that are not read, with the reason.
    pub not_read: Vec<(String, String)>,
}

/// Finds the input files under `paths` (files, folders, `s3://` URLs of
/// objects or prefixes) and routes each to its bronze table.
pub async fn discover(config: &PipelineConfig, paths: &[String]) -> Result<Inputs> {
    let mut found = Inputs::default();
    for given in paths {
        if given.starts_with("s3://") {
            discover_objects(config, given, &mut found).await?;
            continue;
        }
        let path = Path::new(given);
        let meta = std::fs::metadata(path)
            .map_err(|e| LakeError::config("input", format!("{given}: {e}")))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            for file in files {
                push_file(config, &file, false, &mut found)?;
            }
        } else {
            push_file(config, path, true, &mut found)?;
        }
    }
    Ok(found)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LakeError::config("input", format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| LakeError::config("input", format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| LakeError::config("input", format!("{}: {e}", path.display())))?;
        if kind.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn push_file(config: &PipelineConfig, path: &Path, named: bool, found: &mut Inputs) -> Result<()> {
    let location = path.to_string_lossy().to_string();
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    if name
        .as_deref()
        .and_then(InputFormat::from_file_name)
        .is_none()
    {
        let reason =
            "its name gives no input format (.jsonl, .ndjson, .json, .csv, .tsv, .parquet, .avro)";
        if named {
            return Err(LakeError::config("input", format!("{location}: {reason}")));
        }
        found.not_read.push((location, reason.to_string()));
        return Ok(());
    }
    let bytes = std::fs::metadata(path)
        .map_err(|e| LakeError::config("input", format!("{location}: {e}")))?
        .len();
    let table = config.route(&location)?.clone();
    found.inputs.push(Input {
        location,
        bytes,
        table,
        source: Source::File(path.to_path_buf()),
    });
    Ok(())
}

/// Lists the objects at or under `given`, with the configuration's
/// `[storage]` options (credentials, endpoint, region).
async fn discover_objects(config: &PipelineConfig, given: &str, found: &mut Inputs) -> Result<()> {
    let url = Url::parse(given).map_err(|e| LakeError::config("input", format!("{given}: {e}")))?;
    let bucket = format!("{}://{}/", url.scheme(), url.host_str().unwrap_or_default());
    let storage = ObjectStorage::from_url_opts(
        &bucket,
        config.storage.iter().map(|(k, v)| (k.clone(), v.clone())),
    )?;
    let store = storage.object_store();
    let prefix = ObjectPath::from_url_path(url.path())
        .map_err(|e| LakeError::config("input", format!("{given}: {e}")))?;
    let mut objects: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| LakeError::storage(given, e))?;
    if objects.is_empty() {
        // Not a prefix: an object of its own, or nothing.
        let meta = store.head(&prefix).await.map_err(|e| match e {
            lake_core::object_store::Error::NotFound { .. } => {
                LakeError::config("input", format!("{given}: no object at or under it"))
            }
            e => LakeError::storage(given, e),
        })?;
        objects.push(meta);
    }
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    for meta in objects {
        let location = format!("{bucket}{}", meta.location);
        let name = meta.location.filename().unwrap_or_default();
        if InputFormat::from_file_name(name).is_none() {
            found.not_read.push((
                location,
                "its name gives no input format (.jsonl, .ndjson, .json, .csv, .tsv, .parquet, .avro)"
                    .to_string(),
            ));
            continue;
        }
        let url = Url::parse(&location)
            .map_err(|e| LakeError::config("input", format!("{location}: {e}")))?;
        let table = config.route(&location)?.clone();
        found.inputs.push(Input {
            location,
            bytes: meta.size,
            table,
            source: Source::Object {
                store: Arc::clone(&store),
                url,
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_tables() -> PipelineConfig {
        PipelineConfig::from_toml(
            r#"
            [[bronze]]
            table = "bronze.shop.orders"
            inputs = ["*.jsonl"]
            [[bronze]]
            table = "bronze.crm.customers"
            inputs = ["crm/", "s3://b/crm/*.csv"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn inputs_are_routed_by_glob_or_prefix_and_an_unrouted_input_is_an_error() {
        let config = two_tables();
        assert_eq!(
            config.route("in/a.jsonl").unwrap().to_string(),
            "bronze.shop.orders"
        );
        assert_eq!(
            config.route("crm/x.csv").unwrap().to_string(),
            "bronze.crm.customers"
        );
        assert_eq!(
            config.route("s3://b/crm/y.csv").unwrap().to_string(),
            "bronze.crm.customers"
        );
        let e = config.route("other/z.csv").unwrap_err().to_string();
        assert!(
            e.contains("other/z.csv") && e.contains("bronze.crm.customers"),
            "{e}"
        );
        // One bronze table without patterns takes everything.
        let one = PipelineConfig::reference().unwrap();
        assert_eq!(
            one.route("anything.csv").unwrap().to_string(),
            "bronze.shop.orders"
        );
        let bad = PipelineConfig::from_toml(
            "[[bronze]]\ntable = \"bronze.a.b\"\ninputs = [\"[\"]\n[[bronze]]\ntable = \"bronze.a.c\"",
        )
        .unwrap();
        let e = bad.route("x").unwrap_err().to_string();
        assert!(e.contains("bronze[0].inputs"), "{e}");
    }

    #[tokio::test]
    async fn a_folder_is_walked_in_name_order_and_unreadable_names_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("crm")).unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("crm/c.csv"), "x\n1\n").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        let mut config = two_tables();
        config.bronze[1].inputs = vec!["*.csv".into()];
        let found = discover(&config, &[dir.path().to_string_lossy().to_string()])
            .await
            .unwrap();
        let names: Vec<_> = found
            .inputs
            .iter()
            .map(|i| {
                (
                    Path::new(&i.location).file_name().unwrap().to_owned(),
                    i.table.to_string(),
                )
            })
            .collect();
        assert_eq!(names.len(), 3);
        assert_eq!(names[0].0, "a.jsonl");
        assert_eq!(names[1].0, "b.jsonl");
        assert_eq!(names[2], ("c.csv".into(), "bronze.crm.customers".into()));
        assert_eq!(found.not_read.len(), 1);
        assert!(found.not_read[0].0.ends_with("_SUCCESS"));
        // Named explicitly, a file without a format is an error.
        let e = discover(
            &config,
            &[dir.path().join("_SUCCESS").to_string_lossy().to_string()],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("_SUCCESS") && e.contains("no input format"),
            "{e}"
        );
        let e = discover(&config, &["no/such/dir".to_string()])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/dir"), "{e}");
    }
}
