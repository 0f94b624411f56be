//! pipelined end to end in one process: definitions through the REST API, results posted
//! through the events API, handlers that are real `sh` commands and sockets.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

async fn create(tb: &TestBackend, collection: &str, body: Value) {
    let url = format!("{}/namespaces/default/{collection}", tb.v2);
    let r = http("POST", &url, Some(ADMIN), Some(&body.to_string())).await;
    assert_eq!(r.status, 201, "creating {collection}: {}", r.body);
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default"})
}

/// A pipe handler writing each payload it receives to its own file under `dir`.
fn file_handler(name: &str, dir: &Path, filters: &[&str]) -> Value {
    json!({
        "metadata": meta(name),
        "type": "pipe",
        "command": format!("cat > \"$(mktemp -p {})\"", dir.display()),
        "filters": filters,
    })
}

async fn post_result(tb: &TestBackend, entity: &str, check: &str, status: u32, handlers: &[&str]) {
    let body = json!({
        "entity": {"metadata": {"name": entity}},
        "check": {
            "metadata": {"name": check},
            "status": status,
            "interval": 60,
            "output": format!("{check} status {status}"),
            "handlers": handlers,
        },
    });
    let url = format!("{}/namespaces/default/events", tb.v2);
    let r = http("POST", &url, Some(ADMIN), Some(&body.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Every payload written by a [`file_handler`], parsed.
fn payloads(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_slice(&b).expect("handler payload is JSON"))
        .collect();
    out.sort_by_key(|v| v["check"]["executed"].as_i64().unwrap_or_default());
    out
}

async fn metric(tb: &TestBackend, name: &str) -> u64 {
    let r = http("GET", &format!("{}/metrics", tb.api), None, None).await;
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// Let the definitions' store watch reach pipelined's cache.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occurrence_filter_passes_the_first_failure_and_the_resolution() {
    let tb = start().await;
    let dir = tempfile::tempdir().unwrap();
    create(
        &tb,
        "filters",
        json!({
            "metadata": meta("hourly"),
            "action": "allow",
            "expressions": ["event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0"],
        }),
    )
    .await;
    create(
        &tb,
        "handlers",
        file_handler("file", dir.path(), &["is_incident", "hourly"]),
    )
    .await;
    settle().await;

    // 0 (not an incident), 2 ×4 (occurrences 1..4), then the resolution.
    for status in [0, 2, 2, 2, 2, 0] {
        post_result(&tb, "server-1", "disk", status, &["file"]).await;
    }
    let got = eventually("two handled events", Duration::from_secs(20), || async {
        let p = payloads(dir.path());
        (p.len() >= 2).then_some(p)
    })
    .await;
    // Nothing else arrives later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_later = payloads(dir.path());
    assert_eq!(got_later.len(), 2, "{got_later:#?}");
    let mut seen: Vec<(u64, i64)> = got
        .iter()
        .map(|e| {
            (
                e["check"]["status"].as_u64().unwrap(),
                e["check"]["occurrences"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [(0, 1), (2, 1)]);
    assert_eq!(got[0]["entity"]["metadata"]["name"], "server-1");
    assert!(
        eventually(
            "filtered workflows counted",
            Duration::from_secs(5),
            || async {
                (metric(&tb, "picket_pipeline_workflows_filtered_total").await >= 4).then_some(true)
            }
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_handler_receives_the_json_mutator_output() {
    let tb = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    create(
        &tb,
        "handlers",
        json!({
            "metadata": meta("tcp-sink"),
            "type": "tcp",
            "timeout": 5,
            "socket": {"host": "127.0.0.1", "port": port},
        }),
    )
    .await;
    settle().await;
    post_result(&tb, "db-1", "replication", 1, &["tcp-sink"]).await;
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("the handler connects")
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf))
        .await
        .expect("the handler closes")
        .unwrap();
    let event: Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(event["check"]["metadata"]["name"], "replication");
    assert_eq!(event["check"]["status"], 1);
    assert_eq!(event["entity"]["metadata"]["name"], "db-1");
    assert_eq!(event["check"]["history"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_that_do_not_compile_are_refused() {
    let tb = start().await;
    let url = format!("{}/namespaces/default/filters", tb.v2);
    let bad = json!({
        "metadata": meta("broken"),
        "action": "allow",
        "expressions": ["event.check.status == 2", "event.check..status == 1"],
    });
    let r = http("POST", &url, Some(ADMIN), Some(&bad.to_string())).await;
    r.assert_error(400, 1, "expressions[1]");
    r.assert_error(400, 1, "event.check..status == 1");
    let r = http("GET", &format!("{url}/broken"), Some(ADMIN), None).await;
    assert_eq!(r.status, 404);

    let url = format!("{}/namespaces/default/mutators", tb.v2);
    let bad = json!({"metadata": meta("m"), "type": "javascript", "eval": "return event.check.output +;"});
    let r = http("POST", &url, Some(ADMIN), Some(&bad.to_string())).await;
    r.assert_error(400, 1, "eval");
    let good =
        json!({"metadata": meta("m"), "type": "javascript", "eval": "return event.check.output;"});
    let r = http("POST", &url, Some(ADMIN), Some(&good.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // The other collections answer too.
    for c in ["handlers", "filters", "mutators", "pipelines"] {
        let r = http(
            "GET",
            &format!("{}/namespaces/default/{c}", tb.v2),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{c}: {}", r.body);
    }
    let pipeline = json!({
        "metadata": meta("p"),
        "workflows": [{"name": "w", "handler": {"name": "h", "type": "Handler", "api_version": "core/v2"}}],
    });
    create(&tb, "pipelines", pipeline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_and_failing_handlers_do_not_stop_the_others() {
    let tb = start().await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hang-finished");
    // Sorted by name: the failing and the hanging handler run before the file handler.
    create(
        &tb,
        "handlers",
        json!({"metadata": meta("a-fails"), "type": "pipe", "command": "cat >/dev/null; echo boom >&2; exit 1"}),
    )
    .await;
    create(
        &tb,
        "handlers",
        json!({"metadata": meta("b-hangs"), "type": "pipe", "timeout": 1,
               "command": format!("sleep 30; touch {}", marker.display())}),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    create(&tb, "handlers", file_handler("c-file", out.path(), &[])).await;
    create(
        &tb,
        "handlers",
        json!({"metadata": meta("all"), "type": "set", "handlers": ["a-fails", "b-hangs", "c-file"]}),
    )
    .await;
    settle().await;
    let started = std::time::Instant::now();
    post_result(&tb, "app-1", "http", 2, &["all"]).await;
    let got = eventually("the file handler ran", Duration::from_secs(20), || async {
        let p = payloads(out.path());
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "after the hanging handler's timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(got[0]["check"]["metadata"]["name"], "http");
    eventually("the timeout counted", Duration::from_secs(5), || async {
        (metric(&tb, "picket_pipeline_handler_timeouts_total").await == 1).then_some(())
    })
    .await;
    // The handler that exited 1 is counted as failed; it did not stop the others.
    assert_eq!(metric(&tb, "picket_pipeline_handler_errors_total").await, 1);
    assert_eq!(
        metric(&tb, "picket_pipeline_handler_executions_total").await,
        3
    );
    assert!(!marker.exists(), "the hanging handler was killed");
}
