//! `proto-spec`: the one contract between `picket-agent`, `picket-backend` and `picketctl`.
//!
//! Everything that crosses a process boundary is defined here, and nothing here does I/O:
//! - `v2`: the Sensu core/v2 resource types, whose JSON matches Sensu Go 6 key for key
//!   (omitted-when-empty fields, `null` versus `[]`), each with `validate()`;
//! - `meta`: `ObjectMeta` and `ResourceReference`;
//! - `wire`: the agent transport frames (`<type>\n<payload>`), limits and handshake headers;
//! - `validate`: the naming rules every resource shares;
//! - `serde_util`: serde helpers reproducing Go `encoding/json` behaviour.

pub mod meta;
pub mod serde_util;
pub mod v2;
pub mod validate;
pub mod wire;

pub use meta::{ObjectMeta, ResourceReference};
pub use validate::ValidationError;
