//! The vocabulary every `lake` crate speaks: errors, identifiers, the storage
//! layout, the [`Storage`], [`Catalog`] and [`Validator`] traits, the stage
//! traits and the [`Pipeline`] that composes them.
//!
//! Zone logic lives elsewhere (`lake-bronze`, `lake-silver`, `lake-gold`);
//! this crate holds no cloud dependency unless the `aws` feature asks for one.
//!
//! # Features
//! - `aws` (off by default): `s3://` lake roots, through object_store's AWS
//!   backend and deltalake's S3 log store.
//!
//! # Example
//! ```
//! use lake_core::{LakeLayout, ObjectStorage, Storage, TableId};
//!
//! # fn main() -> lake_core::Result<()> {
//! let storage = ObjectStorage::from_url("memory:///")?;
//! let orders = TableId::silver("sales", "orders")?;
//! let location = storage.layout().table_location(&orders);
//! assert_eq!(location.as_str(), "memory:///silver/sales/orders/");
//!
//! // Hostile names never reach a path.
//! assert!(TableId::bronze("shop", "../../etc").is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # Versions
//! arrow, datafusion, deltalake, object_store and parquet are re-exported:
//! use `lake_core::arrow` and friends so your service never has two versions.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod access;
pub mod bookmark;
pub mod catalog;
pub mod deletion_vectors;
pub mod erasure;
pub mod error;
pub mod fingerprint;
pub mod ident;
pub mod layout;
pub mod lineage;
pub mod maintenance;
pub mod pii;
pub mod pipeline;
pub mod pruning;
pub mod report;
pub mod retry_store;
pub mod runs;
pub mod schema;
pub mod stage;
pub mod storage;
pub mod touched;
pub mod validate;

pub use arrow;
pub use datafusion;
pub use deltalake;
pub use object_store;
pub use openlineage_client;
pub use parquet;

pub use access::{Access, Grant, GrantScope, Principal, Privilege};
pub use bookmark::{Bookmark, BookmarkState};
pub use catalog::{
    AddPartitions, Catalog, CatalogExt, CatalogRef, DELTA_ENGINE_PROPERTIES, Partition,
    PartitionCondition, PartitionFilter, PartitionOp, PartitionStats, Properties,
    SchemaCompatibility, SchemaVersion, TableDefinition, TableFormat, TableUpdate,
};
pub use error::{BatchConflict, BoxError, LakeError, Result, error_lines};
pub use fingerprint::{ContentHasher, Fingerprint};
pub use ident::{Ident, NamespaceId, PartitionValue, TableId, Zone, quote_ident, quote_literal};
pub use layout::{LakeLayout, date_partition_path, ingestion_date_path, partition_path};
pub use lineage::{FileLineageSink, HttpLineageSink, LineageOptions, LineageSink, LineageSinkRef};
pub use maintenance::{Maintain, MaintenanceOptions, MaintenanceReport, MaintenanceTarget};
pub use pipeline::{
    EraseLake, ErasureReport, MaintainLake, Pipeline, PipelineBuilder, RetryPolicy,
};
pub use pruning::pruning_provider;
pub use report::{RunReport, RunTotals, StageOutcome, StageRun};
pub use retry_store::RetryingStore;
pub use runs::{QUALITY, QUALITY_SCHEMA, RUNS, RUNS_SCHEMA, record_run};
pub use schema::{check_compatibility, check_readable, widens_to};
pub use stage::{
    AggregateReport, AggregateStage, AggregateStageRef, ExpectationSummary, IngestReport,
    IngestStage, IngestStageRef, InputFormat, Payload, RawBatch, RefineReport, RefineStage,
    RefineStageRef, StageContext, VersionRange,
};
pub use storage::{
    BATCH_COMMIT_METADATA, NewTable, ObjectStorage, ObjectStoreRef, Storage, StorageExt,
    StorageRef, changes_data, commit_actions, commit_batch_id, delta_provider, transaction_version,
};
pub use touched::{TOUCHED_KEY, Touched};
pub use validate::{Action, RuleResult, Validation, Validator, ValidatorRef};
