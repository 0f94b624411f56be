//! Event: an entity plus a check result and/or metrics.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::meta::{ObjectMeta, ResourceReference};
use crate::serde_util::{is_zero_i64, null_as_default};
use crate::v2::check::{Check, validate_pipeline_ref};
use crate::v2::entity::Entity;
use crate::v2::metrics::Metrics;
use crate::validate::ValidationError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_as_default"
    )]
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<Entity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    /// A UUID string on the JSON wire; `null` when absent.
    #[serde(deserialize_with = "deserialize_event_id")]
    pub id: Option<Uuid>,
    #[serde(deserialize_with = "null_as_default")]
    pub sequence: i64,
    pub pipelines: Option<Vec<ResourceReference>>,
}

impl Event {
    pub fn entity_name(&self) -> &str {
        self.entity
            .as_ref()
            .map(|e| e.metadata.name.as_str())
            .unwrap_or_default()
    }

    pub fn check_name(&self) -> &str {
        self.check
            .as_ref()
            .map(|c| c.config.metadata.name.as_str())
            .unwrap_or_default()
    }

    /// The namespace: the event's own, else its entity's, else its check's.
    pub fn namespace(&self) -> &str {
        if !self.metadata.namespace.is_empty() {
            return &self.metadata.namespace;
        }
        if let Some(e) = &self.entity
            && !e.metadata.namespace.is_empty()
        {
            return &e.metadata.namespace;
        }
        self.check
            .as_ref()
            .map(|c| c.config.metadata.namespace.as_str())
            .unwrap_or_default()
    }
}

/// Sensu accepts an empty string for a missing id.
fn deserialize_event_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid event id {s:?}: {e}"))),
    }
}

impl Event {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let Some(entity) = &self.entity else {
            return Err(ValidationError::new(
                "entity",
                "an event must have an entity",
            ));
        };
        if self.check.is_none() && self.metrics.is_none() {
            return Err(ValidationError::new(
                "check",
                "an event must have a check or metrics",
            ));
        }
        entity.validate().map_err(|e| e.within("entity"))?;
        if let Some(check) = &self.check {
            check.validate().map_err(|e| e.within("check"))?;
        }
        if let Some(metrics) = &self.metrics {
            metrics.validate().map_err(|e| e.within("metrics"))?;
        }
        if !self.metadata.name.is_empty() {
            return Err(ValidationError::new(
                "metadata.name",
                "events cannot be named (they are identified by entity and check)",
            ));
        }
        for (i, p) in self.pipelines.iter().flatten().enumerate() {
            validate_pipeline_ref(p).map_err(|e| e.within(&format!("pipelines[{i}]")))?;
        }
        Ok(())
    }
}
