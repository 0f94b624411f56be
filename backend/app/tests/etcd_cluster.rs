//! Several backends on one real etcd (feature `etcd`): what one backend changes, the others
//! act on; liveness alerts fire once for the whole cluster; an etcd outage is a clear 503, and
//! the backends recover with etcd. Agents are simulated over WebSocket, as in the other
//! integration tests; etcd is a real process on loopback ports.

#![cfg(feature = "etcd")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backend_app::init;
use backend_app::repo::Repo;
use backend_store::Store;
use backend_store::etcd::testing::EtcdCluster;
use common::{ADMIN, TestBackend, connect, eventually, http, keepalive, start_shared};
use futures_util::{SinkExt, StreamExt};
use proto_spec::wire::{self, Message};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const AGENT: (&str, &str) = ("agent", "P@ssw0rd!");
const PATIENCE: Duration = Duration::from_secs(30);

/// An initialised etcd and `n` backends on it, each with its own client.
async fn cluster(members: usize, n: usize) -> (EtcdCluster, Vec<TestBackend>) {
    let etcd = EtcdCluster::with_members(members).await.expect("etcd");
    let first: Arc<dyn Store> = etcd.connect().await.expect("etcd client");
    init::initialize(&Repo::new(first.clone()), ADMIN.0, ADMIN.1)
        .await
        .expect("init");
    let mut backends = vec![start_shared(first).await];
    for _ in 1..n {
        let store: Arc<dyn Store> = etcd.connect().await.expect("etcd client");
        backends.push(start_shared(store).await);
    }
    (etcd, backends)
}

async fn api(method: &str, url: String, body: Option<serde_json::Value>) -> (u16, String) {
    let body = body.map(|b| b.to_string());
    let r = http(method, &url, Some(ADMIN), body.as_deref()).await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_backend_changes_the_others_act_on() {
    let (_etcd, b) = cluster(1, 2).await;
    // An agent on backend 1 registers; backend 0 serves its entity.
    let mut ws = connect(&b[1], "shared-1", "default", AGENT).await.unwrap();
    ws.send(WsMessage::Binary(
        keepalive("shared-1", "default", 1, 120, 0).into(),
    ))
    .await
    .unwrap();
    let entity_url = format!("{}/namespaces/default/entities/shared-1", b[0].v2);
    eventually("the entity on the other backend", PATIENCE, || async {
        (http("GET", &entity_url, Some(ADMIN), None).await.status == 200).then_some(())
    })
    .await;

    // A check created through backend 0 is scheduled by backend 1 for its agent.
    let check = json!({
        "metadata": {"name": "via-zero", "namespace": "default"},
        "command": "true", "interval": 1, "publish": true, "subscriptions": ["linux"],
    });
    let (status, body) = api(
        "POST",
        format!("{}/namespaces/default/checks", b[0].v2),
        Some(check),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let request = tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = ws.next().await.expect("session open").expect("frame");
            if let WsMessage::Binary(data) = frame
                && let Ok(Message::CheckRequest(r)) = wire::decode(&data)
            {
                return r;
            }
        }
    })
    .await
    .expect("a check request through the other backend");
    assert_eq!(request.config.unwrap().metadata.name, "via-zero");

    // Deleting the entity through backend 0 ends the agent's entity on backend 1 too.
    let (status, _) = api("DELETE", entity_url.clone(), None).await;
    assert_eq!(status, 204);
    let r = http(
        "GET",
        &format!("{}/namespaces/default/entities/shared-1", b[1].v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "deleted for every backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_raises_one_keepalive_alert_for_the_whole_cluster() {
    let (_etcd, mut b) = cluster(1, 3).await;
    let mut ws = connect(&b[2], "quiet-1", "default", AGENT).await.unwrap();
    // Warning after 3 s (above etcd's 2 s lease floor), then the agent goes silent.
    ws.send(WsMessage::Binary(
        keepalive("quiet-1", "default", 1, 3, 0).into(),
    ))
    .await
    .unwrap();
    // Every backend's processed events: the failure shows on the bus of whichever handled it.
    let mut buses: Vec<_> = b.iter_mut().map(|tb| tb.events.resubscribe()).collect();
    let mut failures: HashMap<usize, usize> = HashMap::new();
    let first = tokio::time::Instant::now();
    let mut first_failure = None;
    // Watch long enough for the first failure and then less than one more timeout.
    while tokio::time::Instant::now() < first + PATIENCE {
        if let Some(at) = first_failure
            && tokio::time::Instant::now() > at + Duration::from_millis(2000)
        {
            break;
        }
        for (i, bus) in buses.iter_mut().enumerate() {
            while let Ok(event) = bus.try_recv() {
                let is_failure = event.entity_name() == "quiet-1"
                    && event.check_name() == "keepalive"
                    && event.check.as_ref().is_some_and(|c| c.status != 0);
                if is_failure {
                    *failures.entry(i).or_default() += 1;
                    first_failure.get_or_insert_with(tokio::time::Instant::now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first_failure.is_some(), "no keepalive failure at all");
    assert_eq!(
        failures.values().sum::<usize>(),
        1,
        "exactly one backend raises the alert: {failures:?}"
    );
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_is_a_clear_503_and_the_backend_recovers() {
    let (mut etcd, b) = cluster(1, 1).await;
    let url = format!("{}/namespaces/default/checks", b[0].v2);
    assert_eq!(api("GET", url.clone(), None).await.0, 200);
    etcd.stop_all();
    let r = http("GET", &url, Some(ADMIN), None).await;
    // Authentication reads users from the store too: either way the answer is a 503 that
    // names the store, with Retry-After, never a crash or a 500.
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("store"), "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("5"));
    let ready = http("GET", &format!("{}/ready", b[0].api), None, None).await;
    assert_eq!(ready.status, 503);

    etcd.restart_all().await.unwrap();
    eventually("the API back with etcd", PATIENCE, || async {
        (http("GET", &url, Some(ADMIN), None).await.status == 200).then_some(())
    })
    .await;
    // And writes work again.
    let check = json!({
        "metadata": {"name": "after-outage", "namespace": "default"},
        "command": "true", "interval": 60, "subscriptions": ["linux"],
    });
    assert_eq!(api("POST", url, Some(check)).await.0, 201);
}

/// A simulated agent on backend `tb`: its check requests (name, issued) arrive on a channel.
async fn agent(
    tb: &TestBackend,
    name: &str,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<(String, i64)>,
    tokio::task::JoinHandle<()>,
) {
    let mut ws = connect(tb, name, "default", AGENT).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            if let WsMessage::Binary(data) = frame
                && let Ok(Message::CheckRequest(r)) = wire::decode(&data)
            {
                let name = r.config.map(|c| c.metadata.name).unwrap_or_default();
                let _ = tx.send((name, r.issued));
            }
        }
    });
    (rx, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_gives_each_execution_to_one_agent_across_backends() {
    let (_etcd, b) = cluster(1, 3).await;
    let mut agents = Vec::new();
    for (i, tb) in b.iter().enumerate() {
        // `connect` subscribes to linux and web.
        agents.push(agent(tb, &format!("ring-{i}")).await);
    }
    let repo = Repo::new(_etcd.connect().await.unwrap());
    eventually("every session in the ring", PATIENCE, || async {
        let n = backend_app::schedulerd::ring::ring_size(&repo, "default", "web")
            .await
            .unwrap();
        (n == 3).then_some(())
    })
    .await;
    let check = json!({
        "metadata": {"name": "rr", "namespace": "default"},
        "command": "true", "interval": 4, "publish": true, "subscriptions": ["web"],
        "round_robin": true,
    });
    let (status, body) = api(
        "POST",
        format!("{}/namespaces/default/checks", b[1].v2),
        Some(check),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Six executions: every backend fires each one, exactly one agent runs it.
    let mut received: Vec<(usize, i64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.len() < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "executions stalled: {received:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (i, (rx, _)) in agents.iter_mut().enumerate() {
            while let Ok((name, issued)) = rx.try_recv() {
                if name == "rr" {
                    received.push((i, issued));
                }
            }
        }
    }
    received.sort_by_key(|(_, issued)| *issued);
    for pair in received.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= 3,
            "one execution reached two agents (or ran twice): {received:?}"
        );
    }
    let mut turns = [0usize; 3];
    for (i, _) in &received {
        turns[*i] += 1;
    }
    assert!(
        turns.iter().all(|t| *t >= 1),
        "every agent, on every backend, takes turns: {received:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adhoc_request_reaches_agents_on_every_backend() {
    let (_etcd, b) = cluster(1, 2).await;
    let (mut on_zero, _r0) = agent(&b[0], "adhoc-0").await;
    let (mut on_one, _r1) = agent(&b[1], "adhoc-1").await;
    let check = json!({
        "metadata": {"name": "once", "namespace": "default"},
        "command": "true", "interval": 3600, "publish": false, "subscriptions": ["linux"],
    });
    let url = format!("{}/namespaces/default/checks", b[0].v2);
    assert_eq!(api("POST", url.clone(), Some(check)).await.0, 201);
    let (status, body) = api(
        "POST",
        format!("{url}/once/execute"),
        Some(json!({"check": "once"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    for rx in [&mut on_zero, &mut on_one] {
        let (name, _) = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("the adhoc request in time")
            .expect("session open");
        assert_eq!(name, "once");
    }
}
