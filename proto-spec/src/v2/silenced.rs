//! Silenced: suppresses handling of events for a subscription and/or check.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, require_namespace, validate_name, validate_subscription};

/// Stands for "any subscription" or "any check" in a silenced entry's name.
pub const SILENCED_WILDCARD: &str = "*";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Silenced {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    /// Seconds from `begin`; reads return -1 when the entry never expires.
    #[serde(deserialize_with = "null_as_default")]
    pub expire: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub expire_on_resolve: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub creator: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub check: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub reason: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub subscription: String,
    #[serde(deserialize_with = "null_as_default")]
    pub begin: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub expire_at: i64,
}

impl Silenced {
    /// `<subscription or *>:<check or *>`, the name Sensu derives on create.
    pub fn derived_name(&self) -> String {
        let part = |s: &str| {
            if s.is_empty() {
                SILENCED_WILDCARD.to_string()
            } else {
                s.to_string()
            }
        };
        format!("{}:{}", part(&self.subscription), part(&self.check))
    }

    /// Set `metadata.name` to the derived name, as the backend does before storing.
    pub fn fill_name(&mut self) {
        self.metadata.name = self.derived_name();
    }

    /// A `metadata.name` that differs from [`Silenced::derived_name`] is not an error: the
    /// backend replaces it on create, as Sensu does (its own docs show such names).
    pub fn validate(&self) -> Result<(), ValidationError> {
        require_namespace(&self.metadata.namespace)?;
        let wild = |s: &str| s.is_empty() || s == SILENCED_WILDCARD;
        if wild(&self.subscription) && wild(&self.check) {
            return Err(ValidationError::new(
                "subscription",
                "a silenced entry needs a subscription or a check (\"*:*\" would silence everything)",
            ));
        }
        if !wild(&self.subscription) {
            validate_subscription("subscription", &self.subscription)?;
        }
        if !wild(&self.check) {
            validate_name("check", &self.check)?;
        }
        if self.expire < -1 {
            return Err(ValidationError::new(
                "expire",
                "expire must be -1 (never), 0 (never) or a number of seconds",
            ));
        }
        Ok(())
    }
}
