//! The scheduler end to end, in-process: checks created over the REST API reach simulated
//! agents over WebSocket as `check_request` frames. The assertions are about who receives
//! what, never about exact timings: waits are generous for a loaded 2-core machine.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{ADMIN, TestBackend, start};
use futures_util::{SinkExt, StreamExt};
use proto_spec::v2::CheckRequest;
use proto_spec::wire::{self, Message};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const AGENT: (&str, &str) = ("agent", "P@ssw0rd!");
/// Upper bound for anything expected to happen "soon" (a 1 s check firing a few times).
const PATIENCE: Duration = Duration::from_secs(20);

/// One API call as admin; returns status and body.
async fn api(method: &str, url: String, body: Option<serde_json::Value>) -> (u16, String) {
    let body = body.map(|b| b.to_string());
    let r = common::http(method, &url, Some(ADMIN), body.as_deref()).await;
    (r.status, r.body)
}

fn check(name: &str, subscriptions: &[&str], extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "metadata": {"name": name, "namespace": "default"},
        "command": "true",
        "interval": 1,
        "publish": true,
        "subscriptions": subscriptions,
    });
    for (k, v) in extra.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

async fn create_check(tb: &TestBackend, body: serde_json::Value) {
    let (status, text) = api(
        "POST",
        format!("{}/namespaces/default/checks", tb.v2),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "create check: {text}");
}

/// A simulated agent: its session's check requests arrive on `requests`.
struct Agent {
    requests: mpsc::UnboundedReceiver<CheckRequest>,
    sink: futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::Message,
    >,
    reader: tokio::task::JoinHandle<()>,
}

async fn agent(tb: &TestBackend, name: &str, subscriptions: &str) -> Agent {
    let mut req = tb.agent_url.as_str().into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(wire::HEADER_AGENT_NAME, name.parse().unwrap());
    h.insert(wire::HEADER_NAMESPACE, "default".parse().unwrap());
    h.insert(wire::HEADER_USER, AGENT.0.parse().unwrap());
    h.insert(wire::HEADER_SUBSCRIPTIONS, subscriptions.parse().unwrap());
    h.insert(
        "Authorization",
        common::basic(AGENT.0, AGENT.1).parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("agent connects");
    let (sink, mut stream) = ws.split();
    // The backend speaks first (entity_config); the session is on the bus from then on.
    let first = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("entity_config in time")
        .expect("a frame")
        .expect("a frame");
    assert!(matches!(
        wire::decode(&first.into_data()),
        Ok(Message::EntityConfig(_))
    ));
    let (tx, requests) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Ok(Message::CheckRequest(r)) = wire::decode(&frame.into_data())
                && tx.send(*r).is_err()
            {
                return;
            }
        }
    });
    Agent {
        requests,
        sink,
        reader,
    }
}

impl Agent {
    /// Requests received so far for `check` (others are dropped).
    fn drain(&mut self, check: &str) -> Vec<CheckRequest> {
        std::iter::from_fn(|| self.requests.try_recv().ok())
            .filter(|r| name_of(r) == check)
            .collect()
    }

    /// Wait for `n` requests of `check`.
    async fn expect(&mut self, check: &str, n: usize) -> Vec<CheckRequest> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while got.len() < n {
            match tokio::time::timeout_at(deadline, self.requests.recv()).await {
                Ok(Some(r)) if name_of(&r) == check => got.push(r),
                Ok(Some(_)) => {}
                Ok(None) => panic!("session ended while waiting for {check}"),
                Err(_) => panic!("only {} of {n} requests of {check} arrived", got.len()),
            }
        }
        got
    }

    async fn disconnect(mut self) {
        let _ = self.sink.close().await;
        self.reader.abort();
    }
}

fn name_of(r: &CheckRequest) -> &str {
    r.config.as_ref().map_or("", |c| c.metadata.name.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_check_reaches_every_session_of_its_subscription_only() {
    let tb = start().await;
    let mut a1 = agent(&tb, "lin-1", "linux").await;
    let mut a2 = agent(&tb, "lin-2", "linux").await;
    let mut w = agent(&tb, "win-1", "windows").await;
    create_check(&tb, check("cpu", &["linux"], json!({}))).await;
    for a in [&mut a1, &mut a2] {
        let got = a.expect("cpu", 3).await;
        let issued: Vec<i64> = got.iter().map(|r| r.issued).collect();
        assert!(
            issued.windows(2).all(|p| p[0] < p[1]),
            "one request per second, in order: {issued:?}"
        );
        let config = got[0].config.as_ref().unwrap();
        assert_eq!(config.subscriptions, ["linux"]);
        assert_eq!(config.command, "true");
        assert_eq!(config.metadata.created_by, "admin");
    }
    assert!(w.drain("cpu").is_empty(), "another subscription heard it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_subscription_reaches_one_agent_and_cron_schedules_run() {
    let tb = start().await;
    let mut web1 = agent(&tb, "web-1", "linux").await;
    let mut web2 = agent(&tb, "web-2", "linux").await;
    create_check(&tb, check("only-web-2", &["entity:web-2"], json!({}))).await;
    // A cron schedule fires too (`@every` is the only sub-minute cron).
    create_check(
        &tb,
        check(
            "cron-web-1",
            &["entity:web-1"],
            json!({"interval": 0, "cron": "@every 1s"}),
        ),
    )
    .await;
    web2.expect("only-web-2", 2).await;
    web1.expect("cron-web-1", 2).await;
    assert!(web1.drain("only-web-2").is_empty());
    assert!(web2.drain("cron-web-1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_and_subdued_checks_stay_quiet_and_deleted_checks_stop() {
    let tb = start().await;
    let mut a = agent(&tb, "db-1", "linux").await;
    create_check(&tb, check("quiet", &["linux"], json!({"publish": false}))).await;
    create_check(
        &tb,
        check(
            "subdued",
            &["linux"],
            json!({"subdues": [{"begin": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}]}),
        ),
    )
    .await;
    create_check(&tb, check("loud", &["linux"], json!({}))).await;
    a.expect("loud", 3).await;
    assert!(a.drain("quiet").is_empty(), "publish: false was published");
    assert!(
        a.drain("subdued").is_empty(),
        "a subdued check was published"
    );

    let (status, text) = api(
        "DELETE",
        format!("{}/namespaces/default/checks/loud", tb.v2),
        None,
    )
    .await;
    assert_eq!(status, 204, "{text}");
    // The watch applies the deletion within moments; anything in flight arrives meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.drain("loud");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(a.drain("loud").is_empty(), "a deleted check kept running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_interval_restarts_the_schedule() {
    let tb = start().await;
    let mut a = agent(&tb, "app-1", "linux").await;
    create_check(&tb, check("slow", &["linux"], json!({"interval": 86400}))).await;
    let (status, text) = api(
        "PUT",
        format!("{}/namespaces/default/checks/slow", tb.v2),
        Some(check("slow", &["linux"], json!({"interval": 1}))),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let got = a.expect("slow", 2).await;
    assert!(got.iter().all(|r| r.config.as_ref().unwrap().interval == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_gives_each_execution_to_one_agent_and_survives_a_disconnect() {
    let tb = start().await;
    let mut agents = Vec::new();
    for i in 0..3 {
        agents.push(agent(&tb, &format!("db-{i}"), "db").await);
    }
    create_check(&tb, check("rr", &["db"], json!({"round_robin": true}))).await;

    // Collect until six executions have been handed out.
    let mut per_agent: Vec<Vec<i64>> = vec![Vec::new(); 3];
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    while per_agent.iter().map(Vec::len).sum::<usize>() < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "executions stalled: {per_agent:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (i, a) in agents.iter_mut().enumerate() {
            per_agent[i].extend(a.drain("rr").iter().map(|r| r.issued));
        }
    }
    assert_one_each(&per_agent);
    let counts: Vec<usize> = per_agent.iter().map(Vec::len).collect();
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "rotation is even: {counts:?}");
    assert!(*min >= 1, "every agent had a turn: {counts:?}");

    // One agent leaves; its session leaves the bus, and the others carry on.
    agents.remove(0).disconnect().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tb.bus.subscribers("default", "db") != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for a in agents.iter_mut() {
        a.drain("rr");
    }
    let mut per_agent: Vec<Vec<i64>> = vec![Vec::new(); 2];
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    while per_agent.iter().map(Vec::len).sum::<usize>() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "executions stalled: {per_agent:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (i, a) in agents.iter_mut().enumerate() {
            per_agent[i].extend(a.drain("rr").iter().map(|r| r.issued));
        }
    }
    assert_one_each(&per_agent);
    assert!(
        per_agent.iter().all(|p| !p.is_empty()),
        "both remaining agents take turns: {per_agent:?}"
    );
}

/// No execution (identified by its `issued` second) went to two agents.
fn assert_one_each(per_agent: &[Vec<i64>]) {
    let mut seen = HashSet::new();
    for issued in per_agent.iter().flatten() {
        assert!(
            seen.insert(*issued),
            "execution {issued} reached two agents: {per_agent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adhoc_execution_goes_to_the_override_subscriptions_with_hooks() {
    let tb = start().await;
    let mut lin = agent(&tb, "lin-1", "linux").await;
    let mut other = agent(&tb, "other-1", "other").await;
    let (status, text) = api(
        "POST",
        format!("{}/namespaces/default/hooks", tb.v2),
        Some(json!({
            "metadata": {"name": "ps", "namespace": "default"},
            "command": "ps aux",
            "timeout": 10,
        })),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    create_check(
        &tb,
        check(
            "manual",
            &["linux"],
            json!({"publish": false, "interval": 60, "check_hooks": [{"critical": ["ps"]}]}),
        ),
    )
    .await;

    let before = backend_app::timefmt::now_unix();
    let (status, text) = api(
        "POST",
        format!("{}/namespaces/default/checks/manual/execute", tb.v2),
        Some(json!({"check": "manual", "subscriptions": ["other"], "reason": "test", "creator": "admin"})),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    let issued = serde_json::from_str::<serde_json::Value>(&text).unwrap()["issued"]
        .as_i64()
        .expect("issued is a number");
    assert!(issued >= before);

    let got = other.expect("manual", 1).await;
    assert_eq!(got[0].issued, issued);
    let config = got[0].config.as_ref().unwrap();
    assert_eq!(config.subscriptions, ["other"]);
    let hooks = got[0].hooks.as_ref().expect("hooks sent along");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].metadata.name, "ps");
    assert_eq!(hooks[0].command, "ps aux");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        lin.drain("manual").is_empty(),
        "the check's own subscription ran it"
    );

    // Without an override, the check's subscriptions; an unknown check is 404.
    let (status, _) = api(
        "POST",
        format!("{}/namespaces/default/checks/manual/execute", tb.v2),
        Some(json!({"check": "manual"})),
    )
    .await;
    assert_eq!(status, 202);
    lin.expect("manual", 1).await;
    let (status, text) = api(
        "POST",
        format!("{}/namespaces/default/checks/nope/execute", tb.v2),
        Some(json!({"check": "nope"})),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["code"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_requests_run_once_per_matching_entity_with_its_tokens() {
    let tb = start().await;
    for (name, kind) in [
        ("router-1", "router"),
        ("router-2", "router"),
        ("switch-1", "switch"),
    ] {
        let entity = json!({
            "entity_class": "proxy",
            "metadata": {"name": name, "namespace": "default", "labels": {"device_type": kind}},
        });
        let (status, text) = api(
            "POST",
            format!("{}/namespaces/default/entities", tb.v2),
            Some(entity),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    let mut poller = agent(&tb, "poller-1", "pollers").await;

    // Invalid JavaScript is refused when the check is saved, naming the expression.
    let bad = check(
        "bad-proxy",
        &["pollers"],
        json!({"proxy_requests": {"entity_attributes": ["entity.labels.(("]}}),
    );
    let (status, text) = api(
        "POST",
        format!("{}/namespaces/default/checks", tb.v2),
        Some(bad),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("proxy_requests.entity_attributes[0]"),
        "{text}"
    );

    create_check(
        &tb,
        check(
            "ping-routers",
            &["pollers"],
            json!({
                "command": "check-ping -H {{ .name }} -t {{ .labels.timeout | default \"5\" }}",
                "proxy_requests": {"entity_attributes": [
                    "entity.entity_class == 'proxy'",
                    "entity.labels.device_type == 'router'",
                ]},
            }),
        ),
    )
    .await;
    let got = poller.expect("ping-routers", 4).await;
    let mut targets: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let c = r.config.as_ref().unwrap();
            (c.proxy_entity_name.clone(), c.command.clone())
        })
        .collect();
    targets.sort();
    targets.dedup();
    assert_eq!(
        targets,
        [
            (
                "router-1".to_string(),
                "check-ping -H router-1 -t 5".to_string()
            ),
            (
                "router-2".to_string(),
                "check-ping -H router-2 -t 5".to_string()
            ),
        ],
        "each matching entity, never the switch, with tokens substituted per entity"
    );

    // An empty attribute list matches nothing, as in Sensu.
    create_check(
        &tb,
        check(
            "match-nothing",
            &["pollers"],
            json!({"proxy_requests": {"entity_attributes": []}}),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(poller.drain("match-nothing").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_an_entitys_subscriptions_moves_its_session() {
    let tb = start().await;
    let mut a = agent(&tb, "mover", "linux").await;
    create_check(&tb, check("db-check", &["db"], json!({}))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.drain("db-check").is_empty(), "not subscribed to db yet");

    let entity = json!({
        "entity_class": "agent",
        "metadata": {"name": "mover", "namespace": "default"},
        "subscriptions": ["db"],
    });
    let (status, text) = api(
        "PUT",
        format!("{}/namespaces/default/entities/mover", tb.v2),
        Some(entity),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    a.expect("db-check", 2).await;
}
