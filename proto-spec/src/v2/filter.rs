//! EventFilter: JavaScript expressions deciding whether a handler sees an event.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::v2::time_window::TimeWindowWhen;
use crate::validate::{
    ValidationError, require_namespace, validate_asset_names, validate_js_syntax, validate_name,
};

pub const FILTER_ACTION_ALLOW: &str = "allow";
pub const FILTER_ACTION_DENY: &str = "deny";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub action: String,
    pub expressions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<TimeWindowWhen>,
    pub runtime_assets: Option<Vec<String>>,
}

impl EventFilter {
    pub fn expressions(&self) -> &[String] {
        self.expressions.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        if self.action != FILTER_ACTION_ALLOW && self.action != FILTER_ACTION_DENY {
            return Err(ValidationError::new(
                "action",
                format!(
                    "action {:?} is invalid; use {FILTER_ACTION_ALLOW} or {FILTER_ACTION_DENY}",
                    self.action
                ),
            ));
        }
        if self.expressions().is_empty() {
            return Err(ValidationError::new(
                "expressions",
                "a filter must have at least one expression",
            ));
        }
        for (i, e) in self.expressions().iter().enumerate() {
            validate_js_syntax(&format!("expressions[{i}]"), e)?;
        }
        if let Some(when) = &self.when {
            when.validate().map_err(|e| e.within("when"))?;
        }
        validate_asset_names(
            "runtime_assets",
            self.runtime_assets.as_deref().unwrap_or_default(),
        )
    }
}
