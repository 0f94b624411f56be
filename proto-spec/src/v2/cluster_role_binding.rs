//! ClusterRoleBinding: grants a ClusterRole cluster-wide.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::v2::role_binding::{ROLE_REF_CLUSTER_ROLE, RoleRef, Subject, validate_binding};
use crate::validate::{ValidationError, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterRoleBinding {
    pub subjects: Option<Vec<Subject>>,
    #[serde(deserialize_with = "null_as_default")]
    pub role_ref: RoleRef,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
}

impl ClusterRoleBinding {
    pub fn subjects(&self) -> &[Subject] {
        self.subjects.as_deref().unwrap_or_default()
    }

    /// Only a ClusterRole can be bound cluster-wide.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        validate_binding(self.subjects(), &self.role_ref, &[ROLE_REF_CLUSTER_ROLE])
    }
}
