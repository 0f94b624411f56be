//! `backend-app`: the Picket backend (`picket-backend`).
//!
//! Layout:
//! - `backend`: `Backend` (config, `new` binds, `run(shutdown)`), the composition root;
//! - `config`: flags, `PICKET_BACKEND_*` env and `/etc/picket/backend.yml` (Sensu's names);
//! - `init`: seeding a new store (`picket-backend init`, or the first `start`);
//! - `agentd`: the agent WebSocket port and sessions; `bus`: check requests to sessions;
//! - `eventd`: shard queues (keepalives first), the check state machine, storing events;
//! - `writer`: `BatchWriter`, concurrent hot-path writes grouped into store transactions;
//! - `keepalived`: registration, keepalive failures, deregistration;
//! - `pipelined`: events from the event bus through filters, mutators and handlers
//!   (`backend-pipeline`), definitions cached per namespace;
//! - `silencing`: silenced entries applied to events (cached, swept when expired);
//! - `switchset`: liveness keys on store leases and the watch on their expiry;
//! - `schedulerd`: check schedules (interval splay, cron, subdues) → check requests;
//! - `apid`: the REST API; `auth`: authentication (Basic, access tokens, API keys, failed-login
//!   limits); `rbac`: the authorizer (roles and bindings held in memory);
//! - `entities`, `repo`, `keys`: typed store access and the key layout;
//! - `metrics`: the backend's own counters; `timefmt`: Go-compatible time strings.

/// Every binary with the backend in it (picket-backend, its benchmarks and tests) allocates
/// through mimalloc: see ARCHITECTURE.md, "Allocator".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod agentd;
pub mod apid;
pub mod assetsel;
pub mod auth;
pub mod backend;
pub mod bus;
pub mod config;
pub mod entities;
pub mod eventd;
pub mod init;
pub mod keepalived;
pub mod keys;
pub mod listener;
pub mod mailbox;
pub mod metrics;
pub mod pipelined;
pub mod rbac;
pub mod repo;
pub mod schedulerd;
pub mod silencing;
pub mod switchset;
pub mod timefmt;
pub mod ui;
pub mod writer;

pub use backend::{Backend, BackendConfig};
