//! The examples' own checks: what they write is what they say.

mod ingest_service;
mod own_entity;
