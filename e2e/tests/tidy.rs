//! The workspace's dependency rules (ARCHITECTURE.md), checked against `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Normal (non-dev, non-build) dependencies of every package in the resolved graph.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let names: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| names[d["pkg"].as_str().unwrap()].clone())
                .collect();
            (names[node["id"].as_str().unwrap()].clone(), deps)
        })
        .collect()
}

fn closure(graph: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn agent_never_depends_on_the_backend() {
    let g = graph();
    let deps = closure(&g, "agent");
    let bad: Vec<_> = deps
        .iter()
        .filter(|d| d.starts_with("backend-") || ["axum", "redb", "bcrypt"].contains(&d.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "the agent must stay small and backend-free, but depends on {bad:?}"
    );
}

#[test]
fn proto_spec_is_pure() {
    let g = graph();
    let deps = closure(&g, "proto-spec");
    let bad: Vec<_> = deps
        .iter()
        .filter(|d| {
            [
                "agent",
                "backend-store",
                "backend-app",
                "telemetry",
                "tokio",
                "axum",
                "rustls",
                "redb",
            ]
            .contains(&d.as_str())
        })
        .collect();
    assert!(
        bad.is_empty(),
        "proto-spec must do no I/O and depend on no workspace crate, but depends on {bad:?}"
    );
}

#[test]
fn backend_store_depends_on_no_other_backend_crate() {
    let g = graph();
    let deps = closure(&g, "backend-store");
    assert!(
        !deps.contains("backend-app") && !deps.contains("agent"),
        "{deps:?}"
    );
}

#[test]
fn assets_stay_small_and_picket_free() {
    let bad = backend_crates_and(
        "assetfetch",
        &[
            "agent",
            "proto-spec",
            "jsexpr",
            "aws-lc-rs",
            "aws-lc-sys",
            "hyper",
            "reqwest",
            "native-tls",
            "openssl",
        ],
    );
    assert!(
        bad.is_empty(),
        "lib/assetfetch knows no Picket crate and pulls no second TLS or HTTP stack, but depends on {bad:?}"
    );
}

#[test]
fn picketctl_speaks_only_the_rest_api() {
    let bad = backend_crates_and("picketctl", &["agent", "handlers", "tokio", "axum", "redb"]);
    assert!(
        bad.is_empty(),
        "picketctl is a blocking REST client over proto-spec, but depends on {bad:?}"
    );
}

/// The packages `root` depends on (transitively) that are backend crates or named in `names`.
fn backend_crates_and(root: &str, names: &[&str]) -> Vec<String> {
    closure(&graph(), root)
        .into_iter()
        .filter(|d| d.starts_with("backend-") || names.contains(&d.as_str()))
        .collect()
}
