//! The backend in-process on loopback ports with an in-memory store: agent handshakes,
//! keepalives, keepalive failure and recovery, bad frames, and the REST API.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use proto_spec::wire;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_registers_entity_and_serves_it() {
    let mut tb = start().await;
    let mut ws = connect(&tb, "web-1", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    ws.send(WsMessage::Binary(
        keepalive("web-1", "default", 1, 120, 0).into(),
    ))
    .await
    .unwrap();

    let entity = eventually("entity registration", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!("{}/api/core/v2/namespaces/default/entities/web-1", tb.api),
            Some(ADMIN),
            None,
        )
        .await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(entity.header("ETag").is_some_and(|e| e.starts_with('"')));
    let e = entity.json();
    assert_eq!(e["entity_class"], "agent");
    assert_eq!(e["system"]["hostname"], "web-1.example");
    assert_eq!(
        e["subscriptions"],
        serde_json::json!(["linux", "web", "entity:web-1"])
    );

    // The registration event went to the bus; the keepalive event is stored.
    let mut saw_registration = false;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(5), tb.events.recv()).await {
        if ev.check_name() == "registration" {
            saw_registration = true;
            break;
        }
    }
    assert!(
        saw_registration,
        "a registration event is published on first sight"
    );
    let ka = eventually("keepalive event", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!(
                "{}/api/core/v2/namespaces/default/events/web-1/keepalive",
                tb.api
            ),
            Some(ADMIN),
            None,
        )
        .await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    assert_eq!(ka["check"]["status"], 0);
    assert!(
        ka["check"]["output"]
            .as_str()
            .unwrap()
            .starts_with("Keepalive last sent from web-1 at ")
    );
    assert_eq!(ka["check"]["handlers"], serde_json::json!(["keepalive"]));

    // Lists, all-namespaces lists and pagination.
    let mut ws2 = connect(&tb, "web-2", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    ws2.send(WsMessage::Binary(
        keepalive("web-2", "default", 1, 120, 0).into(),
    ))
    .await
    .unwrap();
    eventually("two entities", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!("{}/api/core/v2/entities", tb.api),
            Some(ADMIN),
            None,
        )
        .await;
        (r.json().as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let page1 = http(
        "GET",
        &format!("{}/api/core/v2/namespaces/default/entities?limit=1", tb.api),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(page1.json().as_array().unwrap().len(), 1);
    let token = page1
        .header("Sensu-Continue")
        .expect("continue token")
        .to_string();
    let page2 = http(
        "GET",
        &format!(
            "{}/api/core/v2/namespaces/default/entities?limit=1&continue={token}",
            tb.api
        ),
        Some(ADMIN),
        None,
    )
    .await;
    let names: Vec<String> = [page1.json(), page2.json()]
        .iter()
        .map(|p| p[0]["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);
    assert!(page2.header("Sensu-Continue").is_none());

    // Delete removes the entity and its events (once its keepalive event is stored, so the
    // delete does not race the keepalive still being processed).
    eventually(
        "web-2's keepalive event",
        Duration::from_secs(10),
        || async {
            let r = http(
                "GET",
                &format!(
                    "{}/api/core/v2/namespaces/default/events/web-2/keepalive",
                    tb.api
                ),
                Some(ADMIN),
                None,
            )
            .await;
            (r.status == 200).then_some(())
        },
    )
    .await;
    let del = http(
        "DELETE",
        &format!("{}/api/core/v2/namespaces/default/entities/web-2", tb.api),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(del.status, 204);
    let gone = http(
        "GET",
        &format!("{}/api/core/v2/namespaces/default/events/web-2", tb.api),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(gone.json(), serde_json::json!([]));
    let missing = http(
        "GET",
        &format!("{}/api/core/v2/namespaces/default/entities/web-2", tb.api),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_failure_warns_then_goes_critical_then_recovers() {
    let tb = start().await;
    let mut ws = connect(&tb, "db-1", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    // Warning after 2 s of silence, critical after 4 s.
    ws.send(WsMessage::Binary(
        keepalive("db-1", "default", 1, 2, 4).into(),
    ))
    .await
    .unwrap();
    let url = format!(
        "{}/api/core/v2/namespaces/default/events/db-1/keepalive",
        tb.api
    );
    eventually("first keepalive", Duration::from_secs(10), || async {
        (http("GET", &url, Some(ADMIN), None).await.status == 200).then_some(())
    })
    .await;
    drop(ws); // the agent dies without a word

    let warning = eventually("warning", Duration::from_secs(20), || async {
        let e = http("GET", &url, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 1).then_some(e)
    })
    .await;
    assert!(
        warning["check"]["output"]
            .as_str()
            .unwrap()
            .starts_with("No keepalive sent from db-1 for ")
    );
    let critical = eventually("critical", Duration::from_secs(20), || async {
        let e = http("GET", &url, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 2).then_some(e)
    })
    .await;
    assert!(
        critical["check"]["output"]
            .as_str()
            .unwrap()
            .ends_with("(>= 4)")
    );
    assert_eq!(critical["check"]["state"], "failing");

    let mut ws = connect(&tb, "db-1", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    ws.send(WsMessage::Binary(
        keepalive("db-1", "default", 1, 2, 4).into(),
    ))
    .await
    .unwrap();
    let ok = eventually("recovery", Duration::from_secs(10), || async {
        let e = http("GET", &url, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 0).then_some(e)
    })
    .await;
    let statuses: Vec<u64> = ok["check"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&0));
    assert!(statuses.contains(&1) && statuses.contains(&2));
    assert_eq!(statuses.last(), Some(&0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes_and_frames_are_refused_without_harm() {
    let tb = start().await;
    let mut good = connect(&tb, "good", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();

    let status_of = |e: tokio_tungstenite::tungstenite::Error| match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    let err = connect(&tb, "x", "default", ("agent", "wrong"))
        .await
        .err()
        .unwrap_or_else(|| panic!("handshake should be refused"));
    assert_eq!(status_of(err), 401);
    let err = connect(&tb, "x", "nope", ("agent", "P@ssw0rd!"))
        .await
        .err()
        .unwrap_or_else(|| panic!("handshake should be refused"));
    assert_eq!(status_of(err), 404);
    let err = connect(&tb, "bad name!", "default", ("agent", "P@ssw0rd!"))
        .await
        .err()
        .unwrap_or_else(|| panic!("handshake should be refused"));
    assert_eq!(status_of(err), 400);

    // Malformed frames: each closes its own session with a reason.
    let mut s = connect(&tb, "m1", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    s.send(WsMessage::Binary(b"no separator at all".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(expect_close(&mut s).await, 1002);
    let mut s = connect(&tb, "m2", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    s.send(WsMessage::Binary(b"keepalive\n{not json".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(expect_close(&mut s).await, 1002);
    let mut s = connect(&tb, "m3", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    s.send(WsMessage::Binary(b"teapot\n{}".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(expect_close(&mut s).await, 1003);
    let mut s = connect(&tb, "m4", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    let mut huge = b"event\n".to_vec();
    huge.resize(wire::MAX_FRAME_BYTES + 10, b' ');
    let _ = s.send(WsMessage::Binary(huge.into())).await;
    let code = expect_close(&mut s).await;
    assert_eq!(
        code,
        u16::from(CloseCode::Size),
        "an oversized frame closes with 1009"
    );

    // The well-behaved agent is still served.
    good.send(WsMessage::Binary(
        keepalive("good", "default", 1, 120, 0).into(),
    ))
    .await
    .unwrap();
    eventually("good agent registered", Duration::from_secs(10), || async {
        (http(
            "GET",
            &format!("{}/api/core/v2/namespaces/default/entities/good", tb.api),
            Some(ADMIN),
            None,
        )
        .await
        .status
            == 200)
            .then_some(())
    })
    .await;
    let metrics = http("GET", &format!("{}/metrics", tb.api), None, None)
        .await
        .body;
    assert!(
        metrics.contains("picket_agent_frames_malformed_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("picket_agent_handshake_unauthorized_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("picket_agent_frames_oversized_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("picket_agent_handshake_unknown_namespace_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_use_sensus_body() {
    let tb = start().await;
    let r = http(
        "GET",
        &format!("{}/api/core/v2/namespaces/default/entities", tb.api),
        None,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, serde_json::json!(5))
    );
    let r = http(
        "GET",
        &format!("{}/api/core/v2/namespaces/default/entities", tb.api),
        Some((ADMIN.0, "nope")),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http(
        "GET",
        &format!("{}/api/core/v2/nowhere", tb.api),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (404, serde_json::json!({"message": "not found", "code": 2}))
    );
    let r = http(
        "GET",
        &format!("{}/api/core/v2/namespaces/ghost/entities", tb.api),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("ghost"));
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces", tb.api),
        Some(ADMIN),
        Some("{\"name\": "),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, serde_json::json!(1))
    );
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces", tb.api),
        Some(ADMIN),
        Some("{\"name\": \"bad name\"}"),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces", tb.api),
        Some(ADMIN),
        Some("{\"name\": \"team-a\"}"),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces", tb.api),
        Some(ADMIN),
        Some("{\"name\": \"team-a\"}"),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (409, serde_json::json!(3))
    );
    let r = http(
        "GET",
        &format!(
            "{}/api/core/v2/namespaces/default/entities?limit=many",
            tb.api
        ),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(600_000));
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces", tb.api),
        Some(ADMIN),
        Some(&big),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (413, serde_json::json!(1))
    );
    let r = http("GET", &format!("{}/health", tb.api), None, None).await;
    assert_eq!(r.json()["ClusterHealth"][0]["Healthy"], true);
    let r = http("GET", &format!("{}/version", tb.api), None, None).await;
    assert!(r.json()["sensu_backend"].is_string());
}
