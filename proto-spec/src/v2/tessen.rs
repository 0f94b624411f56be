//! TessenConfig: the telemetry opt-out switch (`/api/core/v2/tessen`).

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;
use crate::validate::ValidationError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TessenConfig {
    #[serde(deserialize_with = "null_as_default")]
    pub opt_out: bool,
}

impl TessenConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}
