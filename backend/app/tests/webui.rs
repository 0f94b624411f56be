//! The web UI (`/ui`): HTTP-level checks (redirects, CSRF, origins, `Secure` cookies over TLS,
//! authorization by URL and of live updates), and the end-to-end browser test: headless
//! Chromium driven by playwright-core (`tests/webui/flow.mjs`) against an in-process backend,
//! with a real `picket-agent` process whose check the test makes fail and recover, live
//! updates on every list, accessibility audits (axe-core, measured contrast, keyboard only).
//!
//! The browser test needs `node`, `npm`, `/usr/bin/chromium` and the `picket-agent` binary
//! (`cargo build -p agent --bin picket-agent`, or `--bins` as scripts/test does);
//! playwright-core and axe-core are installed at test time under `<target dir>/webui-e2e/`
//! (not committed). Screenshots go to `<target dir>/webui-e2e/screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
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
        "/ui/ns/default/entities",
        "/ui/ns/secret/silences",
        "/ui/ns/secret/checks",
    ] {
        let a = raw("GET", &format!("{}{path}", tb.api), Some(&bob), None).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        // Live updates are the same request: the API's 403, as JSON for the script.
        let live = raw("GET", &format!("{}{path}?live=1", tb.api), Some(&bob), None).await;
        assert_eq!(live.status, 403, "{path}?live=1: {}", live.body);
        let msg: serde_json::Value = serde_json::from_str(&live.body).expect("a JSON refusal");
        assert!(msg["message"].is_string(), "{}", live.body);
    }
    // Bob's own namespace: each page's live regions, rendered as on the page.
    for (path, ids) in [
        ("/ui/ns/ops/events", &["event-rows", "event-count"][..]),
        ("/ui/ns/ops/entities", &["entity-rows", "entity-count"]),
        ("/ui/ns/ops/checks", &["check-rows"]),
        ("/ui/ns/ops/checks/disk", &["check-facts"]),
        ("/ui/ns/ops/silences", &["silence-rows"]),
    ] {
        let page = raw("GET", &format!("{}{path}", tb.api), Some(&bob), None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let live = raw("GET", &format!("{}{path}?live=1", tb.api), Some(&bob), None).await;
        assert_eq!(live.status, 200, "{path}?live=1: {}", live.body);
        let regions = serde_json::from_str::<serde_json::Value>(&live.body).unwrap()["regions"]
            .as_object()
            .cloned()
            .expect("regions");
        let mut got: Vec<&str> = regions.keys().map(String::as_str).collect();
        got.sort();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(got, want, "{path}");
        for (id, html) in &regions {
            let html = html.as_str().unwrap();
            assert!(
                page.body
                    .contains(&format!("id=\"{id}\" data-live>{html}<")),
                "{path}: region {id} is the page's"
            );
        }
    }
    let disk = raw(
        "GET",
        &format!("{}/ui/ns/ops/checks?live=1", tb.api),
        Some(&bob),
        None,
    )
    .await;
    assert!(disk.body.contains("check-disk"), "{}", disk.body);
    assert!(
        page.body.contains("id=\"event-count\" data-live>0 events<"),
        "{}",
        page.body
    );
    // Without a session a poll gets a 401 (the script then opens the login form).
    let anon = raw(
        "GET",
        &format!("{}/ui/ns/ops/events?live=1", tb.api),
        None,
        None,
    )
    .await;
    assert_eq!(anon.status, 401, "{}", anon.body);

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

/// The `picket-agent` binary of this build profile (next to `deps/`).
fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.ancestors().nth(2).unwrap().join("picket-agent");
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p agent --bin picket-agent` \
         (scripts/test builds every binary)",
        path.display()
    );
    path
}

/// playwright-core and axe-core under `dir`, installed with npm on first use.
fn node_modules(dir: &std::path::Path) -> PathBuf {
    let modules = dir.join("node_modules");
    let wanted = [
        ("playwright-core", "playwright-core@1"),
        ("axe-core", "axe-core@4"),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(name, _)| !modules.join(name).join("package.json").exists())
        .map(|(_, spec)| *spec)
        .collect();
    if !missing.is_empty() {
        std::fs::create_dir_all(dir).unwrap();
        // Both at once: npm removes from `--no-save` installs what it was not asked for.
        let status = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(dir)
            .args(wanted.iter().map(|(_, spec)| *spec))
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm install {missing:?} failed");
    }
    modules
}

/// A check whose exit status the test flips with a file: critical while `flag` exists.
fn disk_check(flag: &std::path::Path) -> serde_json::Value {
    json!({"metadata": {"name": "disk", "namespace": "ops"},
           "command": format!(
               "if [ -e '{}' ]; then echo 'DISK CRITICAL - / is 97% full'; exit 2; fi; \
                echo 'DISK OK - / is 41% full'",
               flag.display()
           ),
           "interval": 1, "subscriptions": ["linux"], "publish": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_live_updates_real_agent_accessibility_and_keyboard() {
    let tb = start().await;
    seed(&tb).await;
    let scratch = tempfile::tempdir().unwrap();
    let flag = scratch.path().join("disk-fails");
    ok(
        "PUT",
        &format!("{}/namespaces/ops/checks/disk", tb.v2),
        disk_check(&flag),
    )
    .await;
    // A proxy entity in `default` with one event of each status, for the contrast audit.
    for status in 0..4 {
        ok(
            "POST",
            &format!("{}/namespaces/default/events", tb.v2),
            json!({"entity": {"metadata": {"name": "lab", "namespace": "default"},
                              "entity_class": "proxy"},
                   "check": {"metadata": {"name": format!("s{status}"), "namespace": "default"},
                             "status": status, "interval": 60,
                             "output": format!("exit status {status}")}}),
        )
        .await;
    }
    // Hears the adhoc requests to entity:web1 ("Re-run"), beside the real agent.
    let rerun_spy = tb.bus.subscribe("ops", &["entity:web1".to_string()]);

    let work = target_dir().join("webui-e2e");
    let modules = node_modules(&work);
    let agent_bin = agent_binary();
    let shots = work.join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webui/flow.mjs");

    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .env("BASE", &tb.api)
        .env("PLAYWRIGHT_CORE", modules.join("playwright-core/index.mjs"))
        .env("AXE_CORE", modules.join("axe-core/axe.min.js"))
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
    let agent_log = scratch.path().join("agent.log");
    let mut agent: Option<tokio::process::Child> = None;
    let mut done = false;
    let steps = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            println!("node: {line}");
            match line.as_str() {
                "STEP agent" => {
                    let cache = scratch.path().join("agent-cache");
                    std::fs::create_dir_all(&cache).unwrap();
                    let log = std::fs::File::create(&agent_log).unwrap();
                    let child = tokio::process::Command::new(&agent_bin)
                        .args(["start", "--name", "web1", "--namespace", "ops"])
                        .args(["--backend-url", &tb.agent_url])
                        .args(["--subscriptions", "linux"])
                        .args(["--keepalive-interval", "1"])
                        .args(["--keepalive-warning-timeout", "5"])
                        .args(["--statsd-disable", "--disable-api", "--disable-sockets"])
                        .args(["--log-level", "info", "--config-file", "/dev/null"])
                        .arg("--cache-dir")
                        .arg(&cache)
                        .stdout(Stdio::null())
                        .stderr(log)
                        .kill_on_drop(true)
                        .spawn()
                        .expect("picket-agent starts");
                    agent = Some(child);
                }
                "STEP fail" => {
                    std::fs::write(&flag, b"").unwrap();
                }
                "STEP fix" => {
                    std::fs::remove_file(&flag).unwrap();
                }
                "STEP silence" => {
                    ok(
                        "POST",
                        &format!("{}/namespaces/ops/silenced", tb.v2),
                        json!({"metadata": {"namespace": "ops"},
                               "subscription": "entity:db1", "reason": "db maintenance"}),
                    )
                    .await;
                }
                "STEP check" => {
                    ok(
                        "POST",
                        &format!("{}/namespaces/ops/checks", tb.v2),
                        json!({"metadata": {"name": "load", "namespace": "ops"},
                               "command": "echo 'LOAD OK - load average: 0.42'",
                               "interval": 60, "subscriptions": ["linux"],
                               "publish": false}),
                    )
                    .await;
                }
                "STEP stop" => {
                    // SIGKILL: no goodbye, so the keepalive fails after its timeout.
                    let mut child = agent.take().expect("the agent runs");
                    child.start_kill().unwrap();
                    child.wait().await.unwrap();
                    // Its session is gone once agentd has read everything it sent.
                    eventually(
                        "the agent's session to end",
                        Duration::from_secs(10),
                        || {
                            let gone = tb.bus.subscribers("ops", "linux") == 0;
                            async move { gone.then_some(()) }
                        },
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
    let finished = tokio::time::timeout(Duration::from_secs(300), steps).await;
    let status = if finished.is_ok() {
        node.wait().await.unwrap().success()
    } else {
        false
    };
    if !(status && done) {
        let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
        panic!(
            "the browser flow failed (finished in time: {}); the agent's log:\n{log}",
            finished.is_ok()
        );
    }
    drop(agent);
    // "Re-run" reached entity:web1 (the agent ran it too: its result is the event's).
    let mut reruns = 0;
    while let Some(req) = rerun_spy.requests.try_recv() {
        if req
            .config
            .as_ref()
            .is_some_and(|c| c.metadata.name == "disk")
        {
            reruns += 1;
        }
    }
    assert!(reruns >= 1, "no adhoc request for disk reached entity:web1");

    let names: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "login", "events", "event", "entities", "entity", "checks", "check", "silences",
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

/// The access and refresh tokens inside a session cookie.
fn tokens_of(cookie: &str) -> (String, String) {
    let json = session_json(cookie);
    (
        json["a"].as_str().unwrap().to_string(),
        json["r"].as_str().unwrap().to_string(),
    )
}

/// What a session cookie holds (`picket_ui=<base64url JSON>`).
fn session_json(cookie: &str) -> serde_json::Value {
    use base64::Engine;
    let raw = cookie.split_once('=').unwrap().1;
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .unwrap(),
    )
    .unwrap()
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

/// One HTTP/1.1 request written by hand, so the test sets `Host` as a reverse proxy would.
async fn send_as(addr: &str, head: &str, body: &str) -> Answer {
    use tokio::io::AsyncReadExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut answer = Answer {
        status,
        location: None,
        set_cookie: Vec::new(),
        body: body.to_string(),
    };
    for line in lines {
        if let Some((k, v)) = line.split_once(": ") {
            match k.to_ascii_lowercase().as_str() {
                "location" => answer.location = Some(v.to_string()),
                "set-cookie" => answer.set_cookie.push(v.to_string()),
                _ => {}
            }
        }
    }
    answer
}

/// A login form posted with these `Host` and `Origin` headers (and any others).
async fn login_as(addr: &str, host: &str, origin: &str, extra: &str) -> Answer {
    let head = format!("POST /ui/login HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}{extra}");
    send_as(
        addr,
        &head,
        &format!("username={}&password={}", ADMIN.0, ADMIN.1),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_origin_check_compares_host_and_ignores_forwarded_headers() {
    let tb = start().await;
    let addr = tb.api.trim_start_matches("http://").to_string();
    let direct = login_as(&addr, &addr, &format!("http://{addr}"), "").await;
    assert_eq!(direct.status, 303, "{}", direct.body);
    // A proxy rewrote Host: the browser's origin no longer matches, and forwarded headers,
    // which anyone can write, do not make up for it.
    let proxied = login_as(
        &addr,
        &addr,
        "https://picket.example.com",
        "\r\nX-Forwarded-Host: picket.example.com\r\nX-Forwarded-Proto: https\r\nForwarded: host=picket.example.com;proto=https",
    )
    .await;
    assert_eq!(proxied.status, 403, "{}", proxied.body);
    assert!(proxied.set_cookie.is_empty());
    assert!(proxied.body.contains("another site"), "{}", proxied.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_ui_origins_are_accepted_and_others_refused() {
    let ui = backend_app::ui::UiConfig::with_origins(&["https://picket.example.com"]).unwrap();
    let tb = start_with(|b| b.set_ui_config(ui)).await;
    let addr = tb.api.trim_start_matches("http://").to_string();
    // Behind the proxy: Host is the backend's address, Origin the public one.
    let a = login_as(&addr, &addr, "https://picket.example.com", "").await;
    assert_eq!(a.status, 303, "{}", a.body);
    let cookie = a.set_cookie.first().expect("a session cookie");
    assert!(
        cookie.contains("; Secure"),
        "the browser uses https: {cookie}"
    );
    for origin in [
        "https://evil.example",
        "http://picket.example.com",
        "https://picket.example.com:8443",
        // The list replaces the Host comparison.
        &format!("http://{addr}"),
        "null",
    ] {
        let refused = login_as(&addr, &addr, origin, "").await;
        assert_eq!(refused.status, 403, "{origin}: {}", refused.body);
        assert!(refused.set_cookie.is_empty(), "{origin}");
    }

    // A form with the session's CSRF token: accepted from the configured origin only.
    let session = cookie.split(';').next().unwrap().to_string();
    let page = raw(
        "GET",
        &format!("{}/ui/ns/default/silences", tb.api),
        Some(&session),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let post = |origin: &str| {
        format!(
            "POST /ui/ns/default/silences HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nCookie: {session}"
        )
    };
    let form = format!("csrf={csrf}&subscription=linux&reason=patching");
    let evil = send_as(&addr, &post("https://evil.example"), &form).await;
    assert_eq!(evil.status, 403, "{}", evil.body);
    let list = http(
        "GET",
        &format!("{}/namespaces/default/silenced", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(list.json(), json!([]), "a refused form changes nothing");
    let good = send_as(&addr, &post("https://picket.example.com"), &form).await;
    assert_eq!(good.status, 303, "{}", good.body);
    let list = http(
        "GET",
        &format!("{}/namespaces/default/silenced", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(list.json()[0]["reason"], "patching");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_secure_over_tls_only() {
    use backend_app::{Backend, BackendConfig, config};
    use tls::test_pki::TestCa;

    let ca = TestCa::new("webui test CA");
    let dir = tempfile::tempdir().unwrap();
    let server = ca
        .server(&["localhost", "127.0.0.1"])
        .write(dir.path(), "backend");
    let args: Vec<String> = [
        "picket-backend",
        "start",
        "--config-file",
        "/dev/null",
        &format!("--cert-file={}", server.cert_file.display()),
        &format!("--key-file={}", server.key_file.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let flags = match config::parse(&args, &Default::default()).unwrap().command {
        config::Command::Start(flags) => flags,
        other => panic!("expected start, got {other:?}"),
    };
    let (api_tls, agent_tls) = config::port_tls(&flags).unwrap();
    let store: std::sync::Arc<dyn backend_store::Store> =
        backend_store::EmbeddedStore::in_memory().unwrap();
    backend_app::init::initialize(
        &backend_app::repo::Repo::new(store.clone()),
        ADMIN.0,
        ADMIN.1,
    )
    .await
    .unwrap();
    let backend = Backend::new(
        BackendConfig {
            api_tls,
            agent_tls,
            ..BackendConfig::loopback()
        },
        store,
    )
    .await
    .unwrap();
    let base = format!("https://localhost:{}", backend.api_addr().port());
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(backend.run(shutdown.clone()));
    let _stop = shutdown.clone().drop_guard();

    let ca_pem = ca.cert_pem();
    let https_post = |path: &str, cookie: Option<String>, form: String| {
        let (url, ca_pem) = (format!("{base}{path}"), ca_pem.clone());
        tokio::task::spawn_blocking(move || {
            let ca = ureq::tls::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    ca,
                ])))
                .build();
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .tls_config(tls)
                .build()
                .into();
            let mut b = ureq::http::Request::builder()
                .method("POST")
                .uri(&url)
                .header("Content-Type", "application/x-www-form-urlencoded");
            if let Some(c) = cookie {
                b = b.header("Cookie", c);
            }
            let resp = agent.run(b.body(form).unwrap()).expect("HTTPS");
            (
                resp.status().as_u16(),
                resp.headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>(),
            )
        })
    };
    let (status, cookies) = https_post(
        "/ui/login",
        None,
        format!("username={}&password={}", ADMIN.0, ADMIN.1),
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    let cookie = cookies.first().expect("a session cookie");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Logging out clears it with the same attributes (a browser ignores a plain clear of a
    // Secure cookie).
    let session = cookie.split(';').next().unwrap().to_string();
    let (_, a) = tokens_of_csrf(&session);
    let (status, cleared) = https_post("/ui/logout", Some(session), format!("csrf={a}"))
        .await
        .unwrap();
    assert_eq!(status, 303);
    assert!(
        cleared
            .iter()
            .any(|c| c.contains("Max-Age=0") && c.contains("; Secure")),
        "{cleared:?}"
    );

    // The same UI over plain http (the login helper checks there is no Secure).
    let plain = start().await;
    login(&plain, ADMIN.0, ADMIN.1).await;
}

/// The user and CSRF token inside a session cookie.
fn tokens_of_csrf(cookie: &str) -> (String, String) {
    let json = session_json(cookie);
    (
        json["u"].as_str().unwrap().to_string(),
        json["c"].as_str().unwrap().to_string(),
    )
}
