//! Time windows used by filters (`when`) and checks (`subdue`, `subdues`).

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowWhen {
    #[serde(deserialize_with = "null_as_default")]
    pub days: TimeWindowDays,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowDays {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub all: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sunday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub monday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub tuesday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub wednesday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub thursday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub friday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub saturday: Vec<TimeWindowTimeRange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowTimeRange {
    #[serde(deserialize_with = "null_as_default")]
    pub begin: String,
    #[serde(deserialize_with = "null_as_default")]
    pub end: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowRepeated {
    #[serde(deserialize_with = "null_as_default")]
    pub begin: String,
    #[serde(deserialize_with = "null_as_default")]
    pub end: String,
    pub repeat: Option<Vec<String>>,
}
