//! Event acknowledgements (protocol version 2): the backend acknowledges an agent's event
//! only once it is stored, recognises a resent event by its id, and never acknowledges a
//! version-1 peer (which does not expect it).

mod common;

use std::time::Duration;

use common::{ADMIN, TestBackend, http, start};
use futures_util::{SinkExt, StreamExt};
use proto_spec::ObjectMeta;
use proto_spec::v2::{Check, CheckConfig, Entity, Event};
use proto_spec::wire::{self, Message};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const AGENT: (&str, &str) = ("agent", "P@ssw0rd!");

async fn session(tb: &TestBackend, name: &str, version: &str) -> common::Ws {
    let mut req = tb.agent_url.as_str().into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(wire::HEADER_AGENT_NAME, name.parse().unwrap());
    h.insert(wire::HEADER_NAMESPACE, "default".parse().unwrap());
    h.insert(wire::HEADER_USER, AGENT.0.parse().unwrap());
    h.insert(wire::HEADER_SUBSCRIPTIONS, "linux".parse().unwrap());
    h.insert(wire::HEADER_PROTOCOL_VERSION, version.parse().unwrap());
    h.insert(
        "Authorization",
        common::basic(AGENT.0, AGENT.1).parse().unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()[wire::HEADER_PROTOCOL_VERSION],
        wire::PROTOCOL_VERSION.to_string()
    );
    ws
}

fn result(agent: &str, executed: i64) -> Event {
    let mut check = Check::from_config(CheckConfig {
        metadata: ObjectMeta::new("default", "disk"),
        command: "true".into(),
        interval: 60,
        ..Default::default()
    });
    check.executed = executed;
    check.status = 0;
    check.output = "ok".into();
    Event {
        timestamp: executed,
        entity: Some(Entity {
            entity_class: "agent".into(),
            metadata: ObjectMeta::new("default", agent),
            ..Default::default()
        }),
        check: Some(check),
        id: Some(uuid::Uuid::new_v4()),
        ..Default::default()
    }
}

/// The next `event_ack` on the session, skipping everything else; None after `wait`.
async fn next_ack(ws: &mut common::Ws, wait: Duration) -> Option<uuid::Uuid> {
    tokio::time::timeout(wait, async {
        loop {
            let frame = ws.next().await?.ok()?;
            if let WsMessage::Binary(data) = frame
                && let Ok(Message::EventAck(ack)) = wire::decode(&data)
            {
                return Some(ack.id);
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn history_len(tb: &TestBackend, agent: &str) -> usize {
    let r = http(
        "GET",
        &format!("{}/namespaces/default/events/{agent}/disk", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["check"]["history"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_event_is_acknowledged_and_a_resent_one_is_not_stored_twice() {
    let tb = start().await;
    let mut ws = session(&tb, "acked-1", "2").await;
    let event = result("acked-1", 1_764_000_000);
    let id = event.id.unwrap();
    let frame = wire::encode(&Message::Event(Box::new(event)));
    ws.send(WsMessage::Binary(frame.clone().into()))
        .await
        .unwrap();
    assert_eq!(next_ack(&mut ws, Duration::from_secs(10)).await, Some(id));
    // Acknowledged means stored: the API has it at once.
    assert_eq!(history_len(&tb, "acked-1").await, 1);

    // The agent never saw the ack (say) and sends the same event again, on a new session.
    drop(ws);
    let mut ws = session(&tb, "acked-1", "2").await;
    ws.send(WsMessage::Binary(frame.into())).await.unwrap();
    assert_eq!(next_ack(&mut ws, Duration::from_secs(10)).await, Some(id));
    assert_eq!(history_len(&tb, "acked-1").await, 1, "not stored twice");

    // A new result is a new event.
    let next = result("acked-1", 1_764_000_060);
    let next_id = next.id.unwrap();
    ws.send(WsMessage::Binary(
        wire::encode(&Message::Event(Box::new(next))).into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_ack(&mut ws, Duration::from_secs(10)).await,
        Some(next_id)
    );
    assert_eq!(history_len(&tb, "acked-1").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_peer_gets_no_acknowledgements() {
    let tb = start().await;
    let mut ws = session(&tb, "legacy-1", "1").await;
    ws.send(WsMessage::Binary(
        wire::encode(&Message::Event(Box::new(result("legacy-1", 1_764_000_000)))).into(),
    ))
    .await
    .unwrap();
    // Stored all the same…
    common::eventually("the event stored", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!("{}/namespaces/default/events/legacy-1/disk", tb.v2),
            Some(ADMIN),
            None,
        )
        .await;
        (r.status == 200).then_some(())
    })
    .await;
    // …and nothing the peer would not understand arrives.
    assert_eq!(next_ack(&mut ws, Duration::from_secs(2)).await, None);
}
