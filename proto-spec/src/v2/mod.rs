//! The core/v2 resource types (plus the core/v3 EntityConfig the transport needs).

pub mod asset;
pub mod check;
pub mod entity;
pub mod entity_config;
pub mod event;
pub mod hook;
pub mod metrics;
pub mod namespace;
pub mod time_window;
pub mod user;

pub use asset::{Asset, AssetBuild};
pub use check::{Check, CheckConfig, CheckHistory, CheckRequest, HookList, ProxyRequests, Secret};
pub use entity::{Deregistration, Entity, Network, NetworkInterface, Process, System};
pub use entity_config::EntityConfig;
pub use event::Event;
pub use hook::{Hook, HookConfig};
pub use metrics::{MetricPoint, MetricTag, Metrics};
pub use namespace::Namespace;
pub use time_window::{TimeWindowDays, TimeWindowRepeated, TimeWindowTimeRange, TimeWindowWhen};
pub use user::User;
