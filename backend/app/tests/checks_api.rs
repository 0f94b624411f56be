//! The checks and hooks REST API (sensu-compat 6.2), in-process on an in-memory store: CRUD,
//! merge-patch with preconditions, pagination, namespaces, validation errors, check_hooks.

mod common;

use common::{ADMIN, Reply, start};
use serde_json::{Value, json};

/// One API call as admin, with extra headers (the content type defaults to JSON).
async fn call(method: &str, url: String, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
    let body = body.map(|v| v.to_string());
    common::request(method, &url, Some(ADMIN), body.as_deref(), headers).await
}

fn check(ns: &str, name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"team": "ops"}},
        "command": "check-cpu.sh -w 75",
        "interval": 30,
        "publish": true,
        "subscriptions": ["linux"],
        "handlers": ["slack"],
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lifecycle_create_get_replace_patch_delete() {
    let tb = start().await;
    let coll = format!("{}/namespaces/default/checks", tb.v2);
    let one = format!("{coll}/cpu");

    let r = call("POST", coll.clone(), Some(check("default", "cpu")), &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.is_empty(), "POST answers with no body");
    call("POST", coll.clone(), Some(check("default", "cpu")), &[])
        .await
        .assert_error(409, 3, "already exists");

    let r = call("GET", one.clone(), None, &[]).await;
    assert_eq!(r.status, 200);
    let etag = r.header("ETag").expect("an ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let c = r.json();
    assert_eq!(c["command"], "check-cpu.sh -w 75");
    assert_eq!(c["metadata"]["created_by"], "admin");
    assert_eq!(c["metadata"]["labels"]["team"], "ops");
    assert_eq!(c["handlers"], json!(["slack"]));

    // PUT replaces the whole definition.
    let r = call(
        "PUT",
        one.clone(),
        Some(with(
            check("default", "cpu"),
            json!({"interval": 60, "handlers": []}),
        )),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call("GET", one.clone(), None, &[]).await;
    assert_eq!(r.json()["interval"], 60);
    assert_eq!(r.json()["handlers"], json!([]));
    assert_ne!(
        r.header("ETag"),
        Some(etag.as_str()),
        "a new version, a new ETag"
    );
    let etag = r.header("ETag").unwrap().to_string();

    // PATCH: merge patch with a matching If-Match.
    let merge = [("Content-Type", "application/merge-patch+json")];
    let r = call(
        "PATCH",
        one.clone(),
        Some(json!({"command": "check-cpu.sh -w 90", "metadata": {"labels": {"team": null, "tier": "1"}}})),
        &[merge[0], ("If-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let patched = r.json();
    assert_eq!(patched["command"], "check-cpu.sh -w 90");
    assert_eq!(patched["interval"], 60, "untouched fields stay");
    assert_eq!(patched["metadata"]["labels"], json!({"tier": "1"}));
    let new_etag = r.header("ETag").expect("ETag of the result").to_string();
    assert_eq!(
        call("GET", one.clone(), None, &[]).await.json(),
        patched,
        "stored as answered"
    );

    // The old ETag no longer matches: 412, nothing changes.
    call(
        "PATCH",
        one.clone(),
        Some(json!({"interval": 5})),
        &[merge[0], ("If-Match", &etag)],
    )
    .await
    .assert_error(412, 7, "If-Match");
    call(
        "PATCH",
        one.clone(),
        Some(json!({"interval": 5})),
        &[merge[0], ("If-None-Match", &new_etag)],
    )
    .await
    .assert_error(412, 7, "If-None-Match");
    // Other content types are refused; a patch that breaks validation is 400.
    let r = call("PATCH", one.clone(), Some(json!({"interval": 5})), &[]).await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(r.json()["code"], 1);
    call(
        "PATCH",
        one.clone(),
        Some(json!({"cron": "* * * * *"})),
        &[merge[0]],
    )
    .await
    .assert_error(400, 1, "cron");
    call(
        "PATCH",
        one.clone(),
        Some(json!({"metadata": {"name": "renamed"}})),
        &[merge[0]],
    )
    .await
    .assert_error(400, 1, "metadata.name");
    assert_eq!(
        call("GET", one.clone(), None, &[]).await.json()["interval"],
        60
    );

    let r = call("DELETE", one.clone(), None, &[]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    call("DELETE", one.clone(), None, &[])
        .await
        .assert_error(404, 2, "not found");
    call("GET", one.clone(), None, &[])
        .await
        .assert_error(404, 2, "not found");
    call("PATCH", one, Some(json!({"interval": 5})), &merge)
        .await
        .assert_error(404, 2, "not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_and_span_namespaces() {
    let tb = start().await;
    let r = call(
        "POST",
        format!("{}/namespaces", tb.v2),
        Some(json!({"name": "prod"})),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for i in 0..5 {
        let r = call(
            "POST",
            format!("{}/namespaces/default/checks", tb.v2),
            Some(check("default", &format!("c{i}"))),
            &[],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for name in ["p0", "p1"] {
        let r = call(
            "PUT",
            format!("{}/namespaces/prod/checks/{name}", tb.v2),
            Some(check("prod", name)),
            &[],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    let mut names = Vec::new();
    let mut url = format!("{}/namespaces/default/checks?limit=2", tb.v2);
    let mut pages = 0;
    loop {
        let r = call("GET", url.clone(), None, &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        let items = r.json();
        assert!(items.as_array().unwrap().len() <= 2);
        names.extend(
            items
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match r.header("Sensu-Continue") {
            Some(token) => {
                url = format!(
                    "{}/namespaces/default/checks?limit=2&continue={token}",
                    tb.v2
                )
            }
            None => break,
        }
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(pages, 3);

    let all = call("GET", format!("{}/checks", tb.v2), None, &[]).await;
    assert_eq!(all.status, 200);
    let namespaces: Vec<String> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(namespaces.len(), 7);
    assert_eq!(namespaces.iter().filter(|n| *n == "prod").count(), 2);

    call(
        "GET",
        format!("{}/namespaces/nowhere/checks", tb.v2),
        None,
        &[],
    )
    .await
    .assert_error(404, 2, "nowhere");
    call(
        "POST",
        format!("{}/namespaces/nowhere/checks", tb.v2),
        Some(check("nowhere", "x")),
        &[],
    )
    .await
    .assert_error(404, 2, "nowhere");
    call(
        "PUT",
        format!("{}/namespaces/nowhere/checks/x", tb.v2),
        Some(check("nowhere", "x")),
        &[],
    )
    .await
    .assert_error(404, 2, "nowhere");
    call(
        "GET",
        format!("{}/namespaces/default/checks?continue=%21%21", tb.v2),
        None,
        &[],
    )
    .await
    .assert_error(400, 1, "continue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_definitions_are_refused_naming_the_field() {
    let tb = start().await;
    let coll = format!("{}/namespaces/default/checks", tb.v2);
    for (body, says) in [
        (
            with(check("default", "c"), json!({"cron": "*/5 * * * *"})),
            "cron",
        ),
        (
            with(check("default", "c"), json!({"interval": 0})),
            "interval",
        ),
        (check("default", "bad name!"), "metadata.name"),
        (with(check("default", "c"), json!({"ttl": 30})), "ttl"),
        (
            with(
                check("default", "c"),
                json!({"check_hooks": [{"sometimes": ["h"]}]}),
            ),
            "check_hooks[0].type",
        ),
        (
            with(
                check("default", "c"),
                json!({"interval": 0, "cron": "CRON_TZ=Nowhere/Special 0 * * * *"}),
            ),
            "cron",
        ),
        (
            with(check("default", "c"), json!({"subscriptions": [""]})),
            "subscriptions[0]",
        ),
        // URL and body disagree (an empty namespace counts).
        (check("prod", "c"), "metadata.namespace"),
        (check("", "c"), "metadata.namespace"),
    ] {
        call("POST", coll.clone(), Some(body.clone()), &[])
            .await
            .assert_error(400, 1, says);
    }
    // PUT: the name must match the URL too.
    call(
        "PUT",
        format!("{coll}/other"),
        Some(check("default", "c")),
        &[],
    )
    .await
    .assert_error(400, 1, "metadata.name");
    call("PUT", format!("{coll}/c"), Some(check("default", "")), &[])
        .await
        .assert_error(400, 1, "metadata.name");
    // Not even JSON of the right shape.
    call(
        "POST",
        coll.clone(),
        Some(json!({"metadata": {"name": "c", "namespace": "default"}, "interval": "often"})),
        &[],
    )
    .await
    .assert_error(400, 1, "");
    // Nothing was stored.
    assert_eq!(call("GET", coll, None, &[]).await.json(), json!([]));

    // Hooks validate too: a timeout is required.
    call(
        "POST",
        format!("{}/namespaces/default/hooks", tb.v2),
        Some(json!({"metadata": {"name": "h", "namespace": "default"}, "command": "ps"})),
        &[],
    )
    .await
    .assert_error(400, 1, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_crud_and_editing_a_checks_hooks() {
    let tb = start().await;
    let hooks = format!("{}/namespaces/default/hooks", tb.v2);
    let hook = json!({"metadata": {"name": "ps", "namespace": "default"}, "command": "ps aux", "timeout": 10});
    let r = call("POST", hooks.clone(), Some(hook.clone()), &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    call("POST", hooks.clone(), Some(hook), &[])
        .await
        .assert_error(409, 3, "already exists");
    let r = call("GET", format!("{hooks}/ps"), None, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("ETag").is_some());
    assert_eq!(r.json()["timeout"], 10);
    assert_eq!(r.json()["metadata"]["created_by"], "admin");
    let r = call(
        "PATCH",
        format!("{hooks}/ps"),
        Some(json!({"timeout": 20})),
        &[("Content-Type", "application/merge-patch+json")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["timeout"], 20);
    let all = call("GET", format!("{}/hooks", tb.v2), None, &[]).await;
    assert_eq!(all.json().as_array().unwrap().len(), 1);

    // check_hooks editing.
    let checks = format!("{}/namespaces/default/checks", tb.v2);
    let r = call("POST", checks.clone(), Some(check("default", "cpu")), &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        "PUT",
        format!("{checks}/cpu/hooks/critical"),
        Some(json!({"critical": ["ps"]})),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        "PUT",
        format!("{checks}/cpu/hooks/critical"),
        Some(json!({"critical": ["ps", "df"]})),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = call("GET", format!("{checks}/cpu"), None, &[]).await.json();
    assert_eq!(c["check_hooks"], json!([{"critical": ["ps", "df"]}]));
    call(
        "PUT",
        format!("{checks}/cpu/hooks/critical"),
        Some(json!({"warning": ["ps"]})),
        &[],
    )
    .await
    .assert_error(400, 1, "does not match");
    let r = call(
        "DELETE",
        format!("{checks}/cpu/hooks/critical/hook/ps"),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    call(
        "DELETE",
        format!("{checks}/cpu/hooks/critical/hook/ps"),
        None,
        &[],
    )
    .await
    .assert_error(404, 2, "ps");
    let c = call("GET", format!("{checks}/cpu"), None, &[]).await.json();
    assert_eq!(c["check_hooks"], json!([{"critical": ["df"]}]));

    let r = call("DELETE", format!("{hooks}/ps"), None, &[]).await;
    assert_eq!(r.status, 204);
    call("GET", format!("{hooks}/ps"), None, &[])
        .await
        .assert_error(404, 2, "not found");
}
