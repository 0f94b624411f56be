//! Mutator: transforms an event before a handler sees it, by a command (`pipe`) or an
//! embedded JavaScript body (`javascript`).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::v2::check::Secret;
use crate::validate::{
    ValidationError, require_namespace, validate_asset_names, validate_env_vars,
    validate_js_syntax, validate_name,
};

pub const MUTATOR_TYPE_PIPE: &str = "pipe";
pub const MUTATOR_TYPE_JAVASCRIPT: &str = "javascript";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mutator {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub command: String,
    #[serde(deserialize_with = "null_as_default")]
    pub timeout: u32,
    pub env_vars: Option<Vec<String>>,
    pub runtime_assets: Option<Vec<String>>,
    pub secrets: Option<Vec<Secret>>,
    /// Empty means `pipe`.
    #[serde(
        rename = "type",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub type_: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub eval: String,
}

impl Mutator {
    pub fn is_javascript(&self) -> bool {
        self.type_ == MUTATOR_TYPE_JAVASCRIPT
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        match self.type_.as_str() {
            "" | MUTATOR_TYPE_PIPE => {
                if self.command.trim().is_empty() {
                    return Err(ValidationError::new(
                        "command",
                        "pipe mutators must have a command",
                    ));
                }
                if !self.eval.is_empty() {
                    return Err(ValidationError::new(
                        "eval",
                        "only javascript mutators have eval",
                    ));
                }
            }
            MUTATOR_TYPE_JAVASCRIPT => {
                if !self.command.is_empty() {
                    return Err(ValidationError::new(
                        "command",
                        "javascript mutators cannot have a command",
                    ));
                }
                if self.eval.trim().is_empty() {
                    return Err(ValidationError::new(
                        "eval",
                        "javascript mutators must have eval",
                    ));
                }
                validate_js_syntax("eval", &self.eval)?;
            }
            other => {
                return Err(ValidationError::new(
                    "type",
                    format!(
                        "mutator type {other:?} is invalid; use {MUTATOR_TYPE_PIPE} or {MUTATOR_TYPE_JAVASCRIPT}"
                    ),
                ));
            }
        }
        validate_env_vars("env_vars", self.env_vars.as_deref().unwrap_or_default())?;
        validate_asset_names(
            "runtime_assets",
            self.runtime_assets.as_deref().unwrap_or_default(),
        )
    }
}
