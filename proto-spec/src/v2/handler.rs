//! Handler: what the pipeline does with an event (run a command, write to a socket, or fan
//! out to a set of other handlers).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::v2::check::Secret;
use crate::validate::{
    ValidationError, require_namespace, validate_asset_names, validate_env_vars, validate_name,
    validate_no_blank,
};

pub const HANDLER_TYPE_PIPE: &str = "pipe";
pub const HANDLER_TYPE_TCP: &str = "tcp";
pub const HANDLER_TYPE_UDP: &str = "udp";
pub const HANDLER_TYPE_SET: &str = "set";
pub const HANDLER_TYPES: &[&str] = &[
    HANDLER_TYPE_PIPE,
    HANDLER_TYPE_TCP,
    HANDLER_TYPE_UDP,
    HANDLER_TYPE_SET,
];

/// A socket handler's `timeout` of 0 means this many seconds.
pub const DEFAULT_SOCKET_TIMEOUT: u32 = 60;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Handler {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(
        rename = "type",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub type_: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub mutator: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub command: String,
    #[serde(deserialize_with = "null_as_default")]
    pub timeout: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<HandlerSocket>,
    pub handlers: Option<Vec<String>>,
    pub filters: Option<Vec<String>>,
    pub env_vars: Option<Vec<String>>,
    pub runtime_assets: Option<Vec<String>>,
    pub secrets: Option<Vec<Secret>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandlerSocket {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub host: String,
    #[serde(deserialize_with = "null_as_default")]
    pub port: u32,
}

impl Handler {
    pub fn handlers(&self) -> &[String] {
        self.handlers.as_deref().unwrap_or_default()
    }

    pub fn filters(&self) -> &[String] {
        self.filters.as_deref().unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        match self.type_.as_str() {
            "" => {
                return Err(ValidationError::new(
                    "type",
                    format!(
                        "handler type must be set to one of {}",
                        HANDLER_TYPES.join(", ")
                    ),
                ));
            }
            HANDLER_TYPE_PIPE => {
                if self.command.trim().is_empty() {
                    return Err(ValidationError::new(
                        "command",
                        "pipe handlers must have a command",
                    ));
                }
            }
            HANDLER_TYPE_TCP | HANDLER_TYPE_UDP => {
                let Some(socket) = &self.socket else {
                    return Err(ValidationError::new(
                        "socket",
                        format!("{} handlers must have a socket", self.type_),
                    ));
                };
                if socket.host.is_empty() {
                    return Err(ValidationError::new(
                        "socket.host",
                        "socket host must be set",
                    ));
                }
                if socket.port == 0 {
                    return Err(ValidationError::new(
                        "socket.port",
                        "socket port must be set",
                    ));
                }
            }
            HANDLER_TYPE_SET => {}
            other => {
                return Err(ValidationError::new(
                    "type",
                    format!(
                        "handler type {other:?} is invalid; use one of {}",
                        HANDLER_TYPES.join(", ")
                    ),
                ));
            }
        }
        if !self.mutator.is_empty() {
            validate_name("mutator", &self.mutator)?;
        }
        validate_no_blank("handlers", self.handlers())?;
        validate_no_blank("filters", self.filters())?;
        validate_env_vars("env_vars", self.env_vars.as_deref().unwrap_or_default())?;
        validate_asset_names(
            "runtime_assets",
            self.runtime_assets.as_deref().unwrap_or_default(),
        )
    }
}
