//! A stage's bookmark: how far it has read its source, and which table
//! that source was.
//!
//! A silver or gold stage keeps its bookmark in its target table's own
//! commits, as two Delta application transactions that move with the data:
//! `{app id}` holds the last source version read, `{app id}#source` a
//! digest of the source's Delta table id (`metaData.id`, fixed when a
//! table is created). A source that was deleted and created again has
//! another id (or a latest version below the bookmark), so a stage sees
//! [`BookmarkState::Replaced`] and rebuilds from it, instead of reporting
//! "up to date" over data it never read.
//!
//! Targets written before the id was recorded carry only `{app id}`: their
//! source counts as the same table unless its version went back, and the
//! next commit records its id.

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;

use crate::error::{LakeError, Result};
use crate::storage::transaction_version;

/// What a target's bookmark says of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BookmarkState {
    /// Nothing of the source read yet.
    Unset,
    /// Every version of the source up to this one was read.
    At(u64),
    /// The source is not the table the bookmark was read from: everything
    /// derived from it must be rebuilt.
    Replaced {
        /// Why, naming the source and the versions.
        reason: String,
    },
}

/// The bookmark a stage keeps in its target for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    app_id: String,
}

impl Bookmark {
    /// The bookmark recorded as the application transaction `app_id`.
    pub fn new(app_id: impl Into<String>) -> Self {
        Self {
            app_id: app_id.into(),
        }
    }

    /// The application transaction id of the version read.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    fn source_app_id(&self) -> String {
        format!("{}#source", self.app_id)
    }

    /// What `target` (named `target_name` in errors) records of `source`
    /// (named `source_name`), a table with at least one version.
    pub async fn read(
        &self,
        target: &DeltaTable,
        target_name: &str,
        source: &DeltaTable,
        source_name: &str,
    ) -> Result<BookmarkState> {
        if target.version().is_none() {
            return Ok(BookmarkState::Unset);
        }
        let Some(read) = transaction_version(target, &self.app_id, target_name).await? else {
            return Ok(BookmarkState::Unset);
        };
        let recorded_source =
            transaction_version(target, &self.source_app_id(), target_name).await?;
        let source_version = source.version().map_or(-1, |v| v as i64);
        let state = match recorded_source {
            Some(id) if id != identity_digest(source, source_name)? => BookmarkState::Replaced {
                reason: format!(
                    "{source_name} is not the table {target_name} read up to version {read}: \
                     it was created again (another Delta table id)"
                ),
            },
            _ if read > source_version => BookmarkState::Replaced {
                reason: format!(
                    "{source_name} is at version {source_version}, below version {read} that \
                     {target_name} read: it was created again"
                ),
            },
            _ => BookmarkState::At(read as u64),
        };
        Ok(state)
    }

    /// The transactions that move the bookmark to `version` of `source`.
    pub fn transactions(
        &self,
        source: &DeltaTable,
        source_name: &str,
        version: u64,
    ) -> Result<Vec<Transaction>> {
        Ok(vec![
            Transaction::new(self.app_id.clone(), version as i64),
            Transaction::new(self.source_app_id(), identity_digest(source, source_name)?),
        ])
    }
}

/// 62 bits of a hash of `table`'s Delta table id, as a transaction
/// version (never negative).
fn identity_digest(table: &DeltaTable, name: &str) -> Result<i64> {
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
    let id = snapshot.metadata().id();
    let digest = blake3::hash(id.as_bytes());
    let head: [u8; 8] = digest.as_bytes()[..8].try_into().expect("32 bytes");
    Ok((u64::from_le_bytes(head) >> 2) as i64)
}
