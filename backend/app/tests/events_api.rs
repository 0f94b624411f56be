//! Results posted through the events API (sensu-compat 2.8), proxy entities, check TTLs
//! (dead man's switches) and entity writes.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn backup_result(status: u32, ttl: i64) -> String {
    json!({
        "entity": {"metadata": {"name": "backup-server"}},
        "check": {
            "metadata": {"name": "nightly-backup"},
            "status": status,
            "output": format!("backup finished with {status}"),
            "ttl": ttl,
        },
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_results_create_proxy_entities_and_keep_history() {
    let tb = start().await;
    let url = format!("{}/api/core/v2/namespaces/default/events", tb.api);
    let r = http("POST", &url, Some(ADMIN), Some(&backup_result(0, 0))).await;
    assert_eq!((r.status, r.body.as_str()), (201, ""));

    let entity = eventually("the proxy entity", Duration::from_secs(10), || async {
        let r = http(
            "GET",
            &format!(
                "{}/api/core/v2/namespaces/default/entities/backup-server",
                tb.api
            ),
            Some(ADMIN),
            None,
        )
        .await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    assert_eq!(entity["entity_class"], "proxy");
    assert_eq!(entity["subscriptions"], json!(["entity:backup-server"]));

    // The same check at its own URL, now failing: history and occurrences follow.
    let at = format!("{url}/backup-server/nightly-backup");
    for _ in 0..2 {
        let r = http("PUT", &at, Some(ADMIN), Some(&backup_result(2, 0))).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let event = eventually("three results", Duration::from_secs(10), || async {
        let e = http("GET", &at, Some(ADMIN), None).await.json();
        (e["check"]["history"].as_array().map(Vec::len) == Some(3)).then_some(e)
    })
    .await;
    assert_eq!(event["check"]["status"], 2);
    assert_eq!(event["check"]["state"], "failing");
    assert_eq!(event["check"]["occurrences"], 2);
    assert_eq!(event["check"]["occurrences_watermark"], 2);
    assert_eq!(event["entity"]["entity_class"], "proxy");
    assert!(
        event["id"].as_str().is_some_and(|id| id.len() == 36),
        "an id is generated"
    );

    // Bad input: names that contradict the URL, no entity, a named event, bad JSON.
    let mismatch = backup_result(0, 0).replace("nightly-backup", "other-check");
    let r = http("PUT", &at, Some(ADMIN), Some(&mismatch)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("check.metadata.name"),
        "{}",
        r.body
    );
    let r = http(
        "POST",
        &url,
        Some(ADMIN),
        Some(r#"{"check": {"metadata": {"name": "x"}}}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http("POST", &url, Some(ADMIN), Some(r#"{"metadata": {"name": "x"}, "entity": {"metadata": {"name": "e"}}, "check": {"metadata": {"name": "c"}}}"#)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http("POST", &url, Some(ADMIN), Some("{\"entity\": ")).await;
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(1)));
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces/nowhere/events", tb.api),
        Some(ADMIN),
        Some(&backup_result(0, 0)),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_check_with_a_ttl_raises_a_warning_that_repeats() {
    let tb = start().await;
    let url = format!("{}/api/core/v2/namespaces/default/events", tb.api);
    // A dead man's switch: the backup must report at least every 5 s.
    let r = http("POST", &url, Some(ADMIN), Some(&backup_result(0, 5))).await;
    assert_eq!(r.status, 201);
    let at = format!("{url}/backup-server/nightly-backup");
    let warning = eventually("the TTL warning", Duration::from_secs(20), || async {
        let e = http("GET", &at, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 1).then_some(e)
    })
    .await;
    assert!(
        warning["check"]["output"]
            .as_str()
            .unwrap()
            .starts_with("Last check execution was "),
        "{warning}"
    );
    assert_eq!(warning["check"]["state"], "failing");
    // It repeats while the check stays silent.
    eventually(
        "a repeated TTL warning",
        Duration::from_secs(20),
        || async {
            let e = http("GET", &at, Some(ADMIN), None).await.json();
            (e["check"]["occurrences"].as_i64() >= Some(2) && e["check"]["status"] == 1)
                .then_some(())
        },
    )
    .await;
    // A fresh report ends it.
    let r = http("PUT", &at, Some(ADMIN), Some(&backup_result(0, 5))).await;
    assert_eq!(r.status, 201);
    let ok = eventually("the recovery", Duration::from_secs(10), || async {
        let e = http("GET", &at, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 0).then_some(e)
    })
    .await;
    assert_eq!(ok["check"]["output"], "backup finished with 0");
    // Deleting the event stops the switch: no warning comes back.
    assert_eq!(http("DELETE", &at, Some(ADMIN), None).await.status, 204);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(http("GET", &at, Some(ADMIN), None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_alerts_are_suppressed_while_the_keepalive_is_failing() {
    let tb = start().await;
    let mut ws = connect(&tb, "app-1", "default", ("agent", "P@ssw0rd!"))
        .await
        .unwrap();
    ws.send(WsMessage::Binary(
        keepalive("app-1", "default", 1, 2, 0).into(),
    ))
    .await
    .unwrap();
    let ka = format!(
        "{}/api/core/v2/namespaces/default/events/app-1/keepalive",
        tb.api
    );
    eventually("registration", Duration::from_secs(10), || async {
        (http("GET", &ka, Some(ADMIN), None).await.status == 200).then_some(())
    })
    .await;
    // The agent's check result carries a 5 s TTL; then the whole agent goes silent.
    let result = json!({
        "entity": {"entity_class": "agent", "metadata": {"name": "app-1"}},
        "check": {"metadata": {"name": "disk"}, "status": 0, "interval": 1, "ttl": 5, "output": "ok"},
    });
    let r = http(
        "POST",
        &format!("{}/api/core/v2/namespaces/default/events", tb.api),
        Some(ADMIN),
        Some(&result.to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    drop(ws);
    eventually("the keepalive failure", Duration::from_secs(15), || async {
        (http("GET", &ka, Some(ADMIN), None).await.json()["check"]["status"] == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let disk = http(
        "GET",
        &format!(
            "{}/api/core/v2/namespaces/default/events/app-1/disk",
            tb.api
        ),
        Some(ADMIN),
        None,
    )
    .await
    .json();
    assert_eq!(
        disk["check"]["status"], 0,
        "the host is already reported silent: no TTL alert on top"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_can_be_created_and_replaced() {
    let tb = start().await;
    let base = format!("{}/api/core/v2/namespaces/default/entities", tb.api);
    let switch = json!({
        "entity_class": "proxy",
        "metadata": {"name": "switch-1", "namespace": "default", "labels": {"api_key": "k", "rack": "r1"}},
        "subscriptions": ["network"],
    });
    let r = http("POST", &base, Some(ADMIN), Some(&switch.to_string())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["metadata"]["labels"]["api_key"], "REDACTED");
    assert_eq!(
        r.json()["subscriptions"],
        json!(["network", "entity:switch-1"])
    );
    let r = http("POST", &base, Some(ADMIN), Some(&switch.to_string())).await;
    assert_eq!((r.status, r.json()["code"].clone()), (409, json!(3)));
    let mut replaced = switch.clone();
    replaced["subscriptions"] = json!(["network", "snmp"]);
    let r = http(
        "PUT",
        &format!("{base}/switch-1"),
        Some(ADMIN),
        Some(&replaced.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = http("GET", &format!("{base}/switch-1"), Some(ADMIN), None)
        .await
        .json();
    assert_eq!(
        got["subscriptions"],
        json!(["network", "snmp", "entity:switch-1"])
    );
    let r = http(
        "PUT",
        &format!("{base}/other-name"),
        Some(ADMIN),
        Some(&replaced.to_string()),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(
        "PUT",
        &format!("{base}/switch-1"),
        Some(ADMIN),
        Some(&json!({"metadata": {"name": "switch-1", "namespace": "default"}}).to_string()),
    )
    .await;
    assert_eq!(r.status, 400, "an entity needs a class: {}", r.body);
    let mut managed = switch.clone();
    managed["metadata"]["name"] = json!("agent-owned");
    managed["metadata"]["labels"] = json!({"sensu.io/managed_by": "sensu-agent"});
    assert_eq!(
        http(
            "PUT",
            &format!("{base}/agent-owned"),
            Some(ADMIN),
            Some(&managed.to_string())
        )
        .await
        .status,
        200
    );
    let r = http(
        "PUT",
        &format!("{base}/agent-owned"),
        Some(ADMIN),
        Some(&managed.to_string()),
    )
    .await;
    assert_eq!(
        r.status, 409,
        "agent-managed entities are changed by their agent only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_events_or_entities_starts_history_afresh() {
    let tb = start().await;
    let url = format!("{}/api/core/v2/namespaces/default/events", tb.api);
    let at = format!("{url}/backup-server/nightly-backup");
    let history_len = |e: &serde_json::Value| e["check"]["history"].as_array().map_or(0, Vec::len);
    for _ in 0..2 {
        assert_eq!(
            http("POST", &url, Some(ADMIN), Some(&backup_result(2, 0)))
                .await
                .status,
            201
        );
    }
    eventually("two results", Duration::from_secs(10), || async {
        let r = http("GET", &at, Some(ADMIN), None).await;
        (r.status == 200 && history_len(&r.json()) == 2).then_some(())
    })
    .await;

    // A deleted event is gone for the state machine too: the next result starts a new history.
    assert_eq!(http("DELETE", &at, Some(ADMIN), None).await.status, 204);
    assert_eq!(
        http("POST", &url, Some(ADMIN), Some(&backup_result(2, 0)))
            .await
            .status,
        201
    );
    let e = eventually("a fresh result", Duration::from_secs(10), || async {
        let r = http("GET", &at, Some(ADMIN), None).await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    assert_eq!(
        (history_len(&e), e["check"]["occurrences"].as_i64()),
        (1, Some(1))
    );

    // Likewise after the entity is deleted.
    let entity = format!(
        "{}/api/core/v2/namespaces/default/entities/backup-server",
        tb.api
    );
    assert_eq!(http("DELETE", &entity, Some(ADMIN), None).await.status, 204);
    assert_eq!(
        http("POST", &url, Some(ADMIN), Some(&backup_result(2, 0)))
            .await
            .status,
        201
    );
    let e = eventually(
        "a result after the entity was deleted",
        Duration::from_secs(10),
        || async {
            let r = http("GET", &at, Some(ADMIN), None).await;
            (r.status == 200).then(|| r.json())
        },
    )
    .await;
    assert_eq!(history_len(&e), 1);
}

/// Resolving through the API (what `picketctl event resolve` and the web UI do) posts the
/// stored event back, its id included, with status 0: a new result, never taken for an agent
/// resending an unacknowledged event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_posted_back_with_its_own_id_is_a_new_result() {
    let tb = start().await;
    let at = format!(
        "{}/api/core/v2/namespaces/default/events/backup-server/nightly-backup",
        tb.api
    );
    let r = http("PUT", &at, Some(ADMIN), Some(&backup_result(2, 0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut stored = eventually("the failing event", Duration::from_secs(10), || async {
        let e = http("GET", &at, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 2).then_some(e)
    })
    .await;
    assert!(stored["id"].is_string(), "{stored}");
    stored["check"]["status"] = json!(0);
    stored["check"]["output"] = json!("Resolved manually by admin");
    let r = http("PUT", &at, Some(ADMIN), Some(&stored.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let resolved = eventually("the resolution", Duration::from_secs(10), || async {
        let e = http("GET", &at, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 0).then_some(e)
    })
    .await;
    assert_eq!(resolved["check"]["output"], "Resolved manually by admin");
    assert_eq!(
        resolved["check"]["history"].as_array().map(Vec::len),
        Some(2)
    );
}
