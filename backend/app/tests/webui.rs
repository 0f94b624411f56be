//! The web UI (`/ui`): HTTP-level checks (redirects, CSRF, authorization by URL), and the
//! end-to-end browser test: headless Chromium driven by playwright-core (`tests/webui/flow.mjs`)
//! against an in-process backend, with a simulated agent session and API-posted events.
//!
//! The browser test needs `node`, `npm` and `/usr/bin/chromium`; playwright-core is installed
//! at test time under `<target dir>/webui-e2e/` (not committed). Screenshots go to
//! `<target dir>/webui-e2e/screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use proto_spec::wire::{self, Message};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn ok(method: &str, url: &str, body: serde_json::Value) {
    let r = http(method, url, Some(ADMIN), Some(&body.to_string())).await;
    assert!(r.status < 300, "{method} {url}: {} {}", r.status, r.body);
}

/// Namespaces `ops` and `secret`, a check in `ops`, and `bob` who may only view `ops`.
async fn seed(tb: &TestBackend) {
    for ns in ["ops", "secret"] {
        ok(
            "POST",
            &format!("{}/namespaces", tb.v2),
            json!({"name": ns}),
        )
        .await;
    }
    ok(
        "POST",
        &format!("{}/namespaces/ops/checks", tb.v2),
        json!({"metadata": {"name": "disk", "namespace": "ops"},
               "command": "check-disk", "interval": 60, "subscriptions": ["linux"],
               "publish": false}),
    )
    .await;
    ok(
        "POST",
        &format!("{}/users", tb.v2),
        json!({"username": "bob", "password": "bob-password", "groups": []}),
    )
    .await;
    ok(
        "POST",
        &format!("{}/namespaces/ops/rolebindings", tb.v2),
        json!({"metadata": {"name": "bob-view", "namespace": "ops"},
               "subjects": [{"type": "User", "name": "bob"}],
               "role_ref": {"type": "ClusterRole", "name": "view"}}),
    )
    .await;
}

struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Vec<String>,
    body: String,
}

/// One request without following redirects, with an optional cookie and form body.
async fn raw(method: &str, url: &str, cookie: Option<&str>, form: Option<&str>) -> Answer {
    let (method, url, cookie, form) = (
        method.to_string(),
        url.to_string(),
        cookie.map(str::to_string),
        form.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut b = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        if let Some(c) = &cookie {
            b = b.header("Cookie", c);
        }
        if form.is_some() {
            b = b.header("Content-Type", "application/x-www-form-urlencoded");
        }
        let mut resp = agent
            .run(b.body(form.unwrap_or_default()).unwrap())
            .expect("HTTP");
        let h = resp.headers();
        Answer {
            status: resp.status().as_u16(),
            location: h
                .get("location")
                .map(|v| v.to_str().unwrap_or_default().to_string()),
            set_cookie: h
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .collect(),
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    })
    .await
    .unwrap()
}

/// Logs in through the form; the session cookie (`name=value`).
async fn login(tb: &TestBackend, user: &str, pass: &str) -> String {
    let a = raw(
        "POST",
        &format!("{}/ui/login", tb.api),
        None,
        Some(&format!("username={user}&password={pass}")),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let cookie = a.set_cookie.first().expect("a session cookie").clone();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_requires_login_csrf_and_the_apis_authorization() {
    let tb = start().await;
    seed(&tb).await;

    let root = raw("GET", &format!("{}/", tb.api), None, None).await;
    assert_eq!(root.location.as_deref(), Some("/ui"));
    let anon = raw("GET", &format!("{}/ui/ns/ops/events", tb.api), None, None).await;
    assert_eq!(anon.status, 303);
    assert_eq!(anon.location.as_deref(), Some("/ui/login"));

    // A login posted from another site is refused.
    let foreign = tokio::task::spawn_blocking({
        let url = format!("{}/ui/login", tb.api);
        move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into();
            let req = ureq::http::Request::builder()
                .method("POST")
                .uri(&url)
                .header("Origin", "http://evil.example")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("username={}&password={}", ADMIN.0, ADMIN.1))
                .unwrap();
            let resp = agent.run(req).unwrap();
            (
                resp.status().as_u16(),
                resp.headers().get("set-cookie").is_some(),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(foreign, (403, false));

    let bad = raw(
        "POST",
        &format!("{}/ui/login", tb.api),
        None,
        Some("username=bob&password=wrong"),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains("Wrong username or password"));

    let bob = login(&tb, "bob", "bob-password").await;
    let home = raw("GET", &format!("{}/ui", tb.api), Some(&bob), None).await;
    assert_eq!(home.location.as_deref(), Some("/ui/ns/ops/events"));
    let page = raw(
        "GET",
        &format!("{}/ui/ns/ops/events", tb.api),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<option value=\"ops\" selected>"));
    assert!(!page.body.contains("value=\"secret\""), "bob sees only ops");
    for path in [
        "/ui/ns/secret/events",
        "/ui/ns/secret/events.json",
        "/ui/ns/default/entities",
        "/ui/ns/secret/silences",
        "/ui/ns/secret/checks",
    ] {
        let a = raw("GET", &format!("{}{path}", tb.api), Some(&bob), None).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
    }

    // Forms without the session's CSRF token are refused and change nothing.
    let form = "subscription=linux&reason=x";
    let a = raw(
        "POST",
        &format!("{}/ui/ns/ops/silences", tb.api),
        Some(&bob),
        Some(form),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("CSRF"));
    // With the token, bob's view role still cannot create silences: the API's 403.
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field")
        .to_string();
    let a = raw(
        "POST",
        &format!("{}/ui/ns/ops/silences", tb.api),
        Some(&bob),
        Some(&format!("{form}&csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let list = http(
        "GET",
        &format!("{}/namespaces/ops/silenced", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(list.json(), json!([]));

    // Logout revokes: the old session no longer refreshes, and the cookie is cleared.
    let out = raw(
        "POST",
        &format!("{}/ui/logout", tb.api),
        Some(&bob),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(out.set_cookie.iter().any(|c| c.contains("Max-Age=0")));
}

fn target_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // <target>/debug/deps/webui-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// playwright-core under `dir`, installed with npm on first use.
fn playwright(dir: &std::path::Path) -> PathBuf {
    let module = dir.join("node_modules/playwright-core");
    if !module.join("package.json").exists() {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(dir)
            .arg("playwright-core@1")
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm install playwright-core failed");
    }
    module
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_live_events_silence_resolve_logout() {
    let tb = start().await;
    seed(&tb).await;
    let work = target_dir().join("webui-e2e");
    let module = playwright(&work);
    let shots = work.join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webui/flow.mjs");

    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .env("BASE", &tb.api)
        .env("PLAYWRIGHT_CORE", module.join("index.mjs"))
        .env("SHOTS", &shots)
        .env("PROFILE", profile.path())
        .env("ADMIN_USER", ADMIN.0)
        .env("ADMIN_PASS", ADMIN.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut agent = None;
    let mut done = false;
    let steps = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            println!("node: {line}");
            match line.as_str() {
                "STEP agent" => {
                    // An agent connects to `ops` and sends its first keepalive.
                    let mut ws = connect(&tb, "web1", "ops", ("agent", "P@ssw0rd!"))
                        .await
                        .expect("agent session");
                    ws.send(WsMessage::Binary(
                        keepalive("web1", "ops", 1, 120, 180).into(),
                    ))
                    .await
                    .unwrap();
                    agent = Some(ws);
                }
                "STEP fail" => {
                    ok(
                        "POST",
                        &format!("{}/namespaces/ops/events", tb.v2),
                        json!({"entity": {"metadata": {"name": "web1", "namespace": "ops"},
                                          "entity_class": "agent"},
                               "check": {"metadata": {"name": "disk", "namespace": "ops"},
                                         "status": 2, "interval": 60,
                                         "output": "DISK CRITICAL - / is 97% full"}}),
                    )
                    .await;
                }
                "DONE" => {
                    done = true;
                    break;
                }
                _ => continue,
            }
            stdin.write_all(b"ok\n").await.unwrap();
            stdin.flush().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(240), steps)
        .await
        .expect("the browser flow finished in time");
    let status = node.wait().await.unwrap();
    assert!(
        status.success() && done,
        "the browser flow failed ({status})"
    );
    // "Re-run" (to entity:web1) and "Execute now" (to the check's subscriptions) each sent
    // the agent a request for `disk`.
    let mut ws = agent.expect("the agent connected");
    let mut requests = 0;
    while requests < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("two check requests for disk")
            .expect("the session is open")
            .unwrap();
        if let WsMessage::Binary(data) = frame
            && let Ok(Message::CheckRequest(req)) = wire::decode(&data)
            && req
                .config
                .as_ref()
                .is_some_and(|c| c.metadata.name == "disk")
        {
            requests += 1;
        }
    }

    let names: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "login", "events", "event", "entities", "entity", "checks", "silences",
    ] {
        for width in ["desktop", "phone"] {
            let want = format!("{page}-{width}.png");
            assert!(
                names.contains(&want),
                "missing screenshot {want}: {names:?}"
            );
        }
    }
}

/// The tokens inside a session cookie (`picket_ui=<base64url JSON>`).
fn tokens_of(cookie: &str) -> (String, String) {
    use base64::Engine;
    let raw = cookie.split_once('=').unwrap().1;
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .unwrap(),
    )
    .unwrap();
    (
        json["a"].as_str().unwrap().to_string(),
        json["r"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_token_is_refreshed_and_logout_revokes_the_refresh_token() {
    let store: std::sync::Arc<dyn backend_store::Store> =
        backend_store::EmbeddedStore::in_memory().unwrap();
    backend_app::init::initialize(
        &backend_app::repo::Repo::new(store.clone()),
        ADMIN.0,
        ADMIN.1,
    )
    .await
    .unwrap();
    let auth = backend_app::auth::AuthConfig {
        access_token_ttl: Duration::from_secs(1),
        ..Default::default()
    };
    let (tb, _run) = start_on(store, auth).await;
    let cookie = login(&tb, ADMIN.0, ADMIN.1).await;
    let (access, refresh) = tokens_of(&cookie);

    // Once the access token has lapsed, the page still loads and the cookie gets a new one.
    let bearer = format!("Bearer {access}");
    eventually("the access token to expire", Duration::from_secs(10), || {
        let (url, bearer) = (format!("{}/namespaces", tb.v2), bearer.clone());
        async move { (authed("GET", &url, Some(&bearer), None).await.status == 401).then_some(()) }
    })
    .await;
    let page = raw(
        "GET",
        &format!("{}/ui/ns/default/events", tb.api),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let renewed = page.set_cookie.first().expect("a renewed session cookie");
    let renewed = renewed.split(';').next().unwrap().to_string();
    let (new_access, _) = tokens_of(&renewed);
    assert_ne!(new_access, access);

    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let out = raw(
        "POST",
        &format!("{}/ui/logout", tb.api),
        Some(&renewed),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, 303);
    // The session's refresh token no longer buys access tokens.
    let r = authed(
        "POST",
        &format!("{}/auth/token", tb.api),
        Some(&format!("Bearer {new_access}")),
        Some(&json!({ "refresh_token": refresh }).to_string()),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
}
