//! Check execution through the running agent, against the scripted backend of `backend.rs`.
//! Long-running checks wait for a flag file the test creates, so no assertion depends on how
//! fast the machine is.

use std::collections::BTreeMap;
use std::path::Path;

use agent::{Agent, Config};
use proto_spec::ObjectMeta;
use proto_spec::v2::{CheckConfig, CheckRequest, EntityConfig, Event, HookConfig, HookList};
use proto_spec::wire;
use tokio::time::timeout;

use crate::backend::{Backend, Conn, STEP};

pub(crate) fn config(backend: &Backend, name: &str) -> Config {
    crate::support::test_config(
        &backend.url(),
        name,
        &crate::support::cache_dir(),
        &["--subscriptions", "linux"],
    )
}

pub(crate) use crate::support::spawn;

pub(crate) fn entity_config(name: &str, labels: &[(&str, &str)]) -> wire::Message {
    wire::Message::EntityConfig(Box::new(EntityConfig {
        metadata: ObjectMeta {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..ObjectMeta::new("default", name)
        },
        entity_class: "agent".into(),
        subscriptions: Some(vec!["linux".into()]),
        ..Default::default()
    }))
}

pub(crate) fn check_request(name: &str, command: &str, issued: i64) -> CheckRequest {
    CheckRequest {
        config: Some(CheckConfig {
            metadata: ObjectMeta::new("default", name),
            command: command.into(),
            interval: 60,
            timeout: 120,
            subscriptions: vec!["linux".into()],
            ..Default::default()
        }),
        issued,
        ..Default::default()
    }
}

/// A command that runs until `flag` exists.
fn wait_for(flag: &Path, then: &str) -> String {
    format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; {then}",
        flag.display()
    )
}

/// The next `event` frame, counting the keepalives that come before it.
pub(crate) async fn next_event(conn: &mut Conn) -> (Event, usize) {
    let mut keepalives = 0;
    loop {
        match conn.frame().await {
            wire::Message::Event(e) => return (*e, keepalives),
            wire::Message::Keepalive(_) => keepalives += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Run a quick check and wait for its result: every request sent before it has been handled.
async fn sentinel(conn: &mut Conn, issued: i64) {
    conn.send(wire::Message::CheckRequest(Box::new(check_request(
        "sentinel",
        "echo sentinel",
        issued,
    ))))
    .await;
    let (event, _) = next_event(conn).await;
    assert_eq!(event.check_name(), "sentinel", "{event:?}");
}

#[tokio::test]
async fn check_results_come_back_while_keepalives_keep_flowing() {
    let backend = Backend::start().await;
    let (token, handle) = spawn(Agent::new(config(&backend, "agent-c")).unwrap());
    let mut conn = backend.accept().await;
    conn.send(entity_config("agent-c", &[("region", "eu")]))
        .await;
    assert_eq!(conn.keepalive().await.sequence, 1);

    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("release");
    conn.send(wire::Message::CheckRequest(Box::new(check_request(
        "long",
        &wait_for(&flag, "echo long-done"),
        100,
    ))))
    .await;

    // A quick check with tokens and a hook runs beside the long one.
    let mut quick = check_request("quick", "echo {{ .name }} in {{ .labels.region }}", 100);
    let quick_config = quick.config.as_mut().unwrap();
    quick_config.check_hooks = Some(vec![HookList {
        type_: "ok".into(),
        hooks: Some(vec!["say".into()]),
    }]);
    quick.hooks = Some(vec![HookConfig {
        metadata: ObjectMeta::new("default", "say"),
        command: "echo hooked".into(),
        timeout: 10,
        ..Default::default()
    }]);
    conn.send(wire::Message::CheckRequest(Box::new(quick)))
        .await;

    let (event, _) = next_event(&mut conn).await;
    let check = event.check.as_ref().unwrap();
    assert_eq!(check.config.metadata.name, "quick");
    assert_eq!(check.output, "agent-c in eu\n");
    assert_eq!(check.status, 0);
    assert_eq!(
        check.config.command,
        "echo {{ .name }} in {{ .labels.region }}"
    );
    assert_eq!(check.issued, 100);
    assert!(check.executed > 0);
    assert!(check.duration > 0.0);
    assert_eq!(check.processed_by, "agent-c");
    assert_eq!(check.hooks.len(), 1);
    assert_eq!(check.hooks[0].output, "hooked\n");
    assert_eq!(event.entity_name(), "agent-c");
    assert_eq!(event.metadata.namespace, "default");
    assert!(event.id.is_some());
    assert!(event.timestamp > 0);
    assert_eq!(event.sequence, 1);

    // The long check is still running: keepalives go on regardless.
    let mut seen = 0;
    while seen < 3 {
        match conn.frame().await {
            wire::Message::Keepalive(_) => seen += 1,
            other => panic!("the long check cannot have finished: {other:?}"),
        }
    }
    // A duplicate and a request for the running check change nothing. The agent decides
    // about requests in the order they come: once the sentinel's result is back, both were
    // turned down while "long" was certainly still running.
    conn.send(wire::Message::CheckRequest(Box::new(check_request(
        "long", "echo dup", 100,
    ))))
    .await;
    conn.send(wire::Message::CheckRequest(Box::new(check_request(
        "long",
        "echo newer",
        101,
    ))))
    .await;
    sentinel(&mut conn, 1).await;
    std::fs::write(&flag, b"").unwrap();
    let (event, _) = next_event(&mut conn).await;
    let check = event.check.unwrap();
    assert_eq!(check.config.metadata.name, "long");
    assert_eq!(check.output, "long-done\n");

    // Once it finished, a newer request runs again.
    conn.send(wire::Message::CheckRequest(Box::new(check_request(
        "long",
        "echo again",
        102,
    ))))
    .await;
    let (event, _) = next_event(&mut conn).await;
    assert_eq!(event.check.unwrap().output, "again\n");

    token.cancel();
    conn.closed_by_agent().await;
    timeout(STEP, handle).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_result_finished_while_disconnected_is_sent_after_reconnecting() {
    let backend = Backend::start().await;
    let (token, handle) = spawn(Agent::new(config(&backend, "agent-d")).unwrap());
    let mut conn = backend.accept().await;
    conn.send(entity_config("agent-d", &[])).await;
    conn.keepalive().await;

    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("release");
    conn.send(wire::Message::CheckRequest(Box::new(check_request(
        "outlived",
        &wait_for(&flag, "echo survived"),
        7,
    ))))
    .await;
    // Once the sentinel's result is back the request has certainly been read; then drop the
    // session.
    sentinel(&mut conn, 1).await;
    conn.ws.close(None).await.unwrap();
    drop(conn);

    // The check finishes while the agent is between sessions or reconnecting.
    let mut conn = backend.accept().await;
    std::fs::write(&flag, b"").unwrap();
    conn.send(entity_config("agent-d", &[])).await;
    let (event, _) = next_event(&mut conn).await;
    let check = event.check.unwrap();
    assert_eq!(check.config.metadata.name, "outlived");
    assert_eq!(check.output, "survived\n");

    token.cancel();
    conn.closed_by_agent().await;
    timeout(STEP, handle).await.unwrap().unwrap();
}
