//! Deletion vectors: which rows of a data file are deleted, kept beside
//! the file so that deleting a few rows does not copy the rest.
//!
//! deltalake 1.1 reads them (its DataFusion scan applies them) but has no
//! operation that writes them, and the kernel's writer needs a kernel
//! transaction; so this module writes them with the kernel's
//! serialisation ([`StreamingDeletionVectorWriter`]) and reads the ones a
//! file has, in the format of the Delta protocol ("Deletion Vector
//! Format"): a file of bitmaps, each as its size (big-endian), a magic
//! number, a portable 64-bit Roaring bitmap of row positions, and a CRC-32
//! (big-endian) of the magic and the bitmap. Every bitmap of one commit
//! goes into one file, `deletion_vector_{uuid}.bin` at the table root,
//! named in the `add` action by the UUID in base85.

use std::io::Cursor;

use bytes::Bytes;
use delta_kernel::actions::deletion_vector_writer::{
    KernelDeletionVector, StreamingDeletionVectorWriter,
};
use delta_kernel::table_features::TableFeature;
use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use deltalake::table::state::DeltaTableState;
use lake_core::object_store::path::Path;
use lake_core::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use lake_core::{LakeError, Result, TableId};
use roaring::RoaringTreemap;

/// The table property that enables deletion vectors (and, set when the
/// table is created, the table feature they need).
pub(crate) const ENABLE_DELETION_VECTORS: &str = "delta.enableDeletionVectors";

/// The magic number before a bitmap in the portable format.
const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// Length of the base85 text of a UUID, at the end of a relative path.
const ENCODED_UUID: usize = 20;

/// Whether commits to the table at `snapshot` may add deletion vectors:
/// the feature is in both feature lists and the property is true.
pub(crate) fn enabled(snapshot: &DeltaTableState) -> bool {
    let protocol = snapshot.protocol();
    let has = |features: Option<&[TableFeature]>| {
        features.is_some_and(|f| f.contains(&TableFeature::DeletionVectors))
    };
    has(protocol.reader_features())
        && has(protocol.writer_features())
        && snapshot
            .table_config()
            .enable_deletion_vectors
            .unwrap_or(false)
}

/// The row positions `dv`, a deletion vector of a file of the table at
/// `root`, deletes.
pub(crate) async fn read(
    store: &dyn ObjectStore,
    root: &Path,
    dv: &DeletionVectorDescriptor,
    id: &TableId,
) -> Result<RoaringTreemap> {
    let invalid = |message: String| {
        LakeError::other(
            format!("deletion vector `{}` of {id}", dv.path_or_inline_dv),
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

/// Writes `vectors` (row positions of files of the table at `root`) into
/// one new file there; their descriptors, in order. Nothing is written
/// for none.
pub(crate) async fn write(
    store: &dyn ObjectStore,
    root: &Path,
    vectors: &[RoaringTreemap],
    id: &TableId,
) -> Result<Vec<DeletionVectorDescriptor>> {
    if vectors.is_empty() {
        return Ok(Vec::new());
    }
    let fail = |e: delta_kernel::Error| LakeError::other(format!("deletion vectors of {id}"), e);
    let uuid = uuid::Uuid::new_v4();
    let mut buffer = Vec::new();
    let mut writer = StreamingDeletionVectorWriter::new(&mut buffer);
    let mut descriptors = Vec::with_capacity(vectors.len());
    for rows in vectors {
        let mut dv = KernelDeletionVector::new();
        dv.add_deleted_row_indexes(rows.iter());
        let written = writer.write_deletion_vector(dv).map_err(fail)?;
        descriptors.push(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: z85::encode(uuid.as_bytes()),
            offset: Some(written.offset),
            size_in_bytes: written.size_in_bytes,
            cardinality: written.cardinality,
        });
    }
    writer.finalize().map_err(fail)?;
    let location = root
        .clone()
        .join(format!("deletion_vector_{uuid}.bin").as_str());
    store
        .put(&location, PutPayload::from(buffer))
        .await
        .map_err(|e| LakeError::storage(location.to_string(), e))?;
    Ok(descriptors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_core::object_store::memory::InMemory;

    #[tokio::test]
    async fn written_vectors_read_back_and_a_damaged_one_is_an_error() {
        let store = InMemory::new();
        let root = Path::from("silver/sales/orders");
        let id = TableId::silver("sales", "orders").unwrap();
        let first: RoaringTreemap = [0u64, 5, 70_000].into_iter().collect();
        let second: RoaringTreemap = (10u64..20).collect();
        let written = write(&store, &root, &[first.clone(), second.clone()], &id)
            .await
            .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(written[1].cardinality, 10);
        assert_eq!(read(&store, &root, &written[0], &id).await.unwrap(), first);
        assert_eq!(read(&store, &root, &written[1], &id).await.unwrap(), second);
        // The kernel reads the same descriptor the same way: inline too.
        let mut inline = PORTABLE_MAGIC.to_le_bytes().to_vec();
        second.serialize_into(&mut inline).unwrap();
        let size = inline.len() as i32;
        while !inline.len().is_multiple_of(4) {
            inline.push(0);
        }
        let dv = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: z85::encode(&inline),
            offset: None,
            size_in_bytes: size,
            cardinality: 10,
        };
        assert_eq!(read(&store, &root, &dv, &id).await.unwrap(), second);

        let mut wrong = written[0].clone();
        wrong.offset = Some(2);
        let error = read(&store, &root, &wrong, &id).await.unwrap_err();
        assert!(error.to_string().contains("deletion vector"), "{error}");
    }
}
