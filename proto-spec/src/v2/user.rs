//! User: an account that logs in to the API or connects an agent.

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub username: String,
    /// Plaintext, only on input; never stored or returned.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub password: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub groups: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub disabled: bool,
    /// bcrypt hash.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub password_hash: String,
}
