//! The conformance suite of `lake_testing::conformance::catalog`, run
//! against every `Catalog` implementation of this crate.

use std::sync::Arc;

use lake_catalog::{FileCatalog, MemoryCatalog};
use lake_core::{CatalogRef, ObjectStorage, StorageRef};

/// A catalog under test, with whatever keeps it alive.
struct Subject {
    catalog: CatalogRef,
    _dir: Option<tempfile::TempDir>,
}

fn memory() -> Subject {
    Subject {
        catalog: Arc::new(MemoryCatalog::new()),
        _dir: None,
    }
}

fn file_on_disk() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let storage: StorageRef =
        Arc::new(ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap());
    Subject {
        catalog: Arc::new(FileCatalog::new(&storage).unwrap()),
        _dir: Some(dir),
    }
}

fn file_in_memory() -> Subject {
    let storage: StorageRef = Arc::new(ObjectStorage::from_url("memory:///lake").unwrap());
    Subject {
        catalog: Arc::new(FileCatalog::new(&storage).unwrap()),
        _dir: None,
    }
}

/// The Glue catalog on the `moto_server` that `scripts/test` starts, with
/// a database per namespace. Each test gets databases of its own through a
/// unique name template.
#[cfg(feature = "glue")]
async fn glue() -> Subject {
    glue_with(format!(
        "{}_{{zone}}_{{namespace}}",
        lake_testing::unique_name("t")
    ))
    .await
}

/// The same with one database per zone.
#[cfg(feature = "glue")]
async fn glue_per_zone() -> Subject {
    glue_with(format!("{}_{{zone}}", lake_testing::unique_name("z"))).await
}

#[cfg(feature = "glue")]
async fn glue_with(template: String) -> Subject {
    let catalog = lake_catalog::GlueCatalog::builder()
        .endpoint_url(lake_testing::moto_endpoint())
        .region("us-east-1")
        .credentials("testing", "testing")
        .database_template(template)
        .grants_database(lake_testing::unique_name("g"))
        .build()
        .await
        .unwrap();
    Subject {
        catalog: Arc::new(catalog),
        _dir: None,
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_catalog {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { lake_testing::conformance::catalog::$name(super::memory().catalog).await; })*
        }
        mod file_catalog_on_disk {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let subject = super::file_on_disk();
                lake_testing::conformance::catalog::$name(subject.catalog.clone()).await;
            })*
        }
        mod file_catalog_in_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { lake_testing::conformance::catalog::$name(super::file_in_memory().catalog).await; })*
        }
        #[cfg(feature = "glue")]
        mod glue_catalog_on_moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { lake_testing::conformance::catalog::$name(super::glue().await.catalog).await; })*
        }
        #[cfg(feature = "glue")]
        mod glue_catalog_per_zone_on_moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { lake_testing::conformance::catalog::$name(super::glue_per_zone().await.catalog).await; })*
        }
    };
}

conformance!(
    namespaces,
    tables,
    schema_versions,
    compatibility_modes,
    partitions,
    many_partitions,
    concurrent_writers,
    grants
);

/// The entry point a third-party catalog uses: every test, each on a
/// catalog of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_runs_from_one_call() {
    lake_testing::conformance::catalog::run_all(|| async { memory().catalog }).await;
}
