//! The storage conformance suite: what every [`Storage`] implementation
//! must do (its `# Contract`), as public test bodies.
//!
//! Each function takes a fresh storage on an empty lake root and panics on
//! a violation. [`run_all`] runs every one, each on a storage of its own:
//! ```no_run
//! # fn my_storage() -> lake_core::StorageRef { unimplemented!() }
//! # async fn demo() {
//! // In a test of your crate, with lake-testing's `conformance` feature:
//! lake_testing::conformance::storage::run_all(|| async { my_storage() }).await;
//! # }
//! ```
//!
//! [`Storage`]: lake_core::Storage

use std::future::Future;
use std::sync::Arc;

use lake_core::arrow::array::{Int64Array, RecordBatch, StringArray};
use lake_core::arrow::datatypes::{DataType, Field, Schema};
use lake_core::object_store::path::Path;
use lake_core::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use lake_core::{StorageExt, StorageRef, TableId};

/// Runs every test of the suite, each on a storage `fresh` makes.
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StorageRef>,
{
    objects_under_the_root(fresh().await).await;
    the_same_store_every_time(fresh().await).await;
    tables(fresh().await).await;
    locations_outside_the_root_are_refused(fresh().await).await;
}

/// Objects written under the lake root through the store are read back,
/// listed and deleted at the object path of their location URL.
pub async fn objects_under_the_root(storage: StorageRef) {
    let location = storage
        .layout()
        .root()
        .join("temp/conformance/object.txt")
        .expect("a location under the root");
    let path = storage
        .object_path(&location)
        .expect("the object path of a location under the root");
    assert!(
        path.as_ref().ends_with("temp/conformance/object.txt"),
        "{path} for {location}"
    );
    let store = storage.object_store();
    store
        .put(&path, PutPayload::from_static(b"lake"))
        .await
        .expect("a put under the root");
    let read = store
        .get(&path)
        .await
        .expect("a get of what was put")
        .bytes()
        .await
        .expect("the bytes");
    assert_eq!(read.as_ref(), b"lake");
    let prefix = Path::from(path.as_ref().trim_end_matches("/object.txt"));
    let listed = store
        .list_with_delimiter(Some(&prefix))
        .await
        .expect("a listing");
    assert_eq!(
        listed
            .objects
            .iter()
            .map(|o| o.location.clone())
            .collect::<Vec<_>>(),
        vec![path.clone()]
    );
    store.delete(&path).await.expect("a delete");
    assert!(store.head(&path).await.is_err(), "{path} is gone");
}

/// The store handed out is the same every time: what one handle writes,
/// another reads at once.
pub async fn the_same_store_every_time(storage: StorageRef) {
    let location = storage
        .layout()
        .root()
        .join("temp/conformance/shared.txt")
        .expect("a location under the root");
    let path = storage.object_path(&location).expect("an object path");
    let (one, two): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) =
        (storage.object_store(), storage.object_store());
    one.put(&path, PutPayload::from_static(b"shared"))
        .await
        .expect("a put");
    let read = two.get(&path).await.expect("a get").bytes().await.unwrap();
    assert_eq!(read.as_ref(), b"shared");
}

/// A Delta table that does not exist opens with no version; one created
/// with [`StorageExt::ensure_table`] opens at version 0 from another
/// handle, a second `ensure_table` keeps it, and a write through
/// deltalake on the storage's options is read back.
pub async fn tables(storage: StorageRef) {
    let id = TableId::bronze("conformance", "events").expect("a table id");
    let location = storage.layout().table_location(&id);
    let missing = storage.open_table(&location).await.expect("an open");
    assert_eq!(missing.version(), None, "no table yet at {location}");
    let schema = Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Int64, true),
    ]);
    let created = storage
        .ensure_table(&location, &schema, &[])
        .await
        .expect("a created table");
    assert_eq!(created.version(), Some(0));
    let again = storage
        .ensure_table(&location, &schema, &[])
        .await
        .expect("the same table");
    assert_eq!(again.version(), Some(0), "ensure_table is idempotent");
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(Int64Array::from(vec![Some(1), None])),
        ],
    )
    .expect("a batch");
    let written = again
        .write(vec![batch])
        .await
        .expect("a write through deltalake");
    assert_eq!(written.version(), Some(1));
    let reopened = storage.open_table(&location).await.expect("a reopen");
    assert_eq!(
        reopened.version(),
        Some(1),
        "the write is seen from a new handle"
    );
    let rows = crate::table_rows(&storage, &location, "SELECT key, value FROM t ORDER BY key")
        .await
        .expect("SQL over the table");
    assert_eq!(rows, ["a|1", "b|"]);
}

/// A location outside the lake root has no object path: nothing is ever
/// read or written beside the lake by mistake.
pub async fn locations_outside_the_root_are_refused(storage: StorageRef) {
    let root = storage.layout().root().clone();
    let mut outside = root.clone();
    outside.set_path("/somewhere-else/file");
    if outside.as_str().starts_with(root.as_str()) {
        return;
    }
    let error = storage
        .object_path(&outside)
        .expect_err("a location outside the root");
    assert!(
        error.to_string().contains("somewhere-else"),
        "the error names the location: {error}"
    );
}
