//! `picket-backend init`: seed a new store (sensu-compat 6.1): the `default` namespace, the
//! cluster administrator, the `agent` user, Sensu's default cluster roles and bindings, and
//! the access-token signing secret.

use backend_store::{Compare, Op, Txn};
use proto_spec::ObjectMeta;
use proto_spec::v2::{ClusterRole, ClusterRoleBinding, Namespace, RoleRef, Rule, Subject, User};
use proto_spec::validate::validate_username;

use crate::auth::hash_password;
use crate::keys;
use crate::repo::{Repo, RepoError, encode};

pub const DEFAULT_NAMESPACE: &str = "default";
pub const AGENT_USERNAME: &str = "agent";
pub const AGENT_DEFAULT_PASSWORD: &str = "P@ssw0rd!";
pub const CLUSTER_ADMINS_GROUP: &str = "cluster-admins";
pub const AGENTS_GROUP: &str = "system:agents";
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("the store is already initialised")]
    AlreadyInitialized,
    #[error("invalid administrator: {0}")]
    InvalidAdmin(String),
    #[error("could not hash the password: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl From<backend_store::StoreError> for InitError {
    fn from(e: backend_store::StoreError) -> Self {
        InitError::Repo(e.into())
    }
}

pub async fn is_initialized(repo: &Repo) -> Result<bool, InitError> {
    Ok(repo.exists(keys::INITIALIZED).await?)
}

/// Seed the default namespace, the cluster administrator, the `agent` user, the default
/// cluster roles and bindings and the access-token signing secret in one transaction guarded
/// by the absence of the `.initialized` marker, so two backends racing to initialise the same
/// store cannot both succeed.
pub async fn initialize(
    repo: &Repo,
    admin_username: &str,
    admin_password: &str,
) -> Result<(), InitError> {
    validate_username("cluster-admin-username", admin_username)
        .map_err(|e| InitError::InvalidAdmin(e.to_string()))?;
    if admin_password.len() < MIN_PASSWORD_LEN {
        return Err(InitError::InvalidAdmin(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if admin_username == AGENT_USERNAME {
        return Err(InitError::InvalidAdmin(format!(
            "{AGENT_USERNAME:?} is reserved for agents"
        )));
    }
    let admin_hash = hash_password(admin_password)?;
    let agent_hash = hash_password(AGENT_DEFAULT_PASSWORD)?;
    let admin = User {
        username: admin_username.to_string(),
        groups: vec![CLUSTER_ADMINS_GROUP.to_string()],
        password_hash: admin_hash,
        ..Default::default()
    };
    let agent = User {
        username: AGENT_USERNAME.to_string(),
        groups: vec![AGENTS_GROUP.to_string()],
        password_hash: agent_hash,
        ..Default::default()
    };
    let ns = Namespace {
        name: DEFAULT_NAMESPACE.to_string(),
    };
    let mut secret = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    let mut success = vec![
        Op::put(keys::namespace(DEFAULT_NAMESPACE), encode(&ns)),
        Op::put(keys::user(admin_username), encode(&admin)),
        Op::put(keys::user(AGENT_USERNAME), encode(&agent)),
        Op::put(keys::JWT_SECRET, secret),
    ];
    success.extend(default_rbac_ops());
    success.push(Op::put(keys::INITIALIZED, b"1".to_vec()));
    let txn = Txn {
        compares: vec![Compare::absent(keys::INITIALIZED)],
        success,
        failure: vec![],
    };
    if repo.store.txn(txn).await?.succeeded {
        Ok(())
    } else {
        Err(InitError::AlreadyInitialized)
    }
}

fn default_rbac_ops() -> Vec<Op> {
    let roles = default_cluster_roles()
        .into_iter()
        .map(|r| Op::put(keys::cluster_role(&r.metadata.name), encode(&r)));
    let bindings = default_cluster_role_bindings()
        .into_iter()
        .map(|b| Op::put(keys::cluster_role_binding(&b.metadata.name), encode(&b)));
    roles.chain(bindings).collect()
}

/// Bring a store initialised by an older Picket (before RBAC was enforced) up to date: seed
/// the default cluster roles and bindings if it has no cluster role at all, so its users are
/// not locked out. A store that has any cluster role is left as its operators shaped it.
pub async fn upgrade(repo: &Repo) -> Result<(), InitError> {
    if !is_initialized(repo).await? {
        return Ok(());
    }
    let any = repo
        .store
        .range(backend_store::RangeRequest {
            prefix: keys::cluster_roles_prefix(),
            start: None,
            limit: 1,
        })
        .await?;
    if !any.kvs.is_empty() {
        return Ok(());
    }
    let resp = repo
        .store
        .txn(Txn {
            compares: vec![],
            success: default_rbac_ops(),
            failure: vec![],
        })
        .await?;
    if resp.succeeded {
        tracing::info!("Seeded the default cluster roles and bindings into an older store");
    }
    Ok(())
}

/// An API key chosen by the operator must be a valid resource name, as Sensu requires.
pub fn check_api_key(key: &str) -> Result<(), InitError> {
    proto_spec::validate::validate_name("--cluster-admin-api-key", key)
        .map_err(|e| InitError::InvalidAdmin(e.to_string()))
}

/// Give `username` the API key `key` (`init --cluster-admin-api-key`): stored, like every
/// key, only as its digest.
pub async fn add_api_key(repo: &Repo, username: &str, key: &str) -> Result<(), InitError> {
    let digest = crate::auth::digest_hex(key);
    let record = proto_spec::v2::APIKey {
        metadata: ObjectMeta {
            name: digest.clone(),
            created_by: username.to_string(),
            ..Default::default()
        },
        username: username.to_string(),
        created_at: crate::timefmt::now_unix(),
    };
    check_api_key(key)?;
    repo.put(&keys::api_key(&digest), &record).await?;
    Ok(())
}

/// Namespaced resources an `edit` role may change (sensu-compat 1.13).
const CORE_RESOURCES: &[&str] = &[
    "assets",
    "checks",
    "entities",
    "events",
    "filters",
    "handlers",
    "hooks",
    "mutators",
    "pipelines",
    "silenced",
];

fn rule(verbs: &[&str], resources: &[&str]) -> Rule {
    let strings = |list: &[&str]| Some(list.iter().map(|s| s.to_string()).collect());
    Rule {
        verbs: strings(verbs),
        resources: strings(resources),
        resource_names: None,
    }
}

fn cluster_role(name: &str, rules: Vec<Rule>) -> ClusterRole {
    ClusterRole {
        rules: Some(rules),
        metadata: ObjectMeta {
            name: name.to_string(),
            ..Default::default()
        },
    }
}

/// Sensu's default cluster roles, seeded so that bindings written for Sensu work unchanged
/// once RBAC is enforced.
pub fn default_cluster_roles() -> Vec<ClusterRole> {
    let admin_resources: Vec<&str> = CORE_RESOURCES
        .iter()
        .copied()
        .chain(["roles", "rolebindings"])
        .collect();
    vec![
        cluster_role("cluster-admin", vec![rule(&["*"], &["*"])]),
        cluster_role(
            "admin",
            vec![
                rule(&["*"], &admin_resources),
                rule(&["get", "list"], &["namespaces"]),
            ],
        ),
        cluster_role(
            "edit",
            vec![
                rule(&["*"], CORE_RESOURCES),
                rule(&["get", "list"], &["namespaces"]),
            ],
        ),
        cluster_role(
            "view",
            vec![
                rule(&["get", "list"], CORE_RESOURCES),
                rule(&["get", "list"], &["namespaces"]),
            ],
        ),
        cluster_role("system:agent", vec![rule(&["*"], &["events"])]),
        cluster_role(
            "system:user",
            vec![rule(&["get", "update"], &["localselfuser"])],
        ),
    ]
}

/// Bind the default roles to the groups init gives its users.
pub fn default_cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    [
        ("cluster-admin", CLUSTER_ADMINS_GROUP),
        ("system:agent", AGENTS_GROUP),
        ("system:user", "system:users"),
    ]
    .into_iter()
    .map(|(role, group)| ClusterRoleBinding {
        subjects: Some(vec![Subject {
            type_: "Group".to_string(),
            name: group.to_string(),
        }]),
        role_ref: RoleRef {
            type_: "ClusterRole".to_string(),
            name: role.to_string(),
        },
        metadata: ObjectMeta {
            name: role.to_string(),
            ..Default::default()
        },
    })
    .collect()
}

/// A random password for the administrator of a store that initialises itself on first start.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rbac_is_valid() {
        for role in default_cluster_roles() {
            role.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", role.metadata.name));
        }
        for binding in default_cluster_role_bindings() {
            binding
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", binding.metadata.name));
        }
    }
}
