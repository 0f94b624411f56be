//! Namespace: `{"name": "..."}`, with no metadata object in core/v2.

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespace {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub name: String,
}

impl Namespace {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)
    }
}
