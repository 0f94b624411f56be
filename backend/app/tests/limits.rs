//! Input limits: API bodies (`--api-request-limit`, 413 with the JSON error body on every
//! route), subscriptions and labels per entity and check (400 from validation, 400 in the
//! agent handshake, dropped and counted on the agent port), and the stored check output cap.
//! The WebSocket frame limit (1009) is tested in `api_and_sessions.rs`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use proto_spec::validate::{MAX_LABELS, MAX_SUBSCRIPTIONS};
use proto_spec::wire::{self, Message};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn labels(n: usize) -> Value {
    names("k", n)
        .into_iter()
        .map(|k| (k, Value::from("v")))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn metric(tb: &TestBackend, name: &str) -> u64 {
    let r = http("GET", &format!("{}/metrics", tb.api), None, None).await;
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_a_json_413_on_every_route() {
    let tb = start().await;
    let ns = format!("{}/namespaces/default", tb.v2);
    let check = json!({"metadata": {"name": "cpu", "namespace": "default"},
                       "command": "true", "interval": 60});
    let r = http(
        "POST",
        &format!("{ns}/checks"),
        Some(ADMIN),
        Some(&check.to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // 512,000 bytes by default (Sensu's); a body just over it, as JSON, a merge patch and an
    // adhoc request (the last two are read as raw bytes).
    let padding = "x".repeat(512_001);
    let big_json = json!({"metadata": {"name": "cpu", "namespace": "default",
                                       "annotations": {"pad": padding}}})
    .to_string();
    let merge = [("Content-Type", "application/merge-patch+json")];
    for (method, url, headers) in [
        ("POST", format!("{ns}/checks"), &[][..]),
        ("PUT", format!("{ns}/entities/big"), &[][..]),
        ("PATCH", format!("{ns}/checks/cpu"), &merge[..]),
        ("POST", format!("{ns}/checks/cpu/execute"), &[][..]),
        ("POST", format!("{ns}/events"), &[][..]),
    ] {
        let r = request(method, &url, Some(ADMIN), Some(&big_json), headers).await;
        r.assert_error(413, 1, "");
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{method} {url}: {:?}",
            r.headers
        );
    }
    // Nothing was stored.
    let r = http("GET", &format!("{ns}/checks/cpu"), Some(ADMIN), None).await;
    assert!(r.json()["metadata"]["annotations"].is_null(), "{}", r.body);
    let r = http("GET", &format!("{ns}/entities/big"), Some(ADMIN), None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_subscriptions_or_labels_are_refused() {
    let tb = start().await;
    let ns = format!("{}/namespaces/default", tb.v2);
    let check = |subs: usize, labels_n: usize| {
        json!({"metadata": {"name": "many", "namespace": "default", "labels": labels(labels_n)},
               "command": "true", "interval": 60, "subscriptions": names("s", subs)})
        .to_string()
    };
    let r = http(
        "POST",
        &format!("{ns}/checks"),
        Some(ADMIN),
        Some(&check(MAX_SUBSCRIPTIONS + 1, 0)),
    )
    .await;
    r.assert_error(400, 1, "subscriptions");
    let r = http(
        "POST",
        &format!("{ns}/checks"),
        Some(ADMIN),
        Some(&check(0, MAX_LABELS + 1)),
    )
    .await;
    r.assert_error(400, 1, "metadata.labels");
    let r = http(
        "POST",
        &format!("{ns}/checks"),
        Some(ADMIN),
        Some(&check(MAX_SUBSCRIPTIONS, MAX_LABELS)),
    )
    .await;
    assert_eq!(r.status, 201, "at the limits: {}", r.body);

    let entity = |subs: usize, annotations: usize| {
        json!({"entity_class": "proxy", "subscriptions": names("s", subs),
               "metadata": {"name": "switch", "namespace": "default",
                            "annotations": labels(annotations)}})
        .to_string()
    };
    let url = format!("{ns}/entities/switch");
    let r = http(
        "PUT",
        &url,
        Some(ADMIN),
        Some(&entity(MAX_SUBSCRIPTIONS + 1, 0)),
    )
    .await;
    r.assert_error(400, 1, "exceed the limit of 256");
    let r = http("PUT", &url, Some(ADMIN), Some(&entity(0, MAX_LABELS + 1))).await;
    r.assert_error(400, 1, "metadata.annotations");
    // At the limit, and the entity:<name> subscription the backend adds does not count.
    let r = http(
        "PUT",
        &url,
        Some(ADMIN),
        Some(&entity(MAX_SUBSCRIPTIONS, 0)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["subscriptions"].as_array().unwrap().len(),
        MAX_SUBSCRIPTIONS + 1
    );
    let r = http("PUT", &url, Some(ADMIN), Some(&r.body)).await;
    assert_eq!(r.status, 200, "its own answer is accepted back: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_over_the_limits_are_refused_or_dropped() {
    let tb = start().await;
    // Handshake: too many announced subscriptions is a 400 before any session exists.
    let mut req = tb.agent_url.as_str().into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(wire::HEADER_AGENT_NAME, "greedy".parse().unwrap());
    h.insert(wire::HEADER_NAMESPACE, "default".parse().unwrap());
    h.insert(
        wire::HEADER_SUBSCRIPTIONS,
        names("s", MAX_SUBSCRIPTIONS + 1).join(",").parse().unwrap(),
    );
    h.insert(
        "Authorization",
        basic("agent", "P@ssw0rd!").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("Sensu-Subscriptions"), "{body}");
        }
        other => panic!("expected a 400, got {:?}", other.map(|_| ())),
    }

    // Session: a keepalive whose entity carries too many labels is dropped and counted.
    let mut ws = connect(&tb, "labelled", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    let rejected = metric(&tb, "picket_events_rejected_total").await;
    let Ok(Message::Keepalive(mut event)) =
        wire::decode(&keepalive("labelled", "default", 1, 120, 0))
    else {
        panic!("keepalive helper");
    };
    let entity = event.entity.as_mut().unwrap();
    entity.metadata.labels = names("k", MAX_LABELS + 1)
        .into_iter()
        .map(|k| (k, "v".to_string()))
        .collect();
    ws.send(WsMessage::Binary(
        wire::encode(&Message::Keepalive(event)).into(),
    ))
    .await
    .unwrap();
    eventually(
        "the keepalive counted as rejected",
        Duration::from_secs(10),
        || async { (metric(&tb, "picket_events_rejected_total").await > rejected).then_some(()) },
    )
    .await;
    let r = http(
        "GET",
        &format!("{}/namespaces/default/entities/labelled", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        r.status, 404,
        "the oversized entity was registered: {}",
        r.body
    );

    // The same agent within the limits registers.
    ws.send(WsMessage::Binary(
        keepalive("labelled", "default", 2, 120, 0).into(),
    ))
    .await
    .unwrap();
    eventually("the entity", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!("{}/namespaces/default/entities/labelled", tb.v2),
            Some(ADMIN),
            None,
        )
        .await;
        (r.status == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_check_output_is_capped() {
    let tb = start().await;
    let output = "y".repeat(300 * 1024);
    let event = json!({
        "entity": {"metadata": {"name": "batch-host"}},
        "check": {"metadata": {"name": "report"}, "status": 1, "interval": 60, "output": output},
    });
    let url = format!("{}/namespaces/default/events", tb.v2);
    let r = http("POST", &url, Some(ADMIN), Some(&event.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = eventually("the event", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!("{url}/batch-host/report"),
            Some(ADMIN),
            None,
        )
        .await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    let kept = stored["check"]["output"].as_str().unwrap().len();
    assert_eq!(kept, 256 * 1024);
    assert_eq!(
        stored["check"]["metadata"]["labels"]["sensu.io/output_truncated_bytes"],
        (300 * 1024 - 256 * 1024).to_string()
    );
}
