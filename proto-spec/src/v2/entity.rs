//! Entity: a monitored thing (agent, proxy or backend) and its system facts.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::{
    go_float, is_false, is_zero_f64, is_zero_i32, is_zero_i64, null_as_default,
};
use crate::validate::{
    ValidationError, require_namespace, validate_entity_subscriptions, validate_metadata_limits,
    validate_name, validate_no_blank,
};

pub const ENTITY_CLASS_AGENT: &str = "agent";
pub const ENTITY_CLASS_PROXY: &str = "proxy";
pub const ENTITY_CLASS_BACKEND: &str = "backend";

/// Label that marks an entity whose configuration the agent owns.
pub const MANAGED_BY_LABEL: &str = "sensu.io/managed_by";
pub const MANAGED_BY_AGENT: &str = "sensu-agent";

/// Keys whose label/annotation values are hidden when `redact` is empty.
pub const DEFAULT_REDACT: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "api_key",
    "api_token",
    "access_key",
    "secret_key",
    "private_key",
    "secret",
];

pub const REDACTED: &str = "REDACTED";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Entity {
    #[serde(deserialize_with = "null_as_default")]
    pub entity_class: String,
    #[serde(deserialize_with = "null_as_default")]
    pub system: System,
    pub subscriptions: Option<Vec<String>>,
    #[serde(deserialize_with = "null_as_default")]
    pub last_seen: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub deregister: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub deregistration: Deregistration,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub user: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub redact: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "null_as_default")]
    pub sensu_agent_version: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub keepalive_handlers: Vec<String>,
}

impl Entity {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    pub fn subscriptions(&self) -> &[String] {
        self.subscriptions.as_deref().unwrap_or_default()
    }

    /// Append `entity:<name>` when missing, as the backend does for every entity it stores.
    pub fn ensure_entity_subscription(&mut self) {
        let own = format!("entity:{}", self.metadata.name);
        let subs = self.subscriptions.get_or_insert_with(Vec::new);
        if !subs.contains(&own) {
            subs.push(own);
        }
    }

    /// A copy whose labels and annotations named by `redact` (or the default list) read
    /// `REDACTED`. Sensu applies this whenever it marshals an entity; Picket stores entities
    /// unredacted and applies it at every boundary where an entity leaves the backend.
    pub fn redacted(&self) -> Entity {
        let mut out = self.clone();
        let hidden = |key: &str| {
            if self.redact.is_empty() {
                DEFAULT_REDACT.contains(&key)
            } else {
                self.redact.iter().any(|r| r == key)
            }
        };
        for (k, v) in out
            .metadata
            .labels
            .iter_mut()
            .chain(out.metadata.annotations.iter_mut())
        {
            if hidden(k) {
                *v = REDACTED.to_string();
            }
        }
        out
    }
}

/// System facts reported by the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct System {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub hostname: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub platform: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub platform_family: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub platform_version: String,
    #[serde(deserialize_with = "null_as_default")]
    pub network: Network,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub arch: String,
    #[serde(
        skip_serializing_if = "is_zero_i32",
        deserialize_with = "null_as_default"
    )]
    pub arm_version: i32,
    #[serde(deserialize_with = "null_as_default")]
    pub libc_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub vm_system: String,
    #[serde(deserialize_with = "null_as_default")]
    pub vm_role: String,
    #[serde(deserialize_with = "null_as_default")]
    pub cloud_provider: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub float_type: String,
    pub processes: Option<Vec<Process>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    pub interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkInterface {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub mac: String,
    pub addresses: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    // The fields below are only reported by Sensu's commercial agent (6.9.2 OSS has `{name}`
    // alone). Picket keeps them when an operator's file or API call carries them, so such
    // entities are accepted and read back unchanged; Picket's agent reports `processes: null`.
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_as_default"
    )]
    pub pid: i64,
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_as_default"
    )]
    pub ppid: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub status: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_as_default")]
    pub background: bool,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_as_default")]
    pub running: bool,
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "null_as_default"
    )]
    pub created: i64,
    #[serde(
        skip_serializing_if = "is_zero_f64",
        serialize_with = "go_float",
        deserialize_with = "null_as_default"
    )]
    pub memory_percent: f64,
    #[serde(
        skip_serializing_if = "is_zero_f64",
        serialize_with = "go_float",
        deserialize_with = "null_as_default"
    )]
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deregistration {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub handler: String,
}

impl Entity {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        validate_name("entity_class", &self.entity_class)?;
        require_namespace(&self.metadata.namespace)?;
        validate_no_blank("subscriptions", self.subscriptions())?;
        validate_no_blank("keepalive_handlers", &self.keepalive_handlers)?;
        self.validate_limits()
    }

    /// The size limits alone (subscriptions, labels, annotations): what a backend checks on
    /// entities arriving from agents, whose other fields it fills in itself.
    pub fn validate_limits(&self) -> Result<(), ValidationError> {
        validate_entity_subscriptions(&self.metadata.name, self.subscriptions())?;
        validate_metadata_limits(&self.metadata)
    }
}
