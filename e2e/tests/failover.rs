//! Horizontal scale, for real: a three-member etcd, three `picket-backend` processes on it,
//! `haproxy` in front with `packaging/haproxy.cfg`, and twenty `picket-agent` processes.
//!
//! 1. The backend with the most agents is SIGKILLed, and one agent with it. Its agents
//!    reconnect through haproxy to the others; every check result an agent produced (each
//!    run appends a line to a per-agent file) is stored exactly once (the stored history has
//!    one entry per line, no `executed` twice); round robin goes on with one agent per
//!    execution; the killed agent raises exactly one keepalive alert.
//! 2. One etcd member is killed: the API keeps serving reads and writes.
//! 3. etcd stops entirely: a backend answers 503 naming the store; it recovers with etcd.

#![cfg(feature = "etcd")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backend_store::etcd::testing::EtcdCluster;
use e2e::{Api, Proc, binary, eventually, free_port};

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "e2e-admin-password";
const NS: &str = "/api/core/v2/namespaces/default";
const AGENTS: usize = 20;
const PATIENCE: Duration = Duration::from_secs(60);

struct Backend {
    proc: Proc,
    api: u16,
    agent: u16,
}

fn start_backend(urls: &str, dir: &Path, i: usize) -> Backend {
    let (api, agent) = (free_port(), free_port());
    let state = dir.join(format!("backend-{i}"));
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--etcd-client-urls", urls, "--state-dir"])
        .arg(&state)
        .args(["--api-listen-address", &format!("127.0.0.1:{api}")])
        .args([
            "--agent-host",
            "127.0.0.1",
            "--agent-port",
            &agent.to_string(),
        ])
        .args(["--log-level", "info", "--config-file", "/dev/null"]);
    let proc = Proc::spawn(
        &format!("backend-{i}"),
        cmd,
        dir.join(format!("backend-{i}.log")),
    );
    Backend { proc, api, agent }
}

/// `packaging/haproxy.cfg` with the listen ports and the three backends of this test.
fn haproxy_config(backends: &[Backend], lb_api: u16, lb_agent: u16) -> String {
    let shipped = include_str!("../../packaging/haproxy.cfg");
    let mut out = String::new();
    for line in shipped.lines() {
        let t = line.trim_start();
        let replaced = if t == "bind :8081" {
            format!("    bind 127.0.0.1:{lb_agent}")
        } else if t == "bind :8080" {
            format!("    bind 127.0.0.1:{lb_api}")
        } else if let Some(rest) = t.strip_prefix("server backend") {
            let n: usize = rest[..1].parse().expect("server backendN");
            let b = &backends[n - 1];
            if t.contains(":8081") {
                format!(
                    "    server backend{n} 127.0.0.1:{} check port {}",
                    b.agent, b.api
                )
            } else {
                format!("    server backend{n} 127.0.0.1:{} check", b.api)
            }
        } else {
            line.to_string()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}

fn start_agent(name: &str, dir: &Path, lb_agent: u16) -> Proc {
    let cache = dir.join(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = Command::new(binary("picket-agent"));
    cmd.args(["start", "--name", name])
        .args(["--backend-url", &format!("ws://127.0.0.1:{lb_agent}")])
        .args(["--subscriptions", "linux"])
        .args(["--keepalive-interval", "1"])
        .args(["--keepalive-warning-timeout", "5"])
        .args(["--keepalive-critical-timeout", "30"])
        .args(["--retry-min", "1s", "--retry-max", "3s"])
        .args(["--log-level", "info", "--statsd-disable", "--disable-api"])
        .arg("--disable-sockets")
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--config-file", "/dev/null"]);
    Proc::spawn(name, cmd, dir.join(format!("{name}.log")))
}

/// `picket_agent_sessions` of one backend, None when it does not answer.
fn sessions(api: u16) -> Option<u64> {
    let body = ureq::get(format!("http://127.0.0.1:{api}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("picket_agent_sessions "))
        .and_then(|v| v.trim().parse().ok())
}

/// `executed` of every stored result of `check` for `entity`.
fn history(api: &Api, entity: &str, check: &str) -> Vec<i64> {
    api.get_json(&format!("{NS}/events/{entity}/{check}"))
        .and_then(|e| {
            e["check"]["history"].as_array().map(|h| {
                h.iter()
                    .filter_map(|x| x["executed"].as_i64())
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_default()
}

#[test]
fn a_backend_dies_and_nothing_is_lost_then_etcd_fails_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut etcd = rt
        .block_on(EtcdCluster::with_members(3))
        .expect("a three-member etcd");
    let urls = etcd.client_urls_flag();

    let init = Command::new(binary("picket-backend"))
        .args(["init", "--etcd-client-urls", &urls])
        .args(["--cluster-admin-username", ADMIN])
        .args(["--cluster-admin-password", ADMIN_PASSWORD])
        .args(["--config-file", "/dev/null"])
        .output()
        .unwrap();
    assert!(init.status.success(), "init: {init:?}");
    // A second init finds the store initialised (Sensu's exit code 3).
    let again = Command::new(binary("picket-backend"))
        .args(["init", "--etcd-client-urls", &urls])
        .args(["--cluster-admin-username", ADMIN])
        .args(["--cluster-admin-password", ADMIN_PASSWORD])
        .args(["--config-file", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3), "{again:?}");

    let mut backends: Vec<Backend> = (0..3).map(|i| start_backend(&urls, dir, i)).collect();
    for b in &backends {
        let api = Api::new(format!("http://127.0.0.1:{}", b.api), ADMIN, ADMIN_PASSWORD);
        eventually("a backend's API", PATIENCE, || {
            api.get("/ready").filter(|r| r.status == 200)
        });
    }
    let (lb_api, lb_agent) = (free_port(), free_port());
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(&backends, lb_api, lb_agent)).unwrap();
    let mut haproxy_cmd = Command::new("haproxy");
    haproxy_cmd.arg("-db").arg("-f").arg(&cfg);
    let _haproxy = Proc::spawn("haproxy", haproxy_cmd, dir.join("haproxy.log"));
    let api = Api::new(format!("http://127.0.0.1:{lb_api}"), ADMIN, ADMIN_PASSWORD);
    eventually("the API through haproxy", PATIENCE, || {
        api.get(&format!("{NS}/checks")).filter(|r| r.status == 200)
    });

    // Every run appends a line to the agent's own file: what was produced, to compare with
    // what was stored.
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let counted = serde_json::json!({
        "metadata": {"name": "counted", "namespace": "default"},
        "command": format!("echo run >> {}/{{{{ .name }}}}; echo ok", runs.display()),
        "interval": 3, "publish": true, "subscriptions": ["linux"],
    });
    let r = api.put(&format!("{NS}/checks/counted"), &counted.to_string());
    assert!(r.is_some_and(|r| r.status < 300));
    let rr = serde_json::json!({
        "metadata": {"name": "rr", "namespace": "default"},
        "command": "echo ok", "interval": 4, "publish": true, "subscriptions": ["linux"],
        "round_robin": true,
    });
    let r = api.put(&format!("{NS}/checks/rr"), &rr.to_string());
    assert!(r.is_some_and(|r| r.status < 300));

    let mut agents: BTreeMap<String, Proc> = (0..AGENTS)
        .map(|i| {
            let name = format!("agent-{i:02}");
            let p = start_agent(&name, dir, lb_agent);
            (name, p)
        })
        .collect();
    eventually("twenty sessions", PATIENCE, || {
        let total: u64 = backends.iter().filter_map(|b| sessions(b.api)).sum();
        (total == AGENTS as u64).then_some(())
    });
    // Some results stored before the failure.
    std::thread::sleep(Duration::from_secs(8));

    // 1. Kill the busiest backend, and one agent, at the same moment.
    let busiest = (0..3)
        .max_by_key(|i| sessions(backends[*i].api).unwrap_or(0))
        .unwrap();
    let had = sessions(backends[busiest].api).unwrap_or(0);
    assert!(had > 0);
    let victim_name = "agent-19".to_string();
    let mut victim = agents.remove(&victim_name).unwrap();
    backends[busiest].proc.kill();
    victim.kill();
    let killed_at = Instant::now();
    let killed_unix = unix_now();

    // Its agents are back, on the two others, within their backoff.
    let survivors: Vec<usize> = (0..3).filter(|i| *i != busiest).collect();
    eventually("every live agent reconnected elsewhere", PATIENCE, || {
        let total: u64 = survivors
            .iter()
            .filter_map(|i| sessions(backends[*i].api))
            .sum();
        (total == (AGENTS - 1) as u64).then_some(())
    });
    eprintln!(
        "{had} agents of backend {busiest} reconnected in {:?}",
        killed_at.elapsed()
    );

    // Exactly one keepalive alert for the killed agent: the first failure, and no second one
    // within the same timeout.
    let failures = eventually("the killed agent's keepalive alert", PATIENCE, || {
        let event = api.get_json(&format!("{NS}/events/{victim_name}/keepalive"))?;
        let check = &event["check"];
        (check["status"].as_u64()? > 0).then(|| {
            check["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["status"].as_u64().unwrap_or(0) > 0)
                .count()
        })
    });
    assert_eq!(failures, 1, "one alert, raised by one backend");

    // Round robin carries on after the failure: more executions, never two agents at once.
    std::thread::sleep(Duration::from_secs(12));
    let names: Vec<String> = agents.keys().cloned().collect();
    let mut rr_runs: Vec<i64> = names.iter().flat_map(|n| history(&api, n, "rr")).collect();
    rr_runs.extend(history(&api, &victim_name, "rr"));
    rr_runs.sort();
    for pair in rr_runs.windows(2) {
        assert!(
            pair[1] - pair[0] >= 2,
            "a round-robin execution ran twice: {rr_runs:?}"
        );
    }
    assert!(
        rr_runs.iter().filter(|t| **t > killed_unix + 2).count() >= 2,
        "round robin continued after the failure: {rr_runs:?} (killed at {killed_unix})"
    );

    // Every result produced was stored once: the runs each agent recorded equal its stored
    // history (fewer than the 21 a history keeps), without an `executed` twice.
    for name in &names {
        eventually(&format!("{name}'s results all stored"), PATIENCE, || {
            let produced = std::fs::read_to_string(runs.join(name))
                .map(|s| s.lines().count())
                .unwrap_or(0);
            let stored = history(&api, name, "counted");
            let distinct: BTreeSet<i64> = stored.iter().copied().collect();
            assert_eq!(distinct.len(), stored.len(), "{name}: duplicate {stored:?}");
            assert!(
                produced < 21,
                "{name}: the test ran too long for the history"
            );
            (produced > 0 && produced == stored.len()).then_some(())
        });
    }

    // 2. One etcd member dies: reads and writes still work.
    etcd.kill(0);
    let r = api.put(
        &format!("{NS}/checks/after-member-loss"),
        &serde_json::json!({
            "metadata": {"name": "after-member-loss", "namespace": "default"},
            "command": "true", "interval": 60, "subscriptions": ["linux"],
        })
        .to_string(),
    );
    assert!(
        r.as_ref().is_some_and(|r| r.status < 300),
        "write with two of three etcd members: {:?}",
        r.map(|r| (r.status, r.body))
    );
    assert!(
        api.get_json(&format!("{NS}/checks/after-member-loss"))
            .is_some()
    );

    // 3. etcd stops: a clear 503 from the backend, no crash; back when etcd is.
    etcd.stop_all();
    let direct = Api::new(
        format!("http://127.0.0.1:{}", backends[survivors[0]].api),
        ADMIN,
        ADMIN_PASSWORD,
    );
    let r = direct.get(&format!("{NS}/checks")).expect("an answer");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("store"), "{}", r.body);
    rt.block_on(etcd.restart_all()).expect("etcd restarts");
    eventually("the API back with etcd", PATIENCE, || {
        direct
            .get(&format!("{NS}/checks"))
            .filter(|r| r.status == 200)
    });
    for i in survivors {
        assert!(
            backends[i].proc.is_running(),
            "backend {i} survived the outage"
        );
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
