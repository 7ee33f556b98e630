//! Deletion vectors: which rows of a data file are deleted, kept beside
//! the file so that deleting a few rows does not copy the rest.
//!
//! deltalake 1.1 reads them (its DataFusion scan applies them) but has no
//! operation that writes them, and the kernel's writer needs a kernel
//! transaction; so this module writes them with the kernel's
//! serialisation ([`StreamingDeletionVectorWriter`]); lake-core reads them
//! ([`lake_core::deletion_vectors`]). Every bitmap of one commit goes into
//! one file, `deletion_vector_{uuid}.bin` at the table root, named in the
//! `add` action by the UUID in base85.

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
pub(crate) use lake_core::maintenance::ENABLE_DELETION_VECTORS;

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
    use lake_core::deletion_vectors::{PORTABLE_MAGIC, read};
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
        assert_eq!(
            read(&store, &root, &written[0], &id.to_string())
                .await
                .unwrap(),
            first
        );
        assert_eq!(
            read(&store, &root, &written[1], &id.to_string())
                .await
                .unwrap(),
            second
        );
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
        assert_eq!(
            read(&store, &root, &dv, &id.to_string()).await.unwrap(),
            second
        );

        let mut wrong = written[0].clone();
        wrong.offset = Some(2);
        let error = read(&store, &root, &wrong, &id.to_string())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("deletion vector"), "{error}");
    }
}
