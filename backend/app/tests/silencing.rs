//! Silenced entries: CRUD with Sensu's derivations, lookups, applying them to events,
//! `expire_on_resolve`, and expiry.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn result(status: u32) -> String {
    json!({
        "entity": {"metadata": {"name": "db-1"}},
        "check": {"metadata": {"name": "disk"}, "status": status, "output": format!("disk {status}")},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silencing_marks_events_and_clears_on_resolution() {
    let tb = start().await;
    let silenced = format!("{}/namespaces/default/silenced", tb.v2);
    let events = format!("{}/namespaces/default/events", tb.v2);

    // Bad entries: nothing to silence, or everything.
    let r = http(
        "POST",
        &silenced,
        Some(ADMIN),
        Some(r#"{"metadata": {"namespace": "default"}}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http(
        "POST",
        &silenced,
        Some(ADMIN),
        Some(r#"{"metadata": {"namespace": "default"}, "subscription": "*", "check": "*"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let entry = json!({
        "metadata": {"namespace": "default"},
        "subscription": "entity:db-1",
        "check": "disk",
        "expire_on_resolve": true,
        "reason": "disk replacement",
    });
    let r = http("POST", &silenced, Some(ADMIN), Some(&entry.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let got = http(
        "GET",
        &format!("{silenced}/entity:db-1:disk"),
        Some(ADMIN),
        None,
    )
    .await
    .json();
    assert_eq!(
        got["metadata"]["name"], "entity:db-1:disk",
        "the name is derived"
    );
    assert_eq!(got["expire"], -1, "no expiry reads as -1");
    assert_eq!(got["creator"], ADMIN.0);
    assert!(got["begin"].as_i64().unwrap() > 0, "begin 0 means now");
    let by_sub = http(
        "GET",
        &format!("{silenced}/subscriptions/entity:db-1"),
        Some(ADMIN),
        None,
    )
    .await
    .json();
    assert_eq!(by_sub.as_array().unwrap().len(), 1);
    let by_check = http(
        "GET",
        &format!("{}/silenced/checks/disk", tb.v2),
        Some(ADMIN),
        None,
    )
    .await
    .json();
    assert_eq!(by_check.as_array().unwrap().len(), 1);

    // A failing result is silenced by the entry.
    let event_url = format!("{events}/db-1/disk");
    let silenced_event = eventually("a silenced failure", Duration::from_secs(10), || async {
        assert_eq!(
            http("POST", &events, Some(ADMIN), Some(&result(2)))
                .await
                .status,
            201
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let e = http("GET", &event_url, Some(ADMIN), None).await.json();
        (e["check"]["is_silenced"] == true).then_some(e)
    })
    .await;
    assert_eq!(
        silenced_event["check"]["silenced"],
        json!(["entity:db-1:disk"])
    );

    // The resolution clears the expire_on_resolve entry.
    assert_eq!(
        http("POST", &events, Some(ADMIN), Some(&result(0)))
            .await
            .status,
        201
    );
    let resolved = eventually("the resolution", Duration::from_secs(10), || async {
        let e = http("GET", &event_url, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 0).then_some(e)
    })
    .await;
    assert_eq!(resolved["check"]["is_silenced"], false);
    assert!(resolved["check"].get("silenced").is_none(), "{resolved}");
    assert_eq!(
        http(
            "GET",
            &format!("{silenced}/entity:db-1:disk"),
            Some(ADMIN),
            None
        )
        .await
        .status,
        404
    );

    // A new failure is no longer silenced.
    assert_eq!(
        http("POST", &events, Some(ADMIN), Some(&result(2)))
            .await
            .status,
        201
    );
    let e = eventually("an unsilenced failure", Duration::from_secs(10), || async {
        let e = http("GET", &event_url, Some(ADMIN), None).await.json();
        (e["check"]["status"] == 2).then_some(e)
    })
    .await;
    assert_eq!(e["check"]["is_silenced"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_and_go_away() {
    let tb = start().await;
    let silenced = format!("{}/namespaces/default/silenced", tb.v2);
    let entry = json!({"metadata": {"namespace": "default"}, "check": "disk", "expire": 2});
    let r = http("POST", &silenced, Some(ADMIN), Some(&entry.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let got = http("GET", &format!("{silenced}/*:disk"), Some(ADMIN), None)
        .await
        .json();
    let left = got["expire"].as_i64().unwrap();
    assert!(
        (0..=2).contains(&left),
        "remaining seconds, not the original value: {got}"
    );
    assert!(got["expire_at"].as_i64().unwrap() > got["begin"].as_i64().unwrap());
    eventually(
        "the expired entry deleted",
        Duration::from_secs(20),
        || async {
            (http("GET", &format!("{silenced}/*:disk"), Some(ADMIN), None)
                .await
                .status
                == 404)
                .then_some(())
        },
    )
    .await;
}
