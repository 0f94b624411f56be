//! The running agent against the scripted backend of `backend.rs`.

use std::time::Duration;

use agent::{Agent, CancellationToken, Config};
use base64::Engine;
use proto_spec::ObjectMeta;
use proto_spec::v2::entity_config::ENTITY_CONFIG_NOT_FOUND;
use proto_spec::v2::{CheckConfig, CheckRequest, EntityConfig, Event};
use proto_spec::wire;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::backend::{Backend, STEP};
use crate::support::spawn;

fn config(backend: &Backend, name: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "--subscriptions",
        "linux",
        "--password",
        "s3cret-pw",
        "--keepalive-warning-timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    crate::support::test_config(&backend.url(), name, &crate::support::cache_dir(), &args)
}

fn entity_config(name: &str, subscriptions: &[&str]) -> wire::Message {
    wire::Message::EntityConfig(Box::new(EntityConfig {
        metadata: ObjectMeta::new("default", name),
        entity_class: "agent".into(),
        subscriptions: Some(subscriptions.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }))
}

/// Stop the agent and check it says goodbye with 1001 and returns promptly.
async fn stop(conn: &mut crate::backend::Conn, token: CancellationToken, handle: JoinHandle<()>) {
    let asked = Instant::now();
    token.cancel();
    let close = conn.closed_by_agent().await;
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "bye");
    timeout(STEP, handle)
        .await
        .expect("run() did not return")
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn keepalives_entity_config_reconnect_and_shutdown() {
    let backend = Backend::start().await;
    let agent = Agent::new(config(
        &backend,
        "agent-1",
        &["--keepalive-pipelines", "ka"],
    ))
    .unwrap();
    // An event queued before the session goes out right after the first keepalive.
    agent.outbox().push(Event {
        sequence: 99,
        ..Default::default()
    });
    let (token, handle) = spawn(agent);

    // Handshake headers and credentials.
    let mut conn = backend.accept().await;
    assert_eq!(conn.path, "/");
    assert_eq!(conn.header("Sensu-AgentName"), "agent-1");
    assert_eq!(conn.header("Sensu-Namespace"), "default");
    assert_eq!(conn.header("Sensu-User"), "agent");
    assert_eq!(conn.header("Sensu-Subscriptions"), "linux");
    assert_eq!(conn.header("Accept"), "application/json");
    assert_eq!(conn.header("Picket-Protocol-Version"), "2");
    let basic = conn.header("Authorization").strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .unwrap();
    assert_eq!(decoded, b"agent:s3cret-pw");

    // The stored config adds a subscription; the first keepalive uses it.
    conn.send(entity_config("agent-1", &["linux", "extra"]))
        .await;
    let ka1 = conn.keepalive().await;
    assert_eq!(ka1.sequence, 1);
    let entity = ka1.entity.as_ref().unwrap();
    assert_eq!(entity.metadata.name, "agent-1");
    assert_eq!(entity.entity_class, "agent");
    assert_eq!(entity.subscriptions(), ["linux", "extra", "entity:agent-1"]);
    assert_eq!(entity.system.os, "linux");
    assert_eq!(
        entity.system.arch,
        agent::facts::goarch(std::env::consts::ARCH, cfg!(target_endian = "little"))
    );
    assert_eq!(
        Some(entity.system.hostname.clone()),
        agent::facts::read_hostname()
    );
    assert!(entity.system.network.interfaces.is_some());
    assert_eq!(entity.sensu_agent_version, env!("CARGO_PKG_VERSION"));
    assert!(ka1.timestamp > 0);
    assert_eq!(entity.last_seen, ka1.timestamp);
    assert!(ka1.id.is_some());
    let check = ka1.check.as_ref().unwrap();
    assert_eq!(check.config.metadata.name, "keepalive");
    assert_eq!(
        (
            check.config.interval,
            check.config.timeout,
            check.config.ttl
        ),
        (1, 5, 0)
    );
    assert_eq!(ka1.pipelines.as_ref().unwrap()[0].name, "ka");

    // The queued event follows (a stalled machine may let another keepalive slip in first).
    let mut last_seq = ka1.sequence;
    loop {
        match conn.frame().await {
            wire::Message::Event(e) => break assert_eq!(e.sequence, 99),
            wire::Message::Keepalive(ka) => {
                assert_eq!(ka.sequence, last_seq + 1);
                last_seq = ka.sequence;
            }
            other => panic!("expected the queued event, got {other:?}"),
        }
    }

    // A check request runs; its result comes back as an event and the session goes on.
    conn.send(wire::Message::CheckRequest(Box::new(CheckRequest {
        config: Some(CheckConfig {
            metadata: ObjectMeta::new("default", "check-cpu"),
            command: "echo cpu-ok".into(),
            interval: 10,
            ..Default::default()
        }),
        issued: 1,
        ..Default::default()
    })))
    .await;
    loop {
        match conn.frame().await {
            wire::Message::Event(e) => {
                let check = e.check.unwrap();
                assert_eq!(check.config.metadata.name, "check-cpu");
                assert_eq!(check.output, "cpu-ok\n");
                break;
            }
            wire::Message::Keepalive(ka) => {
                assert_eq!(ka.sequence, last_seq + 1);
                last_seq = ka.sequence;
            }
            other => panic!("expected the check result, got {other:?}"),
        }
    }
    let ka2 = conn.keepalive().await;
    assert_eq!(ka2.sequence, last_seq + 1);
    assert_ne!(ka2.id, ka1.id);

    // The backend closes; the agent comes back with the adopted subscriptions, and the
    // sequence starts again at 1.
    conn.ws.close(None).await.unwrap();
    drop(conn);
    let mut conn = backend.accept().await;
    assert_eq!(conn.header("Sensu-Subscriptions"), "linux,extra");
    conn.send(entity_config(ENTITY_CONFIG_NOT_FOUND, &[])).await;
    let ka = conn.keepalive().await;
    assert_eq!(ka.sequence, 1);
    assert_eq!(
        ka.entity.unwrap().subscriptions(),
        ["linux", "extra", "entity:agent-1"]
    );

    stop(&mut conn, token, handle).await;
}

#[tokio::test]
async fn malformed_frames_close_with_the_frame_error_code() {
    let backend = Backend::start().await;
    let (token, handle) = spawn(Agent::new(config(&backend, "agent-2", &[])).unwrap());

    // Unknown message type: 1003.
    let mut conn = backend.accept().await;
    conn.send_raw(b"surprise\n{}".to_vec()).await;
    assert_eq!(
        conn.closed_by_agent().await.code,
        CloseCode::from(wire::CLOSE_UNSUPPORTED_DATA)
    );

    // Undecodable payload: 1002; the agent reconnected in between.
    let mut conn = backend.accept().await;
    conn.send_raw(b"entity_config\n{not json".to_vec()).await;
    assert_eq!(
        conn.closed_by_agent().await.code,
        CloseCode::from(wire::CLOSE_PROTOCOL_ERROR)
    );

    // And it keeps working afterwards.
    let mut conn = backend.accept().await;
    conn.send(entity_config("agent-2", &["linux"])).await;
    assert_eq!(conn.keepalive().await.sequence, 1);
    stop(&mut conn, token, handle).await;
}

#[tokio::test]
async fn http_rejections_are_retried() {
    let backend = Backend::start().await;
    let (token, handle) = spawn(Agent::new(config(&backend, "agent-3", &[])).unwrap());

    let headers = backend.reject(401, "bad credentials").await;
    assert_eq!(headers["Sensu-AgentName"], "agent-3");
    backend
        .reject(404, r#"{"message":"namespace \"default\" not found"}"#)
        .await;
    backend.reject(429, "slow down").await;
    let mut conn = backend.accept().await;
    conn.send(entity_config("agent-3", &["linux"])).await;
    assert_eq!(conn.keepalive().await.sequence, 1);
    stop(&mut conn, token, handle).await;
}

#[tokio::test]
async fn silent_backend_is_dropped_after_the_heartbeat_timeout() {
    let backend = Backend::start().await;
    let cfg = config(
        &backend,
        "agent-4",
        &[
            "--backend-heartbeat-interval",
            "1",
            "--backend-heartbeat-timeout",
            "2",
        ],
    );
    let (token, handle) = spawn(Agent::new(cfg).unwrap());

    // Send the config, then never read again: no pong ever reaches the agent.
    let mut silent = backend.accept().await;
    silent.send(entity_config("agent-4", &["linux"])).await;
    let dropped_at = Instant::now();
    let mut conn = backend.accept().await;
    assert!(
        dropped_at.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        dropped_at.elapsed()
    );
    drop(silent);
    conn.send(entity_config("agent-4", &["linux"])).await;
    assert_eq!(conn.keepalive().await.sequence, 1);
    stop(&mut conn, token, handle).await;
}

#[tokio::test]
async fn several_agents_in_one_process() {
    let backend = Backend::start().await;
    let (t1, h1) = spawn(Agent::new(config(&backend, "multi-a", &[])).unwrap());
    let (t2, h2) = spawn(Agent::new(config(&backend, "multi-b", &[])).unwrap());
    let mut c1 = backend.accept().await;
    let mut c2 = backend.accept().await;
    let mut names = [
        c1.header("Sensu-AgentName").to_string(),
        c2.header("Sensu-AgentName").to_string(),
    ];
    names.sort();
    assert_eq!(names, ["multi-a", "multi-b"]);
    for c in [&mut c1, &mut c2] {
        let name = c.header("Sensu-AgentName").to_string();
        c.send(entity_config(&name, &["linux"])).await;
        let ka = c.keepalive().await;
        assert_eq!(ka.entity.unwrap().metadata.name, name);
    }
    // Which token belongs to which connection depends on accept order; stop both, then
    // check both connections said goodbye.
    t1.cancel();
    t2.cancel();
    for c in [&mut c1, &mut c2] {
        assert_eq!(c.closed_by_agent().await.code, CloseCode::Away);
    }
    timeout(STEP, h1).await.unwrap().unwrap();
    timeout(STEP, h2).await.unwrap().unwrap();
}
