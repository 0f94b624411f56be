//! Authorization through the real API and agent port: the acceptance story's step 2, every
//! route against the default roles, users' self-service, and namespace deletion.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::json;

async fn ok(method: &str, url: &str, body: serde_json::Value) {
    let r = http(method, url, Some(ADMIN), Some(&body.to_string())).await;
    assert!(
        (200..300).contains(&r.status),
        "{method} {url}: {} {}",
        r.status,
        r.body
    );
}

async fn create_user(tb: &TestBackend, name: &str, groups: &[&str]) {
    ok(
        "POST",
        &format!("{}/users", tb.v2),
        json!({"username": name, "password": format!("{name}-password"), "groups": groups}),
    )
    .await;
}

fn creds(name: &str) -> (String, String) {
    (name.to_string(), format!("{name}-password"))
}

fn check(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "namespace": ns},
        "command": "true", "interval": 60, "subscriptions": ["linux"], "publish": false
    })
}

fn names(list: &serde_json::Value, pointer: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.pointer(pointer).unwrap().as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn acceptance_story_step_2_a_namespace_team() {
    let tb = start().await;
    // Something in default that demo must not see.
    ok(
        "POST",
        &format!("{}/namespaces/default/events", tb.v2),
        json!({"entity": {"metadata": {"name": "db1"}},
               "check": {"metadata": {"name": "backup"}, "status": 2, "output": "failed"}}),
    )
    .await;
    let r = eventually(
        "the default event",
        std::time::Duration::from_secs(10),
        || {
            let url = format!("{}/namespaces/default/events/db1/backup", tb.v2);
            async move {
                let r = http("GET", &url, Some(ADMIN), None).await;
                (r.status == 200).then_some(r)
            }
        },
    )
    .await;
    assert_eq!(r.status, 200);
    ok(
        "POST",
        &format!("{}/namespaces/default/checks", tb.v2),
        check("default", "root-only"),
    )
    .await;

    // The admin sets up the team: namespace, role, user, binding.
    ok(
        "POST",
        &format!("{}/namespaces", tb.v2),
        json!({"name": "acme"}),
    )
    .await;
    ok(
        "POST",
        &format!("{}/namespaces/acme/roles", tb.v2),
        json!({"metadata": {"name": "dev", "namespace": "acme"},
               "rules": [{"verbs": ["*"], "resources": ["*"]}]}),
    )
    .await;
    create_user(&tb, "demo", &[]).await;
    ok(
        "POST",
        &format!("{}/namespaces/acme/rolebindings", tb.v2),
        json!({"metadata": {"name": "dev-demo", "namespace": "acme"},
               "subjects": [{"type": "User", "name": "demo"}],
               "role_ref": {"type": "Role", "name": "dev"}}),
    )
    .await;

    // demo logs in and works with an access token from now on.
    let (user, pass) = creds("demo");
    let r = http(
        "GET",
        &format!("{}/auth", tb.api),
        Some((&user, &pass)),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bearer = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    let demo = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let url = format!("{}{path}", tb.v2);
        let bearer = bearer.clone();
        async move {
            let body = body.map(|b| b.to_string());
            authed(method, &url, Some(&bearer), body.as_deref()).await
        }
    };

    // Checks in acme: create and list.
    let r = demo(
        "POST",
        "/namespaces/acme/checks".into(),
        Some(check("acme", "web")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = demo("GET", "/namespaces/acme/checks".into(), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        names(&r.json(), "/metadata/name"),
        BTreeSet::from(["web".to_string()])
    );

    // default is out of reach: 403, with Sensu's code.
    let r = demo(
        "POST",
        "/namespaces/default/checks".into(),
        Some(check("default", "web")),
    )
    .await;
    r.assert_error(403, 4, "permission denied");
    let r = demo("GET", "/namespaces/default/checks".into(), None).await;
    r.assert_error(403, 4, "permission denied");
    for path in [
        "/namespaces/default/entities",
        "/namespaces/default/entities/db1",
        "/namespaces/default/events",
        "/namespaces/default/events/db1",
        "/namespaces/default/events/db1/backup",
    ] {
        let r = demo("GET", path.into(), None).await;
        r.assert_error(403, 4, "permission denied");
    }
    // All-namespaces lists show acme only.
    for path in ["/entities", "/events", "/checks"] {
        let r = demo("GET", path.into(), None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let namespaces = names(&r.json(), "/metadata/namespace");
        assert!(
            namespaces.iter().all(|ns| ns == "acme"),
            "{path} leaked {namespaces:?}"
        );
    }
    let r = demo("GET", "/checks".into(), None).await;
    assert_eq!(
        names(&r.json(), "/metadata/name"),
        BTreeSet::from(["web".to_string()])
    );
    let r = demo("GET", "/namespaces".into(), None).await;
    assert_eq!(
        names(&r.json(), "/name"),
        BTreeSet::from(["acme".to_string()])
    );
    // ... while the admin sees both.
    let r = http("GET", &format!("{}/checks", tb.v2), Some(ADMIN), None).await;
    assert_eq!(names(&r.json(), "/metadata/name").len(), 2, "{}", r.body);

    // No escalation: no ClusterRoleBinding, no user, no role in default.
    let r = demo(
        "POST",
        "/clusterrolebindings".into(),
        Some(json!({"metadata": {"name": "demo-root"},
                    "subjects": [{"type": "User", "name": "demo"}],
                    "role_ref": {"type": "ClusterRole", "name": "cluster-admin"}})),
    )
    .await;
    r.assert_error(403, 4, "clusterrolebindings");
    let r = demo(
        "POST",
        "/namespaces/default/rolebindings".into(),
        Some(
            json!({"metadata": {"name": "demo-default", "namespace": "default"},
                    "subjects": [{"type": "User", "name": "demo"}],
                    "role_ref": {"type": "ClusterRole", "name": "cluster-admin"}}),
        ),
    )
    .await;
    r.assert_error(403, 4, "permission denied");
    let r = demo("PUT", "/users/demo/groups/cluster-admins".into(), None).await;
    r.assert_error(403, 4, "permission denied");
    // Binding cluster-admin inside acme (allowed: demo owns acme) grants nothing outside it.
    let r = demo(
        "POST",
        "/namespaces/acme/rolebindings".into(),
        Some(
            json!({"metadata": {"name": "demo-root", "namespace": "acme"},
                    "subjects": [{"type": "User", "name": "demo"}],
                    "role_ref": {"type": "ClusterRole", "name": "cluster-admin"}}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = demo("GET", "/namespaces/default/checks".into(), None).await;
    r.assert_error(403, 4, "permission denied");
    let r = demo("GET", "/users".into(), None).await;
    r.assert_error(403, 4, "permission denied");

    // The namespace cannot be deleted while it holds the team's resources.
    let r = http(
        "DELETE",
        &format!("{}/namespaces/acme", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    r.assert_error(409, 3, "not empty");
    let message = r.json()["message"].as_str().unwrap().to_string();
    for left in ["1 checks", "1 roles", "2 role bindings"] {
        assert!(message.contains(left), "{message:?} should name {left:?}");
    }
    for path in [
        "/namespaces/acme/checks/web",
        "/namespaces/acme/rolebindings/dev-demo",
        "/namespaces/acme/rolebindings/demo-root",
        "/namespaces/acme/roles/dev",
    ] {
        let r = http("DELETE", &format!("{}{path}", tb.v2), Some(ADMIN), None).await;
        assert_eq!(r.status, 204, "{path}: {}", r.body);
    }
    // Without its binding demo has lost acme at once (the authorizer reloads on writes).
    let r = demo("GET", "/namespaces/acme/checks".into(), None).await;
    r.assert_error(403, 4, "permission denied");
    let r = http(
        "DELETE",
        &format!("{}/namespaces/acme", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http(
        "GET",
        &format!("{}/namespaces/acme", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
}

/// Who is asking, by default role.
const ROLES: [&str; 6] = ["cluster-admin", "admin", "edit", "view", "agent", "unbound"];

/// One row: a request and the roles that may make it. An allowed request must get anything
/// but 401/403 (the bodies and names are chosen so that it fails harmlessly after the gate:
/// 400 for an empty body, 404 for a missing object); a refused one gets 403.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    allowed: &'static [&'static str],
}

const WRITERS: &[&str] = &["cluster-admin", "admin", "edit"];
const READERS: &[&str] = &["cluster-admin", "admin", "edit", "view"];
const EVENT_WRITERS: &[&str] = &["cluster-admin", "admin", "edit", "agent"];
const EVENT_READERS: &[&str] = &["cluster-admin", "admin", "edit", "view", "agent"];
const OWNERS: &[&str] = &["cluster-admin", "admin"];
const ROOT: &[&str] = &["cluster-admin"];

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    // Assets have no routes yet (their issue adds them); `authz::access` already maps them.
    let core = [
        "checks",
        "entities",
        "filters",
        "handlers",
        "hooks",
        "mutators",
        "pipelines",
        "silenced",
    ];
    let collections = core
        .iter()
        .map(|c| (*c, READERS, WRITERS))
        .chain([("events", EVENT_READERS, EVENT_WRITERS)])
        .chain([("roles", OWNERS, OWNERS), ("rolebindings", OWNERS, OWNERS)]);
    for (c, readers, writers) in collections {
        // Leaked 'static strings keep the table's shape simple; a test process is short-lived.
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let list = leak(format!("/namespaces/default/{c}"));
        let one = if c == "events" {
            leak(format!("/namespaces/default/{c}/nope/nope"))
        } else {
            leak(format!("/namespaces/default/{c}/nope"))
        };
        rows.push(Row {
            method: "GET",
            path: list,
            body: None,
            allowed: readers,
        });
        rows.push(Row {
            method: "POST",
            path: list,
            body: Some("[]"),
            allowed: writers,
        });
        rows.push(Row {
            method: "GET",
            path: one,
            body: None,
            allowed: readers,
        });
        rows.push(Row {
            method: "PUT",
            path: one,
            body: Some("[]"),
            allowed: writers,
        });
        rows.push(Row {
            method: "DELETE",
            path: one,
            body: None,
            allowed: writers,
        });
        if c != "events" && c != "entities" {
            rows.push(Row {
                method: "PATCH",
                path: one,
                body: Some("{}"),
                allowed: writers,
            });
        }
    }
    rows.extend([
        Row {
            method: "GET",
            path: "/namespaces/default/events/nope",
            body: None,
            allowed: EVENT_READERS,
        },
        Row {
            method: "POST",
            path: "/namespaces/default/checks/nope/execute",
            body: Some("[]"),
            allowed: WRITERS,
        },
        Row {
            method: "PUT",
            path: "/namespaces/default/checks/nope/hooks/critical",
            body: Some("[]"),
            allowed: WRITERS,
        },
        Row {
            method: "DELETE",
            path: "/namespaces/default/checks/nope/hooks/critical/hook/h",
            body: None,
            allowed: WRITERS,
        },
        Row {
            method: "GET",
            path: "/namespaces/default/silenced/subscriptions/linux",
            body: None,
            allowed: READERS,
        },
        Row {
            method: "GET",
            path: "/namespaces/default/silenced/checks/disk",
            body: None,
            allowed: READERS,
        },
        // Namespaces: read through the bindings of default, written by cluster-admin only.
        Row {
            method: "GET",
            path: "/namespaces/default",
            body: None,
            allowed: READERS,
        },
        Row {
            method: "POST",
            path: "/namespaces",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "PUT",
            path: "/namespaces/nope",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "DELETE",
            path: "/namespaces/nope",
            body: None,
            allowed: ROOT,
        },
        // Cluster-wide resources.
        Row {
            method: "GET",
            path: "/users",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "POST",
            path: "/users",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "GET",
            path: "/users/nope",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "PUT",
            path: "/users/nope",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "DELETE",
            path: "/users/nope",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "PUT",
            path: "/users/nope/reinstate",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "PUT",
            path: "/users/nope/password",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "PUT",
            path: "/users/nope/reset_password",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "PUT",
            path: "/users/nope/groups/g",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "DELETE",
            path: "/users/nope/groups/g",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "DELETE",
            path: "/users/nope/groups",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "GET",
            path: "/apikeys",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "POST",
            path: "/apikeys",
            body: Some("[]"),
            allowed: ROOT,
        },
        Row {
            method: "GET",
            path: "/apikeys/nope",
            body: None,
            allowed: ROOT,
        },
        Row {
            method: "DELETE",
            path: "/apikeys/nope",
            body: None,
            allowed: ROOT,
        },
    ]);
    for c in ["clusterroles", "clusterrolebindings"] {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let list = leak(format!("/{c}"));
        let one = leak(format!("/{c}/nope"));
        rows.push(Row {
            method: "GET",
            path: list,
            body: None,
            allowed: ROOT,
        });
        rows.push(Row {
            method: "POST",
            path: list,
            body: Some("[]"),
            allowed: ROOT,
        });
        rows.push(Row {
            method: "GET",
            path: one,
            body: None,
            allowed: ROOT,
        });
        rows.push(Row {
            method: "PUT",
            path: one,
            body: Some("[]"),
            allowed: ROOT,
        });
        rows.push(Row {
            method: "DELETE",
            path: one,
            body: None,
            allowed: ROOT,
        });
        rows.push(Row {
            method: "PATCH",
            path: one,
            body: Some("{}"),
            allowed: ROOT,
        });
    }
    rows
}

/// The user each role is tested as: cluster-admin through its group, admin/edit/view through
/// RoleBindings of the default ClusterRoles in `default` (Sensu's intended use), the agent
/// user through `system:agents`, and a user with no binding.
async fn role_users(tb: &TestBackend) {
    create_user(tb, "root2", &["cluster-admins"]).await;
    for role in ["admin", "edit", "view"] {
        let user = format!("as-{role}");
        create_user(tb, &user, &[]).await;
        ok(
            "POST",
            &format!("{}/namespaces/default/rolebindings", tb.v2),
            json!({"metadata": {"name": format!("{role}-binding"), "namespace": "default"},
                   "subjects": [{"type": "User", "name": user}],
                   "role_ref": {"type": "ClusterRole", "name": role}}),
        )
        .await;
    }
    create_user(tb, "nobody", &[]).await;
}

fn user_for(role: &str) -> (String, String) {
    match role {
        "cluster-admin" => creds("root2"),
        "agent" => ("agent".into(), "P@ssw0rd!".into()),
        "unbound" => creds("nobody"),
        other => creds(&format!("as-{other}")),
    }
}

#[tokio::test]
async fn every_route_and_verb_against_the_default_roles() {
    let tb = start().await;
    role_users(&tb).await;
    let mut failures = Vec::new();
    for row in rows() {
        for role in ROLES {
            let (u, p) = user_for(role);
            let r = http(
                row.method,
                &format!("{}{}", tb.v2, row.path),
                Some((&u, &p)),
                row.body,
            )
            .await;
            let allowed = row.allowed.contains(&role);
            let ok = if allowed {
                r.status != 401 && r.status != 403
            } else {
                r.status == 403
            };
            if !ok {
                failures.push(format!(
                    "{role}: {} {} -> {} {} (expected {})",
                    row.method,
                    row.path,
                    r.status,
                    r.body,
                    if allowed { "allowed" } else { "403" }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Own account: everyone reads it and nobody sees a hash.
    for role in ROLES {
        let (u, p) = user_for(role);
        let r = http("GET", &format!("{}/users/{u}", tb.v2), Some((&u, &p)), None).await;
        assert_eq!(r.status, 200, "{role}: {}", r.body);
        assert!(!r.body.contains("password_hash"), "{}", r.body);
    }

    // Filtered lists: all-namespaces lists and the namespace list per role.
    ok(
        "POST",
        &format!("{}/namespaces", tb.v2),
        json!({"name": "other"}),
    )
    .await;
    ok(
        "POST",
        &format!("{}/namespaces/other/checks", tb.v2),
        check("other", "c2"),
    )
    .await;
    ok(
        "POST",
        &format!("{}/namespaces/default/checks", tb.v2),
        check("default", "c1"),
    )
    .await;
    for (role, checks, namespaces) in [
        ("cluster-admin", vec!["c1", "c2"], vec!["default", "other"]),
        ("admin", vec!["c1"], vec!["default"]),
        ("edit", vec!["c1"], vec!["default"]),
        ("view", vec!["c1"], vec!["default"]),
        ("agent", vec![], vec![]),
        ("unbound", vec![], vec![]),
    ] {
        let (u, p) = user_for(role);
        let r = http("GET", &format!("{}/checks", tb.v2), Some((&u, &p)), None).await;
        assert_eq!(r.status, 200, "{role}: {}", r.body);
        let want: BTreeSet<String> = checks.iter().map(|s| s.to_string()).collect();
        assert_eq!(names(&r.json(), "/metadata/name"), want, "{role} /checks");
        let r = http(
            "GET",
            &format!("{}/namespaces", tb.v2),
            Some((&u, &p)),
            None,
        )
        .await;
        let want: BTreeSet<String> = namespaces.iter().map(|s| s.to_string()).collect();
        assert_eq!(names(&r.json(), "/name"), want, "{role} /namespaces");
    }

    // Every all-namespaces list shows each role the namespaces it may list there: events
    // (and the proxy entities they create) in both namespaces.
    for ns in ["default", "other"] {
        ok(
            "POST",
            &format!("{}/namespaces/{ns}/events", tb.v2),
            json!({"entity": {"metadata": {"name": format!("{ns}-host")}},
                   "check": {"metadata": {"name": "probe"}, "status": 0}}),
        )
        .await;
    }
    eventually(
        "both events stored",
        std::time::Duration::from_secs(10),
        || {
            let url = format!("{}/events", tb.v2);
            async move {
                let r = http("GET", &url, Some(ADMIN), None).await;
                (r.json().as_array().unwrap().len() == 2).then_some(())
            }
        },
    )
    .await;
    let both = || BTreeSet::from(["default".to_string(), "other".to_string()]);
    let default = || BTreeSet::from(["default".to_string()]);
    for (path, seen) in [("/events", "events"), ("/entities", "entities")] {
        for role in ROLES {
            let want = match (role, seen) {
                ("cluster-admin", _) | ("agent", "events") => both(),
                ("admin" | "edit" | "view", _) => default(),
                _ => BTreeSet::new(),
            };
            let (u, p) = user_for(role);
            let r = http("GET", &format!("{}{path}", tb.v2), Some((&u, &p)), None).await;
            assert_eq!(r.status, 200, "{role} {path}: {}", r.body);
            assert_eq!(
                names(&r.json(), "/metadata/namespace"),
                want,
                "{role} {path}"
            );
        }
    }
    // The other all-namespaces lists answer every role (filtered, never refused).
    for c in [
        "filters",
        "handlers",
        "hooks",
        "mutators",
        "pipelines",
        "silenced",
        "roles",
        "rolebindings",
    ] {
        for role in ROLES {
            let (u, p) = user_for(role);
            let r = http("GET", &format!("{}/{c}", tb.v2), Some((&u, &p)), None).await;
            assert_eq!(r.status, 200, "{role} /{c}: {}", r.body);
            let seen = names(&r.json(), "/metadata/namespace");
            assert!(
                seen.iter()
                    .all(|ns| ns == "default" || role == "cluster-admin"),
                "{role} /{c}: {seen:?}"
            );
        }
    }
    // The silenced lookup across namespaces is filtered the same way.
    for ns in ["default", "other"] {
        ok(
            "POST",
            &format!("{}/namespaces/{ns}/silenced", tb.v2),
            json!({"metadata": {"namespace": ns}, "subscription": "linux", "check": "probe"}),
        )
        .await;
    }
    for (role, want) in [
        ("cluster-admin", both()),
        ("view", default()),
        ("unbound", BTreeSet::new()),
    ] {
        let (u, p) = user_for(role);
        let r = http(
            "GET",
            &format!("{}/silenced/checks/probe", tb.v2),
            Some((&u, &p)),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{role}: {}", r.body);
        assert_eq!(names(&r.json(), "/metadata/namespace"), want, "{role}");
    }
}

#[tokio::test]
async fn agent_sessions_need_create_on_events_in_their_namespace() {
    let tb = start().await;
    role_users(&tb).await;
    connect(&tb, "a1", "default", ("agent", "P@ssw0rd!"))
        .await
        .expect("system:agent connects");
    let (u, p) = creds("as-edit");
    connect(&tb, "a2", "default", (&u, &p))
        .await
        .expect("edit may create events");
    for user in ["as-view", "nobody"] {
        let (u, p) = creds(user);
        match connect(&tb, "a3", "default", (&u, &p)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403, "{user}")
            }
            Err(e) => panic!("{user}: unexpected error {e}"),
            Ok(_) => panic!("{user} must not connect an agent"),
        }
    }
    // The edit binding is for default only.
    ok(
        "POST",
        &format!("{}/namespaces", tb.v2),
        json!({"name": "acme"}),
    )
    .await;
    match connect(&tb, "a4", "acme", (&u, &p)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("as-edit in acme: {:?}", other.map(|_| ())),
    }
    let metrics = http("GET", &format!("{}/metrics", tb.api), None, None)
        .await
        .body;
    assert!(
        metrics.contains("picket_agent_handshake_forbidden_total 3"),
        "{metrics}"
    );

    // A session whose binding goes away is closed with a policy violation; the agent user's
    // session, granted by another binding, stays.
    let mut edit_session = connect(&tb, "a5", "default", (&u, &p)).await.unwrap();
    let mut agent_session = connect(&tb, "a6", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    let r = http(
        "DELETE",
        &format!("{}/namespaces/default/rolebindings/edit-binding", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(expect_close(&mut edit_session).await, 1008);
    use futures_util::SinkExt;
    agent_session
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            keepalive("a6", "default", 1, 60, 120).into(),
        ))
        .await
        .expect("the agent user's session is still open");
    eventually("a6 registered", std::time::Duration::from_secs(10), || {
        let url = format!("{}/namespaces/default/entities/a6", tb.v2);
        async move { (http("GET", &url, Some(ADMIN), None).await.status == 200).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn users_manage_their_password_and_admins_their_users() {
    let tb = start().await;
    create_user(&tb, "demo", &["dev"]).await;
    let (u, p) = creds("demo");
    let me = format!("{}/users/demo", tb.v2);

    // Listing never shows hashes.
    let r = http("GET", &format!("{}/users", tb.v2), Some(ADMIN), None).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("password_hash") && r.body.contains("\"demo\""),
        "{}",
        r.body
    );

    // Own password: the current one is required.
    let r = http(
        "PUT",
        &format!("{me}/password"),
        Some((&u, &p)),
        Some(r#"{"password": "wrong-password", "new_password": "brand-new-pass"}"#),
    )
    .await;
    r.assert_error(400, 1, "current password");
    let r = http(
        "PUT",
        &format!("{me}/password"),
        Some((&u, &p)),
        Some(&json!({"password": p, "new_password": "brand-new-pass"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http(
        "GET",
        &format!("{}/auth/test", tb.api),
        Some((&u, &p)),
        None,
    )
    .await;
    assert_eq!(r.status, 401, "the old password is gone");
    let new = (u.as_str(), "brand-new-pass");
    let r = http("GET", &me, Some(new), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["groups"], json!(["dev"]));
    // Someone else's account is out of reach.
    let r = http("GET", &format!("{}/users/admin", tb.v2), Some(new), None).await;
    r.assert_error(403, 4, "permission denied");
    let r = http(
        "PUT",
        &format!("{}/users/admin/password", tb.v2),
        Some(new),
        Some(&json!({"password": ADMIN.1, "new_password": "hijacked-pass"}).to_string()),
    )
    .await;
    r.assert_error(403, 4, "permission denied");

    // Disable (DELETE), then reinstate. An access token issued before stops working too.
    let r = http("GET", &format!("{}/auth", tb.api), Some(new), None).await;
    let bearer = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    let agent = ("agent-demo", "agent-demo-password");
    create_user(&tb, "agent-demo", &["system:agents"]).await;
    let mut session = connect(&tb, "d1", "default", agent).await.unwrap();
    let r = http("DELETE", &me, Some(ADMIN), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http("GET", &me, Some(new), None).await;
    assert_eq!(r.status, 401, "a disabled user cannot log in");
    let r = http("GET", &format!("{}/auth", tb.api), Some(new), None).await;
    assert_eq!(r.status, 401);
    authed("GET", &me, Some(&bearer), None)
        .await
        .assert_error(401, 5, "disabled");
    // A disabled agent user's session ends.
    let r = http(
        "DELETE",
        &format!("{}/users/agent-demo", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(expect_close(&mut session).await, 1008);
    let r = http("PUT", &format!("{me}/reinstate"), Some(ADMIN), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http("GET", &me, Some(new), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Reset by an admin, groups edited.
    let r = http(
        "PUT",
        &format!("{me}/reset_password"),
        Some(ADMIN),
        Some(r#"{"password": "reset-by-admin"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let reset = (u.as_str(), "reset-by-admin");
    assert_eq!(http("GET", &me, Some(reset), None).await.status, 200);
    let r = http("PUT", &format!("{me}/groups/ops"), Some(ADMIN), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http("DELETE", &format!("{me}/groups/dev"), Some(ADMIN), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http("GET", &me, Some(ADMIN), None).await;
    assert_eq!(r.json()["groups"], json!(["ops"]));
    let r = http("DELETE", &format!("{me}/groups/dev"), Some(ADMIN), None).await;
    r.assert_error(404, 2, "not in group");

    // Bad input.
    let r = http(
        "POST",
        &format!("{}/users", tb.v2),
        Some(ADMIN),
        Some(r#"{"username": "short", "password": "short"}"#),
    )
    .await;
    r.assert_error(400, 1, "at least 8");
    let r = http(
        "POST",
        &format!("{}/users", tb.v2),
        Some(ADMIN),
        Some(r#"{"username": "demo", "password": "long-enough"}"#),
    )
    .await;
    r.assert_error(409, 3, "already exists");
    let r = http(
        "POST",
        &format!("{}/users", tb.v2),
        Some(ADMIN),
        Some(r#"{"username": "hashy", "password_hash": "not-bcrypt"}"#),
    )
    .await;
    r.assert_error(400, 1, "bcrypt");
}

/// A store initialised before RBAC was enforced (no cluster roles) gets Sensu's defaults on
/// start, so its administrator is not locked out.
#[tokio::test]
async fn an_older_store_gets_the_default_roles_on_start() {
    use backend_app::{init, repo::Repo};
    use backend_store::{EmbeddedStore, Store};
    let store: std::sync::Arc<dyn Store> = EmbeddedStore::in_memory().unwrap();
    init::initialize(&Repo::new(store.clone()), ADMIN.0, ADMIN.1)
        .await
        .unwrap();
    assert!(store.delete_prefix("/sensu.io/rbac/").await.unwrap() > 0);
    let (tb, _run) = start_on(store, backend_app::auth::AuthConfig::default()).await;
    let r = http("GET", &format!("{}/clusterroles", tb.v2), Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let roles = names(&r.json(), "/metadata/name");
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:agent",
        "system:user",
    ] {
        assert!(roles.contains(role), "{role} missing from {roles:?}");
    }
}

/// ClusterRoles are patched like other resources, and the change applies at once.
#[tokio::test]
async fn a_patched_cluster_role_applies_at_once() {
    let tb = start().await;
    create_user(&tb, "ro", &["readers"]).await;
    ok(
        "POST",
        &format!("{}/clusterroles", tb.v2),
        json!({"metadata": {"name": "reader"},
               "rules": [{"verbs": ["get", "list"], "resources": ["handlers"]}]}),
    )
    .await;
    ok(
        "POST",
        &format!("{}/clusterrolebindings", tb.v2),
        json!({"metadata": {"name": "readers"},
               "subjects": [{"type": "Group", "name": "readers"}],
               "role_ref": {"type": "ClusterRole", "name": "reader"}}),
    )
    .await;
    let (u, p) = creds("ro");
    let checks = format!("{}/namespaces/default/checks", tb.v2);
    http("GET", &checks, Some((&u, &p)), None)
        .await
        .assert_error(403, 4, "checks");

    let url = format!("{}/clusterroles/reader", tb.v2);
    let merge = [("Content-Type", "application/merge-patch+json")];
    let patch = r#"{"rules": [{"verbs": ["get", "list"], "resources": ["checks"]}]}"#;
    let r = request(
        "PATCH",
        &url,
        Some(ADMIN),
        Some(patch),
        &[merge[0], ("If-Match", "\"0000000000000000\"")],
    )
    .await;
    r.assert_error(412, 7, "If-Match");
    let etag = http("GET", &url, Some(ADMIN), None)
        .await
        .header("ETag")
        .unwrap()
        .to_string();
    let r = request(
        "PATCH",
        &url,
        Some(ADMIN),
        Some(patch),
        &[merge[0], ("If-Match", etag.as_str())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rules"][0]["resources"], json!(["checks"]));
    assert_eq!(http("GET", &checks, Some((&u, &p)), None).await.status, 200);

    let r = request(
        "PATCH",
        &url,
        Some(ADMIN),
        Some(r#"{"metadata": {"name": "renamed"}}"#),
        &merge,
    )
    .await;
    r.assert_error(400, 1, "rename");
    let r = request("PATCH", &url, Some(ADMIN), Some(r#"{"rules": []}"#), &merge).await;
    r.assert_error(400, 1, "rule");
}

/// A rule naming resources allows those objects only, and never a list.
#[tokio::test]
async fn resource_names_narrow_a_rule_to_named_objects() {
    let tb = start().await;
    for name in ["web", "db"] {
        ok(
            "POST",
            &format!("{}/namespaces/default/checks", tb.v2),
            check("default", name),
        )
        .await;
    }
    ok(
        "POST",
        &format!("{}/namespaces/default/roles", tb.v2),
        json!({"metadata": {"name": "web-only", "namespace": "default"},
               "rules": [{"verbs": ["get", "update"], "resources": ["checks"],
                          "resource_names": ["web"]}]}),
    )
    .await;
    create_user(&tb, "narrow", &["web-team"]).await;
    ok(
        "POST",
        &format!("{}/namespaces/default/rolebindings", tb.v2),
        json!({"metadata": {"name": "web-team", "namespace": "default"},
               "subjects": [{"type": "Group", "name": "web-team"}],
               "role_ref": {"type": "Role", "name": "web-only"}}),
    )
    .await;
    let (u, p) = creds("narrow");
    let url = |name: &str| format!("{}/namespaces/default/checks/{name}", tb.v2);
    assert_eq!(
        http("GET", &url("web"), Some((&u, &p)), None).await.status,
        200
    );
    http("GET", &url("db"), Some((&u, &p)), None)
        .await
        .assert_error(403, 4, "\"db\"");
    http("DELETE", &url("web"), Some((&u, &p)), None)
        .await
        .assert_error(403, 4, "delete");
    http(
        "GET",
        &format!("{}/namespaces/default/checks", tb.v2),
        Some((&u, &p)),
        None,
    )
    .await
    .assert_error(403, 4, "list");
    let r = http("GET", &format!("{}/checks", tb.v2), Some((&u, &p)), None).await;
    assert_eq!(r.json(), json!([]), "no list through a named rule");
    let mut web = http("GET", &url("web"), Some(ADMIN), None).await.json();
    web["interval"] = json!(120);
    let r = http("PUT", &url("web"), Some((&u, &p)), Some(&web.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);
}
