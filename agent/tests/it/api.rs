//! The agent's HTTP API against the scripted backend: posted events reach the backend with
//! Sensu's defaults, bad requests are refused, `/healthz` follows the session, `/version`
//! and `/metrics` answer, a full outbox answers 503, and the events rate limit paces API
//! events.

use std::time::Duration;

use agent::Agent;
use agent::outbox::Limits;
use serde_json::Value;
use tokio::time::Instant;

use crate::backend::{Backend, STEP};
use crate::support::{
    api_config, cache_dir, http, metric, next_event, open_session, raw_http, spawn, stop,
    wait_health,
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn posted_events_reach_the_backend_with_defaults() {
    let backend = Backend::start().await;
    let cache = cache_dir();
    let agent = Agent::new(api_config(&backend.url(), "api-1", &cache, &[])).unwrap();
    let api = agent.api_addr().expect("the API is bound");
    let (token, handle) = spawn(agent);

    // No session yet: the backend has not accepted the connection.
    let health = http(api, "GET", "/healthz", None).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (503, "sensu backend unavailable")
    );
    let version = http(api, "GET", "/version", None).await;
    assert_eq!(version.status, 200);
    assert!(version.headers.contains("content-type: application/json"));
    let v: Value = serde_json::from_str(&version.body).unwrap();
    assert_eq!(v, serde_json::json!({"version": env!("CARGO_PKG_VERSION")}));

    let mut conn = backend.accept().await;
    open_session(&mut conn, "api-1").await;
    wait_health(api, 200).await;
    assert_eq!(http(api, "GET", "/healthz", None).await.body, "ok");

    // The agent's own entity, no timestamps, no namespace: the defaults fill them.
    let before = now();
    let posted = http(
        api,
        "POST",
        "/events",
        Some(r#"{"entity": {"metadata": {"name": "api-1"}}, "check": {"metadata": {"name": "disk"}, "output": "95% full", "status": 2}}"#),
    )
    .await;
    assert_eq!((posted.status, posted.body.as_str()), (202, ""));
    let e = next_event(&mut conn).await;
    assert!(e.id.is_some());
    assert!(e.timestamp >= before && e.timestamp <= now());
    assert_eq!(e.metadata.namespace, "default");
    let entity = e.entity.as_ref().unwrap();
    assert_eq!(entity.metadata.name, "api-1");
    assert_eq!(entity.entity_class, "agent");
    assert_eq!(entity.system.os, "linux");
    let check = e.check.as_ref().unwrap();
    assert_eq!(check.config.metadata.name, "disk");
    assert_eq!(check.config.metadata.namespace, "default");
    assert_eq!((check.status, check.output.as_str()), (2, "95% full"));
    assert_eq!(check.config.interval, 1);
    assert!(check.executed >= before);
    assert_eq!(check.processed_by, "api-1");
    assert_eq!(check.config.proxy_entity_name, "");

    // Another entity's name becomes the proxy entity; the entity stays the agent's. Given
    // values are kept.
    let posted = http(
        api,
        "POST",
        "/events",
        Some(r#"{"timestamp": 1700000000, "entity": {"metadata": {"name": "router-7"}, "entity_class": "proxy"}, "check": {"metadata": {"name": "ping"}, "output": "up", "interval": 30, "executed": 1700000001}}"#),
    )
    .await;
    assert_eq!(posted.status, 202);
    let e = next_event(&mut conn).await;
    assert_eq!(e.timestamp, 1_700_000_000);
    assert_eq!(e.entity.as_ref().unwrap().metadata.name, "api-1");
    let check = e.check.as_ref().unwrap();
    assert_eq!(check.config.proxy_entity_name, "router-7");
    assert_eq!((check.config.interval, check.executed), (30, 1_700_000_001));

    // Metrics alone are an event too.
    let posted = http(
        api,
        "POST",
        "/events",
        Some(r#"{"metrics": {"points": [{"name": "temp", "value": 21.5, "timestamp": 1700000000}]}}"#),
    )
    .await;
    assert_eq!(posted.status, 202);
    let e = next_event(&mut conn).await;
    assert!(e.check.is_none());
    assert_eq!(e.metrics.unwrap().points.unwrap()[0].value, 21.5);

    // Refusals: each a JSON message, nothing queued.
    for (body, status) in [
        ("{", 400),
        ("[]", 400),
        ("{}", 400),
        (r#"{"check": {"metadata": {"name": "bad name"}}}"#, 400),
        (r#"{"check": {"metadata": {"name": "c"}, "ttl": -5}}"#, 400),
        (
            r#"{"check": {"metadata": {"name": "c"}}, "metadata": {"name": "named"}}"#,
            400,
        ),
    ] {
        let r = http(api, "POST", "/events", Some(body)).await;
        assert_eq!(r.status, status, "{body}: {r:?}");
        assert!(
            r.headers.contains("content-type: application/json"),
            "{r:?}"
        );
        let m: Value = serde_json::from_str(&r.body).unwrap();
        assert!(
            m["message"].as_str().is_some_and(|s| !s.is_empty()),
            "{r:?}"
        );
    }
    let too_big = format!(
        r#"{{"check": {{"metadata": {{"name": "c"}}, "output": "{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    assert_eq!(
        http(api, "POST", "/events", Some(&too_big)).await.status,
        413
    );

    // Routes and methods.
    assert_eq!(http(api, "GET", "/nope", None).await.status, 404);
    let wrong = http(api, "GET", "/events", None).await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.headers.contains("allow: post"), "{wrong:?}");
    assert_eq!(http(api, "POST", "/healthz", Some("{}")).await.status, 405);
    assert_eq!(http(api, "DELETE", "/metrics", None).await.status, 405);

    // A chunked body with `Expect: 100-continue`, as curl sends large ones; and two requests
    // on one kept-alive connection.
    let body = r#"{"check": {"metadata": {"name": "chunked"}, "output": "ok"}}"#;
    let request = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let r = raw_http(api, request.as_bytes()).await;
    // The interim 100 comes first; the 202 and the health answer follow on the connection.
    assert_eq!(r.status, 100);
    assert!(r.body.starts_with("HTTP/1.1 202 Accepted\r\n"), "{r:?}");
    assert!(r.body.ends_with("\r\n\r\nok"), "{r:?}");
    assert_eq!(next_event(&mut conn).await.check_name(), "chunked");

    // The counters.
    assert_eq!(metric(api, "picket_agent_connected").await, 1);
    assert_eq!(
        metric(api, r#"picket_agent_api_events_total{result="accepted"}"#).await,
        4
    );
    assert_eq!(
        metric(api, r#"picket_agent_api_events_total{result="invalid"}"#).await,
        7
    );
    assert_eq!(metric(api, "picket_agent_sessions_total").await, 1);
    assert_eq!(metric(api, "picket_agent_outbox_max_events").await, 10_000);
    assert_eq!(metric(api, "picket_agent_statsd_datagrams_total").await, 0);
    assert_eq!(metric(api, "picket_agent_outbox_dropped_total").await, 0);
    // The backend has each event as soon as it is written, a moment before the agent counts
    // it delivered.
    let deadline = Instant::now() + STEP;
    while metric(api, "picket_agent_events_sent_total").await < 4 {
        assert!(
            Instant::now() < deadline,
            "events_sent_total stayed below 4"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(api, "picket_agent_outbox_events").await, 0);
    let metrics = http(api, "GET", "/metrics", None).await;
    assert!(
        metrics
            .headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{:?}",
        metrics.headers
    );
    assert!(
        metrics
            .body
            .contains("# TYPE picket_agent_events_sent_total counter\n")
    );
    for family in [
        "picket_agent_outbox_bytes",
        "picket_agent_reconnects_total",
        "picket_agent_checks_executed_total",
        "picket_agent_checks_failed_to_start_total",
        "picket_agent_statsd_kernel_drops_total",
        "picket_agent_statsd_bad_lines_total",
        "picket_agent_socket_events_total",
    ] {
        assert!(metrics.body.contains(family), "{family} missing");
    }

    // The backend goes away: unhealthy again.
    conn.ws.close(None).await.unwrap();
    drop(conn);
    wait_health(api, 503).await;
    stop(token, handle).await;
}

#[tokio::test]
async fn a_full_outbox_answers_503_until_it_drains() {
    let backend = Backend::start().await;
    let cache = cache_dir();
    let agent = Agent::new(api_config(&backend.url(), "api-full", &cache, &[]))
        .unwrap()
        .with_outbox_limits(Limits {
            max_events: 2,
            ..Limits::default()
        });
    let api = agent.api_addr().unwrap();
    let (token, handle) = spawn(agent);

    let event =
        |name: &str| format!(r#"{{"check": {{"metadata": {{"name": "{name}"}}, "output": "x"}}}}"#);
    for name in ["full-1", "full-2"] {
        assert_eq!(
            http(api, "POST", "/events", Some(&event(name)))
                .await
                .status,
            202
        );
    }
    let refused = http(api, "POST", "/events", Some(&event("full-3"))).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    let m: Value = serde_json::from_str(&refused.body).unwrap();
    assert!(m["message"].as_str().unwrap().contains("full"), "{m}");
    assert_eq!(
        metric(
            api,
            r#"picket_agent_api_events_total{result="outbox_full"}"#
        )
        .await,
        1
    );
    assert_eq!(metric(api, "picket_agent_outbox_events").await, 2);

    // Once a backend takes them, there is room again.
    let mut conn = backend.accept().await;
    open_session(&mut conn, "api-full").await;
    assert_eq!(next_event(&mut conn).await.check_name(), "full-1");
    assert_eq!(next_event(&mut conn).await.check_name(), "full-2");
    let deadline = Instant::now() + STEP;
    while metric(api, "picket_agent_outbox_events").await > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        http(api, "POST", "/events", Some(&event("full-4")))
            .await
            .status,
        202
    );
    assert_eq!(next_event(&mut conn).await.check_name(), "full-4");
    stop(token, handle).await;
}

#[tokio::test]
async fn api_events_drain_at_the_rate_limit() {
    let backend = Backend::start().await;
    let cache = cache_dir();
    let agent = Agent::new(api_config(
        &backend.url(),
        "api-rate",
        &cache,
        &["--events-rate-limit", "4", "--events-burst-limit", "1"],
    ))
    .unwrap();
    let api = agent.api_addr().unwrap();
    let (token, handle) = spawn(agent);

    // Accepted at once, whatever the limit.
    let asked = Instant::now();
    for i in 0..5 {
        let body = format!(r#"{{"check": {{"metadata": {{"name": "rate-{i}"}}, "output": "x"}}}}"#);
        assert_eq!(http(api, "POST", "/events", Some(&body)).await.status, 202);
    }
    assert!(asked.elapsed() < Duration::from_secs(10));

    let mut conn = backend.accept().await;
    open_session(&mut conn, "api-rate").await;
    let first = Instant::now();
    for i in 0..5 {
        assert_eq!(
            next_event(&mut conn).await.check_name(),
            format!("rate-{i}")
        );
    }
    // One token at once, then one every 250 ms: four waits.
    let took = first.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    stop(token, handle).await;
}

#[tokio::test]
async fn a_disabled_api_binds_nothing() {
    let backend = Backend::start().await;
    let cache = cache_dir();
    let agent = Agent::new(api_config(
        &backend.url(),
        "api-off",
        &cache,
        &["--disable-api", "--disable-sockets"],
    ))
    .unwrap();
    assert_eq!(agent.api_addr(), None);
    assert_eq!(agent.socket_addr(), None);
    assert_eq!(agent.socket_udp_addr(), None);
}
