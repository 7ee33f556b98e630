//! What a spec must satisfy before any data is read.

use std::collections::HashSet;

use lake_core::pii::Pii;
use lake_core::{Ident, LakeError, Result, Zone};

use super::{
    CdcFormat, ColumnSpec, DeleteRule, KEY_BUCKET, MAX_BUCKETS, SilverSpec, TrackHistory, Typing,
};

impl SilverSpec {
    fn column_spec(&self, name: &Ident) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| &c.name == name)
    }

    /// Checks what can be checked without the data: zones, every named
    /// column mapped once, keys and sequence not tracked, no name used
    /// twice. Whether a [`Typer`](crate::Typer) can type the spec (the
    /// reference typing fixes its columns) is checked when the stage is
    /// built ([`SilverTable::new`](crate::SilverTable::new)).
    pub fn check(&self) -> Result<()> {
        if self.source.zone != Zone::Bronze {
            return Err(LakeError::config(
                "source",
                format!("{} is not a bronze table", self.source),
            ));
        }
        if self.target.zone != Zone::Silver {
            return Err(LakeError::config(
                "target",
                format!("{} is not a silver table", self.target),
            ));
        }
        if !(1..=MAX_BUCKETS).contains(&self.buckets) {
            return Err(LakeError::config(
                "buckets",
                format!(
                    "{} buckets for {}: between 1 and {MAX_BUCKETS}",
                    self.buckets, self.target
                ),
            ));
        }
        let target = &self.target;
        let mut names = HashSet::new();
        for (i, column) in self.columns.iter().enumerate() {
            if column.name.as_str().starts_with('_') {
                return Err(LakeError::config(
                    format!("columns[{i}].name"),
                    format!(
                        "`{}`: names starting with `_` are technical columns of {target}",
                        column.name
                    ),
                ));
            }
            if !names.insert(column.name.as_str()) {
                return Err(LakeError::config(
                    format!("columns[{i}].name"),
                    format!("`{}` appears twice in {target}", column.name),
                ));
            }
            if column.expr.is_some() && column.from.is_some() {
                return Err(LakeError::config(
                    format!("columns[{i}]"),
                    format!("`{}` sets both `from` and `expr`; set one", column.name),
                ));
            }
            if column.expr.as_deref().is_some_and(|e| e.trim().is_empty()) {
                return Err(LakeError::config(
                    format!("columns[{i}].expr"),
                    format!("`{}` has an empty expression", column.name),
                ));
            }
        }
        if self.keys.is_empty() {
            return Err(LakeError::config(
                "keys",
                format!("{target} needs at least one key column"),
            ));
        }
        if self.sequence_by.is_empty() {
            return Err(LakeError::config(
                "sequence_by",
                format!("{target} needs at least one sequence column"),
            ));
        }
        let mapped = |field: &str, list: &[Ident]| -> Result<()> {
            let mut seen = HashSet::new();
            for name in list {
                if self.column_spec(name).is_none() {
                    return Err(LakeError::config(
                        field.to_string(),
                        format!("`{name}` is not one of the columns of {target}"),
                    ));
                }
                if !seen.insert(name) {
                    return Err(LakeError::config(
                        field.to_string(),
                        format!("`{name}` appears twice"),
                    ));
                }
            }
            Ok(())
        };
        mapped("keys", &self.keys)?;
        mapped("sequence_by", &self.sequence_by)?;
        if let Some(name) = self.keys.iter().find(|k| self.sequence_by.contains(k)) {
            return Err(LakeError::config(
                "sequence_by",
                format!("`{name}` is a key column of {target}"),
            ));
        }
        match &self.track_history {
            TrackHistory::All => {}
            TrackHistory::Include(list) | TrackHistory::Exclude(list) => {
                mapped("track_history", list)?;
                if let Some(name) = list
                    .iter()
                    .find(|n| self.keys.contains(n) || self.sequence_by.contains(n))
                {
                    return Err(LakeError::config(
                        "track_history",
                        format!("`{name}` is a key or sequence column: it is never tracked"),
                    ));
                }
            }
        }
        if let Some(name) = &self.cluster_by
            && !self.business_columns().any(|c| &c.name == name)
        {
            return Err(LakeError::config(
                "cluster_by",
                format!("`{name}` is not a silver column of {target}"),
            ));
        }
        for name in &self.touched {
            if !self.business_columns().any(|c| &c.name == name) {
                return Err(LakeError::config(
                    "touched",
                    format!("`{name}` is not a silver column of {target}"),
                ));
            }
        }
        match &self.deletes {
            Some(DeleteRule::Column { column, values })
                if column.trim().is_empty() || values.is_empty() =>
            {
                return Err(LakeError::config(
                    "deletes",
                    "name the op `column` and at least one delete value",
                ));
            }
            Some(DeleteRule::Condition { condition }) if condition.trim().is_empty() => {
                return Err(LakeError::config(
                    "deletes.condition",
                    "the condition is empty",
                ));
            }
            _ => {}
        }
        if self.cdc == CdcFormat::Debezium && self.typing == Typing::Columns {
            if self.deletes.is_some() {
                return Err(LakeError::config(
                    "deletes",
                    "under cdc = \"debezium\" the envelope's op says what is a delete; remove `deletes`",
                ));
            }
            if let Some(name) = self
                .sequence_by
                .iter()
                .find(|s| self.column_spec(s).is_some_and(|c| c.expr.is_none()))
            {
                return Err(LakeError::config(
                    "sequence_by",
                    format!(
                        "`{name}` reads the row image, but a delete's `before` image holds the \
                         values of the write it ends, so the delete would tie with that write; \
                         derive the sequence from the envelope (expr = \"source['lsn']\" or \"ts_ms\")"
                    ),
                ));
            }
        }
        self.check_pii()?;
        let validity = [
            &self.validity.from,
            &self.validity.to,
            &self.validity.current,
        ];
        for (i, name) in validity.iter().enumerate() {
            if names.contains(name.as_str()) && !self.sequence_by.contains(name)
                || validity[..i].contains(name)
                || name.as_str() == KEY_BUCKET
            {
                return Err(LakeError::config(
                    "validity",
                    format!("`{name}` is already a column of {target}"),
                ));
            }
        }
        Ok(())
    }
}

impl SilverSpec {
    /// A column tagged as personal data must still do its job: a key may
    /// only be hashed (its pseudonym still tells keys apart, a mask would
    /// merge them), a sequence column cannot be tagged (versions are
    /// ordered by it), nor can the columns gold refreshes by or files are
    /// clustered by, and a dropped column cannot be tracked by name.
    fn check_pii(&self) -> Result<()> {
        let target = &self.target;
        for (i, column) in self.columns.iter().enumerate() {
            let Some(pii) = column.pii else { continue };
            let name = &column.name;
            let refuse = |why: &str| {
                Err(LakeError::config(
                    format!("columns[{i}].pii"),
                    format!("`{name}` of {target} cannot be pii = \"{pii}\": {why}"),
                ))
            };
            if self.sequence_by.contains(name) {
                return refuse("it is a sequence column, which orders the versions");
            }
            if self.keys.contains(name) && pii != Pii::Hash {
                return refuse(
                    "it is a key column; a key can only be hashed, which keeps keys apart",
                );
            }
            if self.cluster_by.as_ref() == Some(name) || self.touched.contains(name) {
                return refuse("gold refreshes by it or files are clustered by it");
            }
            if pii == Pii::Drop
                && let TrackHistory::Include(list) = &self.track_history
                && list.contains(name)
            {
                return refuse("track_history names it, and a dropped column is not stored");
            }
        }
        Ok(())
    }
}
