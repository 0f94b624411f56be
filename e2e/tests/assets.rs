//! Assets end to end with the real binaries: a check names a runtime asset holding Debian's
//! `check_http` (and the libraries it links) served over HTTPS by a test CA; the agent, which
//! does not have the plugin on its PATH, fetches it, verifies it and runs the check from it;
//! the failing result goes to a handler whose own runtime asset the backend fetches and runs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use assetfetch::testing::{FileServer, TestCa, executable_asset, sha512_hex, tar_gz};
use e2e::{Api, Proc, binary, eventually, start_backend};
use serde_json::{Value, json};

const NS: &str = "/api/core/v2/namespaces/default";
const CHECK_HTTP: &str = "/usr/lib/nagios/plugins/check_http";

fn put(api: &Api, collection: &str, name: &str, mut body: Value) {
    body["metadata"] = json!({"name": name, "namespace": "default"});
    let r = api
        .put(&format!("{NS}/{collection}/{name}"), &body.to_string())
        .expect("PUT");
    assert_eq!(r.status, 201, "PUT {collection}/{name}: {}", r.body);
}

#[test]
fn a_check_and_a_handler_run_from_assets_fetched_over_https() {
    assert!(
        Path::new(CHECK_HTTP).is_file(),
        "install monitoring-plugins-basic (scripts/test does)"
    );
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("check_http").is_file()));
    assert!(
        !on_path,
        "check_http must not be on the agents' PATH for this test"
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = dir.path().join("ca.pem");
    ca.write_ca(&ca_file);
    let assets = FileServer::start_tls(&ca);
    let plugins = executable_asset(Path::new(CHECK_HTTP));
    assets.serve("/monitoring-plugins-linux.tar.gz", plugins.clone());
    let recorder = tar_gz(&[(
        "bin/record-event",
        b"#!/bin/sh\ncat > \"$OUT/event-$$.json\"\n",
        0o755,
    )]);
    assets.serve("/recorder.tar.gz", recorder.clone());
    // The app the checks watch: /healthz answers 200, /broken 404.
    let app = FileServer::start();
    app.serve("/healthz", b"ok".to_vec());
    let app_port = app.url("").rsplit(':').next().unwrap().to_string();

    let cache_dir = dir.path().join("backend-cache");
    let backend = start_backend(
        dir.path(),
        &[
            "--cache-dir",
            cache_dir.to_str().unwrap(),
            "--trusted-ca-file",
            ca_file.to_str().unwrap(),
        ],
    );
    let (api, agent_port, _backend) = (backend.api, backend.agent_port, backend.process);

    let agent_cache = dir.path().join("agent-cache");
    let mut cmd = Command::new(binary("picket-agent"));
    cmd.args(["start", "--config-file", "", "--name", "web-1"])
        .args(["--backend-url", &format!("ws://127.0.0.1:{agent_port}")])
        .args(["--subscriptions", "webapp", "--keepalive-interval", "1"])
        .args(["--statsd-disable", "--disable-api", "--disable-sockets"])
        .arg("--trusted-ca-file")
        .arg(&ca_file)
        .arg("--cache-dir")
        .arg(&agent_cache);
    let _agent = Proc::spawn("web-1", cmd, dir.path().join("agent.log"));
    eventually("web-1 registered", Duration::from_secs(30), || {
        api.get(&format!("{NS}/entities/web-1"))
            .filter(|r| r.status == 200)
    });

    // Two builds: the agent (linux) gets the second.
    put(
        &api,
        "assets",
        "monitoring-plugins",
        json!({"builds": [
            {"url": assets.url("/monitoring-plugins-windows.zip"), "sha512": "f".repeat(128),
             "filters": ["entity.system.os == 'windows'"]},
            {"url": assets.url("/monitoring-plugins-linux.tar.gz"), "sha512": sha512_hex(&plugins),
             "filters": ["entity.system.os == 'linux'"]},
        ]}),
    );
    put(
        &api,
        "assets",
        "recorder",
        json!({"url": assets.url("/recorder.tar.gz"), "sha512": sha512_hex(&recorder)}),
    );
    let out = dir.path().join("handled");
    std::fs::create_dir(&out).unwrap();
    put(
        &api,
        "handlers",
        "record",
        json!({"type": "pipe", "command": "record-event", "runtime_assets": ["recorder"],
               "env_vars": [format!("OUT={}", out.display())]}),
    );
    for (name, path) in [("app-health", "/healthz"), ("app-broken", "/broken")] {
        put(
            &api,
            "checks",
            name,
            json!({"command": format!("check_http -H 127.0.0.1 -p {app_port} -u {path}"),
                   "subscriptions": ["webapp"], "interval": 1, "publish": true, "timeout": 10,
                   "runtime_assets": ["monitoring-plugins"], "handlers": ["record"]}),
        );
    }

    let ok = eventually("app-health OK", Duration::from_secs(60), || {
        api.get_json(&format!("{NS}/events/web-1/app-health"))
            .filter(|e| e["check"]["status"] == 0)
    });
    let output = ok["check"]["output"].as_str().unwrap();
    assert!(output.starts_with("HTTP OK"), "{ok}");
    // check_http reports a 4xx answer as a warning.
    let broken = eventually("app-broken warning", Duration::from_secs(60), || {
        api.get_json(&format!("{NS}/events/web-1/app-broken"))
            .filter(|e| e["check"]["status"] == 1)
    });
    assert!(
        broken["check"]["output"].as_str().unwrap().contains("404"),
        "{broken}"
    );

    // The backend ran the handler from its own asset.
    let handled = eventually("the handler's record", Duration::from_secs(30), || {
        std::fs::read_dir(&out)
            .ok()?
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter_map(|s| serde_json::from_str::<Value>(&s).ok())
            .find(|e| e["check"]["metadata"]["name"] == "app-broken")
    });
    assert_eq!(handled["check"]["status"], 1);
    assert!(
        handled["check"]["output"].as_str().unwrap().contains("404"),
        "{handled}"
    );
    // Each asset was downloaded once (cached after), the Windows build never.
    assert_eq!(assets.hits("/monitoring-plugins-linux.tar.gz"), 1);
    assert_eq!(assets.hits("/monitoring-plugins-windows.zip"), 0);
    assert_eq!(assets.hits("/recorder.tar.gz"), 1);
    assert!(
        agent_cache
            .join(sha512_hex(&plugins))
            .join("bin/check_http")
            .is_file()
    );
}
