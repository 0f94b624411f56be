//! User: an account that logs in to the API or connects an agent.

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, validate_no_blank, validate_username};

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

/// Shortest accepted plaintext password.
pub const MIN_PASSWORD_LEN: usize = 8;

impl User {
    /// The plaintext `password` is only checked when present: stored and listed users carry
    /// just the hash.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_username("username", &self.username)?;
        if !self.password.is_empty() && self.password.chars().count() < MIN_PASSWORD_LEN {
            return Err(ValidationError::new(
                "password",
                format!("password must be at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        validate_no_blank("groups", &self.groups)
    }
}
