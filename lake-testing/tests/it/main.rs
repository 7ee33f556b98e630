//! The storage conformance suite over every `Storage` of this workspace:
//! `ObjectStorage` on local files, in memory, and on S3 (`moto_server`).

use std::sync::Arc;

use lake_core::{ObjectStorage, StorageRef};
use lake_testing::conformance::storage;

#[tokio::test]
async fn local_files_pass_the_storage_suite() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut next = dirs.iter();
    storage::run_all(|| {
        let dir = next.next().expect("one folder per test");
        let root = dir.path().to_str().unwrap().to_string();
        async move { Arc::new(ObjectStorage::from_url(&root).unwrap()) as StorageRef }
    })
    .await;
}

#[tokio::test]
async fn memory_passes_the_storage_suite() {
    let mut n = 0;
    storage::run_all(|| {
        n += 1;
        let root = format!("memory:///lake-{n}");
        async move { Arc::new(ObjectStorage::from_url(&root).unwrap()) as StorageRef }
    })
    .await;
}

#[cfg(feature = "aws")]
#[tokio::test]
async fn s3_passes_the_storage_suite() {
    storage::run_all(|| async { Arc::new(lake_testing::moto_storage()) as StorageRef }).await;
}

#[tokio::test]
async fn the_suite_fails_a_storage_that_breaks_its_contract() {
    // A store that drops what it is given: the first test body must panic.
    #[derive(Debug)]
    struct Forgetful {
        inner: ObjectStorage,
    }
    impl lake_core::Storage for Forgetful {
        fn layout(&self) -> &lake_core::LakeLayout {
            self.inner.layout()
        }
        fn object_store(&self) -> lake_core::ObjectStoreRef {
            // A new, empty store every time: writes are never seen again.
            Arc::new(lake_core::object_store::memory::InMemory::new())
        }
        fn storage_options(&self) -> &std::collections::HashMap<String, String> {
            self.inner.storage_options()
        }
    }
    let forgetful: StorageRef = Arc::new(Forgetful {
        inner: ObjectStorage::from_url("memory:///forgetful").unwrap(),
    });
    let outcome = tokio::spawn(storage::the_same_store_every_time(forgetful)).await;
    assert!(
        outcome.is_err(),
        "the suite must catch a store that forgets"
    );
}
