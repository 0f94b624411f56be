//! Asset: a runtime dependency tarball named by checks, hooks, filters, mutators and handlers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Asset {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub url: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sha512: String,
    pub filters: Option<Vec<String>>,
    pub builds: Option<Vec<AssetBuild>>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetBuild {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub url: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sha512: String,
    pub filters: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
}
