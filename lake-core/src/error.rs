//! The error type every lake crate converts into.
//!
//! Messages are lowercase, carry no trailing period, and name what they are
//! about: the table, the file, the row, the column or the rule.

use std::error::Error as StdError;

/// A boxed error from a component that has no variant of its own.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Two deliveries under one batch id with different content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "batch {batch_id} of {table}: ingested before from {earlier_file} ({earlier_fingerprint}); \
     this delivery from {file} has other content ({fingerprint})"
)]
pub struct BatchConflict {
    /// The bronze table.
    pub table: String,
    /// The batch id both deliveries carry.
    pub batch_id: String,
    /// Where the ingested delivery came from, as its commit recorded it.
    pub earlier_file: String,
    /// The ingested delivery's fingerprint.
    pub earlier_fingerprint: String,
    /// Where the refused delivery came from.
    pub file: String,
    /// The refused delivery's fingerprint.
    pub fingerprint: String,
}

/// `error` and its causes as a person reads them: one line each, first
/// the error itself. Each is the first line of that error's message (the
/// Delta kernel puts a backtrace after it when `RUST_BACKTRACE` is set),
/// and a cause whose text the line before already holds is left out
/// (most messages here quote their source).
pub fn error_lines(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        let line = text.lines().next().unwrap_or_default().trim().to_string();
        if !line.is_empty() && !lines.last().is_some_and(|last| last.contains(&line)) {
            lines.push(line);
        }
        next = error.source();
    }
    lines
}

/// The lake's result type.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// Everything that can go wrong in the lake.
///
/// Variants a caller can act on are spelled out (`NotFound`,
/// `CommitConflict`, `Quality`, `Schema`, ...); errors from the storage and
/// table stack keep their source and say which table or path they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LakeError {
    /// An identifier or partition value was refused before it reached a path or predicate.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidIdentifier {
        /// What the value was meant to be (`namespace`, `table name`, `partition value`, ...).
        kind: &'static str,
        /// The refused value, as given.
        value: String,
        /// Which rule it broke.
        reason: String,
    },

    /// A configuration or builder was incomplete or inconsistent.
    #[error("invalid configuration `{field}`: {message}")]
    Config {
        /// The field, setter or key that is wrong or missing.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// A table, namespace, partition or object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, naming it.
        what: String,
    },

    /// Something that must be created once already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists already, naming it.
        what: String,
    },

    /// A concurrent writer committed first.
    #[error("commit conflict on {table}: {message}")]
    CommitConflict {
        /// The table whose commit was refused.
        table: String,
        /// What the other writer changed.
        message: String,
        /// Whether re-reading the table and trying again can succeed.
        retryable: bool,
    },

    /// A batch id was delivered again with other content: the earlier
    /// delivery stays, this one is refused (give it an id of its own).
    #[error("{0}")]
    BatchConflict(Box<BatchConflict>),

    /// Data does not fit the schema of a table, or a schema change was refused.
    #[error("schema of {table}: {message}")]
    Schema {
        /// The table concerned.
        table: String,
        /// The column and the rule involved.
        message: String,
    },

    /// Data-quality expectations with the `fail` action did not pass.
    #[error("data quality failed for {table}: {}", failures.join("; "))]
    Quality {
        /// The table whose rows were checked.
        table: String,
        /// One line per failed expectation, with its counts.
        failures: Vec<String>,
    },

    /// A stage's counts do not add up: a record would be lost or counted twice.
    #[error("counts do not reconcile in stage `{stage}`: {message}")]
    Reconciliation {
        /// The stage whose report is inconsistent.
        stage: String,
        /// The equation that failed, with its numbers.
        message: String,
    },

    /// The object store failed.
    #[error("storage error at {location}: {source}")]
    Storage {
        /// The URL or path being accessed.
        location: String,
        /// The error from object_store.
        #[source]
        source: object_store::Error,
    },

    /// A Delta Lake operation failed.
    #[error("delta table {table}: {source}")]
    Delta {
        /// The table (zone.namespace.name or location).
        table: String,
        /// The error from deltalake.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// A DataFusion query failed.
    #[error("query on {context}: {source}")]
    DataFusion {
        /// What was being queried.
        context: String,
        /// The error from DataFusion.
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// An Arrow computation failed.
    #[error("arrow error in {context}: {source}")]
    Arrow {
        /// What was being computed.
        context: String,
        /// The error from arrow.
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A local I/O operation failed.
    #[error("i/o error at {path}: {source}")]
    Io {
        /// The path being read or written.
        path: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },

    /// A principal may not read or write a table: no grant allows it.
    #[error("{principal} may not {action} {table}: no grant allows it")]
    AccessDenied {
        /// The principal that asked.
        principal: String,
        /// `read` or `write`.
        action: &'static str,
        /// The table (zone.namespace.name).
        table: String,
    },

    /// A lineage sink did not take an event.
    #[error("lineage sink {sink}: {message}")]
    Lineage {
        /// The sink (the file sink's folder, the HTTP endpoint).
        sink: String,
        /// What went wrong, with the event it concerned.
        message: String,
        /// Whether sending the event again can succeed (a refused
        /// connection, a 5xx or 429 answer).
        retryable: bool,
    },

    /// A pipeline stage failed; the source says why.
    #[error("stage `{stage}` failed: {source}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// What went wrong inside it.
        #[source]
        source: Box<LakeError>,
    },

    /// An error from a component without a variant of its own.
    #[error("{component}: {source}")]
    Other {
        /// The component that failed (`glue catalog`, `avro reader`, ...).
        component: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl LakeError {
    /// Builds a [`LakeError::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Builds a [`LakeError::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// Wraps a deltalake error for `table`, keeping commit conflicts actionable.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        let table = table.into();
        match source {
            deltalake::DeltaTableError::Transaction { source } => {
                let retryable = is_retryable_transaction_error(&source);
                Self::CommitConflict {
                    table,
                    message: source.to_string(),
                    retryable,
                }
            }
            source => Self::Delta {
                table,
                source: Box::new(source),
            },
        }
    }

    /// Wraps a DataFusion error with what was being queried.
    pub fn datafusion(
        context: impl Into<String>,
        source: datafusion::error::DataFusionError,
    ) -> Self {
        Self::DataFusion {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Wraps an Arrow error with what was being computed.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Self::Arrow {
            context: context.into(),
            source,
        }
    }

    /// Wraps an object_store error with the location accessed.
    pub fn storage(location: impl Into<String>, source: object_store::Error) -> Self {
        Self::Storage {
            location: location.into(),
            source,
        }
    }

    /// Wraps any error from `component`.
    pub fn other(component: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Other {
            component: component.into(),
            source: source.into(),
        }
    }

    /// Whether retrying the same operation can succeed: commit conflicts that
    /// a re-read resolves, and transient storage failures.
    ///
    /// Errors from deltalake, DataFusion, Arrow and other components are
    /// retryable when their cause chain holds a transient object-store or
    /// I/O error (a dropped connection, an exhausted HTTP retry budget).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::CommitConflict { retryable, .. } => *retryable,
            Self::Lineage { retryable, .. } => *retryable,
            Self::Storage { source, .. } => is_transient_store_error(source),
            Self::Stage { source, .. } => source.is_retryable(),
            Self::Delta { source, .. } => chain_is_transient(source.as_ref()),
            Self::DataFusion { source, .. } => chain_is_transient(source.as_ref()),
            Self::Arrow { source, .. } => chain_is_transient(source),
            Self::Io { source, .. } => is_transient_io_error(source),
            Self::Other { source, .. } => chain_is_transient(source.as_ref()),
            _ => false,
        }
    }
}

fn is_retryable_transaction_error(
    error: &deltalake::kernel::transaction::TransactionError,
) -> bool {
    use deltalake::kernel::transaction::TransactionError as T;
    // A conflicting commit or a lost race for the next version is resolved by
    // re-reading the table and planning the operation again.
    matches!(
        error,
        T::VersionAlreadyExists(_)
            | T::MaxCommitAttempts(_)
            | T::CommitConflict(_)
            | T::ObjectStore { .. }
    )
}

/// How the Delta kernel's message for an object-store failure begins
/// (`delta_kernel::Error::ObjectStore`).
const KERNEL_STORE_ERROR: &str = "Error interacting with object store:";

/// Whether the cause chain of `error` holds a transient failure.
fn chain_is_transient(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(store) = error.downcast_ref::<object_store::Error>() {
            return is_transient_store_error(store);
        }
        if let Some(lake) = error.downcast_ref::<LakeError>() {
            return lake.is_retryable();
        }
        match error.downcast_ref::<deltalake::DeltaTableError>() {
            Some(deltalake::DeltaTableError::Transaction { source }) => {
                return is_retryable_transaction_error(source);
            }
            // The kernel keeps the object store's error without exposing
            // it as a source.
            Some(deltalake::DeltaTableError::KernelError(delta_kernel::Error::ObjectStore(
                store,
            ))) => return is_transient_store_error(store),
            // Some paths keep only the kernel error's text (listing the log
            // for the latest version does), so which store error it was is
            // lost. Retrying is bounded, and giving up on a dropped
            // connection is worse, so such a failure counts as transient.
            Some(deltalake::DeltaTableError::Generic(message))
                if message.starts_with(KERNEL_STORE_ERROR) =>
            {
                return true;
            }
            _ => {}
        }
        if let Some(delta_kernel::Error::ObjectStore(store)) =
            error.downcast_ref::<delta_kernel::Error>()
        {
            return is_transient_store_error(store);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if is_transient_io_error(io) {
                return true;
            }
            // An I/O error wrapping another (parquet's writer wraps the
            // object store's this way) hides it from `source()`.
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        next = error.source();
    }
    false
}

fn is_transient_io_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        error.kind(),
        K::ConnectionReset
            | K::ConnectionAborted
            | K::ConnectionRefused
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
            | K::UnexpectedEof
    )
}

pub(crate) fn is_transient_store_error(error: &object_store::Error) -> bool {
    use object_store::Error as E;
    match error {
        E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // Generic covers the HTTP client's retry exhaustion and I/O errors:
        // retrying a whole operation later is the only sensible answer.
        _ => true,
    }
}

impl From<object_store::Error> for LakeError {
    fn from(source: object_store::Error) -> Self {
        let location = match &source {
            object_store::Error::NotFound { path, .. }
            | object_store::Error::AlreadyExists { path, .. }
            | object_store::Error::Precondition { path, .. }
            | object_store::Error::NotModified { path, .. } => path.clone(),
            _ => "object store".to_string(),
        };
        Self::storage(location, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_deltalake_kept_only_as_text_is_retryable() {
        let store = object_store::Error::Generic {
            store: "s3",
            source: "connection reset".into(),
        };
        // The text deltalake keeps, from the kernel's own message.
        let text = delta_kernel::Error::ObjectStore(store).to_string();
        assert!(text.starts_with(KERNEL_STORE_ERROR), "{text}");
        let delta = deltalake::DeltaTableError::Generic(text);
        assert!(LakeError::delta("t", delta).is_retryable());
        let other = deltalake::DeltaTableError::Generic("invalid table name".into());
        assert!(!LakeError::delta("t", other).is_retryable());
    }
}

#[cfg(test)]
mod lines_tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("kernel failed: disk full\n   0: std::backtrace::capture\n   1: main")]
    struct Kernel;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open bronze.shop.orders")]
    struct Wrapper(#[source] Kernel);

    #[test]
    fn each_cause_is_one_line_without_backtraces_or_repeats() {
        let quoting = LakeError::other("glue catalog", Kernel);
        assert_eq!(
            error_lines(&quoting),
            ["glue catalog: kernel failed: disk full"]
        );
        assert_eq!(
            error_lines(&Wrapper(Kernel)),
            ["cannot open bronze.shop.orders", "kernel failed: disk full"]
        );
    }
}
