//! CheckConfig (the definition), Check (a result inside an event) and CheckRequest.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::meta::{ObjectMeta, ResourceReference};
use crate::serde_util::{go_float, is_false, is_zero_f64, is_zero_i64, null_as_default};
use crate::v2::asset::Asset;
use crate::v2::hook::{Hook, HookConfig};
use crate::v2::metrics::MetricTag;
use crate::v2::time_window::{TimeWindowRepeated, TimeWindowWhen};

pub const CHECK_STATE_PASSING: &str = "passing";
pub const CHECK_STATE_FAILING: &str = "failing";
pub const CHECK_STATE_FLAPPING: &str = "flapping";

/// Maximum number of history entries kept per check.
pub const MAX_HISTORY: usize = 21;

/// A check definition (`/api/core/v2/namespaces/{ns}/checks/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckConfig {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub command: String,
    /// Sensu writes `[]` (never `null`) for a nil list here.
    #[serde(deserialize_with = "null_as_default")]
    pub handlers: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub high_flap_threshold: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub interval: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub low_flap_threshold: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub publish: bool,
    pub runtime_assets: Option<Vec<String>>,
    /// Sensu writes `[]` (never `null`) for a nil list here.
    #[serde(deserialize_with = "null_as_default")]
    pub subscriptions: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub proxy_entity_name: String,
    pub check_hooks: Option<Vec<HookList>>,
    #[serde(deserialize_with = "null_as_default")]
    pub stdin: bool,
    pub subdue: Option<TimeWindowWhen>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub cron: String,
    #[serde(deserialize_with = "null_as_default")]
    pub ttl: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub timeout: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_requests: Option<ProxyRequests>,
    #[serde(deserialize_with = "null_as_default")]
    pub round_robin: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub output_metric_format: String,
    pub output_metric_handlers: Option<Vec<String>>,
    pub env_vars: Option<Vec<String>>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_as_default"
    )]
    pub max_output_size: i64,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_as_default")]
    pub discard_output: bool,
    pub secrets: Option<Vec<Secret>>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub output_metric_tags: Vec<MetricTag>,
    /// Sensu writes `[]` (never `null`) for a nil list here, and fills a reference's missing
    /// `type`/`api_version` with `Pipeline`/`core/v2`.
    #[serde(deserialize_with = "deserialize_pipeline_refs")]
    pub pipelines: Vec<ResourceReference>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub output_metric_thresholds: Vec<MetricThreshold>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub subdues: Vec<TimeWindowRepeated>,
}

/// The result of one check execution, as carried by an event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Check {
    #[serde(flatten)]
    pub config: CheckConfig,
    #[serde(
        skip_serializing_if = "is_zero_f64",
        serialize_with = "go_float",
        deserialize_with = "null_as_default"
    )]
    pub duration: f64,
    #[serde(deserialize_with = "null_as_default")]
    pub executed: i64,
    pub history: Option<Vec<CheckHistory>>,
    #[serde(deserialize_with = "null_as_default")]
    pub issued: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub output: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub state: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub total_state_change: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub last_ok: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub occurrences: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub occurrences_watermark: i64,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub silenced: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub hooks: Vec<Hook>,
    #[serde(deserialize_with = "null_as_default")]
    pub is_silenced: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub scheduler: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub processed_by: String,
}

impl Check {
    /// A result skeleton for a definition, as Sensu's `NewCheck(config)`.
    pub fn from_config(config: CheckConfig) -> Self {
        Check {
            config,
            ..Default::default()
        }
    }

    pub fn name(&self) -> &str {
        &self.config.metadata.name
    }

    pub fn history(&self) -> &[CheckHistory] {
        self.history.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckHistory {
    #[serde(deserialize_with = "null_as_default")]
    pub status: u32,
    #[serde(deserialize_with = "null_as_default")]
    pub executed: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyRequests {
    pub entity_attributes: Option<Vec<String>>,
    #[serde(deserialize_with = "null_as_default")]
    pub splay: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub splay_coverage: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secret {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub secret: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricThreshold {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    pub tags: Option<Vec<MetricThresholdTag>>,
    pub thresholds: Option<Vec<MetricThresholdRule>>,
    #[serde(deserialize_with = "null_as_default")]
    pub null_status: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricThresholdTag {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricThresholdRule {
    #[serde(deserialize_with = "null_as_default")]
    pub min: String,
    #[serde(deserialize_with = "null_as_default")]
    pub max: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: u32,
}

/// One entry of `check_hooks`: the hooks to run for a status type. On the wire a single-key
/// object, `{"critical": ["hook1", "hook2"]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookList {
    pub type_: String,
    pub hooks: Option<Vec<String>>,
}

impl Serialize for HookList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = BTreeMap::new();
        map.insert(&self.type_, &self.hooks);
        map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for HookList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, Option<Vec<String>>>::deserialize(d)?;
        if map.len() != 1 {
            return Err(serde::de::Error::custom(format!(
                "a check hook list must have exactly one key (the status type), found {}",
                map.len()
            )));
        }
        let (type_, hooks) = map.into_iter().next().expect("one entry");
        Ok(HookList { type_, hooks })
    }
}

fn deserialize_pipeline_refs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<ResourceReference>, D::Error> {
    let mut refs: Vec<ResourceReference> = null_as_default(d)?;
    for r in &mut refs {
        if r.api_version.is_empty() {
            r.api_version = "core/v2".to_string();
        }
        if r.type_.is_empty() {
            r.type_ = "Pipeline".to_string();
        }
    }
    Ok(refs)
}

/// What the backend sends an agent to run a check (`check_request` message).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<CheckConfig>,
    pub assets: Option<Vec<Asset>>,
    pub hooks: Option<Vec<HookConfig>>,
    #[serde(deserialize_with = "null_as_default")]
    pub issued: i64,
    pub hook_assets: Option<BTreeMap<String, AssetList>>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetList {
    pub assets: Option<Vec<Asset>>,
}
