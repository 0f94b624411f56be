//! Authorization (sensu-compat 1.13, 6.2): Roles and ClusterRoles grant verbs on resources
//! (optionally only named ones); RoleBindings grant them within one namespace, and
//! ClusterRoleBindings everywhere, to users and groups.
//!
//! The whole RBAC set is kept in memory ([`Authorizer`]), with the set of disabled users:
//! loaded at start, then reloaded whenever anything under `/sensu.io/rbac/` or
//! `/sensu.io/users/` changes (store watches, `repo::follow_from`), so a request is decided
//! without touching the store. A write through this backend's API reloads at once (`reload`),
//! so the writer sees its change on its next request. A disabled user is refused everything,
//! even with an access token issued before.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use proto_spec::v2::role_binding::{
    ROLE_REF_CLUSTER_ROLE, ROLE_REF_ROLE, SUBJECT_TYPE_GROUP, SUBJECT_TYPE_USER,
};
use proto_spec::v2::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Rule, Subject, User};
use tokio_util::sync::CancellationToken;

use crate::auth::Identity;
use crate::keys;
use crate::repo::{self, Repo, RepoError};

/// The five verbs (sensu-compat 6.2): POST create, GET get (list without a name), PUT/PATCH
/// update, DELETE delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Create,
    Update,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }
}

/// What a request does: `verb` on `resource` (a rule's resource name, e.g. `checks`), in
/// `namespace` (None for cluster-wide resources and all-namespaces lists), on the object
/// `name` (None for lists and creates without a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: Verb,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The in-memory RBAC set.
#[derive(Debug, Default)]
struct Snapshot {
    cluster_roles: HashMap<String, ClusterRole>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    /// (namespace, name) → role.
    roles: HashMap<(String, String), Role>,
    /// namespace → its bindings.
    bindings: HashMap<String, Vec<RoleBinding>>,
    /// Disabled users: refused whatever their bindings or still-valid tokens say.
    disabled: HashSet<String>,
}

pub struct Authorizer {
    repo: Repo,
    /// Replaced whole on reload; readers clone the `Arc` and never hold the lock long.
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped on every reload, so long-lived sessions can check they are still allowed.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Authorizer {
    /// An authorizer with the store's current RBAC set loaded.
    pub async fn load(repo: Repo) -> Result<Arc<Self>, RepoError> {
        let a = Arc::new(Authorizer {
            repo,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            generation: tokio::sync::watch::Sender::new(0),
        });
        a.reload().await?;
        Ok(a)
    }

    /// Read the whole RBAC set again.
    pub async fn reload(&self) -> Result<(), RepoError> {
        let repo = &self.repo;
        let cluster_roles = repo
            .list_all::<ClusterRole>(&keys::cluster_roles_prefix())
            .await?
            .into_iter()
            .map(|(_, r)| (r.metadata.name.clone(), r))
            .collect();
        let cluster_bindings = repo
            .list_all::<ClusterRoleBinding>(&keys::cluster_role_bindings_prefix())
            .await?
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        let roles = repo
            .list_all::<Role>(&keys::resources_prefix(keys::ROLES_KIND, None))
            .await?
            .into_iter()
            .map(|(_, r)| ((r.metadata.namespace.clone(), r.metadata.name.clone()), r))
            .collect();
        let mut bindings: HashMap<String, Vec<RoleBinding>> = HashMap::new();
        for (_, b) in repo
            .list_all::<RoleBinding>(&keys::resources_prefix(keys::ROLE_BINDINGS_KIND, None))
            .await?
        {
            bindings
                .entry(b.metadata.namespace.clone())
                .or_default()
                .push(b);
        }
        let disabled = repo
            .list_all::<User>(&keys::users_prefix())
            .await?
            .into_iter()
            .filter(|(_, u)| u.disabled)
            .map(|(_, u)| u.username)
            .collect();
        let snapshot = Snapshot {
            cluster_roles,
            cluster_bindings,
            roles,
            bindings,
            disabled,
        };
        *self.snapshot.write().expect("rbac lock") = Arc::new(snapshot);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Changes whenever the RBAC set is reloaded.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Keep the set current until shutdown: every change under `/sensu.io/rbac/` after
    /// `after` (the revision the caller loaded at or before) reloads it.
    pub async fn follow(
        self: Arc<Self>,
        after: backend_store::Revision,
        shutdown: CancellationToken,
    ) {
        let follow = |prefix: String| {
            let me = self.clone();
            repo::follow_from(
                self.repo.store.clone(),
                prefix,
                after,
                shutdown.clone(),
                move |_| {
                    let me = me.clone();
                    async move {
                        if let Err(e) = me.reload().await {
                            tracing::error!(error = %e, "Cannot reload RBAC roles and bindings");
                        }
                    }
                },
            )
        };
        tokio::join!(follow(keys::rbac_prefix()), follow(keys::users_prefix()));
    }

    /// Whether `username` is a disabled user (as of the last reload).
    pub fn is_disabled(&self, username: &str) -> bool {
        self.snapshot().disabled.contains(username)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("rbac lock").clone()
    }

    /// Whether `who` may do `what`.
    pub fn authorize(&self, who: &Identity, what: &Attributes) -> bool {
        let s = self.snapshot();
        if s.disabled.contains(&who.username) {
            return false;
        }
        if s.cluster_grants(who).any(|rule| rule_allows(rule, what)) {
            return true;
        }
        match &what.namespace {
            Some(ns) => s
                .namespace_grants(who, ns)
                .any(|rule| rule_allows(rule, what)),
            None => false,
        }
    }

    /// Whether `who` may list `resource` in every namespace (a cluster-wide grant).
    pub fn may_list_everywhere(&self, who: &Identity, resource: &str) -> bool {
        let what = Attributes {
            verb: Verb::List,
            resource: resource.to_string(),
            namespace: None,
            name: None,
        };
        self.snapshot()
            .cluster_grants(who)
            .any(|rule| rule_allows(rule, &what))
    }

    /// Namespaces in which a RoleBinding lets `who` list `resource` (cluster-wide grants
    /// aside: see [`may_list_everywhere`](Self::may_list_everywhere)).
    pub fn namespaces_listable(&self, who: &Identity, resource: &str) -> Vec<String> {
        let s = self.snapshot();
        let mut out: Vec<String> = s
            .bindings
            .keys()
            .filter(|ns| {
                let what = Attributes {
                    verb: Verb::List,
                    resource: resource.to_string(),
                    namespace: Some((*ns).clone()),
                    name: None,
                };
                s.namespace_grants(who, ns)
                    .any(|rule| rule_allows(rule, &what))
            })
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Namespaces in which `who` has any binding at all (what `GET /namespaces` shows a user
    /// without a cluster-wide grant).
    pub fn namespaces_bound(&self, who: &Identity) -> Vec<String> {
        let s = self.snapshot();
        let mut out: Vec<String> = s
            .bindings
            .iter()
            .filter(|(_, list)| list.iter().any(|b| binds(b.subjects(), who)))
            .map(|(ns, _)| ns.clone())
            .collect();
        out.sort();
        out
    }
}

impl Snapshot {
    /// Rules of the ClusterRoles bound to `who` cluster-wide.
    fn cluster_grants<'a>(&'a self, who: &'a Identity) -> impl Iterator<Item = &'a Rule> + 'a {
        self.cluster_bindings
            .iter()
            .filter(move |b| binds(b.subjects(), who))
            .filter_map(|b| self.cluster_roles.get(&b.role_ref.name))
            .flat_map(|r| r.rules().iter())
    }

    /// Rules bound to `who` by the RoleBindings of `ns` (a Role of `ns`, or a ClusterRole
    /// applied to `ns` only).
    fn namespace_grants<'a>(
        &'a self,
        who: &'a Identity,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.bindings
            .get(ns)
            .into_iter()
            .flatten()
            .filter(move |b| binds(b.subjects(), who))
            .flat_map(move |b| {
                let rules: &[Rule] = match b.role_ref.type_.as_str() {
                    ROLE_REF_ROLE => self
                        .roles
                        .get(&(ns.to_string(), b.role_ref.name.clone()))
                        .map(|r| r.rules())
                        .unwrap_or_default(),
                    ROLE_REF_CLUSTER_ROLE => self
                        .cluster_roles
                        .get(&b.role_ref.name)
                        .map(|r| r.rules())
                        .unwrap_or_default(),
                    _ => &[],
                };
                rules.iter()
            })
    }
}

fn binds(subjects: &[Subject], who: &Identity) -> bool {
    subjects.iter().any(|s| match s.type_.as_str() {
        SUBJECT_TYPE_USER => s.name == who.username,
        SUBJECT_TYPE_GROUP => who.groups.contains(&s.name),
        _ => false,
    })
}

/// Sensu's rule match: the verb and the resource listed (or `*`), and, when the rule names
/// resources, the object named among them (so a rule with names never allows a list).
pub fn rule_allows(rule: &Rule, what: &Attributes) -> bool {
    let verb_ok = rule
        .verbs()
        .iter()
        .any(|v| v == "*" || v == what.verb.as_str());
    let resource_ok = rule
        .resources()
        .iter()
        .any(|r| r == "*" || *r == what.resource);
    let name_ok = rule.resource_names().is_empty()
        || what
            .name
            .as_deref()
            .is_some_and(|n| rule.resource_names().iter().any(|r| r == n));
    verb_ok && resource_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], resources: &[&str], names: &[&str]) -> Rule {
        let v = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        Rule {
            verbs: v(verbs),
            resources: v(resources),
            resource_names: v(names),
        }
    }

    fn attrs(verb: Verb, resource: &str, name: Option<&str>) -> Attributes {
        Attributes {
            verb,
            resource: resource.into(),
            namespace: Some("default".into()),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn rules_match_verbs_resources_and_names() {
        let r = rule(&["get", "list"], &["checks"], &[]);
        assert!(rule_allows(&r, &attrs(Verb::Get, "checks", Some("a"))));
        assert!(rule_allows(&r, &attrs(Verb::List, "checks", None)));
        assert!(!rule_allows(&r, &attrs(Verb::Create, "checks", None)));
        assert!(!rule_allows(&r, &attrs(Verb::Get, "handlers", Some("a"))));
        let star = rule(&["*"], &["*"], &[]);
        assert!(rule_allows(&star, &attrs(Verb::Delete, "users", Some("x"))));
        let named = rule(&["get"], &["checks"], &["a"]);
        assert!(rule_allows(&named, &attrs(Verb::Get, "checks", Some("a"))));
        assert!(!rule_allows(&named, &attrs(Verb::Get, "checks", Some("b"))));
        assert!(!rule_allows(&named, &attrs(Verb::Get, "checks", None)));
    }
}
