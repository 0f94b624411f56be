//! KeepaliveRecord: when an entity's keepalive is next due (stored by keepalived).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, require_namespace, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeepaliveRecord {
    /// Named after the entity.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    /// Unix seconds.
    #[serde(deserialize_with = "null_as_default")]
    pub time: i64,
}

impl KeepaliveRecord {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)
    }
}
