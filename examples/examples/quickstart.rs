//! The README's main job, for now: open the embedded lake at `./lake-demo`
//! and show where each zone's tables live.
//!
//! The full bronze → silver → gold run replaces this once the zone crates
//! land (see the README).

use lake_core::{ObjectStorage, Storage, TableId};

fn main() -> lake_core::Result<()> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "lake-demo".to_string());
    let storage = ObjectStorage::from_url(&root)?;
    let layout = storage.layout();
    println!("lake root: {}", layout.root());
    let tables = [
        TableId::bronze("shop", "orders")?,
        TableId::silver("sales", "orders")?,
        TableId::silver("sales", "orders")?.changes_table()?,
        TableId::gold("analytics", "daily_summary")?,
    ];
    for table in &tables {
        println!("{:<32} {}", table.to_string(), layout.table_location(table));
    }
    println!(
        "{:<32} {}",
        "dead letters of bronze",
        layout.dead_letter(&tables[0])
    );
    println!(
        "{:<32} {}",
        "quarantine of silver",
        layout.quarantine(&tables[1])
    );
    println!("{:<32} {}", "catalog", layout.catalog_root());
    match TableId::bronze("shop", "../../etc") {
        Ok(id) => println!("unexpectedly accepted {id}"),
        Err(e) => println!("refused before any I/O: {e}"),
    }
    Ok(())
}
