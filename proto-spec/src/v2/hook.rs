//! HookConfig (a definition) and Hook (an execution result inside a check).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::{go_float, is_zero_f64, null_as_default};
use crate::validate::{ValidationError, require_namespace, validate_asset_names, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookConfig {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub command: String,
    #[serde(deserialize_with = "null_as_default")]
    pub timeout: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub stdin: bool,
    pub runtime_assets: Option<Vec<String>>,
}

/// A hook execution: the definition's fields flattened into the same object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hook {
    #[serde(flatten)]
    pub config: HookConfig,
    #[serde(
        skip_serializing_if = "is_zero_f64",
        serialize_with = "go_float",
        deserialize_with = "null_as_default"
    )]
    pub duration: f64,
    #[serde(deserialize_with = "null_as_default")]
    pub executed: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub issued: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub output: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: i32,
}

impl HookConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        if self.command.trim().is_empty() {
            return Err(ValidationError::new("command", "command must be set"));
        }
        if self.timeout == 0 {
            return Err(ValidationError::new(
                "timeout",
                "timeout must be greater than 0",
            ));
        }
        validate_asset_names(
            "runtime_assets",
            self.runtime_assets.as_deref().unwrap_or_default(),
        )
    }
}
