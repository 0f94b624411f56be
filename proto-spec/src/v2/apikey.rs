//! APIKey: a long-lived credential; `metadata.name` is the key itself.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::{is_zero_i64, null_as_default};
use crate::validate::{ValidationError, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[allow(clippy::upper_case_acronyms)]
pub struct APIKey {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub username: String,
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_as_default"
    )]
    pub created_at: i64,
}

impl APIKey {
    /// The key is generated as a UUIDv4, but Sensu only checks it as a name: keys in the wild
    /// (and in Sensu's own docs) are not all UUIDs.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        if self.username.is_empty() {
            return Err(ValidationError::new("username", "username must be set"));
        }
        Ok(())
    }
}
