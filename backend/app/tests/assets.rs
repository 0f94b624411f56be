//! Assets on the backend: the REST resource, the build chosen per agent in check requests,
//! and a handler and a mutator whose runtime asset is fetched over HTTPS (test CA) and run by
//! the backend.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use assetfetch::testing::{FileServer, TestCa, sha512_hex, tar_gz};
use common::*;
use futures_util::{SinkExt, StreamExt};
use proto_spec::wire::{self, Message};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default"})
}

async fn post(tb: &TestBackend, collection: &str, body: &Value) -> Reply {
    let url = format!("{}/namespaces/default/{collection}", tb.v2);
    http("POST", &url, Some(ADMIN), Some(&body.to_string())).await
}

#[tokio::test]
async fn assets_are_a_rest_resource_with_validation() {
    let tb = start().await;
    let sha = "a".repeat(128);
    let asset = json!({
        "metadata": meta("check-disk"),
        "url": "https://assets.example/check-disk.tar.gz",
        "sha512": sha,
        "filters": ["entity.system.os == 'linux'"],
        "headers": {"Authorization": "Bearer x"},
    });
    let r = post(&tb, "assets", &asset).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = format!("{}/namespaces/default/assets/check-disk", tb.v2);
    let got = http("GET", &url, Some(ADMIN), None).await.json();
    assert_eq!(got["url"], asset["url"]);
    assert_eq!(got["sha512"], sha);
    assert_eq!(got["headers"]["Authorization"], "Bearer x");
    let list = http(
        "GET",
        &format!("{}/namespaces/default/assets", tb.v2),
        Some(ADMIN),
        None,
    )
    .await
    .json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let bad = [
        (
            json!({"metadata": meta("no-sha"), "url": "https://x/a.tar.gz"}),
            "sha512",
        ),
        (
            json!({"metadata": meta("short"), "url": "https://x/a.tar.gz", "sha512": "abc"}),
            "sha512",
        ),
        (
            json!({"metadata": meta("ftp"), "url": "ftp://x/a", "sha512": sha}),
            "url",
        ),
        (
            json!({"metadata": meta("both"), "url": "https://x/a", "sha512": sha,
                   "builds": [{"url": "https://x/b", "sha512": sha}]}),
            "builds",
        ),
        (
            json!({"metadata": meta("bad-filter"), "url": "https://x/a", "sha512": sha,
                   "filters": ["entity.system.os =="]}),
            "filters",
        ),
        (
            json!({"metadata": meta("bad name!"), "url": "https://x/a", "sha512": sha}),
            "name",
        ),
    ];
    for (body, says) in bad {
        let r = post(&tb, "assets", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        r.assert_error(400, 1, says);
    }

    let r = http("DELETE", &url, Some(ADMIN), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(http("GET", &url, Some(ADMIN), None).await.status, 404);
}

/// An agent session with the given architecture in its keepalives.
async fn agent(tb: &TestBackend, name: &str, arch: &str) -> Ws {
    let mut ws = connect(tb, name, "default", ADMIN).await.unwrap();
    let frame = keepalive(name, "default", 1, 120, 0);
    let Message::Keepalive(mut event) = wire::decode(&frame).unwrap() else {
        unreachable!()
    };
    event.entity.as_mut().unwrap().system.arch = arch.into();
    let frame = wire::encode(&Message::Keepalive(event));
    ws.send(WsMessage::Binary(frame.into())).await.unwrap();
    ws
}

async fn next_request(ws: &mut Ws) -> proto_spec::v2::CheckRequest {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a check request in time")
            .unwrap()
            .unwrap();
        if let WsMessage::Binary(b) = msg
            && let Message::CheckRequest(r) = wire::decode(&b).unwrap()
        {
            return *r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_receives_the_build_that_fits_it() {
    let tb = start().await;
    let (sha_amd, sha_arm) = ("a".repeat(128), "b".repeat(128));
    let asset = json!({
        "metadata": meta("plugins"),
        "builds": [
            {"url": "https://x/arm64.tar.gz", "sha512": sha_arm,
             "filters": ["entity.system.os == 'linux'", "entity.system.arch == 'arm64'"]},
            {"url": "https://x/amd64.tar.gz", "sha512": sha_amd,
             "filters": ["entity.system.arch == 'amd64'"], "headers": {"X-Build": "amd64"}},
        ],
    });
    assert_eq!(post(&tb, "assets", &asset).await.status, 201);
    let check = json!({
        "metadata": meta("uses-plugins"),
        "command": "check_http -H localhost",
        "subscriptions": ["linux"],
        "interval": 60,
        "publish": false,
        "runtime_assets": ["plugins"],
    });
    assert_eq!(post(&tb, "checks", &check).await.status, 201);

    let mut amd = agent(&tb, "agent-amd64", "amd64").await;
    let mut arm = agent(&tb, "agent-arm64", "arm64").await;
    let mut mips = agent(&tb, "agent-mips", "mips").await;
    // The keepalives have reached their sessions once the entities exist.
    for name in ["agent-amd64", "agent-arm64", "agent-mips"] {
        let url = format!("{}/namespaces/default/entities/{name}", tb.v2);
        eventually(name, Duration::from_secs(10), || async {
            (http("GET", &url, Some(ADMIN), None).await.status == 200).then_some(())
        })
        .await;
    }
    let r = http(
        "POST",
        &format!("{}/namespaces/default/checks/uses-plugins/execute", tb.v2),
        Some(ADMIN),
        Some(r#"{"check": "uses-plugins"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    let amd_req = next_request(&mut amd).await;
    let a = &amd_req.assets.as_ref().unwrap()[0];
    assert_eq!(
        (a.url.as_str(), a.sha512.as_str()),
        ("https://x/amd64.tar.gz", sha_amd.as_str())
    );
    assert_eq!(a.headers.as_ref().unwrap()["X-Build"], "amd64");
    assert!(a.builds.is_none() && a.filters.is_none());
    let arm_req = next_request(&mut arm).await;
    assert_eq!(
        arm_req.assets.as_ref().unwrap()[0].url,
        "https://x/arm64.tar.gz"
    );
    // No build fits: the asset is left out (the check still names it).
    let mips_req = next_request(&mut mips).await;
    assert!(mips_req.assets.as_deref().unwrap_or_default().is_empty());
    assert_eq!(
        mips_req.config.unwrap().runtime_assets.unwrap(),
        ["plugins".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_and_a_mutator_with_a_runtime_asset_run_on_the_backend() {
    let ca = TestCa::new();
    let server = FileServer::start_tls(&ca);
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    ca.write_ca(&ca_file);
    let recorder = tar_gz(&[
        (
            "bin/record-event",
            b"#!/bin/sh\ncat > \"$OUT/event.json\"\necho \"$RECORDER_PATH\" > \"$OUT/asset-path\"\n",
            0o755,
        ),
        (
            "bin/mark-event",
            b"#!/bin/sh\nsed 's/DISK CRITICAL/DISK CRITICAL (marked by a mutator asset)/'\n",
            0o755,
        ),
    ]);
    server.serve("/recorder-linux.tar.gz", recorder.clone());
    let cache_dir = tmp.path().join("cache");
    let cache = assetfetch::AssetCache::open(assetfetch::CacheConfig {
        fetch: assetfetch::FetchConfig {
            trusted_ca_file: Some(ca_file),
            ..Default::default()
        },
        ..assetfetch::CacheConfig::new(&cache_dir)
    })
    .unwrap();
    let tb = start_with(|b| b.set_asset_cache(Arc::new(cache))).await;

    let sha = sha512_hex(&recorder);
    let asset = json!({
        "metadata": meta("recorder"),
        "builds": [
            {"url": server.url("/recorder-windows.tar.gz"), "sha512": "c".repeat(128),
             "filters": ["entity.system.os == 'windows'"]},
            {"url": server.url("/recorder-linux.tar.gz"), "sha512": sha,
             "filters": ["entity.system.os == 'linux'", "entity.entity_class == 'backend'"]},
        ],
    });
    assert_eq!(post(&tb, "assets", &asset).await.status, 201);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mutator = json!({
        "metadata": meta("mark"),
        "command": "mark-event",
        "runtime_assets": ["recorder"],
    });
    assert_eq!(post(&tb, "mutators", &mutator).await.status, 201);
    let handler = json!({
        "metadata": meta("record"),
        "type": "pipe",
        "command": "record-event",
        "mutator": "mark",
        "env_vars": [format!("OUT={}", out.display())],
        "runtime_assets": ["recorder"],
    });
    assert_eq!(post(&tb, "handlers", &handler).await.status, 201);
    // No event has been handled in this namespace yet, so pipelined reads the definitions
    // from the store for the first one.

    let event = json!({
        "entity": {"metadata": {"name": "web-1"}},
        "check": {"metadata": {"name": "disk"}, "status": 2, "interval": 60,
                  "output": "DISK CRITICAL", "handlers": ["record"]},
    });
    let r = post(&tb, "events", &event).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let recorded = eventually("the handler's output", Duration::from_secs(20), || async {
        let s = std::fs::read_to_string(out.join("event.json")).ok()?;
        serde_json::from_str::<Value>(&s).ok()
    })
    .await;
    assert_eq!(
        recorded["check"]["output"],
        "DISK CRITICAL (marked by a mutator asset)"
    );
    let asset_path = std::fs::read_to_string(out.join("asset-path")).unwrap();
    assert_eq!(Path::new(asset_path.trim()), cache_dir.join(&sha));
    assert_eq!(server.hits("/recorder-linux.tar.gz"), 1);
    assert_eq!(server.hits("/recorder-windows.tar.gz"), 0);
}
