//! Metrics carried by events.

use serde::{Deserialize, Serialize};

use crate::serde_util::{go_float, null_as_default};
use crate::validate::ValidationError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    pub handlers: Option<Vec<String>>,
    pub points: Option<Vec<MetricPoint>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricPoint {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub name: String,
    #[serde(serialize_with = "go_float", deserialize_with = "null_as_default")]
    pub value: f64,
    #[serde(deserialize_with = "null_as_default")]
    pub timestamp: i64,
    pub tags: Option<Vec<MetricTag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricTag {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub value: String,
}

impl Metrics {
    /// Sensu accepts any metrics object; only a point that cannot be written back (a
    /// non-finite value, which JSON cannot carry) is refused here.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (i, p) in self.points.iter().flatten().enumerate() {
            if !p.value.is_finite() {
                return Err(ValidationError::new(
                    format!("points[{i}].value"),
                    "metric values must be finite numbers",
                ));
            }
        }
        Ok(())
    }
}
