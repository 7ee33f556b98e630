//! Storage round-trips on `file://` and `memory://`, through object_store
//! and through deltalake on the very same store.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use lake_core::object_store::{ObjectStoreExt, PutPayload};
use lake_core::{ObjectStorage, Storage, StorageExt, TableId};

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ],
    )
    .unwrap()
}

async fn round_trip(storage: &ObjectStorage) {
    // Plain objects.
    let location = storage.layout().temp().join("hello.txt").unwrap();
    let path = storage.object_path(&location).unwrap();
    let store = storage.object_store();
    store
        .put(&path, PutPayload::from_static(b"hello"))
        .await
        .unwrap();
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"hello");
    let prefix = storage.object_path(&storage.layout().temp()).unwrap();
    let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, path);

    // A Delta table on the same store.
    let id = TableId::bronze("shop", "orders").unwrap();
    let location = storage.layout().table_location(&id);
    let table = storage.open_table(&location).await.unwrap();
    assert_eq!(table.version(), None, "no table yet at {location}");
    let table = table.write(vec![batch()]).await.unwrap();
    assert_eq!(table.version(), Some(0));

    let reopened = storage.open_table(&location).await.unwrap();
    assert_eq!(reopened.version(), Some(0));
    // The log really is under the table's folder in this store.
    let log = storage
        .object_path(&location.join("_delta_log/").unwrap())
        .unwrap();
    let entries: Vec<_> = store.list(Some(&log)).try_collect().await.unwrap();
    assert!(
        entries
            .iter()
            .any(|m| m.location.as_ref().ends_with("00000000000000000000.json")),
        "{entries:?}"
    );
    let rows: usize = reopened
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .map(|f| f.num_records().unwrap_or_default())
        .sum();
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn file_storage_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let storage = ObjectStorage::from_url(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(storage.layout().root().scheme(), "file");
    round_trip(&storage).await;
    assert!(dir.path().join("bronze/shop/orders/_delta_log").is_dir());
    assert!(dir.path().join("temp/hello.txt").is_file());
}

#[tokio::test]
async fn memory_storage_round_trips() {
    let storage = ObjectStorage::from_url("memory:///lake").unwrap();
    round_trip(&storage).await;
}

#[tokio::test]
async fn locations_outside_the_root_are_refused() {
    let storage = ObjectStorage::from_url("memory:///lake").unwrap();
    let outside = url::Url::parse("memory:///other/table/").unwrap();
    assert!(storage.object_path(&outside).is_err());
    assert!(storage.delta_builder(&outside).is_err());
}

#[cfg(not(feature = "aws"))]
#[test]
fn s3_without_the_feature_is_a_clear_error() {
    let err = ObjectStorage::from_url("s3://bucket/lake")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`aws` feature"), "{err}");
}
