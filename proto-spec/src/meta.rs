//! Object metadata and references shared by every resource.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of a resource (Sensu `ObjectMeta`). Maps are ordered so that JSON output has
/// sorted keys, as Go's encoder writes maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectMeta {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub namespace: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub created_by: String,
}

impl ObjectMeta {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    /// Go's encoder never omits a non-pointer struct, even with omitempty; callers use this
    /// only where the field is a pointer in Sensu.
    pub fn is_empty(&self) -> bool {
        *self == ObjectMeta::default()
    }
}

/// A typed reference to another resource (`{name, type, api_version}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceReference {
    #[serde(deserialize_with = "crate::serde_util::null_as_default")]
    pub name: String,
    #[serde(
        rename = "type",
        deserialize_with = "crate::serde_util::null_as_default"
    )]
    pub type_: String,
    #[serde(deserialize_with = "crate::serde_util::null_as_default")]
    pub api_version: String,
}

impl ResourceReference {
    pub fn new(
        api_version: impl Into<String>,
        type_: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ResourceReference {
            name: name.into(),
            type_: type_.into(),
            api_version: api_version.into(),
        }
    }
}
