//! RoleBinding (namespaced), and the Subject and RoleRef shared with ClusterRoleBinding.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, require_namespace, validate_name};

pub const SUBJECT_TYPE_USER: &str = "User";
pub const SUBJECT_TYPE_GROUP: &str = "Group";
pub const ROLE_REF_ROLE: &str = "Role";
pub const ROLE_REF_CLUSTER_ROLE: &str = "ClusterRole";

/// Who a binding applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subject {
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub type_: String,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

/// The role a binding grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleRef {
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub type_: String,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleBinding {
    pub subjects: Option<Vec<Subject>>,
    #[serde(deserialize_with = "null_as_default")]
    pub role_ref: RoleRef,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
}

impl RoleBinding {
    pub fn subjects(&self) -> &[Subject] {
        self.subjects.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        validate_binding(
            self.subjects(),
            &self.role_ref,
            &[ROLE_REF_ROLE, ROLE_REF_CLUSTER_ROLE],
        )
    }
}

pub(crate) fn validate_binding(
    subjects: &[Subject],
    role_ref: &RoleRef,
    ref_types: &[&str],
) -> Result<(), ValidationError> {
    if subjects.is_empty() {
        return Err(ValidationError::new(
            "subjects",
            "a binding must have at least one subject",
        ));
    }
    for (i, s) in subjects.iter().enumerate() {
        let field = format!("subjects[{i}]");
        if s.type_ != SUBJECT_TYPE_USER && s.type_ != SUBJECT_TYPE_GROUP {
            return Err(ValidationError::new(
                format!("{field}.type"),
                format!(
                    "subject type {:?} is invalid; use {SUBJECT_TYPE_USER} or {SUBJECT_TYPE_GROUP}",
                    s.type_
                ),
            ));
        }
        if s.name.is_empty() {
            return Err(ValidationError::new(
                format!("{field}.name"),
                "subject name must be set",
            ));
        }
    }
    if !ref_types.contains(&role_ref.type_.as_str()) {
        return Err(ValidationError::new(
            "role_ref.type",
            format!(
                "role reference type {:?} is invalid; use {}",
                role_ref.type_,
                ref_types.join(" or ")
            ),
        ));
    }
    validate_name("role_ref.name", &role_ref.name)
}
