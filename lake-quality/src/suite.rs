//! Suites: named sets of expectations, from Rust, TOML or JSON; each suite
//! is a [`Validator`].

use async_trait::async_trait;
use lake_core::{LakeError, Result, Validation, Validator};
use serde::{Deserialize, Serialize};

use crate::expectation::Expectation;

/// A named set of expectations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// Its expectations, checked in order.
    #[serde(default, rename = "expectation")]
    pub expectations: Vec<Expectation>,
}

impl Suite {
    /// An empty suite.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            expectations: Vec::new(),
        }
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
        Ok(self)
    }
}

#[async_trait]
impl Validator for Suite {
    fn name(&self) -> &str {
        &self.name
    }

    async fn validate(&self, batch: &arrow::array::RecordBatch) -> Result<Validation> {
        let rules = self
            .expectations
            .iter()
            .map(|e| e.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        Ok(Validation { rules })
    }
}
