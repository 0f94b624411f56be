//! The `picket-agent` binary: exit codes and signal handling.

use std::process::Stdio;
use std::time::Duration;

use proto_spec::v2::entity_config::ENTITY_CONFIG_NOT_FOUND;
use tokio::process::Command;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::backend::{Backend, STEP};

const BIN: &str = env!("CARGO_BIN_EXE_picket-agent");

#[tokio::test]
async fn config_errors_exit_64_with_one_line() {
    let out = Command::new(BIN)
        .args([
            "start",
            "--config-file",
            "",
            "--keepalive-interval",
            "x",
            "--user",
            "BAD",
        ])
        .env_remove("PICKET_CONFIG_FILE")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--keepalive-interval") && stderr.contains("--user"),
        "{stderr}"
    );

    let out = Command::new(BIN).arg("--bogus").output().await.unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}

#[tokio::test]
async fn version() {
    for args in [&["version"][..], &["--version"][..]] {
        let out = Command::new(BIN).args(args).output().await.unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with("picket-agent version "), "{stdout}");
    }
}

#[tokio::test]
async fn sigterm_closes_with_1001_and_exits_0() {
    let backend = Backend::start().await;
    let cache = crate::support::cache_dir();
    let mut child = Command::new(BIN)
        .args([
            "start",
            "--config-file",
            "",
            "--backend-url",
            &backend.url(),
            "--cache-dir",
            &cache,
            "--api-port",
            "0",
            "--socket-port",
            "0",
            "--name",
            "bin-agent",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut conn = backend.accept().await;
    assert_eq!(conn.header("Sensu-AgentName"), "bin-agent");
    let not_found = proto_spec::v2::EntityConfig {
        metadata: proto_spec::ObjectMeta::new("default", ENTITY_CONFIG_NOT_FOUND),
        ..Default::default()
    };
    conn.send(proto_spec::wire::Message::EntityConfig(Box::new(not_found)))
        .await;
    assert_eq!(conn.keepalive().await.sequence, 1);

    let pid = child.id().unwrap().to_string();
    let asked = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let close = conn.closed_by_agent().await;
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "bye");
    let status = timeout(STEP, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}
