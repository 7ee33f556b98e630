//! Names of the technical columns bronze adds to every row.

/// The record's original text, exactly as delivered (minus the line end).
pub const RAW: &str = "_raw";
/// When the batch was ingested (UTC, microseconds).
pub const INGESTED_AT: &str = "_ingested_at";
/// The source system (the bronze namespace).
pub const SOURCE_SYSTEM: &str = "_source_system";
/// The delivered batch's id.
pub const BATCH_ID: &str = "_batch_id";
/// The file or object the record came from.
pub const SOURCE_FILE: &str = "_source_file";
/// The record's 1-based line number in its file.
pub const SOURCE_LINE: &str = "_source_line";
/// Partition column: ingestion year (`2025`).
pub const YEAR: &str = "year";
/// Partition column: ingestion month, zero-padded (`04`).
pub const MONTH: &str = "month";
/// Partition column: ingestion day, zero-padded (`09`).
pub const DAY: &str = "day";

/// The partition columns of every bronze table, in path order.
pub const PARTITION_COLUMNS: [&str; 3] = [YEAR, MONTH, DAY];

/// Whether `name` is a column bronze adds (not a data column). Partition
/// names match in any case: Delta compares column names ignoring case, so
/// a `Year` key would collide with the `year` partition.
pub fn is_technical(name: &str) -> bool {
    name.starts_with('_') || PARTITION_COLUMNS.contains(&name.to_lowercase().as_str())
}

/// The prefix that keeps an input column named like a technical one
/// (`_raw`, `year`, `Month`, ...) apart from it in columnar input.
pub const INPUT_PREFIX: &str = "source_";

/// The column a columnar input's column `name` is stored as: itself, or,
/// when bronze reserves the name, [`INPUT_PREFIX`] then the name (`_raw`
/// becomes `source__raw`, `year` `source_year`), so no value is lost.
/// JSON keys need no such rule: their values stay in `_raw`.
pub fn input_column_name(name: &str) -> String {
    if is_technical(name) {
        format!("{INPUT_PREFIX}{name}")
    } else {
        name.to_string()
    }
}
