//! `proto-spec`: the one contract between `picket-agent`, `picket-backend` and `picketctl`.
//!
//! Everything that crosses a process boundary is defined here, and nothing here does I/O.
//!
//! Layout:
//! - `v2`: the Sensu core/v2 types (and the core/v3 EntityConfig), one module per resource
//!   as in Sensu's `api/core/v2`: `asset`, `check` (CheckConfig, Check, CheckRequest),
//!   `entity`, `entity_config`, `event`, `filter` (EventFilter), `handler`, `hook`,
//!   `keepalive` (KeepaliveRecord), `metrics`, `mutator`, `namespace`, `pipeline`, `role`
//!   and `cluster_role` (with Rule), `role_binding` and `cluster_role_binding` (with Subject
//!   and RoleRef), `silenced`, `apikey`, `tessen`, `adhoc` (AdhocRequest), `tokens`,
//!   `time_window`, `user`. Their JSON matches Sensu Go 6 key for key (omitted-when-empty
//!   fields, `null` versus `[]`), and each resource has `validate()`;
//! - `wrapped`: the `{type, api_version, metadata, spec}` format of `sensuctl create`/`dump`,
//!   a `Resource` enum over every wrapped type, and the YAML/JSON stream parser and writers;
//! - `auth`: the token endpoints' JSON (`Tokens`) and access-token `Claims`;
//! - `meta`: `ObjectMeta` and `ResourceReference`;
//! - `wire`: the agent transport frames (`<type>\n<payload>`), limits and handshake headers;
//! - `tokens`: check token substitution (sensu-compat 5.6, the Go `text/template` subset
//!   Sensu uses), shared by the agent (its own entity) and the backend (proxy entities);
//! - `validate`: the rules every resource shares (names, cron, time formats, ...);
//! - `serde_util`: serde helpers reproducing Go `encoding/json` behaviour.
//!
//! Known difference from Go's decoder: serde reads a JSON array where a struct is expected
//! as the struct's fields in order, which Go refuses; keys match case-sensitively, where Go
//! also accepts other cases.
//!
//! Tests: `tests/golden` (byte-exact encodings, checked against Sensu's key tables),
//! `tests/corpus.rs` (every example of the Sensu 6.14 docs), property tests, and fuzz
//! targets in `fuzz/` (a separate cargo-fuzz workspace).

pub mod auth;
pub mod meta;
pub mod serde_util;
pub mod tokens;
pub mod v2;
pub mod validate;
pub mod wire;
pub mod wrapped;

pub use meta::{ObjectMeta, ResourceReference};
pub use validate::ValidationError;
