//! How the SCD2 table is laid out: closed versions apart from current ones,
//! so that the files of settled history are written once.

use lake_core::StorageExt;
use lake_core::deltalake::DeltaTable;
use lake_silver::OrdersSilver;
use lake_silver::orders::key_bucket;

use crate::support::{Lake, bronze, event, silver, t};

impl Lake {
    async fn silver_table(&self) -> DeltaTable {
        let location = self.storage.layout().table_location(&silver());
        self.storage.open_table(&location).await.unwrap()
    }

    /// The data files of the SCD2 table holding closed versions.
    async fn closed_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self
            .silver_table()
            .await
            .get_file_uris()
            .unwrap()
            .filter(|f| f.contains("is_current=false"))
            .collect();
        files.sort();
        files
    }

    /// Every version: key, status, validity and the current flag.
    async fn versions(&self) -> Vec<String> {
        self.rows(
            &silver(),
            "SELECT order_id, status, valid_from, valid_to, is_current FROM t \
             ORDER BY order_id, valid_from",
        )
        .await
    }

    async fn partition_columns(&self) -> Vec<String> {
        self.silver_table()
            .await
            .snapshot()
            .unwrap()
            .metadata()
            .partition_columns()
            .to_vec()
    }
}

#[tokio::test]
async fn closed_versions_keep_their_files_until_an_event_lands_before_their_end() {
    let lake = Lake::new();
    lake.ingest(
        "b1",
        &[
            event("o1", "placed", "1", "c", &t(10, 0)),
            event("o1", "paid", "1", "u", &t(11, 0)),
            event("o2", "placed", "2", "c", &t(10, 0)),
        ],
    )
    .await;
    lake.refine().await;
    assert_eq!(
        lake.partition_columns().await,
        ["_key_bucket", "is_current"]
    );
    let first = lake.closed_files().await;
    assert_eq!(first.len(), 1, "{first:?}");

    // Later events only: o1's closed version cannot change, nor its file.
    lake.ingest(
        "b2",
        &[
            event("o1", "shipped", "1", "u", &t(12, 0)),
            event("o2", "paid", "2", "u", &t(12, 0)),
        ],
    )
    .await;
    lake.refine().await;
    let second = lake.closed_files().await;
    assert!(second.contains(&first[0]), "{first:?} not in {second:?}");
    assert_eq!(second.len(), 3, "{second:?}");

    // A late event inside o1's first interval splits it: that file goes.
    lake.ingest("b3", &[event("o1", "packed", "1", "u", &t(10, 30))])
        .await;
    lake.refine().await;
    assert!(!lake.closed_files().await.contains(&first[0]));
    let statuses = lake.versions().await;
    assert_eq!(
        statuses,
        [
            "o1|placed|2025-11-04T10:00:00Z|2025-11-04T10:30:00Z|false",
            "o1|packed|2025-11-04T10:30:00Z|2025-11-04T11:00:00Z|false",
            "o1|paid|2025-11-04T11:00:00Z|2025-11-04T12:00:00Z|false",
            "o1|shipped|2025-11-04T12:00:00Z||true",
            "o2|placed|2025-11-04T10:00:00Z|2025-11-04T12:00:00Z|false",
            "o2|paid|2025-11-04T12:00:00Z||true",
        ]
    );
}

/// `n` keys of one bucket, so that their closed versions share files.
fn keys_of_one_bucket(n: usize) -> Vec<String> {
    let bucket = key_bucket("o1");
    (1..)
        .map(|i| format!("o{i}"))
        .filter(|key| key_bucket(key) == bucket)
        .take(n)
        .collect()
}

#[tokio::test]
async fn a_late_event_of_one_key_leaves_the_settled_history_of_the_others_alone() {
    let keys = keys_of_one_bucket(3);
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let lake = Lake::new();
    lake.ingest(
        "b1",
        &[
            event(a, "placed", "1", "c", &t(10, 0)),
            event(a, "paid", "1", "u", &t(11, 0)),
            event(b, "placed", "2", "c", &t(10, 0)),
            event(b, "paid", "2", "u", &t(11, 0)),
        ],
    )
    .await;
    lake.refine().await;
    let first = lake.closed_files().await;
    assert_eq!(first.len(), 1, "{first:?}");

    // The run's earliest event (c's) is before the end of a's and b's
    // closed versions, but each key's own events come after them.
    lake.ingest(
        "b2",
        &[
            event(b, "shipped", "2", "u", &t(12, 0)),
            event(c, "placed", "3", "c", &t(9, 0)),
        ],
    )
    .await;
    lake.refine().await;
    let second = lake.closed_files().await;
    assert!(second.contains(&first[0]), "{first:?} not in {second:?}");
    assert_eq!(
        second.len(),
        2,
        "b's closed `paid` in a file of its own: {second:?}"
    );

    // A late event inside a's first interval: that file goes.
    lake.ingest("b3", &[event(a, "packed", "1", "u", &t(10, 30))])
        .await;
    lake.refine().await;
    assert!(!lake.closed_files().await.contains(&first[0]));
    let mut expected = [
        format!("{a}|placed|2025-11-04T10:00:00Z|2025-11-04T10:30:00Z|false"),
        format!("{a}|packed|2025-11-04T10:30:00Z|2025-11-04T11:00:00Z|false"),
        format!("{a}|paid|2025-11-04T11:00:00Z||true"),
        format!("{b}|placed|2025-11-04T10:00:00Z|2025-11-04T11:00:00Z|false"),
        format!("{b}|paid|2025-11-04T11:00:00Z|2025-11-04T12:00:00Z|false"),
        format!("{b}|shipped|2025-11-04T12:00:00Z||true"),
        format!("{c}|placed|2025-11-04T09:00:00Z||true"),
    ];
    // By key (a stable sort keeps each key's versions in time order).
    expected.sort_by_key(|row| row.split('|').next().map(str::to_string));
    let rows = lake.versions().await;
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_table_in_the_older_layout_is_merged_as_before_and_a_rebuild_moves_it() {
    let batches = [
        vec![
            event("o1", "placed", "1", "c", &t(10, 0)),
            event("o1", "paid", "1", "u", &t(11, 0)),
            event("o2", "placed", "2", "c", &t(10, 0)),
        ],
        vec![
            event("o1", "packed", "1", "u", &t(10, 30)),
            event("o2", "placed", "2", "d", &t(12, 0)),
        ],
    ];
    let current = Lake::new();
    current.ingest("b1", &batches[0]).await;
    current.refine().await;
    let location = current.storage.layout().table_location(&silver());
    let schema = current
        .storage
        .open_table(&location)
        .await
        .unwrap()
        .snapshot()
        .unwrap()
        .snapshot()
        .arrow_schema();

    // Partitioned by key bucket only, as tables were before.
    let older = Lake::new();
    let location = older.storage.layout().table_location(&silver());
    older
        .storage
        .ensure_table(&location, &schema, &["_key_bucket"])
        .await
        .unwrap();
    older.ingest("b1", &batches[0]).await;
    older.refine().await;
    assert_eq!(older.history().await, current.history().await);
    current.ingest("b2", &batches[1]).await;
    current.refine().await;
    older.ingest("b2", &batches[1]).await;
    older.refine().await;
    assert_eq!(older.partition_columns().await, ["_key_bucket"]);
    assert_eq!(older.history().await, current.history().await);
    assert_eq!(current.history().await.len(), 4);

    OrdersSilver::new(bronze(), silver())
        .unwrap()
        .rebuild(&older.storage, &[])
        .await
        .unwrap();
    assert_eq!(
        older.partition_columns().await,
        ["_key_bucket", "is_current"]
    );
    assert_eq!(older.history().await, current.history().await);
}
