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

    /// The data files of current versions: path and rows deleted.
    async fn current_files(&self) -> Vec<(String, i64)> {
        let table = self.silver_table().await;
        let mut files: Vec<(String, i64)> = table
            .snapshot()
            .unwrap()
            .log_data()
            .iter()
            .filter(|f| f.path().contains("is_current=true"))
            .map(|f| {
                let deleted = f
                    .deletion_vector_descriptor()
                    .map_or(0, |dv| dv.cardinality);
                (f.path().to_string(), deleted)
            })
            .collect();
        files.sort();
        files
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
        .rebuild(&older.storage)
        .await
        .unwrap();
    assert_eq!(
        older.partition_columns().await,
        ["_key_bucket", "is_current"]
    );
    assert_eq!(older.history().await, current.history().await);
}

#[tokio::test]
async fn current_rows_that_change_are_marked_deleted_until_half_their_file_is_gone() {
    let keys = keys_of_one_bucket(6);
    let lake = Lake::new();
    let created: Vec<String> = keys
        .iter()
        .map(|k| event(k, "placed", "1", "c", &t(10, 0)))
        .collect();
    lake.ingest("b1", &created).await;
    lake.refine().await;
    let first = lake.current_files().await;
    assert_eq!(first.len(), 1, "{first:?}");
    let table = lake.silver_table().await;
    let snapshot = table.snapshot().unwrap();
    assert_eq!(snapshot.protocol().min_reader_version(), 3);

    // One of six rows changes: the file stays, that row marked deleted,
    // and the new version goes to a new file.
    lake.ingest("b2", &[event(&keys[0], "paid", "1", "u", &t(11, 0))])
        .await;
    lake.refine().await;
    let second = lake.current_files().await;
    assert!(second.contains(&(first[0].0.clone(), 1)), "{second:?}");
    assert_eq!(second.len(), 2, "{second:?}");
    let current = lake
        .rows(
            &silver(),
            "SELECT order_id, status FROM t WHERE is_current ORDER BY order_id",
        )
        .await;
    let mut expected: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}|{}", if *k == keys[0] { "paid" } else { "placed" }))
        .collect();
    expected.sort_by_key(|row| row.split('|').next().map(str::to_string));
    assert_eq!(current, expected);

    // Three more: four of six gone, so the file is rewritten without them.
    let paid: Vec<String> = keys[1..4]
        .iter()
        .map(|k| event(k, "paid", "1", "u", &t(11, 0)))
        .collect();
    lake.ingest("b3", &paid).await;
    lake.refine().await;
    let third = lake.current_files().await;
    assert!(
        third.iter().all(|(path, _)| *path != first[0].0),
        "{third:?}"
    );
    let mut expected: Vec<String> = keys
        .iter()
        .map(|k| {
            let status = if keys[..4].contains(k) {
                "paid"
            } else {
                "placed"
            };
            format!("{k}|{status}")
        })
        .collect();
    expected.sort_by_key(|row| row.split('|').next().map(str::to_string));
    assert_eq!(
        lake.rows(
            &silver(),
            "SELECT order_id, status FROM t WHERE is_current ORDER BY order_id",
        )
        .await,
        expected
    );

    // Run after run adds a file of new current rows; past a few, the
    // smallest are rewritten together.
    for run in 0..lake_silver::engine::CURRENT_FILES_PER_BUCKET + 2 {
        let at = t(12 + run as u32, 0);
        let status = format!("step{run}");
        lake.ingest(
            &format!("r{run}"),
            &[event(&keys[5], &status, "1", "u", &at)],
        )
        .await;
        lake.refine().await;
        let files = lake.current_files().await;
        assert!(
            files.len() <= lake_silver::engine::CURRENT_FILES_PER_BUCKET,
            "run {run}: {files:?}"
        );
    }
    let history = lake.versions().await;
    assert_eq!(history.iter().filter(|v| v.ends_with("|true")).count(), 6);
    assert_eq!(
        history.len(),
        6 + 4 + lake_silver::engine::CURRENT_FILES_PER_BUCKET + 2,
        "{history:?}"
    );
}

#[tokio::test]
async fn a_spec_without_deletion_vectors_makes_a_table_without_them() {
    let lake = Lake::new();
    let stage = OrdersSilver::new(bronze(), silver())
        .unwrap()
        .with_deletion_vectors(false);
    let keys = keys_of_one_bucket(6);
    let created: Vec<String> = keys
        .iter()
        .map(|k| event(k, "placed", "1", "c", &t(10, 0)))
        .collect();
    lake.ingest("b1", &created).await;
    stage.run(&lake.storage).await.unwrap();
    // One of six rows changes: the file is rewritten, as before.
    lake.ingest("b2", &[event(&keys[0], "paid", "1", "u", &t(11, 0))])
        .await;
    stage.run(&lake.storage).await.unwrap();
    let table = lake.silver_table().await;
    assert_eq!(table.snapshot().unwrap().protocol().min_reader_version(), 1);
    assert_eq!(lake.current_files().await.len(), 1);
    assert_eq!(lake.current_files().await[0].1, 0);
}

/// The bucket count a table was created with, as its property records it.
async fn recorded_buckets(lake: &Lake, table: &lake_core::TableId) -> Option<String> {
    let location = lake.storage.layout().table_location(table);
    let table = lake.storage.open_table(&location).await.unwrap();
    let snapshot = table.snapshot().unwrap();
    snapshot
        .metadata()
        .configuration()
        .get(lake_silver::BUCKETS_PROPERTY)
        .cloned()
}

async fn versions_of(lake: &Lake, table: &lake_core::TableId) -> Option<u64> {
    let location = lake.storage.layout().table_location(table);
    lake.storage.open_table(&location).await.unwrap().version()
}

#[tokio::test]
async fn the_bucket_count_is_recorded_in_both_tables_and_another_count_is_refused() {
    let lake = Lake::new();
    lake.ingest("b1", &[event("o1", "placed", "1", "c", &t(9, 0))])
        .await;
    lake.refine().await;
    let changes = silver().changes_table().unwrap();
    assert_eq!(
        recorded_buckets(&lake, &silver()).await.as_deref(),
        Some("16")
    );
    assert_eq!(
        recorded_buckets(&lake, &changes).await.as_deref(),
        Some("16")
    );

    lake.ingest("b2", &[event("o1", "paid", "1", "u", &t(10, 0))])
        .await;
    let before = (
        versions_of(&lake, &silver()).await,
        versions_of(&lake, &changes).await,
    );
    let mut spec = lake_silver::SilverSpec::orders(bronze(), silver()).unwrap();
    spec.buckets = 64;
    let e = lake_silver::SilverTable::new(spec)
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("silver.sales.orders")
            && e.contains("16 key buckets")
            && e.contains("asks for 64"),
        "{e}"
    );
    let after = (
        versions_of(&lake, &silver()).await,
        versions_of(&lake, &changes).await,
    );
    assert_eq!(before, after, "nothing written");
    // The right count goes on, and a rebuild keeps the property.
    lake.refine().await;
    assert_eq!(lake.versions().await.len(), 2);
    OrdersSilver::new(bronze(), silver())
        .unwrap()
        .rebuild(&lake.storage)
        .await
        .unwrap();
    assert_eq!(
        recorded_buckets(&lake, &silver()).await.as_deref(),
        Some("16")
    );
}

#[tokio::test]
async fn a_spec_with_its_own_bucket_count_hashes_keys_among_that_many() {
    let lake = Lake::new();
    let lines: Vec<String> = (0..40)
        .map(|i| event(&format!("o{i}"), "placed", "1", "c", &t(9, i)))
        .collect();
    lake.ingest("b1", &lines).await;
    let mut spec = lake_silver::SilverSpec::orders(bronze(), silver()).unwrap();
    spec.buckets = 4;
    lake_silver::SilverTable::new(spec.clone())
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap();
    assert_eq!(
        recorded_buckets(&lake, &silver()).await.as_deref(),
        Some("4")
    );
    let buckets = lake
        .rows(&silver(), "SELECT DISTINCT _key_bucket FROM t ORDER BY 1")
        .await;
    assert_eq!(buckets, ["0", "1", "2", "3"]);
    spec.buckets = 0;
    let e = lake_silver::SilverTable::new(spec).unwrap_err().to_string();
    assert!(e.contains("buckets"), "{e}");
}

/// `tests/data/lake-before-bucket-property`: bronze, silver and its event
/// log as the code before the bucket count was recorded wrote them (the
/// first 60 lines of `examples/data/orders/batch-00001.jsonl`).
#[tokio::test]
async fn a_table_written_before_the_count_was_recorded_opens_as_sixteen_buckets() {
    let lake = Lake::copy_of("lake-before-bucket-property");
    assert_eq!(recorded_buckets(&lake, &silver()).await, None);
    let before = lake.versions().await;
    assert!(!before.is_empty());
    lake.ingest(
        "later",
        &[event("o0001", "paid", "1", "u", "2025-12-01T00:00:00Z")],
    )
    .await;
    let report = lake.refine().await;
    assert_eq!(report.valid, 1);
    assert_eq!(lake.versions().await.len(), before.len() + 1);
    let current = lake
        .rows(
            &silver(),
            "SELECT count(*) FROM t WHERE order_id = 'o0001' AND is_current",
        )
        .await;
    assert_eq!(current, ["1"]);

    lake.ingest(
        "later-2",
        &[event("o0002", "paid", "1", "u", "2025-12-01T00:00:00Z")],
    )
    .await;
    let mut spec = lake_silver::SilverSpec::orders(bronze(), silver()).unwrap();
    spec.buckets = 32;
    let e = lake_silver::SilverTable::new(spec)
        .unwrap()
        .run(&lake.storage)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("made before it was recorded"), "{e}");
}
