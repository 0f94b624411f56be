//! The one gate of every `/api/core/v2` route: authenticate the caller (Basic, Bearer or Key),
//! map the request to RBAC attributes (sensu-compat 6.2: POST create, GET get or list, PUT and
//! PATCH update, DELETE delete; events named `<entity>/<check>`; a user's own account is
//! `localselfuser`), and ask the [`Authorizer`](crate::rbac::Authorizer).
//!
//! All-namespaces lists (`GET /api/core/v2/checks`, ...) and the namespace list are not
//! refused: they get a [`ListScope`] naming the namespaces the caller may list, and their
//! handlers leave the rest out.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, AuthUser};
use crate::auth::{AuthError, Identity};
use crate::metrics::Metrics;
use crate::rbac::{Attributes, Verb};

/// Namespaced collections under `/namespaces/{ns}/` (their rule resource is the same word).
pub const NAMESPACED: &[&str] = &[
    "assets",
    "checks",
    "entities",
    "events",
    "filters",
    "handlers",
    "hooks",
    "mutators",
    "pipelines",
    "roles",
    "rolebindings",
    "silenced",
];

/// Cluster-wide collections.
pub const CLUSTER_WIDE: &[&str] = &[
    "namespaces",
    "users",
    "clusterroles",
    "clusterrolebindings",
    "apikeys",
];

/// What the authorizer holds (RBAC objects, and users for the disabled set): a successful
/// write to them reloads it before answering.
const RBAC_COLLECTIONS: &[&str] = &[
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "users",
];

/// What one request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Allowed if any of these is (a user's own account: `users` or `localselfuser`).
    AnyOf(Vec<Attributes>),
    /// A list across namespaces of a namespaced resource: filtered, never refused.
    ListAll { resource: String },
    /// `GET /namespaces`: filtered to the namespaces the caller can use.
    ListNamespaces,
}

/// Which namespaces a filtered list may show.
#[derive(Debug, Clone)]
pub enum ListScope {
    All,
    Only(BTreeSet<String>),
}

impl ListScope {
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            ListScope::All => true,
            ListScope::Only(set) => set.contains(namespace),
        }
    }
}

fn verb(method: &Method, named: bool) -> Option<Verb> {
    Some(match *method {
        Method::GET | Method::HEAD if named => Verb::Get,
        Method::GET | Method::HEAD => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT | Method::PATCH => Verb::Update,
        Method::DELETE => Verb::Delete,
        _ => return None,
    })
}

fn attrs(verb: Verb, resource: &str, namespace: Option<&str>, name: Option<&str>) -> Attributes {
    Attributes {
        verb,
        resource: resource.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    }
}

/// Map a request under `/api/core/v2` (`path` without that prefix) to what it needs; `None`
/// for paths no route serves (answered 404 without a decision) and methods no route takes.
pub fn access(method: &Method, path: &str, caller: &str) -> Option<Access> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let one = |a: Attributes| Some(Access::AnyOf(vec![a]));
    match s.as_slice() {
        ["namespaces"] if *method == Method::GET || *method == Method::HEAD => {
            Some(Access::ListNamespaces)
        }
        [c] if CLUSTER_WIDE.contains(c) => one(attrs(verb(method, false)?, c, None, None)),
        [c] if NAMESPACED.contains(c) && (*method == Method::GET || *method == Method::HEAD) => {
            Some(Access::ListAll {
                resource: c.to_string(),
            })
        }
        ["silenced", "checks", _] => Some(Access::ListAll {
            resource: "silenced".into(),
        }),
        // A namespace may be read by whoever its RoleBindings allow to read namespaces.
        ["namespaces", ns] => {
            let v = verb(method, true)?;
            let scope = (v == Verb::Get).then_some(*ns);
            one(attrs(v, "namespaces", scope, Some(ns)))
        }
        ["users", user, rest @ ..] => {
            let v = verb(method, true)?;
            let mut any = vec![attrs(v, "users", None, Some(user))];
            // A user may read its account and change its own password.
            let own = *user == caller
                && match rest {
                    [] => v == Verb::Get,
                    ["password"] => v == Verb::Update,
                    _ => false,
                };
            if own {
                any.push(attrs(v, "localselfuser", None, Some(user)));
            }
            Some(Access::AnyOf(any))
        }
        [c, name] if CLUSTER_WIDE.contains(c) => {
            one(attrs(verb(method, true)?, c, None, Some(name)))
        }
        ["namespaces", ns, c] if NAMESPACED.contains(c) => {
            one(attrs(verb(method, false)?, c, Some(ns), None))
        }
        // One entity's events are a list.
        ["namespaces", ns, "events", _entity] => {
            one(attrs(verb(method, false)?, "events", Some(ns), None))
        }
        ["namespaces", ns, "events", entity, check] => one(attrs(
            verb(method, true)?,
            "events",
            Some(ns),
            Some(&format!("{entity}/{check}")),
        )),
        ["namespaces", ns, "silenced", "subscriptions" | "checks", _] => {
            one(attrs(verb(method, false)?, "silenced", Some(ns), None))
        }
        // `checks/{c}/execute`, `checks/{c}/hooks/...` act on the check itself.
        ["namespaces", ns, c, name, ..] if NAMESPACED.contains(c) => {
            one(attrs(verb(method, true)?, c, Some(ns), Some(name)))
        }
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (
                (bytes[i + 1] as char).to_digit(16),
                (bytes[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refusal for an unauthenticated request: 401, or 429 past the failed-login limit.
pub fn unauthenticated(state: &ApiState, e: AuthError) -> Response {
    match e {
        AuthError::Repo(e) => ApiError::from(e).into_response(),
        AuthError::RateLimited { retry_after, .. } => {
            Metrics::inc(&state.metrics.login_rate_limited_total);
            let mut resp =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert("Retry-After", v);
            }
            resp
        }
        e => {
            Metrics::inc(&state.metrics.api_unauthorized_total);
            let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()).into_response();
            resp.headers_mut().insert(
                "WWW-Authenticate",
                HeaderValue::from_static("Basic realm=\"picket\""),
            );
            resp
        }
    }
}

pub fn source_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn forbidden(state: &ApiState, who: &Identity, what: &Attributes) -> Response {
    Metrics::inc(&state.metrics.api_forbidden_total);
    let target = match (&what.name, &what.namespace) {
        (Some(n), Some(ns)) => format!("{} {n:?} in namespace {ns:?}", what.resource),
        (None, Some(ns)) => format!("{} in namespace {ns:?}", what.resource),
        (Some(n), None) => format!("{} {n:?}", what.resource),
        (None, None) => what.resource.clone(),
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "permission denied: user {:?} may not {} {target}",
            who.username,
            what.verb.as_str()
        ),
    )
    .into_response()
}

/// Authenticate, authorize, and for RBAC writes reload the authorizer once they succeed.
pub async fn gate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let who = match state
        .auth
        .identify(header.as_deref(), source_ip(&req))
        .await
    {
        // An access token outlives a user's disabling by up to its lifetime: not here.
        Ok(who) if state.authz.is_disabled(&who.username) => {
            return unauthenticated(&state, AuthError::Disabled(who.username));
        }
        Ok(who) => who,
        Err(e) => return unauthenticated(&state, e),
    };
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(access) = access(&method, &path, &who.username) else {
        return match verb(&method, false) {
            None => ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            Some(_) => ApiError::new(StatusCode::NOT_FOUND, "not found"),
        }
        .into_response();
    };
    match access {
        Access::AnyOf(any) => {
            if !any.iter().any(|a| state.authz.authorize(&who, a)) {
                tracing::info!(user = %who.username, method = %method, path = %path, "Request denied by RBAC");
                return forbidden(&state, &who, &any[0]);
            }
        }
        Access::ListAll { resource } => {
            let scope = if state.authz.may_list_everywhere(&who, &resource) {
                ListScope::All
            } else {
                ListScope::Only(
                    state
                        .authz
                        .namespaces_listable(&who, &resource)
                        .into_iter()
                        .collect(),
                )
            };
            req.extensions_mut().insert(scope);
        }
        Access::ListNamespaces => {
            let scope = if state.authz.may_list_everywhere(&who, "namespaces") {
                ListScope::All
            } else {
                ListScope::Only(state.authz.namespaces_bound(&who).into_iter().collect())
            };
            req.extensions_mut().insert(scope);
        }
    }
    let rbac_write = method != Method::GET
        && method != Method::HEAD
        && path
            .trim_matches('/')
            .split('/')
            .any(|seg| RBAC_COLLECTIONS.contains(&seg));
    req.extensions_mut().insert(AuthUser(who.username.clone()));
    req.extensions_mut().insert(who);
    let resp = next.run(req).await;
    if rbac_write
        && resp.status().is_success()
        && let Err(e) = state.authz.reload().await
    {
        tracing::error!(error = %e, "Cannot reload RBAC roles and bindings after a write");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(verb: Verb, resource: &str, ns: Option<&str>, name: Option<&str>) -> Access {
        Access::AnyOf(vec![attrs(verb, resource, ns, name)])
    }

    #[test]
    fn routes_map_to_sensus_attributes() {
        let (get, post, put, patch, del) = (
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        );
        let cases: Vec<(&Method, &str, Option<Access>)> = vec![
            (&get, "/namespaces", Some(Access::ListNamespaces)),
            (
                &post,
                "/namespaces",
                Some(a(Verb::Create, "namespaces", None, None)),
            ),
            (
                &get,
                "/namespaces/acme",
                Some(a(Verb::Get, "namespaces", Some("acme"), Some("acme"))),
            ),
            (
                &del,
                "/namespaces/acme",
                Some(a(Verb::Delete, "namespaces", None, Some("acme"))),
            ),
            (
                &get,
                "/checks",
                Some(Access::ListAll {
                    resource: "checks".into(),
                }),
            ),
            (
                &get,
                "/namespaces/default/checks",
                Some(a(Verb::List, "checks", Some("default"), None)),
            ),
            (
                &post,
                "/namespaces/default/checks",
                Some(a(Verb::Create, "checks", Some("default"), None)),
            ),
            (
                &patch,
                "/namespaces/default/checks/c1",
                Some(a(Verb::Update, "checks", Some("default"), Some("c1"))),
            ),
            (
                &post,
                "/namespaces/default/checks/c1/execute",
                Some(a(Verb::Create, "checks", Some("default"), Some("c1"))),
            ),
            (
                &get,
                "/namespaces/default/events/web1",
                Some(a(Verb::List, "events", Some("default"), None)),
            ),
            (
                &put,
                "/namespaces/default/events/web1/disk",
                Some(a(
                    Verb::Update,
                    "events",
                    Some("default"),
                    Some("web1/disk"),
                )),
            ),
            (
                &get,
                "/namespaces/default/silenced/subscriptions/linux",
                Some(a(Verb::List, "silenced", Some("default"), None)),
            ),
            (
                &get,
                "/silenced/checks/disk",
                Some(Access::ListAll {
                    resource: "silenced".into(),
                }),
            ),
            (
                &get,
                "/users/bob",
                Some(a(Verb::Get, "users", None, Some("bob"))),
            ),
            (
                &put,
                "/users/demo/password",
                Some(Access::AnyOf(vec![
                    attrs(Verb::Update, "users", None, Some("demo")),
                    attrs(Verb::Update, "localselfuser", None, Some("demo")),
                ])),
            ),
            (
                &put,
                "/users/demo/reset_password",
                Some(a(Verb::Update, "users", None, Some("demo"))),
            ),
            (
                &del,
                "/apikeys/k%3A1",
                Some(a(Verb::Delete, "apikeys", None, Some("k:1"))),
            ),
            (&get, "/nothing/here", None),
            (&Method::OPTIONS, "/checks", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(access(method, path, "demo"), want, "{method} {path}");
        }
    }
}
