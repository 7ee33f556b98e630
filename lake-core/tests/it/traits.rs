//! Every public trait stays object-safe: the pipeline holds them as `Arc<dyn …>`.

use std::sync::Arc;

use lake_core::{
    AggregateStage, Catalog, CatalogRef, IngestStage, ObjectStorage, RefineStage, Storage,
    StorageRef, Validator,
};

#[allow(dead_code)]
struct Holders {
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
    validator: Arc<dyn Validator>,
    ingest: Arc<dyn IngestStage>,
    refine: Arc<dyn RefineStage>,
    aggregate: Arc<dyn AggregateStage>,
}

#[test]
fn storage_is_usable_as_a_trait_object() {
    let storage: StorageRef = Arc::new(ObjectStorage::from_url("memory:///").unwrap());
    assert_eq!(storage.layout().root().as_str(), "memory:///");
    let _: Option<CatalogRef> = None;
}
