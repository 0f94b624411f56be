//! `backend-pipeline`: Sensu's pipelined without the store (sensu-compat 3).
//!
//! The caller (the backend's `pipelined`) hands over each processed event with a [`Catalog`]
//! of the namespace's handlers, filters, mutators and pipelines, already read from the store.
//! This crate resolves the event's pipelines ([`resolve`]: explicit `event.pipelines` plus the
//! legacy pipeline built from `check.handlers` ∪ `metrics.handlers`, with `set` expansion), and
//! runs them on a bounded worker pool ([`Runner`]): filters ([`filter`]), then the mutator
//! ([`mutator`]), then the handler ([`handler`]).
//!
//! Layout:
//! - `resolve`: [`Catalog`], set expansion, the legacy pipeline, explicit workflows;
//! - `filter/`: built-in filters, JavaScript filters (`event` object of sensu-compat 3.2),
//!   `when` time windows;
//! - `mutator/`: `json`, `only_check_output`, `pipe`, `javascript`;
//! - `handler/`: `pipe`, `tcp`, `udp`;
//! - `exec`: the `sh -c` executor (own process group, killed as a group on timeout);
//! - `runner`: the bounded worker pool, its filter threads ([`FilterPool`]) and its
//!   [`Counters`].
//! - `assets`: build selection by filters (for agents' check requests and for the backend
//!   itself) and the runtime assets of pipe handlers and mutators ([`PipelineAssets`]).
//!
//! Not supported yet: filters' `runtime_assets` (JavaScript files loaded into the filter VM),
//! `secrets`.

pub mod assets;
pub mod exec;
pub mod filter;
pub mod handler;
pub mod mutator;
pub mod resolve;
pub mod runner;

pub use assets::PipelineAssets;
pub use resolve::{Catalog, ResolvedPipeline, Workflow, expand_handlers, legacy_pipeline, resolve};
pub use runner::{Counters, FilterPool, Runner, RunnerConfig};

/// Sensu's default handler/mutator socket timeout and what `timeout: 0` means for sockets.
pub const DEFAULT_SOCKET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
