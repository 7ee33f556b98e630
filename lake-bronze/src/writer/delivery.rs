//! What bronze records of each delivery, and how a delivery is recognised
//! again: the batch's application transaction, whose version is a digest
//! of the batch's [`Fingerprint`], and the commit's `lake.batch` metadata
//! (id, source file and the fingerprint in full), which names the earlier
//! delivery when a later one with the same id carries other content.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use futures::{StreamExt, TryStreamExt};
use lake_core::fingerprint::LEGACY_TRANSACTION_VERSION;
use lake_core::{
    BatchConflict, ContentHasher, Fingerprint, LakeError, Payload, RawBatch, Result, TableId,
};

/// The commit metadata key of a delivery (silver finds a batch's rows by it
/// once a compaction has moved them to other files).
use lake_core::BATCH_COMMIT_METADATA as BATCH_METADATA;

/// One delivery as bronze commits it.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    /// `lake-bronze:{batch id}`.
    pub(super) app_id: String,
    pub(super) batch_id: String,
    pub(super) source_file: String,
    pub(super) fingerprint: Fingerprint,
}

impl Delivery {
    pub(super) fn as_ref(&self) -> DeliveryRef<'_> {
        DeliveryRef {
            batch_id: &self.batch_id,
            source_file: &self.source_file,
        }
    }

    /// The commit properties that record this delivery.
    pub(super) fn commit_properties(&self) -> CommitProperties {
        CommitProperties::default()
            .with_application_transaction(Transaction::new(
                self.app_id.clone(),
                self.fingerprint.transaction_version(),
            ))
            .with_metadata([(
                BATCH_METADATA.to_string(),
                serde_json::json!({
                    "batch_id": self.batch_id,
                    "source_file": self.source_file,
                    "fingerprint": self.fingerprint.to_string(),
                }),
            )])
    }
}

/// Checks a delivery against the transaction `version` that `table`
/// recorded for its id: the same fingerprint (or one recorded before
/// fingerprints were) passes, another is a [`LakeError::BatchConflict`].
pub(super) async fn check_recorded(
    table: &DeltaTable,
    id: &TableId,
    batch: &DeliveryRef<'_>,
    version: i64,
    fingerprint: &Fingerprint,
) -> Result<()> {
    if version == LEGACY_TRANSACTION_VERSION || version == fingerprint.transaction_version() {
        return Ok(());
    }
    Err(conflict(table, id, batch, fingerprint).await)
}

/// The version of the application transaction `app_id` in `table`.
pub(super) async fn recorded_version(
    table: &DeltaTable,
    id: &TableId,
    app_id: &str,
) -> Result<Option<i64>> {
    if table.version().is_none() {
        return Ok(None);
    }
    lake_core::transaction_version(table, app_id, &id.to_string()).await
}

/// What [`check_recorded`] needs to know of a delivery whose fingerprint may
/// not be known yet.
pub(super) struct DeliveryRef<'a> {
    pub(super) batch_id: &'a str,
    pub(super) source_file: &'a str,
}

/// The error for a delivery whose id `table` recorded with another
/// fingerprint, naming the earlier delivery from its commit's metadata.
async fn conflict(
    table: &DeltaTable,
    id: &TableId,
    batch: &DeliveryRef<'_>,
    fingerprint: &Fingerprint,
) -> LakeError {
    let mut earlier = (
        "an earlier delivery (its commit has left the log)".to_string(),
        "unknown".to_string(),
    );
    let mut history = table.history(None);
    while let Some(Ok(commit)) = history.next().await {
        let Some(info) = commit.info.get(BATCH_METADATA) else {
            continue;
        };
        if info.get("batch_id").and_then(|v| v.as_str()) == Some(batch.batch_id) {
            let text = |key: &str| info.get(key).and_then(|v| v.as_str()).map(str::to_string);
            earlier = (
                text("source_file").unwrap_or(earlier.0),
                text("fingerprint").unwrap_or(earlier.1),
            );
            break;
        }
    }
    LakeError::BatchConflict(Box::new(BatchConflict {
        table: id.to_string(),
        batch_id: batch.batch_id.to_string(),
        earlier_file: earlier.0,
        earlier_fingerprint: earlier.1,
        file: batch.source_file.to_string(),
        fingerprint: fingerprint.to_string(),
    }))
}

/// The fingerprint of `batch` when it is known or in memory: given (an
/// object's ETag), or hashed from bytes or Arrow batches. `None` for a
/// file (see [`fingerprint_of_file`]) and for a stream, which is hashed as
/// it is read (see [`hash_as_read`]).
pub(super) fn fingerprint_in_memory(batch: &RawBatch) -> Result<Option<Fingerprint>> {
    if let Some(known) = &batch.fingerprint {
        return Ok(Some(known.clone()));
    }
    Ok(match &batch.payload {
        Payload::Bytes(bytes) => Some(Fingerprint::of_bytes(bytes)),
        Payload::Batches(batches) => Some(Fingerprint::of_batches(batches)?),
        Payload::File(_) | Payload::Stream(_) => None,
    })
}

/// The fingerprint of a delivered file, hashed off the async workers.
pub(super) async fn fingerprint_of_file(path: PathBuf) -> Result<Fingerprint> {
    tokio::task::spawn_blocking(move || Fingerprint::of_file(&path))
        .await
        .map_err(|e| LakeError::other("hashing a delivered file", e))?
}

/// `payload` with every chunk of a stream added to the returned hasher as
/// it is read; other payloads unchanged.
pub(super) fn hash_as_read(payload: Payload) -> (Payload, Arc<Mutex<ContentHasher>>) {
    let hasher = Arc::new(Mutex::new(ContentHasher::default()));
    let payload = match payload {
        Payload::Stream(stream) => {
            let feed = Arc::clone(&hasher);
            Payload::Stream(
                stream
                    .inspect_ok(move |chunk| {
                        feed.lock().expect("the hasher never panics").update(chunk)
                    })
                    .boxed(),
            )
        }
        other => other,
    };
    (payload, hasher)
}

/// The fingerprint of a stream, read to its end (a redelivery of an id
/// already ingested is compared, not ingested).
pub(super) async fn hash_stream(payload: Payload) -> Result<Fingerprint> {
    let mut hasher = ContentHasher::default();
    if let Payload::Stream(mut stream) = payload {
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
    }
    Ok(hasher.finish())
}
