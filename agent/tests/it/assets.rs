//! Runtime assets through the running agent: real archives served over HTTPS by a test CA
//! (rustls on both ends), check requests from the scripted backend.

use std::path::Path;

use agent::Agent;
use agent::assets::allow_list::DENIED_OUTPUT;
use assetfetch::testing::{FileServer, TestCa, executable_asset, sha512_hex, tar_gz};
use proto_spec::ObjectMeta;
use proto_spec::v2::{Asset, AssetList, CheckRequest, Event, HookConfig, HookList};
use proto_spec::wire;

use crate::backend::{Backend, Conn};
use crate::checks::check_request;
use crate::support::{cache_dir, next_event, open_session, spawn, stop, test_config};

const CHECK_HTTP: &str = "/usr/lib/nagios/plugins/check_http";

struct Setup {
    backend: Backend,
    ca_file: tempfile::TempDir,
    cache: String,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            backend: Backend::start().await,
            ca_file: tempfile::tempdir().unwrap(),
            cache: cache_dir(),
        }
    }

    fn ca_path(&self) -> String {
        self.ca_file
            .path()
            .join("ca.pem")
            .to_string_lossy()
            .into_owned()
    }

    fn agent(&self, name: &str, extra: &[&str]) -> Agent {
        let ca = self.ca_path();
        let mut args = vec!["--trusted-ca-file", ca.as_str()];
        args.extend_from_slice(extra);
        Agent::new(test_config(&self.backend.url(), name, &self.cache, &args)).unwrap()
    }
}

fn asset(name: &str, url: String, body: &[u8]) -> Asset {
    Asset {
        metadata: ObjectMeta::new("default", name),
        url,
        sha512: sha512_hex(body),
        ..Default::default()
    }
}

fn with_assets(mut request: CheckRequest, assets: Vec<Asset>) -> CheckRequest {
    let config = request.config.as_mut().unwrap();
    config.runtime_assets = Some(assets.iter().map(|a| a.metadata.name.clone()).collect());
    request.assets = Some(assets);
    request
}

async fn run(conn: &mut Conn, request: CheckRequest) -> Event {
    conn.send(wire::Message::CheckRequest(Box::new(request)))
        .await;
    next_event(conn).await
}

fn status_output(event: &Event) -> (u32, String) {
    let c = event.check.as_ref().unwrap();
    (c.status, c.output.clone())
}

/// Installed asset directories in the agent's cache (named by digest).
fn installed(cache: &str) -> Vec<String> {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 128)
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

#[tokio::test]
async fn check_http_runs_from_a_monitoring_plugins_asset_over_https() {
    // The plugin is installed (scripts/test installs monitoring-plugins-basic) but not on
    // the agent's PATH: only the asset can provide it.
    assert!(
        Path::new(CHECK_HTTP).is_file(),
        "{CHECK_HTTP} is needed to build the asset"
    );
    assert!(
        !on_path("check_http"),
        "check_http must not be on PATH for this test"
    );

    let s = Setup::new().await;
    let ca = TestCa::new();
    ca.write_ca(Path::new(&s.ca_path()));
    let assets_server = FileServer::start_tls(&ca);
    let tarball = executable_asset(Path::new(CHECK_HTTP));
    assets_server.serve("/monitoring-plugins.tar.gz", tarball.clone());
    let app = FileServer::start();
    app.serve("/healthz", b"ok".to_vec());
    let app_addr = app.url("").trim_start_matches("http://").to_string();
    let (host, port) = app_addr.split_once(':').unwrap();

    let (token, handle) = spawn(s.agent("agent-assets", &[]));
    let mut conn = s.backend.accept().await;
    open_session(&mut conn, "agent-assets").await;

    let plugins = asset(
        "monitoring-plugins",
        assets_server.url("/monitoring-plugins.tar.gz"),
        &tarball,
    );
    // Two checks at once need the asset: one by PATH, one by `assetPath`.
    assets_server.hold();
    let by_path = with_assets(
        check_request(
            "http-by-path",
            &format!("check_http -H {host} -p {port} -u /healthz"),
            10,
        ),
        vec![plugins.clone()],
    );
    let by_asset_path = with_assets(
        check_request(
            "http-by-asset-path",
            &format!(
                "\"${{{{ assetPath \"monitoring-plugins\" }}}}/bin/check_http\" -H {host} -p {port} -u /healthz"
            ),
            10,
        ),
        vec![plugins.clone()],
    );
    conn.send(wire::Message::CheckRequest(Box::new(by_path)))
        .await;
    conn.send(wire::Message::CheckRequest(Box::new(by_asset_path)))
        .await;
    // Both requests are in hand once a check sent after them has come back.
    let sentinel = run(&mut conn, check_request("sentinel", "echo sentinel", 10)).await;
    assert_eq!(sentinel.check_name(), "sentinel");
    assets_server.release();

    let mut results = vec![next_event(&mut conn).await, next_event(&mut conn).await];
    results.sort_by_key(|e| e.check_name().to_string());
    for event in &results {
        let (status, output) = status_output(event);
        assert_eq!(status, 0, "{}: {output}", event.check_name());
        assert!(
            output.starts_with("HTTP OK"),
            "{}: {output}",
            event.check_name()
        );
    }
    assert_eq!(assets_server.hits("/monitoring-plugins.tar.gz"), 1);
    assert_eq!(app.hits("/healthz"), 2);
    assert_eq!(installed(&s.cache), vec![plugins.sha512.clone()]);
    // The event reports the command as written.
    assert!(
        results[0]
            .check
            .as_ref()
            .unwrap()
            .config
            .command
            .contains("assetPath")
    );

    // A hook with its own asset (`hook_assets`).
    let hello = tar_gz(&[(
        "bin/hello-hook",
        b"#!/bin/sh\necho hook from $HELLO_PATH\n",
        0o755,
    )]);
    assets_server.serve("/hello.tar.gz", hello.clone());
    let hello_asset = asset("hello", assets_server.url("/hello.tar.gz"), &hello);
    let mut request = check_request("with-hook", "exit 2", 20);
    request.config.as_mut().unwrap().check_hooks = Some(vec![HookList {
        type_: "critical".into(),
        hooks: Some(vec!["say-hello".into()]),
    }]);
    request.hooks = Some(vec![HookConfig {
        metadata: ObjectMeta::new("default", "say-hello"),
        command: "hello-hook".into(),
        timeout: 10,
        runtime_assets: Some(vec!["hello".into()]),
        ..Default::default()
    }]);
    request.hook_assets = Some(
        [(
            "say-hello".to_string(),
            AssetList {
                assets: Some(vec![hello_asset.clone()]),
            },
        )]
        .into(),
    );
    let event = run(&mut conn, request).await;
    let hooks = &event.check.as_ref().unwrap().hooks;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].status, 0, "{}", hooks[0].output);
    assert_eq!(
        hooks[0].output,
        format!("hook from {}/{}\n", s.cache, hello_asset.sha512)
    );
    stop(token, handle).await;
}

#[tokio::test]
async fn a_tampered_asset_fails_the_check_and_the_next_request_retries() {
    let s = Setup::new().await;
    let ca = TestCa::new();
    ca.write_ca(Path::new(&s.ca_path()));
    let server = FileServer::start_tls(&ca);
    let genuine = tar_gz(&[("bin/tool", b"#!/bin/sh\necho genuine tool\n", 0o755)]);
    server.serve(
        "/tool.tar.gz",
        tar_gz(&[("bin/tool", b"#!/bin/sh\necho evil\n", 0o755)]),
    );
    let tool = asset("tool", server.url("/tool.tar.gz"), &genuine);

    let (token, handle) = spawn(s.agent("agent-tampered", &[]));
    let mut conn = s.backend.accept().await;
    open_session(&mut conn, "agent-tampered").await;

    let event = run(
        &mut conn,
        with_assets(check_request("t", "tool", 1), vec![tool.clone()]),
    )
    .await;
    let (status, output) = status_output(&event);
    assert_eq!(status, 3);
    assert!(output.contains("sha512 mismatch"), "{output}");
    assert!(installed(&s.cache).is_empty());
    let work = Path::new(&s.cache).join(assetfetch::cache::TMP_DIR);
    assert_eq!(std::fs::read_dir(work).unwrap().count(), 0);

    server.serve("/tool.tar.gz", genuine);
    let event = run(
        &mut conn,
        with_assets(check_request("t", "tool", 2), vec![tool]),
    )
    .await;
    assert_eq!(status_output(&event), (0, "genuine tool\n".to_string()));
    stop(token, handle).await;
}

#[tokio::test]
async fn over_the_assets_rate_limit_a_check_reports_status_3() {
    let s = Setup::new().await;
    let ca = TestCa::new();
    ca.write_ca(Path::new(&s.ca_path()));
    let server = FileServer::start_tls(&ca);
    let (a, b) = (
        tar_gz(&[("bin/a", b"#!/bin/sh\necho a\n", 0o755)]),
        tar_gz(&[("bin/b", b"#!/bin/sh\necho b\n", 0o755)]),
    );
    server.serve("/a.tar.gz", a.clone());
    server.serve("/b.tar.gz", b.clone());
    let (token, handle) = spawn(s.agent(
        "agent-limited",
        &["--assets-rate-limit", "0.0001", "--assets-burst-limit", "1"],
    ));
    let mut conn = s.backend.accept().await;
    open_session(&mut conn, "agent-limited").await;

    let asset_a = asset("a", server.url("/a.tar.gz"), &a);
    let event = run(
        &mut conn,
        with_assets(check_request("a", "a", 1), vec![asset_a]),
    )
    .await;
    assert_eq!(status_output(&event), (0, "a\n".to_string()));
    let asset_b = asset("b", server.url("/b.tar.gz"), &b);
    let event = run(
        &mut conn,
        with_assets(check_request("b", "b", 1), vec![asset_b]),
    )
    .await;
    let (status, output) = status_output(&event);
    assert_eq!(status, 3);
    assert!(output.contains("rate limit"), "{output}");
    assert_eq!(server.hits("/b.tar.gz"), 0);
    stop(token, handle).await;
}

#[tokio::test]
async fn with_disable_assets_a_check_naming_assets_reports_status_3() {
    let s = Setup::new().await;
    let (token, handle) = spawn(s.agent("agent-no-assets", &["--disable-assets"]));
    let mut conn = s.backend.accept().await;
    open_session(&mut conn, "agent-no-assets").await;
    let tool = asset("tool", "https://127.0.0.1:9/tool.tar.gz".into(), b"x");
    let event = run(
        &mut conn,
        with_assets(check_request("t", "tool", 1), vec![tool]),
    )
    .await;
    let (status, output) = status_output(&event);
    assert_eq!(status, 3);
    assert!(output.contains("--disable-assets"), "{output}");
    // Checks without assets still run.
    let event = run(&mut conn, check_request("plain", "echo plain", 1)).await;
    assert_eq!(status_output(&event), (0, "plain\n".to_string()));
    stop(token, handle).await;
}

#[tokio::test]
async fn the_allow_list_denies_unlisted_commands_and_checks_pinned_digests() {
    let s = Setup::new().await;
    let ca = TestCa::new();
    ca.write_ca(Path::new(&s.ca_path()));
    let server = FileServer::start_tls(&ca);
    let script = b"#!/bin/sh\necho pinned $1 $DROPPED\n";
    let tool_tar = tar_gz(&[("bin/pinned", script, 0o755)]);
    server.serve("/pinned.tar.gz", tool_tar.clone());
    let list = s.ca_file.path().join("allow.yml");
    std::fs::write(
        &list,
        format!(
            "- exec: pinned\n  args: [\"one\"]\n  sha512: {}\n  enable_env: false\n- exec: echo\n  args: [\"allowed\", \"$KEPT\"]\n  enable_env: true\n",
            sha512_hex(script)
        ),
    )
    .unwrap();
    let list = list.to_string_lossy().into_owned();
    let (token, handle) = spawn(s.agent("agent-allow", &["--allow-list", &list]));
    let mut conn = s.backend.accept().await;
    open_session(&mut conn, "agent-allow").await;

    let pinned = asset("pinned", server.url("/pinned.tar.gz"), &tool_tar);
    let mut request = with_assets(check_request("pinned", "pinned one", 1), vec![pinned]);
    request.config.as_mut().unwrap().env_vars = Some(vec!["DROPPED=yes".into()]);
    let event = run(&mut conn, request).await;
    assert_eq!(status_output(&event), (0, "pinned one\n".to_string()));

    let mut request = check_request("echo", "echo allowed $KEPT", 1);
    request.config.as_mut().unwrap().env_vars = Some(vec!["KEPT=kept".into()]);
    let event = run(&mut conn, request).await;
    assert_eq!(status_output(&event), (0, "allowed kept\n".to_string()));

    let event = run(&mut conn, check_request("denied", "echo allowed; id", 1)).await;
    assert_eq!(status_output(&event), (3, DENIED_OUTPUT.to_string()));

    let mut request = check_request("denied-1", "rm -rf /", 1);
    request
        .config
        .as_mut()
        .unwrap()
        .metadata
        .annotations
        .insert("allow_list_on_deny_status".into(), "1".into());
    let event = run(&mut conn, request).await;
    assert_eq!(status_output(&event), (1, DENIED_OUTPUT.to_string()));
    stop(token, handle).await;
}
