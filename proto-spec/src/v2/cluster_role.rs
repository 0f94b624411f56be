//! ClusterRole: a cluster-wide Role.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::v2::role::{Rule, validate_rules};
use crate::validate::{ValidationError, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterRole {
    pub rules: Option<Vec<Rule>>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
}

impl ClusterRole {
    pub fn rules(&self) -> &[Rule] {
        self.rules.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        validate_rules(self.rules())
    }
}
