//! The foundation's acceptance test: a real backend and three real agents.
//!
//! - all three entities register with their system facts and subscriptions;
//! - a SIGTERMed agent with `deregister: true` disappears without an alert;
//! - a SIGKILLed agent raises a keepalive warning after its warning timeout, then a critical
//!   one after its critical timeout, and recovers when it comes back;
//! - restarting the backend loses no entity and no event.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port};

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "e2e-admin-password";
const NS: &str = "/api/core/v2/namespaces/default";

struct Ports {
    api: u16,
    agent: u16,
}

fn start_backend(state: &Path, logs: &Path, ports: &Ports, run: u32) -> Proc {
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--state-dir"])
        .arg(state)
        .args(["--api-listen-address", &format!("127.0.0.1:{}", ports.api)])
        .args([
            "--agent-host",
            "127.0.0.1",
            "--agent-port",
            &ports.agent.to_string(),
        ])
        .args(["--log-level", "info", "--config-file", "/dev/null"])
        .env("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME", ADMIN)
        .env("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    Proc::spawn(
        "picket-backend",
        cmd,
        logs.join(format!("backend-{run}.log")),
    )
}

fn start_agent(name: &str, logs: &Path, ports: &Ports, extra: &[&str]) -> Proc {
    let cache = logs.join(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = Command::new(binary("picket-agent"));
    cmd.args(["start", "--name", name])
        .args(["--backend-url", &format!("ws://127.0.0.1:{}", ports.agent)])
        .args(["--subscriptions", "linux,webapp"])
        .args(["--keepalive-interval", "1"])
        .args(["--keepalive-warning-timeout", "5"])
        .args(["--keepalive-critical-timeout", "10"])
        .args(["--retry-min", "1s", "--retry-max", "2s"])
        .args([
            "--log-level",
            "info",
            "--statsd-disable",
            "--disable-api",
            "--disable-sockets",
        ])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--config-file", "/dev/null"])
        .args(extra);
    Proc::spawn(name, cmd, logs.join(format!("{name}.log")))
}

fn keepalive_status(api: &Api, entity: &str) -> Option<u64> {
    api.get_json(&format!("{NS}/events/{entity}/keepalive"))
        .and_then(|e| e["check"]["status"].as_u64())
}

#[test]
fn agents_register_deregister_fail_recover_and_survive_a_backend_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (state, logs) = (dir.path().join("state"), dir.path().to_path_buf());
    let ports = Ports {
        api: free_port(),
        agent: free_port(),
    };
    let mut backend = start_backend(&state, &logs, &ports, 1);
    let api = Api::new(
        format!("http://127.0.0.1:{}", ports.api),
        ADMIN,
        ADMIN_PASSWORD,
    );
    eventually("the backend's API", Duration::from_secs(30), || {
        api.get("/health").filter(|r| r.status == 200)
    });

    let mut leaver = start_agent("leaver", &logs, &ports, &["--deregister"]);
    let mut crasher = start_agent("crasher", &logs, &ports, &[]);
    let _stayer = start_agent(
        "stayer",
        &logs,
        &ports,
        &["--labels", "team=web,password=hunter2"],
    );

    // 1. All three register with facts and subscriptions.
    let entities = eventually("three entities", Duration::from_secs(30), || {
        let list = api.get_json(&format!("{NS}/entities"))?;
        (list.as_array()?.len() == 3).then_some(list)
    });
    for e in entities.as_array().unwrap() {
        let name = e["metadata"]["name"].as_str().unwrap();
        assert_eq!(e["entity_class"], "agent", "{name}");
        assert_eq!(e["system"]["os"], "linux", "{name}");
        assert!(
            e["system"]["hostname"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "{name} has a hostname"
        );
        assert!(
            e["system"]["arch"].as_str().is_some_and(|a| !a.is_empty()),
            "{name} has an arch"
        );
        assert!(
            e["system"]["network"]["interfaces"]
                .as_array()
                .is_some_and(|i| !i.is_empty()),
            "{name} has interfaces"
        );
        assert!(e["last_seen"].as_i64().unwrap() > 0);
        let subs: Vec<&str> = e["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            subs.contains(&"linux") && subs.contains(&"webapp"),
            "{name}: {subs:?}"
        );
        assert!(
            subs.contains(&format!("entity:{name}").as_str()),
            "{name}: {subs:?}"
        );
    }
    let stayer = api.get_json(&format!("{NS}/entities/stayer")).unwrap();
    assert_eq!(stayer["metadata"]["labels"]["team"], "web");
    assert_eq!(
        stayer["metadata"]["labels"]["password"], "REDACTED",
        "secrets are redacted in API answers"
    );
    assert_eq!(
        api.get_json(&format!("{NS}/entities/leaver")).unwrap()["deregister"],
        true
    );
    eventually("keepalive events", Duration::from_secs(15), || {
        (keepalive_status(&api, "crasher") == Some(0)
            && keepalive_status(&api, "leaver") == Some(0))
        .then_some(())
    });

    // 2. A graceful stop with deregister: the entity goes away once its keepalive lapses,
    // and no keepalive alert is raised for it.
    assert_eq!(
        leaver.terminate(Duration::from_secs(10)),
        Some(0),
        "agent exits 0 on SIGTERM"
    );
    eventually(
        "the leaver's deregistration",
        Duration::from_secs(30),
        || {
            let r = api.get(&format!("{NS}/entities/leaver"))?;
            (r.status == 404).then_some(())
        },
    );
    assert!(
        api.get_json(&format!("{NS}/events/leaver"))
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    let metrics = api.get("/metrics").unwrap().body;
    assert!(
        metrics.contains("picket_keepalive_failures_total 0"),
        "no alert for a deregistered agent:\n{metrics}"
    );
    assert!(
        metrics.contains("picket_deregistrations_total 1"),
        "{metrics}"
    );

    // 3. A crash: warning after 5 s of silence, then critical after 10 s, then recovery.
    crasher.kill();
    let warning = eventually("a keepalive warning", Duration::from_secs(30), || {
        let e = api.get_json(&format!("{NS}/events/crasher/keepalive"))?;
        (e["check"]["status"] == 1).then_some(e)
    });
    assert!(
        warning["check"]["output"]
            .as_str()
            .unwrap()
            .contains("No keepalive sent from crasher")
    );
    let critical = eventually("a critical keepalive", Duration::from_secs(30), || {
        let e = api.get_json(&format!("{NS}/events/crasher/keepalive"))?;
        (e["check"]["status"] == 2).then_some(e)
    });
    assert!(
        critical["check"]["output"]
            .as_str()
            .unwrap()
            .ends_with("(>= 10)")
    );
    let _crasher = start_agent("crasher", &logs, &ports, &[]);
    eventually("the crasher's recovery", Duration::from_secs(30), || {
        (keepalive_status(&api, "crasher") == Some(0)).then_some(())
    });

    // 4. Restarting the backend loses nothing: entities, events and their history survive,
    // and the agents reconnect by themselves.
    let before = api
        .get_json(&format!("{NS}/events/crasher/keepalive"))
        .unwrap();
    let history_before = before["check"]["history"].as_array().unwrap().len();
    assert_eq!(
        backend.terminate(Duration::from_secs(15)),
        Some(0),
        "backend exits 0 on SIGTERM"
    );
    let _backend = start_backend(&state, &logs, &ports, 2);
    eventually(
        "the restarted backend's API",
        Duration::from_secs(30),
        || api.get("/health").filter(|r| r.status == 200),
    );
    let names: Vec<String> = api
        .get_json(&format!("{NS}/entities"))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["crasher", "stayer"]);
    let after = api
        .get_json(&format!("{NS}/events/crasher/keepalive"))
        .unwrap();
    assert!(
        after["check"]["history"].as_array().unwrap().len() >= history_before,
        "history kept across the restart"
    );
    eventually(
        "agents reconnected after the restart",
        Duration::from_secs(30),
        || {
            let m = api.get("/metrics")?.body;
            m.lines()
                .any(|l| l == "picket_agent_sessions 2")
                .then_some(())
        },
    );
    let restarted_at = unix_now();
    eventually(
        "fresh keepalives after the restart",
        Duration::from_secs(30),
        || {
            let e = api.get_json(&format!("{NS}/events/stayer/keepalive"))?;
            (e["timestamp"].as_i64()? > restarted_at && e["check"]["status"] == 0).then_some(())
        },
    );
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
