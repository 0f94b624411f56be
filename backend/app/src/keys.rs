//! The store key layout, Sensu's (`/sensu.io/<prefix>/<namespace>/<name>`), so an operator who
//! knows Sensu's etcd keys finds Picket's. Values are the JSON of the proto-spec types.

pub const ROOT: &str = "/sensu.io";
pub const INITIALIZED: &str = "/sensu.io/.initialized";

pub fn namespace(name: &str) -> String {
    format!("{ROOT}/namespaces/{name}")
}
pub fn namespaces_prefix() -> String {
    format!("{ROOT}/namespaces/")
}

pub fn user(name: &str) -> String {
    format!("{ROOT}/users/{name}")
}

pub fn users_prefix() -> String {
    format!("{ROOT}/users/")
}

/// The HS256 signing secret of access tokens (raw bytes).
pub const JWT_SECRET: &str = "/sensu.io/authentication/secret";

/// The record of an issued refresh token, named by the token's SHA-256 (hex).
pub fn refresh_token(digest: &str) -> String {
    format!("{ROOT}/authentication/refresh_tokens/{digest}")
}

pub fn refresh_tokens_prefix() -> String {
    format!("{ROOT}/authentication/refresh_tokens/")
}

/// An API key, named by the key's SHA-256 (hex): the key itself is never stored.
pub fn api_key(digest: &str) -> String {
    format!("{ROOT}/apikeys/{digest}")
}
pub fn api_keys_prefix() -> String {
    format!("{ROOT}/apikeys/")
}

/// Every RBAC object (roles, bindings, cluster-wide or not) is under this prefix.
pub fn rbac_prefix() -> String {
    format!("{ROOT}/rbac/")
}
pub const ROLES_KIND: &str = "rbac/roles";
pub const ROLE_BINDINGS_KIND: &str = "rbac/rolebindings";
pub fn cluster_roles_prefix() -> String {
    format!("{ROOT}/rbac/clusterroles/")
}
pub fn cluster_role_bindings_prefix() -> String {
    format!("{ROOT}/rbac/clusterrolebindings/")
}

pub fn cluster_role(name: &str) -> String {
    format!("{ROOT}/rbac/clusterroles/{name}")
}

pub fn cluster_role_binding(name: &str) -> String {
    format!("{ROOT}/rbac/clusterrolebindings/{name}")
}

/// A namespaced resource stored under `/sensu.io/<kind>/<ns>/<name>`, e.g. `checks`, `hooks`,
/// `assets` (the etcd prefixes of sensu-compat 6.4).
pub fn resource(kind: &str, ns: &str, name: &str) -> String {
    format!("{ROOT}/{kind}/{ns}/{name}")
}
/// Prefix of one namespace's resources of a kind, or of all namespaces when `ns` is `None`.
pub fn resources_prefix(kind: &str, ns: Option<&str>) -> String {
    scoped(format!("{ROOT}/{kind}/"), ns)
}

pub fn entity_config(ns: &str, name: &str) -> String {
    format!("{ROOT}/entity_configs/{ns}/{name}")
}
/// Prefix of one namespace's entity configs, or of all of them when `ns` is `None`.
pub fn entity_configs_prefix(ns: Option<&str>) -> String {
    scoped(format!("{ROOT}/entity_configs/"), ns)
}

pub fn entity_state(ns: &str, name: &str) -> String {
    format!("{ROOT}/entity_states/{ns}/{name}")
}

pub fn event(ns: &str, entity: &str, check: &str) -> String {
    format!("{ROOT}/events/{ns}/{entity}/{check}")
}
pub fn events_prefix(ns: Option<&str>) -> String {
    scoped(format!("{ROOT}/events/"), ns)
}
pub fn entity_events_prefix(ns: &str, entity: &str) -> String {
    format!("{ROOT}/events/{ns}/{entity}/")
}

/// Keepalive liveness switch of an agent: present (attached to a lease with the keepalive
/// timeout as TTL) while the agent is alive or being reported failing; its deletion by lease
/// expiry is the trigger for keepalive failure handling.
pub fn keepalive_switch(ns: &str, entity: &str) -> String {
    format!("{ROOT}/switchsets/keepalived/{ns}/{entity}")
}
pub fn keepalive_switches_prefix() -> String {
    format!("{ROOT}/switchsets/keepalived/")
}

/// Check TTL switches: `<prefix><ns>/<check>/<entity>`, leased for the check's `ttl`.
pub fn check_ttl_switches_prefix() -> String {
    format!("{ROOT}/switchsets/eventd/")
}

/// Round-robin ring of a subscription: one item per agent with a session on some backend,
/// valued with that backend's id and attached to its lease.
pub fn ring_item(ns: &str, subscription: &str, agent: &str) -> String {
    format!("{ROOT}/rings/{ns}/{subscription}/items/{agent}")
}
pub fn ring_items_prefix(ns: &str, subscription: &str) -> String {
    format!("{ROOT}/rings/{ns}/{subscription}/items/")
}
/// Where a round-robin check's last execution went (`{"issued", "agent"}`), per check (and
/// proxy entity).
pub fn ring_cursor(ns: &str, subscription: &str, check: &str) -> String {
    format!("{ROOT}/rings/{ns}/{subscription}/cursors/{check}")
}

/// Split `<prefix><ns>/<name>` back into its namespace and name.
pub fn split_ns_name<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

fn scoped(prefix: String, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("{prefix}{ns}/"),
        None => prefix,
    }
}
