//! A table of your own end to end (see `lake_examples::own_entity`):
//! Parquet deliveries of shipments through bronze, a silver spec and a gold
//! spec of their own, then the tables printed.
//!
//! Usage: `cargo run -p lake-examples --example own_entity [LAKE_DIR]`

use std::path::PathBuf;
use std::sync::Arc;

use lake::gold::LakeSession;
use lake::{CatalogRef, LakeError, ObjectStorage, StorageRef};
use lake_catalog::FileCatalog;

#[tokio::main]
async fn main() -> lake::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "lake-shipments".into()),
    );
    for report in lake_examples::own_entity::run(&root).await? {
        print!("{report}");
    }
    let storage: StorageRef = Arc::new(ObjectStorage::from_url(&root.to_string_lossy())?);
    let catalog: CatalogRef = Arc::new(FileCatalog::new(&storage)?);
    let session = LakeSession::over_catalog(storage, &catalog).await?;
    for sql in [
        "SELECT carrier, tracking_no, status, weight_kg, valid_from, valid_to, is_current \
         FROM silver.logistics.shipments ORDER BY carrier, tracking_no, valid_from",
        "SELECT shipped_on, carrier, shipments, weight_kg FROM gold.logistics.weight_by_day \
         ORDER BY shipped_on, carrier",
    ] {
        println!("\n{sql}");
        session
            .sql(sql)
            .await?
            .show()
            .await
            .map_err(|e| LakeError::datafusion("own_entity", e))?;
    }
    Ok(())
}
