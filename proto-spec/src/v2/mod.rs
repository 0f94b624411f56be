//! The core/v2 resource types (plus the core/v3 EntityConfig the transport needs), one file
//! per resource as in Sensu's `api/core/v2`.

pub mod adhoc;
pub mod apikey;
pub mod asset;
pub mod check;
pub mod cluster_role;
pub mod cluster_role_binding;
pub mod entity;
pub mod entity_config;
pub mod event;
pub mod filter;
pub mod handler;
pub mod hook;
pub mod keepalive;
pub mod metrics;
pub mod mutator;
pub mod namespace;
pub mod pipeline;
pub mod role;
pub mod role_binding;
pub mod silenced;
pub mod tessen;
pub mod time_window;
pub mod tokens;
pub mod user;

pub use adhoc::AdhocRequest;
pub use apikey::APIKey;
pub use asset::{Asset, AssetBuild};
pub use check::{
    AssetList, Check, CheckConfig, CheckHistory, CheckRequest, HookList, MetricThreshold,
    MetricThresholdRule, MetricThresholdTag, ProxyRequests, Secret,
};
pub use cluster_role::ClusterRole;
pub use cluster_role_binding::ClusterRoleBinding;
pub use entity::{Deregistration, Entity, Network, NetworkInterface, Process, System};
pub use entity_config::EntityConfig;
pub use event::Event;
pub use filter::EventFilter;
pub use handler::{Handler, HandlerSocket};
pub use hook::{Hook, HookConfig};
pub use keepalive::KeepaliveRecord;
pub use metrics::{MetricPoint, MetricTag, Metrics};
pub use mutator::Mutator;
pub use namespace::Namespace;
pub use pipeline::{Pipeline, PipelineWorkflow};
pub use role::{Role, Rule};
pub use role_binding::{RoleBinding, RoleRef, Subject};
pub use silenced::Silenced;
pub use tessen::TessenConfig;
pub use time_window::{TimeWindowDays, TimeWindowRepeated, TimeWindowTimeRange, TimeWindowWhen};
pub use tokens::Tokens;
pub use user::User;
