//! Suites: named sets of expectations, from Rust, TOML or JSON; each suite
//! is a [`Validator`].

use std::sync::Arc;

use async_trait::async_trait;
use lake_core::{LakeError, Result, StorageRef, Validation, Validator};
use serde::{Deserialize, Serialize};

use crate::expectation::Expectation;
use crate::referential::{TableExpectation, TableKeyCheck};

/// A named set of expectations.
///
/// `[[expectation]]`s look at the batch alone. `[[table_check]]`s
/// ([`TableExpectation`]) also read another table, so a suite that has
/// them must be given its storage ([`with_storage`](Self::with_storage))
/// before it validates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// Its expectations, checked in order.
    #[serde(default, rename = "expectation")]
    pub expectations: Vec<Expectation>,
    /// Its checks against other tables, checked after the expectations.
    #[serde(default, rename = "table_check", skip_serializing_if = "Vec::is_empty")]
    pub table_checks: Vec<TableExpectation>,
    #[serde(skip)]
    built: BuiltChecks,
}

/// The table checks built over a storage (equality ignores them: they are
/// derived from `table_checks`).
#[derive(Debug, Clone, Default)]
struct BuiltChecks(Vec<Arc<TableKeyCheck>>);

impl PartialEq for BuiltChecks {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Suite {
    /// An empty suite.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            expectations: Vec::new(),
            table_checks: Vec::new(),
            built: BuiltChecks::default(),
        }
    }

    /// Adds a check against another table.
    #[must_use]
    pub fn with_table_check(mut self, check: TableExpectation) -> Self {
        self.table_checks.push(check);
        self
    }

    /// Builds the table checks over the tables of `storage`; a suite
    /// without table checks is returned as it is.
    pub fn with_storage(mut self, storage: StorageRef) -> Result<Self> {
        self.built = BuiltChecks(
            self.table_checks
                .iter()
                .map(|check| check.build(Arc::clone(&storage)).map(Arc::new))
                .collect::<Result<_>>()?,
        );
        Ok(self)
    }

    /// Adds an expectation.
    #[must_use]
    pub fn with(mut self, expectation: Expectation) -> Self {
        self.expectations.push(expectation);
        self
    }

    /// A suite from TOML (`name = "…"` and `[[expectation]]` tables); an
    /// unknown expectation or field is an error naming it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let suite: Self =
            toml::from_str(text).map_err(|e| LakeError::config("suite", e.to_string()))?;
        suite.check()
    }

    /// A suite from JSON, with the same shape as TOML.
    pub fn from_json(text: &str) -> Result<Self> {
        let suite: Self =
            serde_json::from_str(text).map_err(|e| LakeError::config("suite", e.to_string()))?;
        suite.check()
    }

    /// Checks what serde cannot: every `mostly` between 0 and 1.
    pub fn check(self) -> Result<Self> {
        for expectation in &self.expectations {
            if !(0.0..=1.0).contains(&expectation.mostly) {
                return Err(LakeError::config(
                    format!("expectation `{}`", expectation.rule()),
                    format!("mostly must be between 0 and 1, not {}", expectation.mostly),
                ));
            }
        }
        for (i, check) in self.table_checks.iter().enumerate() {
            if !(0.0..=1.0).contains(&check.mostly) {
                return Err(LakeError::config(
                    format!("table_check[{i}]"),
                    format!("mostly must be between 0 and 1, not {}", check.mostly),
                ));
            }
        }
        Ok(self)
    }
}

#[async_trait]
impl Validator for Suite {
    fn name(&self) -> &str {
        &self.name
    }

    async fn validate(&self, batch: &arrow::array::RecordBatch) -> Result<Validation> {
        if self.built.0.len() != self.table_checks.len() {
            return Err(LakeError::config(
                format!("suite `{}`", self.name),
                "it has table checks, which read other tables: give it its storage with \
                 Suite::with_storage before validating",
            ));
        }
        let mut rules = self
            .expectations
            .iter()
            .map(|e| e.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        for check in &self.built.0 {
            rules.extend(check.validate(batch).await?.rules);
        }
        Ok(Validation::new(rules))
    }
}
