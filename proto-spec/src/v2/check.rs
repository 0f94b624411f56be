//! CheckConfig (the definition), Check (a result inside an event) and CheckRequest.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::meta::{ObjectMeta, ResourceReference};
use crate::serde_util::{go_float, is_false, is_zero_f64, is_zero_i64, null_as_default};
use crate::v2::asset::Asset;
use crate::v2::hook::{Hook, HookConfig};
use crate::v2::metrics::MetricTag;
use crate::v2::time_window::{TimeWindowRepeated, TimeWindowWhen};
use crate::validate::{
    MAX_SUBSCRIPTIONS, ValidationError, require_namespace, validate_asset_names,
    validate_check_hook_type, validate_count, validate_cron, validate_env_vars,
    validate_metadata_limits, validate_name, validate_no_blank, validate_output_metric_format,
};

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
    /// Newer Sensu releases (after the 6.9.2 baseline) name a fallback pipeline here. Picket
    /// stores and returns it so such definitions are accepted unchanged; it has no effect yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_pipeline: Option<ResourceReference>,
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

impl CheckConfig {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn runtime_assets(&self) -> &[String] {
        self.runtime_assets.as_deref().unwrap_or_default()
    }

    pub fn check_hooks(&self) -> &[HookList] {
        self.check_hooks.as_deref().unwrap_or_default()
    }

    pub fn env_vars(&self) -> &[String] {
        self.env_vars.as_deref().unwrap_or_default()
    }

    pub fn output_metric_handlers(&self) -> &[String] {
        self.output_metric_handlers.as_deref().unwrap_or_default()
    }

    /// A stored check definition: every rule of [`CheckConfig::validate_definition`] plus a
    /// namespace.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_definition()?;
        require_namespace(&self.metadata.namespace)
    }

    /// The rules a check must meet wherever it appears, including inside an event (where the
    /// namespace comes from the event).
    pub fn validate_definition(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        if !self.cron.is_empty() {
            if self.interval > 0 {
                return Err(ValidationError::new(
                    "cron",
                    "set either interval or cron, not both",
                ));
            }
            validate_cron("cron", &self.cron)?;
        } else if self.interval == 0 {
            return Err(ValidationError::new(
                "interval",
                "interval must be greater than 0 unless a cron schedule is set",
            ));
        }
        if self.ttl != 0 {
            if self.ttl < 0 {
                return Err(ValidationError::new(
                    "ttl",
                    "ttl cannot be negative (0 disables it)",
                ));
            }
            if self.ttl <= i64::from(self.interval) {
                return Err(ValidationError::new(
                    "ttl",
                    format!(
                        "ttl ({}) must be greater than the interval ({})",
                        self.ttl, self.interval
                    ),
                ));
            }
            if self.ttl < MIN_TTL {
                return Err(ValidationError::new(
                    "ttl",
                    format!("ttl must be at least {MIN_TTL} seconds"),
                ));
            }
        }
        validate_no_blank("handlers", &self.handlers)?;
        validate_no_blank("subscriptions", &self.subscriptions)?;
        validate_count("subscriptions", self.subscriptions.len(), MAX_SUBSCRIPTIONS)?;
        validate_metadata_limits(&self.metadata)?;
        validate_asset_names("runtime_assets", self.runtime_assets())?;
        if !self.proxy_entity_name.is_empty() {
            validate_name("proxy_entity_name", &self.proxy_entity_name)?;
        }
        if let Some(p) = &self.proxy_requests {
            p.validate().map_err(|e| e.within("proxy_requests"))?;
        }
        if self.low_flap_threshold != 0
            && self.high_flap_threshold != 0
            && self.low_flap_threshold >= self.high_flap_threshold
        {
            return Err(ValidationError::new(
                "low_flap_threshold",
                format!(
                    "low flap threshold ({}) must be lower than the high flap threshold ({})",
                    self.low_flap_threshold, self.high_flap_threshold
                ),
            ));
        }
        for (i, h) in self.check_hooks().iter().enumerate() {
            h.validate()
                .map_err(|e| e.within(&format!("check_hooks[{i}]")))?;
        }
        validate_output_metric_format("output_metric_format", &self.output_metric_format)?;
        validate_no_blank("output_metric_handlers", self.output_metric_handlers())?;
        validate_env_vars("env_vars", self.env_vars())?;
        if let Some(subdue) = &self.subdue {
            subdue.validate().map_err(|e| e.within("subdue"))?;
        }
        for (i, s) in self.subdues.iter().enumerate() {
            s.validate()
                .map_err(|e| e.within(&format!("subdues[{i}]")))?;
        }
        for (i, p) in self.pipelines.iter().enumerate() {
            validate_pipeline_ref(p).map_err(|e| e.within(&format!("pipelines[{i}]")))?;
        }
        for (i, t) in self.output_metric_thresholds.iter().enumerate() {
            if t.name.is_empty() {
                return Err(ValidationError::new(
                    format!("output_metric_thresholds[{i}].name"),
                    "metric name must be set",
                ));
            }
        }
        if self.max_output_size < 0 {
            return Err(ValidationError::new(
                "max_output_size",
                "max_output_size cannot be negative",
            ));
        }
        Ok(())
    }
}

/// Checks and events may only reference core/v2 Pipelines.
pub(crate) fn validate_pipeline_ref(r: &ResourceReference) -> Result<(), ValidationError> {
    validate_name("name", &r.name)?;
    if r.api_version != "core/v2" || r.type_ != "Pipeline" {
        return Err(ValidationError::new(
            "type",
            format!(
                "a pipeline reference must be api_version core/v2, type Pipeline; found {} {}",
                r.api_version, r.type_
            ),
        ));
    }
    Ok(())
}

/// TTLs are lease-based, and leases shorter than this are not reliable.
pub const MIN_TTL: i64 = 5;

impl Check {
    /// A check result inside an event: the definition rules, no namespace of its own needed.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.config.validate_definition()
    }
}

impl ProxyRequests {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.splay_coverage > 100 {
            return Err(ValidationError::new(
                "splay_coverage",
                "splay coverage must be between 0 and 100",
            ));
        }
        if self.splay && self.splay_coverage == 0 {
            return Err(ValidationError::new(
                "splay_coverage",
                "splay coverage must be greater than 0 when splay is enabled",
            ));
        }
        Ok(())
    }
}

impl HookList {
    pub fn hooks(&self) -> &[String] {
        self.hooks.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_check_hook_type("type", &self.type_)?;
        for (i, h) in self.hooks().iter().enumerate() {
            validate_name(&format!("hooks[{i}]"), h)?;
        }
        Ok(())
    }
}

impl CheckRequest {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let Some(config) = &self.config else {
            return Err(ValidationError::new(
                "config",
                "a check request needs a config",
            ));
        };
        config.validate().map_err(|e| e.within("config"))?;
        for (i, a) in self.assets.iter().flatten().enumerate() {
            a.validate()
                .map_err(|e| e.within(&format!("assets[{i}]")))?;
        }
        for (i, h) in self.hooks.iter().flatten().enumerate() {
            h.validate().map_err(|e| e.within(&format!("hooks[{i}]")))?;
        }
        Ok(())
    }
}
