//! core/v3 EntityConfig: the part of an entity that operators (or the agent) configure.
//! Sent to agents in `entity_config` messages.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::v2::entity::{Deregistration, Entity};
use crate::validate::{
    ValidationError, require_namespace, validate_entity_subscriptions, validate_metadata_limits,
    validate_name, validate_no_blank,
};

/// Name an `entity_config` message carries when the backend has no stored configuration for
/// the agent, meaning "keep using your local configuration".
pub const ENTITY_CONFIG_NOT_FOUND: &str = "not found";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntityConfig {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "null_as_default")]
    pub entity_class: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub user: String,
    pub subscriptions: Option<Vec<String>>,
    #[serde(deserialize_with = "null_as_default")]
    pub deregister: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub deregistration: Deregistration,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub keepalive_handlers: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub redact: Vec<String>,
}

impl EntityConfig {
    pub fn from_entity(e: &Entity) -> Self {
        EntityConfig {
            metadata: e.metadata.clone(),
            entity_class: e.entity_class.clone(),
            user: e.user.clone(),
            subscriptions: e.subscriptions.clone(),
            deregister: e.deregister,
            deregistration: e.deregistration.clone(),
            keepalive_handlers: e.keepalive_handlers.clone(),
            redact: e.redact.clone(),
        }
    }
}

impl EntityConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        validate_name("entity_class", &self.entity_class)?;
        require_namespace(&self.metadata.namespace)?;
        let subscriptions = self.subscriptions.as_deref().unwrap_or_default();
        validate_no_blank("subscriptions", subscriptions)?;
        validate_no_blank("keepalive_handlers", &self.keepalive_handlers)?;
        validate_entity_subscriptions(&self.metadata.name, subscriptions)?;
        validate_metadata_limits(&self.metadata)
    }
}
