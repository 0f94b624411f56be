//! HookConfig (a definition) and Hook (an execution result inside a check).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::{go_float, is_zero_f64, null_as_default};

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
