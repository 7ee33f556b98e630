//! Runnable programs a newcomer starts from; see the `examples/` folder of
//! this package and the workspace README.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod ingest_service;
pub mod own_entity;
