//! AdhocRequest: the body of `POST .../checks/{check}/execute`.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, validate_name, validate_no_blank};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdhocRequest {
    /// Non-empty overrides the check's own subscriptions.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub subscriptions: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub creator: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub reason: String,
    /// `name` is the check to run.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
}

impl AdhocRequest {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        validate_no_blank("subscriptions", &self.subscriptions)
    }
}
