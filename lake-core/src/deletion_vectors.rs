//! Reading Delta deletion vectors: which rows of a data file are deleted.
//!
//! The format is the Delta protocol's ("Deletion Vector Format"): a file of
//! bitmaps, each as its size (big-endian), a magic number, a portable 64-bit
//! Roaring bitmap of row positions, and a CRC-32 (big-endian) of the magic
//! and the bitmap; or the magic and bitmap inline in the log, in base85.
//! deltalake reads them inside its scan only, over a log replay of its
//! own; this reads one from its descriptor, for readers of the files
//! (lake-silver's rewrites, [`crate::pruning_provider`]).

use std::io::Cursor;

use bytes::Bytes;
use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use roaring::RoaringTreemap;

use crate::error::{LakeError, Result};

/// The magic number before a bitmap in the portable format.
pub const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// Length of the base85 text of a UUID, at the end of a relative path.
const ENCODED_UUID: usize = 20;

/// The row positions `dv`, a deletion vector of a file of the table at
/// `root`, deletes.
pub async fn read(
    store: &dyn ObjectStore,
    root: &Path,
    dv: &DeletionVectorDescriptor,
    table: &str,
) -> Result<RoaringTreemap> {
    let invalid = |message: String| {
        LakeError::other(
            format!("deletion vector `{}` of {table}", dv.path_or_inline_dv),
            message,
        )
    };
    let size = usize::try_from(dv.size_in_bytes)
        .map_err(|_| invalid(format!("negative size {}", dv.size_in_bytes)))?;
    // Magic and bitmap, the size checked against the log's.
    let stored: Bytes = match dv.storage_type {
        StorageType::Inline => Bytes::from(
            z85::decode(&dv.path_or_inline_dv).map_err(|e| invalid(format!("base85: {e}")))?,
        ),
        StorageType::UuidRelativePath => {
            let location = relative_path(root, &dv.path_or_inline_dv).map_err(invalid)?;
            let offset = usize::try_from(dv.offset.unwrap_or(1))
                .map_err(|_| invalid(format!("negative offset {:?}", dv.offset)))?;
            // Size, magic and bitmap, then the checksum.
            let bytes = store
                .get_range(&location, (offset as u64)..(offset + 4 + size + 4) as u64)
                .await
                .map_err(|e| LakeError::storage(location.to_string(), e))?;
            if bytes.len() < 8 + size {
                return Err(invalid(format!(
                    "{location} ends before its {size} bytes at {offset}"
                )));
            }
            let written = u32::from_be_bytes(bytes[..4].try_into().unwrap_or_default());
            if written as usize != size {
                return Err(invalid(format!(
                    "{location} holds {written} bytes at {offset}, the log says {size}"
                )));
            }
            let data = bytes.slice(4..4 + size);
            let crc = u32::from_be_bytes(bytes[4 + size..8 + size].try_into().unwrap_or_default());
            let computed = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&data);
            if crc != computed {
                return Err(invalid(format!(
                    "{location}: checksum {crc:#x} at {offset}, the data gives {computed:#x}"
                )));
            }
            data
        }
        StorageType::AbsolutePath => {
            return Err(invalid(
                "deletion vectors at absolute paths are not supported".to_string(),
            ));
        }
    };
    if stored.len() < 4 || stored.len() < size {
        return Err(invalid(format!(
            "{} bytes, fewer than the {size} the log says",
            stored.len()
        )));
    }
    let magic = u32::from_le_bytes(stored[..4].try_into().unwrap_or_default());
    if magic != PORTABLE_MAGIC {
        return Err(invalid(format!("unknown bitmap format {magic}")));
    }
    RoaringTreemap::deserialize_from(Cursor::new(&stored[4..size.max(4)]))
        .map_err(|e| invalid(format!("bitmap: {e}")))
}

/// The file of the deletion vector whose relative path (a prefix, then the
/// UUID in base85) is `encoded`, in the table at `root`.
/// Where the file of `dv`, a deletion vector of a file of the table at
/// `root`, is: `None` for a vector kept inline in the log or an absolute
/// path (which this crate never writes).
pub fn location(root: &Path, dv: &DeletionVectorDescriptor) -> Option<Path> {
    match dv.storage_type {
        StorageType::UuidRelativePath => relative_path(root, &dv.path_or_inline_dv).ok(),
        _ => None,
    }
}

fn relative_path(root: &Path, encoded: &str) -> std::result::Result<Path, String> {
    let split = encoded
        .len()
        .checked_sub(ENCODED_UUID)
        .filter(|at| encoded.is_char_boundary(*at))
        .ok_or_else(|| "path shorter than a UUID".to_string())?;
    let (prefix, uuid) = encoded.split_at(split);
    let uuid = z85::decode(uuid)
        .ok()
        .and_then(|bytes| uuid::Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| format!("`{uuid}` is not a base85 UUID"))?;
    let name = format!("deletion_vector_{uuid}.bin");
    let mut location = root.clone();
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        location = location.join(part);
    }
    Ok(location.join(name.as_str()))
}
