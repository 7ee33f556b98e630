//! What a delivered batch holds, in a few bytes: the fingerprint bronze
//! records with each batch's transaction.
//!
//! # The identity rule
//! A delivered batch is identified by its **batch id** and described by its
//! **fingerprint**. The batch id of a file or object is its full location
//! (the absolute path, or the object's URL), not its base name, so
//! `day1/export.jsonl` and `day2/export.jsonl` are two deliveries, as Auto
//! Loader and Glue job bookmarks identify files by full path. A service
//! that names its deliveries itself passes its own id
//! ([`RawBatch::from_bytes`](crate::RawBatch::from_bytes) and friends).
//!
//! The fingerprint is the size and BLAKE3 hash of the bytes, or, for an
//! object of an object store, its size and ETag (as Snowpipe identifies a
//! file by path and ETag), so the object is not read twice to be compared.
//! Delivering an id again with the same fingerprint adds nothing; with
//! another fingerprint it is refused with [`LakeError::BatchConflict`],
//! which names both deliveries: new content never hides behind an old id.
//!
//! The fingerprint is kept as the version of the batch's Delta application
//! transaction (a 62-bit digest of it, so the check costs no extra read)
//! and, in full, in the commit's `commitInfo`. Tables written before
//! fingerprints existed carry version 1, which matches any content.
//!
//! [`LakeError::BatchConflict`]: crate::LakeError::BatchConflict

use std::fmt;
use std::io::Read;
use std::path::Path;

use arrow::record_batch::RecordBatch;

use crate::error::{LakeError, Result};

/// The transaction version of batches ingested before fingerprints were
/// recorded: it matches any fingerprint.
pub const LEGACY_TRANSACTION_VERSION: i64 = 1;

/// What a delivered batch holds: its size and a hash of its bytes, or the
/// ETag its object store gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fingerprint {
    /// The size and BLAKE3 hash of the bytes (Arrow batches: of their IPC
    /// stream).
    Content {
        /// The size in bytes.
        bytes: u64,
        /// The hash, as 64 hexadecimal digits.
        blake3: String,
    },
    /// An object's size and ETag, as its store reported them.
    Object {
        /// The size in bytes.
        bytes: u64,
        /// The ETag.
        etag: String,
    },
}

impl Fingerprint {
    /// The fingerprint of bytes in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let mut hasher = ContentHasher::default();
        hasher.update(bytes);
        hasher.finish()
    }

    /// The fingerprint of a local file, read once in 1 MiB steps. Blocking:
    /// call it off the async runtime's workers.
    pub fn of_file(path: &Path) -> Result<Self> {
        let io_error = |source| LakeError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io_error)?;
        let mut hasher = ContentHasher::default();
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let n = file.read(&mut buffer).map_err(io_error)?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buffer[..n]);
        }
    }

    /// The fingerprint of Arrow batches: of their IPC stream, which holds
    /// the schema and every value.
    pub fn of_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut hasher = ContentHasher::default();
        if let Some(first) = batches.first() {
            let fail = |e| LakeError::arrow("fingerprinting record batches", e);
            let mut writer =
                arrow::ipc::writer::StreamWriter::try_new(&mut hasher, &first.schema())
                    .map_err(fail)?;
            for batch in batches {
                writer.write(batch).map_err(fail)?;
            }
            writer.finish().map_err(fail)?;
        }
        Ok(hasher.finish())
    }

    /// The fingerprint of an object from its store's metadata: its ETag
    /// when the store gives one, else none (the content is hashed as it is
    /// read).
    pub fn of_object(meta: &object_store::ObjectMeta) -> Option<Self> {
        meta.e_tag.as_ref().map(|etag| Self::Object {
            bytes: meta.size,
            etag: etag.clone(),
        })
    }

    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Content { bytes, .. } | Self::Object { bytes, .. } => *bytes,
        }
    }

    /// The version of the Delta application transaction that records this
    /// fingerprint: 62 bits of a hash of its text, never
    /// [`LEGACY_TRANSACTION_VERSION`] and never negative.
    pub fn transaction_version(&self) -> i64 {
        let digest = blake3::hash(self.to_string().as_bytes());
        let head: [u8; 8] = digest.as_bytes()[..8].try_into().expect("32 bytes");
        let version = (u64::from_le_bytes(head) >> 2) as i64;
        version.max(LEGACY_TRANSACTION_VERSION + 1)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Content { bytes, blake3 } => write!(f, "{bytes} bytes, blake3 {blake3}"),
            Self::Object { bytes, etag } => write!(f, "{bytes} bytes, etag {etag}"),
        }
    }
}

/// Hashes bytes as they stream past, into a [`Fingerprint::Content`].
#[derive(Debug, Default, Clone)]
pub struct ContentHasher {
    hasher: blake3::Hasher,
    bytes: u64,
}

impl ContentHasher {
    /// Adds `bytes` to the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// The fingerprint of everything added.
    pub fn finish(&self) -> Fingerprint {
        Fingerprint::Content {
            bytes: self.bytes,
            blake3: self.hasher.finalize().to_hex().to_string(),
        }
    }
}

impl std::io::Write for ContentHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_contents_apart_and_never_look_legacy() {
        let a = Fingerprint::of_bytes(b"{\"a\":1}\n");
        let b = Fingerprint::of_bytes(b"{\"a\":2}\n");
        assert_ne!(a, b);
        assert_ne!(a.transaction_version(), b.transaction_version());
        assert_eq!(a, Fingerprint::of_bytes(b"{\"a\":1}\n"));
        assert_eq!(a.bytes(), 8);
        for fingerprint in [a, b] {
            assert!(fingerprint.transaction_version() > LEGACY_TRANSACTION_VERSION);
        }
        // The hash of the empty input is BLAKE3's published test vector.
        assert_eq!(
            Fingerprint::of_bytes(b"").to_string(),
            "0 bytes, blake3 af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn a_file_hashes_like_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let text = "{\"a\":1}\n".repeat(300_000);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            Fingerprint::of_file(&path).unwrap(),
            Fingerprint::of_bytes(text.as_bytes())
        );
    }
}
