//! How a bronze table is written: schema, schema policy, Parquet settings.

use arrow::datatypes::SchemaRef;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use serde::{Deserialize, Serialize};

/// What happens when records do not fit the table's schema, named after
/// dlt's schema contracts.
///
/// The original text of every record is kept in `_raw` whatever the
/// policy, so the typed columns are a convenience for readers and a
/// discarded value is never lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// New top-level fields become new nullable columns (types inferred from
    /// the records that carry them); a value whose type conflicts with its
    /// column is stored as null in that column.
    #[default]
    Evolve,
    /// New fields and type conflicts refuse the whole batch, naming the
    /// file, line and column; nothing is committed.
    Freeze,
    /// New fields are ignored and conflicting values stored as null; the
    /// schema never changes.
    DiscardValue,
}

/// Parquet compression of data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Snappy: fast, the common default of Spark and deltalake.
    #[default]
    Snappy,
    /// Zstandard at level 3: smaller files, slower writes.
    Zstd,
    /// LZ4 (raw).
    Lz4,
    /// No compression.
    None,
}

impl Compression {
    pub(crate) fn to_parquet(self) -> ParquetCompression {
        match self {
            Self::Snappy => ParquetCompression::SNAPPY,
            Self::Zstd => ParquetCompression::ZSTD(ZstdLevel::default()),
            Self::Lz4 => ParquetCompression::LZ4_RAW,
            Self::None => ParquetCompression::UNCOMPRESSED,
        }
    }
}

/// Options of a bronze table. Unknown keys are refused when read from a
/// configuration, so a typo is an error rather than a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BronzeOptions {
    /// The declared schema of the data columns; `None` infers it from the
    /// first [`infer_records`](Self::infer_records) records of the first batch.
    pub schema: Option<SchemaRef>,
    /// How many records schema inference looks at.
    pub infer_records: usize,
    /// What to do with records that do not fit the schema.
    pub schema_policy: SchemaPolicy,
    /// Parquet compression.
    pub compression: Compression,
    /// Target size of data files in bytes (`None`: deltalake's default).
    pub target_file_size: Option<u64>,
    /// Maximum rows per Parquet row group.
    pub row_group_size: usize,
    /// Records decoded into one Arrow batch. A JSON batch also ends at
    /// 64 MB of record text, so long records do not gather in memory.
    pub batch_rows: usize,
    /// How CSV input is read.
    pub csv: CsvOptions,
    /// How many levels of objects and arrays a column may nest (default
    /// 16). A JSON key whose values nest deeper becomes a text column
    /// holding each value's JSON text (the record stays whole in `_raw`);
    /// a deeper column of columnar input refuses the batch. Delta readers
    /// cannot parse a schema nested about 40 levels deep, so the bound
    /// keeps every table readable.
    pub max_nesting_depth: usize,
    /// How many data columns a table may have (default 1,000). Past it,
    /// new JSON keys get no column (their values stay in `_raw`, and the
    /// report counts them in `keys_not_added`); a columnar input that
    /// would pass it is refused.
    pub max_columns: usize,
    /// The longest line of JSON input, or record of CSV input, in bytes
    /// (default 64 MiB). A longer one is a dead letter `line_too_long`
    /// holding its first 64 KiB; a JSON line is never held whole to find
    /// that out.
    pub max_line_bytes: usize,
}

/// How CSV input is read. Every CSV column lands as text (`Utf8`), exactly
/// as delivered: typing is silver's job, so no value is lost to a guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CsvOptions {
    /// The field delimiter (ASCII).
    pub delimiter: char,
    /// The quote character (ASCII).
    pub quote: char,
    /// Whether the first record names the columns; without it they are
    /// `column_1`, `column_2`, ...
    pub has_header: bool,
    /// Field values that mean null (none by default: an empty field is an
    /// empty string).
    pub null_values: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            quote: '"',
            has_header: true,
            null_values: Vec::new(),
        }
    }
}

impl CsvOptions {
    /// Sets [`delimiter`](Self::delimiter).
    pub fn with_delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Sets [`quote`](Self::quote).
    pub fn with_quote(mut self, quote: char) -> Self {
        self.quote = quote;
        self
    }

    /// Sets [`has_header`](Self::has_header).
    pub fn with_has_header(mut self, has_header: bool) -> Self {
        self.has_header = has_header;
        self
    }

    /// Sets [`null_values`](Self::null_values).
    pub fn with_null_values<S: Into<String>>(
        mut self,
        null_values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.null_values = null_values.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn ascii(&self) -> lake_core::Result<(u8, u8)> {
        let byte = |c: char, field: &str| {
            u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
                lake_core::LakeError::config(field, format!("{c:?} is not an ASCII character"))
            })
        };
        Ok((
            byte(self.delimiter, "csv.delimiter")?,
            byte(self.quote, "csv.quote")?,
        ))
    }
}

impl Default for BronzeOptions {
    fn default() -> Self {
        Self {
            schema: None,
            infer_records: 1000,
            schema_policy: SchemaPolicy::default(),
            compression: Compression::default(),
            target_file_size: None,
            row_group_size: 1024 * 1024,
            batch_rows: 64 * 1024,
            csv: CsvOptions::default(),
            max_nesting_depth: 16,
            max_columns: 1000,
            max_line_bytes: 64 * 1024 * 1024,
        }
    }
}

impl BronzeOptions {
    /// Sets [`schema`](Self::schema).
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Sets [`infer_records`](Self::infer_records).
    pub fn with_infer_records(mut self, infer_records: usize) -> Self {
        self.infer_records = infer_records;
        self
    }

    /// Sets [`schema_policy`](Self::schema_policy).
    pub fn with_schema_policy(mut self, schema_policy: SchemaPolicy) -> Self {
        self.schema_policy = schema_policy;
        self
    }

    /// Sets [`compression`](Self::compression).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`target_file_size`](Self::target_file_size).
    pub fn with_target_file_size(mut self, target_file_size: u64) -> Self {
        self.target_file_size = Some(target_file_size);
        self
    }

    /// Sets [`row_group_size`](Self::row_group_size).
    pub fn with_row_group_size(mut self, row_group_size: usize) -> Self {
        self.row_group_size = row_group_size;
        self
    }

    /// Sets [`batch_rows`](Self::batch_rows).
    pub fn with_batch_rows(mut self, batch_rows: usize) -> Self {
        self.batch_rows = batch_rows;
        self
    }

    /// Sets [`csv`](Self::csv).
    pub fn with_csv(mut self, csv: CsvOptions) -> Self {
        self.csv = csv;
        self
    }

    /// Sets [`max_nesting_depth`](Self::max_nesting_depth).
    pub fn with_max_nesting_depth(mut self, max_nesting_depth: usize) -> Self {
        self.max_nesting_depth = max_nesting_depth;
        self
    }

    /// Sets [`max_columns`](Self::max_columns).
    pub fn with_max_columns(mut self, max_columns: usize) -> Self {
        self.max_columns = max_columns;
        self
    }

    /// Sets [`max_line_bytes`](Self::max_line_bytes).
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> Self {
        self.max_line_bytes = max_line_bytes;
        self
    }
}
