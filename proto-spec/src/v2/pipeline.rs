//! Pipeline: named workflows of filters, an optional mutator and a handler, referenced by
//! checks and events.

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, ResourceReference};
use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, require_namespace, validate_name};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    pub workflows: Option<Vec<PipelineWorkflow>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineWorkflow {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub filters: Vec<ResourceReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutator: Option<ResourceReference>,
    pub handler: Option<ResourceReference>,
}

impl Pipeline {
    pub fn workflows(&self) -> &[PipelineWorkflow] {
        self.workflows.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        for (i, w) in self.workflows().iter().enumerate() {
            w.validate()
                .map_err(|e| e.within(&format!("workflows[{i}]")))?;
        }
        Ok(())
    }
}

impl PipelineWorkflow {
    /// Reference types are not restricted to the core/v2 ones: a commercial handler type
    /// (`pipeline/v1 TCPStreamHandler`, ...) is a valid definition that only fails when the
    /// pipeline runs, as in Sensu.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        for (i, f) in self.filters.iter().enumerate() {
            validate_reference(f).map_err(|e| e.within(&format!("filters[{i}]")))?;
        }
        if let Some(m) = &self.mutator {
            validate_reference(m).map_err(|e| e.within("mutator"))?;
        }
        match &self.handler {
            Some(h) => validate_reference(h).map_err(|e| e.within("handler")),
            None => Err(ValidationError::new(
                "handler",
                "a workflow must have a handler",
            )),
        }
    }
}

/// A reference needs all three of name, type and api_version.
pub fn validate_reference(r: &ResourceReference) -> Result<(), ValidationError> {
    validate_name("name", &r.name)?;
    if r.type_.is_empty() {
        return Err(ValidationError::new("type", "reference type must be set"));
    }
    if r.api_version.is_empty() {
        return Err(ValidationError::new(
            "api_version",
            "reference api_version must be set",
        ));
    }
    Ok(())
}
