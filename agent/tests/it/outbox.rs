//! The durable outbox through the running agent: events posted while no backend is reachable
//! are delivered once one is, in order and none lost, also across an agent restart on the
//! same cache directory.

use agent::Agent;

use crate::backend::Backend;
use crate::support::{
    api_config, cache_dir, http, next_event, open_session, spawn, stop, wait_health,
};

fn event(name: &str) -> String {
    format!(r#"{{"check": {{"metadata": {{"name": "{name}"}}, "output": "queued"}}}}"#)
}

async fn post(api: std::net::SocketAddr, name: &str) {
    let r = http(api, "POST", "/events", Some(&event(name))).await;
    assert_eq!(r.status, 202, "{name}: {r:?}");
}

#[tokio::test]
async fn events_wait_for_the_backend_and_survive_a_restart() {
    let cache = cache_dir();

    // First run: two events before any session, delivered once the backend answers.
    let backend = Backend::start().await;
    let agent = Agent::new(api_config(&backend.url(), "durable", &cache, &[])).unwrap();
    let api = agent.api_addr().unwrap();
    let (token, handle) = spawn(agent);
    post(api, "e1").await;
    post(api, "e2").await;
    let mut conn = backend.accept().await;
    open_session(&mut conn, "durable").await;
    assert_eq!(next_event(&mut conn).await.check_name(), "e1");
    assert_eq!(next_event(&mut conn).await.check_name(), "e2");

    // The backend goes away; what is posted meanwhile waits, and the agent stops with it.
    conn.ws.close(None).await.unwrap();
    drop(conn);
    wait_health(api, 503).await;
    for name in ["e3", "e4", "e5"] {
        post(api, name).await;
    }
    stop(token, handle).await;

    // Second run on the same cache dir, against another backend: the queue is still there;
    // a new event goes after it.
    let backend = Backend::start().await;
    let agent = Agent::new(api_config(&backend.url(), "durable", &cache, &[])).unwrap();
    assert_eq!(agent.outbox().len(), 3);
    let api = agent.api_addr().unwrap();
    let (token, handle) = spawn(agent);
    post(api, "e6").await;
    let mut conn = backend.accept().await;
    open_session(&mut conn, "durable").await;
    let mut ids = Vec::new();
    for name in ["e3", "e4", "e5", "e6"] {
        let e = next_event(&mut conn).await;
        assert_eq!(e.check_name(), name);
        ids.push(e.id.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every event has its own id");
    stop(token, handle).await;

    // Everything was delivered: a third run has nothing to send.
    let backend = Backend::start().await;
    let agent = Agent::new(api_config(&backend.url(), "durable", &cache, &[])).unwrap();
    assert!(agent.outbox().is_empty());
}

#[tokio::test]
async fn one_agent_per_cache_dir() {
    let cache = cache_dir();
    let backend = Backend::start().await;
    let first = Agent::new(api_config(&backend.url(), "lock-a", &cache, &[])).unwrap();
    let second = Agent::new(api_config(&backend.url(), "lock-b", &cache, &[]));
    let err = second.unwrap_err().to_string();
    assert!(err.contains("in use by another agent"), "{err}");
    drop(first);
    Agent::new(api_config(&backend.url(), "lock-b", &cache, &[])).unwrap();
}

/// With a backend that acknowledges (protocol version 2), an event leaves the outbox only
/// when acknowledged: one written to a session that breaks before the ack is sent again on
/// the next session, and the next event waits for the ack of the one before.
#[tokio::test]
async fn events_stay_queued_until_the_backend_acknowledges_them() {
    let cache = cache_dir();
    let backend = Backend::start().await;
    let agent = Agent::new(api_config(&backend.url(), "acked", &cache, &[])).unwrap();
    let api = agent.api_addr().unwrap();
    let outbox = agent.outbox();
    let (token, handle) = spawn(agent);
    post(api, "a1").await;
    post(api, "a2").await;

    let mut conn = backend.accept_version(2).await;
    open_session(&mut conn, "acked").await;
    let first = next_event(&mut conn).await;
    assert_eq!(first.check_name(), "a1");
    // No ack: the session breaks; a1 is still queued, a2 was never sent.
    conn.ws.close(None).await.unwrap();
    drop(conn);
    assert_eq!(outbox.len(), 2);

    let mut conn = backend.accept_version(2).await;
    open_session(&mut conn, "acked").await;
    let again = next_event(&mut conn).await;
    assert_eq!(again.id, first.id, "the same event, sent again");
    conn.send(proto_spec::wire::Message::EventAck(Box::new(
        proto_spec::wire::EventAck {
            id: again.id.unwrap(),
        },
    )))
    .await;
    let second = next_event(&mut conn).await;
    assert_eq!(second.check_name(), "a2");
    conn.send(proto_spec::wire::Message::EventAck(Box::new(
        proto_spec::wire::EventAck {
            id: second.id.unwrap(),
        },
    )))
    .await;
    crate::support::eventually_empty(&outbox).await;
    stop(token, handle).await;
}
