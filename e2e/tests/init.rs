//! `picket-backend init` and first-start initialisation, with the real binary.

use std::process::Command;
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port};

fn init(state: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary("picket-backend"))
        .args(["init", "--config-file", "/dev/null", "--state-dir"])
        .arg(state)
        .args(extra)
        .output()
        .expect("run picket-backend init");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn init_seeds_once_and_validates_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let admin = [
        "--cluster-admin-username",
        "ops",
        "--cluster-admin-password",
        "long-enough-pw",
    ];

    let (code, out) = init(
        &state,
        &[
            "--cluster-admin-username",
            "ops",
            "--cluster-admin-password",
            "short",
        ],
    );
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("at least 8 characters"), "{out}");
    let (code, out) = init(&state, &[]);
    assert_eq!(code, Some(64), "{out}");

    let (code, out) = init(&state, &admin);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = init(&state, &admin);
    assert_eq!(code, Some(3), "a second init is refused: {out}");
    assert!(out.contains("already initialised"), "{out}");
    let (code, out) = init(
        &state,
        &[&admin[..], &["--ignore-already-initialized"]].concat(),
    );
    assert_eq!(code, Some(0), "{out}");

    // The seeded administrator can use the API of a backend started on that store.
    let port = free_port();
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--config-file", "/dev/null", "--state-dir"])
        .arg(&state)
        .args(["--api-listen-address", &format!("127.0.0.1:{port}")])
        .args([
            "--agent-host",
            "127.0.0.1",
            "--agent-port",
            &free_port().to_string(),
        ]);
    let mut backend = Proc::spawn("picket-backend", cmd, dir.path().join("backend.log"));
    let api = Api::new(format!("http://127.0.0.1:{port}"), "ops", "long-enough-pw");
    let namespaces = eventually("the API", Duration::from_secs(30), || {
        api.get_json("/api/core/v2/namespaces")
    });
    assert_eq!(namespaces, serde_json::json!([{"name": "default"}]));
    let wrong = Api::new(
        format!("http://127.0.0.1:{port}"),
        "ops",
        "not-the-password",
    );
    assert_eq!(wrong.get("/api/core/v2/namespaces").unwrap().status, 401);
    assert_eq!(backend.terminate(Duration::from_secs(15)), Some(0));
    assert!(
        !backend
            .log_text()
            .contains("Picket initialised a new store"),
        "an initialised store is not re-seeded"
    );
}

#[test]
fn first_start_initialises_and_prints_how_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--config-file", "/dev/null", "--state-dir"])
        .arg(dir.path().join("state"))
        .args(["--api-listen-address", &format!("127.0.0.1:{port}")])
        .args([
            "--agent-host",
            "127.0.0.1",
            "--agent-port",
            &free_port().to_string(),
        ])
        .env_remove("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD")
        .env_remove("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME");
    let mut backend = Proc::spawn("picket-backend", cmd, dir.path().join("backend.log"));
    let password = eventually("the printed password", Duration::from_secs(30), || {
        let log = backend.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("Log in to the API as \"admin\" with password "))?;
        line.rsplit(' ').next().map(str::to_string)
    });
    let api = Api::new(format!("http://127.0.0.1:{port}"), "admin", &password);
    eventually(
        "login with the printed password",
        Duration::from_secs(30),
        || {
            api.get("/api/core/v2/namespaces/default/entities")
                .filter(|r| r.status == 200)
        },
    );
    assert_eq!(backend.terminate(Duration::from_secs(15)), Some(0));
}
