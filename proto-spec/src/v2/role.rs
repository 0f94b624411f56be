//! Role (namespaced) and the RBAC Rule shared with ClusterRole.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::validate::{RBAC_VERBS, ValidationError, require_namespace, validate_name};

/// Grants `verbs` on `resources` (optionally only the named ones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    pub verbs: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    /// Empty means every resource of the listed kinds.
    pub resource_names: Option<Vec<String>>,
}

impl Rule {
    pub fn verbs(&self) -> &[String] {
        self.verbs.as_deref().unwrap_or_default()
    }

    pub fn resources(&self) -> &[String] {
        self.resources.as_deref().unwrap_or_default()
    }

    pub fn resource_names(&self) -> &[String] {
        self.resource_names.as_deref().unwrap_or_default()
    }

    /// Resource kinds are not checked against a list: commercial resources
    /// (`tcp-stream-handlers`, ...) are valid rule targets, as in Sensu.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.verbs().is_empty() {
            return Err(ValidationError::new(
                "verbs",
                "a rule must have at least one verb",
            ));
        }
        for (i, v) in self.verbs().iter().enumerate() {
            if !RBAC_VERBS.contains(&v.as_str()) {
                return Err(ValidationError::new(
                    format!("verbs[{i}]"),
                    format!(
                        "verb {v:?} is invalid; use one of {}",
                        RBAC_VERBS.join(", ")
                    ),
                ));
            }
        }
        if self.resources().is_empty() {
            return Err(ValidationError::new(
                "resources",
                "a rule must have at least one resource",
            ));
        }
        crate::validate::validate_no_blank("resources", self.resources())?;
        crate::validate::validate_no_blank("resource_names", self.resource_names())
    }
}

pub(crate) fn validate_rules(rules: &[Rule]) -> Result<(), ValidationError> {
    if rules.is_empty() {
        return Err(ValidationError::new(
            "rules",
            "a role must have at least one rule",
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        r.validate().map_err(|e| e.within(&format!("rules[{i}]")))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub rules: Option<Vec<Rule>>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
}

impl Role {
    pub fn rules(&self) -> &[Rule] {
        self.rules.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        validate_rules(self.rules())
    }
}
