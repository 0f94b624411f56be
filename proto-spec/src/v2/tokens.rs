//! Tokens: the answer of `GET /auth` and `POST /auth/token`.

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;
use crate::validate::ValidationError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    #[serde(deserialize_with = "null_as_default")]
    pub access_token: String,
    /// Unix seconds.
    #[serde(deserialize_with = "null_as_default")]
    pub expires_at: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub refresh_token: String,
}

impl Tokens {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.access_token.is_empty() {
            return Err(ValidationError::new(
                "access_token",
                "access token must be set",
            ));
        }
        Ok(())
    }
}
