//! Checks end to end: the real backend schedules, real agents run real Nagios plugins from
//! Debian's monitoring-plugins-basic (installed by scripts/test), and the backend keeps state.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port, start_backend};
use serde_json::{Value, json};

const NS: &str = "/api/core/v2/namespaces/default";
const PLUGINS: &str = "/usr/lib/nagios/plugins";

struct Cluster {
    api: Api,
    agent_port: u16,
    dir: tempfile::TempDir,
    _backend: Proc,
}

fn start_cluster() -> Cluster {
    assert!(
        Path::new(PLUGINS).join("check_http").exists(),
        "{PLUGINS}/check_http is missing: install monitoring-plugins-basic (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let backend = start_backend(dir.path(), &["--log-level", "info"]);
    Cluster {
        api: backend.api,
        agent_port: backend.agent_port,
        dir,
        _backend: backend.process,
    }
}

fn start_agent(c: &Cluster, name: &str, subscriptions: &str) -> Proc {
    let cache = c.dir.path().join(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = Command::new(binary("picket-agent"));
    cmd.args(["start", "--config-file", "", "--name", name])
        .args(["--backend-url", &format!("ws://127.0.0.1:{}", c.agent_port)])
        .args(["--subscriptions", subscriptions])
        .args([
            "--keepalive-interval",
            "1",
            "--keepalive-warning-timeout",
            "5",
        ])
        .args([
            "--retry-min",
            "1s",
            "--retry-max",
            "2s",
            "--log-level",
            "info",
            "--statsd-disable",
            "--disable-api",
            "--disable-sockets",
        ])
        .arg("--cache-dir")
        .arg(&cache);
    let agent = Proc::spawn(name, cmd, c.dir.path().join(format!("{name}.log")));
    eventually(
        &format!("{name} registered"),
        Duration::from_secs(30),
        || {
            c.api
                .get(&format!("{NS}/entities/{name}"))
                .filter(|r| r.status == 200)
        },
    );
    agent
}

fn put_check(c: &Cluster, name: &str, spec: Value) {
    let mut body =
        json!({"metadata": {"name": name, "namespace": "default"}, "publish": true, "interval": 1});
    for (k, v) in spec.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = c
        .api
        .put(&format!("{NS}/checks/{name}"), &body.to_string())
        .expect("PUT check");
    assert_eq!(r.status, 201, "PUT check {name}: {}", r.body);
}

fn event(c: &Cluster, entity: &str, check: &str) -> Option<Value> {
    c.api.get_json(&format!("{NS}/events/{entity}/{check}"))
}

fn wait_status(c: &Cluster, entity: &str, check: &str, status: u64, within: Duration) -> Value {
    eventually(
        &format!("{entity}/{check} with status {status}"),
        within,
        || event(c, entity, check).filter(|e| e["check"]["status"].as_u64() == Some(status)),
    )
}

/// A tiny HTTP server whose `/health` answers 200 or 500 as the test decides.
fn health_server(healthy: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let (code, text) = if healthy.load(Ordering::SeqCst) {
                ("200 OK", "ok")
            } else {
                ("500 Internal Server Error", "down")
            };
            let _ = write!(
                stream,
                "HTTP/1.0 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    port
}

#[test]
fn real_plugins_report_failures_and_resolutions() {
    let c = start_cluster();
    let _web = start_agent(&c, "web-1", "webapp");
    let healthy = Arc::new(AtomicBool::new(true));
    let port = health_server(healthy.clone());

    put_check(
        &c,
        "app-health",
        json!({
            "command": format!("{PLUGINS}/check_http -H 127.0.0.1 -p {port} -u /health"),
            "subscriptions": ["webapp"],
            "timeout": 10,
        }),
    );
    let ok = wait_status(&c, "web-1", "app-health", 0, Duration::from_secs(30));
    assert!(
        ok["check"]["output"]
            .as_str()
            .unwrap()
            .starts_with("HTTP OK"),
        "{ok}"
    );
    assert_eq!(ok["check"]["processed_by"], "web-1");

    healthy.store(false, Ordering::SeqCst);
    let failing = wait_status(&c, "web-1", "app-health", 2, Duration::from_secs(30));
    assert!(
        failing["check"]["output"].as_str().unwrap().contains("500"),
        "{failing}"
    );
    assert_eq!(failing["check"]["state"], "failing");
    let failing = eventually("a repeated failure", Duration::from_secs(30), || {
        event(&c, "web-1", "app-health")
            .filter(|e| e["check"]["occurrences"].as_i64() >= Some(2) && e["check"]["status"] == 2)
    });
    assert_eq!(
        failing["check"]["occurrences_watermark"],
        failing["check"]["occurrences"]
    );

    healthy.store(true, Ordering::SeqCst);
    let resolved = wait_status(&c, "web-1", "app-health", 0, Duration::from_secs(30));
    let history: Vec<u64> = resolved["check"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_u64().unwrap())
        .collect();
    assert!(
        history.contains(&2) && history.last() == Some(&0),
        "{history:?}"
    );
    assert_eq!(resolved["check"]["occurrences"], 1);
    assert!(resolved["check"]["occurrences_watermark"].as_i64() >= Some(2));
    assert_eq!(resolved["check"]["last_ok"], resolved["check"]["executed"]);

    // check_tcp against an open and a closed port.
    let closed = free_port();
    put_check(
        &c,
        "tcp-open",
        json!({"command": format!("{PLUGINS}/check_tcp -H 127.0.0.1 -p {port}"), "subscriptions": ["webapp"]}),
    );
    put_check(
        &c,
        "tcp-closed",
        json!({"command": format!("{PLUGINS}/check_tcp -H 127.0.0.1 -p {closed}"), "subscriptions": ["webapp"]}),
    );
    wait_status(&c, "web-1", "tcp-open", 0, Duration::from_secs(30));
    wait_status(&c, "web-1", "tcp-closed", 2, Duration::from_secs(30));

    // check_dummy: every exit code becomes the status.
    for code in 0..=3u64 {
        put_check(
            &c,
            &format!("dummy-{code}"),
            json!({"command": format!("{PLUGINS}/check_dummy {code} 'dummy {code}'"), "subscriptions": ["webapp"]}),
        );
    }
    for code in 0..=3u64 {
        let e = wait_status(
            &c,
            "web-1",
            &format!("dummy-{code}"),
            code,
            Duration::from_secs(30),
        );
        assert!(
            e["check"]["output"]
                .as_str()
                .unwrap()
                .contains(&format!("dummy {code}")),
            "{e}"
        );
    }

    // A plugin that hangs past its timeout: status 2, and its whole process group is gone.
    put_check(
        &c,
        "hangs",
        json!({"command": "sleep 31415 & sleep 31416; echo never", "subscriptions": ["webapp"], "timeout": 2, "interval": 30}),
    );
    let hung = wait_status(&c, "web-1", "hangs", 2, Duration::from_secs(40));
    assert!(
        hung["check"]["output"]
            .as_str()
            .unwrap()
            .starts_with("Execution timed out"),
        "{hung}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("sleep 3141"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "processes of a timed-out check survived: {leftovers:?}"
    );
}

#[test]
fn round_robin_runs_each_execution_once_and_survives_an_agent() {
    let c = start_cluster();
    let log = c.dir.path().join("rr.log");
    let mut agents: Vec<Proc> = (1..=3)
        .map(|i| start_agent(&c, &format!("rr-{i}"), "ha"))
        .collect();
    put_check(
        &c,
        "rr-check",
        json!({
            "command": format!("echo $(date +%s%N) >> {}", log.display()),
            "subscriptions": ["ha"],
            "round_robin": true,
        }),
    );
    let runs_of = |name: &str| -> usize {
        event(&c, name, "rr-check")
            .and_then(|e| e["check"]["history"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    eventually("every agent ran the check", Duration::from_secs(40), || {
        (1..=3)
            .all(|i| runs_of(&format!("rr-{i}")) >= 1)
            .then_some(())
    });
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = lines(&log);
    std::thread::sleep(Duration::from_secs(6));
    let ran = lines(&log) - before;
    // Six one-second intervals: about six executions in all, not one per agent each time.
    assert!(
        (3..=9).contains(&ran),
        "{ran} executions in 6 s over 3 agents"
    );

    // rr-1 dies; the executions go on, on the live agents only.
    agents.remove(0).kill();
    std::thread::sleep(Duration::from_secs(2));
    let before = lines(&log);
    std::thread::sleep(Duration::from_secs(6));
    let ran = lines(&log) - before;
    assert!(
        (3..=9).contains(&ran),
        "{ran} executions in 6 s after an agent died"
    );
}
