//! Bronze: raw ingestion into append-only Delta tables that loses nothing.
//!
//! [`BronzeWriter`] appends one delivered batch to `bronze/{source}/{table}`
//! (partitioned by ingestion date, `year=/month=/day=`) in one Delta
//! commit, dead-letters what cannot be read to
//! `_dlq/bronze/{source}/{table}`, and implements
//! [`lake_core::IngestStage`]. See `SEMANTICS.md`, section Bronze.
//!
//! # Columns
//! Each top-level JSON field becomes a typed column (declared, or inferred
//! from the first records and evolved as new fields appear; see
//! [`SchemaPolicy`]). Nested objects are kept as Arrow structs inferred from
//! the records that introduce them. Beside them every row carries:
//!
//! | column | meaning |
//! |---|---|
//! | `_raw` | the record's original text: silver types from this, so a changed rule can be replayed |
//! | `_ingested_at` | ingestion time (UTC) |
//! | `_source_system` | the source system (the table's namespace) |
//! | `_batch_id` | the delivered batch's id |
//! | `_source_file` | the file or object it came from |
//! | `_source_line` | its 1-based line number |
//! | `year`, `month`, `day` | the ingestion date, zero-padded; the partition columns |
//!
//! Fields whose names bronze reserves (starting with `_`, or `year`,
//! `month`, `day`) get no typed column; they stay in `_raw`.
//!
//! # Inputs
//! | format | how it is read | `_raw` | `_source_line` |
//! |---|---|---|---|
//! | JSON lines | strict RFC 8259 per line, chunked | the line | line number |
//! | CSV | header, delimiter, quote, null strings ([`CsvOptions`]); every column as text | null | line where the record starts |
//! | Parquet | parquet's Arrow reader; streams are buffered (the footer comes last) | null | record number |
//! | Avro | arrow-avro's reader | null | record number |
//! | Arrow batches | as handed in | null | record number |
//!
//! Types are normalised to what Delta stores (microsecond timestamps, no
//! unsigned or view types). What cannot be read goes to the dead-letter
//! store with the reason: `invalid_json`, `invalid_utf8`, `not_an_object`
//! (JSON lines) and `invalid_csv` (a record whose field count differs
//! from the header). A file that cannot be opened as Parquet or Avro at
//! all is an error naming it; nothing is committed.
//!
//! # Threads and memory
//! Input is streamed: records are decoded in chunks
//! ([`BronzeOptions::batch_rows`]) and written into data files as they
//! come. On a multi-threaded tokio runtime one delivery keeps two workers
//! busy: a chunk is decoded on a task of its own while the reader splits
//! and checks the next one, and files are encoded on another task, fed
//! through a channel of one chunk. Memory stays at a few chunks whatever
//! the input's size. On a current-thread runtime everything runs on that
//! thread.
//!
//! # Exactly once
//! Both the bronze and the dead-letter commit of a batch carry the Delta
//! application transaction `lake-bronze:{batch_id}`. A batch id seen before
//! is reported as `already_ingested` and adds nothing; concurrent
//! deliveries of one batch id land once (Delta's conflict checker refuses
//! the second commit, which re-reads and stops).
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use lake_bronze::BronzeWriter;
//! use lake_core::{InputFormat, ObjectStorage, Pipeline, RawBatch, TableId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lake_core::Result<()> {
//! let pipeline = Pipeline::builder()
//!     .with_storage(Arc::new(ObjectStorage::from_url("memory:///")?))
//!     .with_ingest(Arc::new(BronzeWriter::new(TableId::bronze("shop", "orders")?)?))
//!     .build()?;
//! let lines = "{\"order_id\":\"1\",\"amount\":12.5}\nnot json\n\n";
//! let report = pipeline
//!     .run_batch(RawBatch::from_bytes("batch-00001.jsonl", InputFormat::JsonLines, lines)?)
//!     .await?;
//! let totals = report.totals();
//! assert_eq!((totals.bronze_rows, totals.dead_lettered, totals.blank_lines), (1, 1, 1));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod columns;
mod dlq;
pub mod json;
mod options;
mod writer;

pub use dlq::DEAD_LETTER_SCHEMA;
pub use options::{BronzeOptions, Compression, CsvOptions, SchemaPolicy};
pub use writer::{Append, BronzeWriter};
