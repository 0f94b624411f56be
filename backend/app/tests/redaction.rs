//! Entity redaction (sensu-compat 1.3) at every boundary: each API response that carries an
//! entity or an event, the stdin of a pipe handler, and the backend's own log, which must
//! never hold a redacted value even at trace level.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const SECRET: &str = "hunter2-do-not-leak";
const TOKEN: &str = "tok-do-not-leak";

/// Everything the backend logs, at trace level, into memory.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");
    buf
}

fn assert_hidden(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET) && !text.contains(TOKEN),
        "{what} shows a redacted value: {text}"
    );
}

async fn get(tb: &TestBackend, path: &str) -> Value {
    let r = http("GET", &format!("{}{path}", tb.v2), Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_hidden(path, &r.body);
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_in_api_answers_handler_input_and_logs() {
    let logs = capture_logs();
    let tb = start().await;
    let ns = format!("{}/namespaces/default", tb.v2);
    let dir = tempfile::tempdir().unwrap();

    // A proxy entity with secrets under default-listed keys, and one with its own list.
    let db = json!({
        "entity_class": "proxy",
        "metadata": {
            "name": "db-01", "namespace": "default",
            "labels": {"password": SECRET, "team": "storage"},
            "annotations": {"api_token": TOKEN, "runbook": "https://wiki/db"},
        },
    });
    let r = http(
        "POST",
        &format!("{ns}/entities"),
        Some(ADMIN),
        Some(&db.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_hidden("the create answer", &r.body);
    let custom = json!({
        "entity_class": "proxy",
        "redact": ["team"],
        "metadata": {"name": "custom-01", "namespace": "default",
                     "labels": {"team": "payments", "password": "visible-by-choice"}},
    });
    let r = http(
        "PUT",
        &format!("{ns}/entities/custom-01"),
        Some(ADMIN),
        Some(&custom.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A pipe handler that keeps what it reads on stdin.
    let handler = json!({
        "metadata": {"name": "keep", "namespace": "default"},
        "type": "pipe",
        "command": format!("cat > \"$(mktemp -p {})\"", dir.path().display()),
    });
    let r = http(
        "POST",
        &format!("{ns}/handlers"),
        Some(ADMIN),
        Some(&handler.to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await; // the handler reaches pipelined

    let event = json!({
        "entity": {"metadata": {"name": "db-01", "labels": {"password": SECRET}}},
        "check": {"metadata": {"name": "backup"}, "status": 2, "interval": 60,
                  "output": "backup failed", "handlers": ["keep"]},
    });
    let r = http(
        "POST",
        &format!("{ns}/events"),
        Some(ADMIN),
        Some(&event.to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // The handler's stdin: the entity with its secrets replaced, the rest intact.
    let payload = eventually("the handler's payload", Duration::from_secs(10), || async {
        let entry = std::fs::read_dir(dir.path()).ok()?.next()?.ok()?;
        let bytes = std::fs::read(entry.path()).ok()?;
        (!bytes.is_empty()).then(|| String::from_utf8(bytes).unwrap())
    })
    .await;
    assert_hidden("the handler's stdin", &payload);
    let payload: Value = serde_json::from_str(&payload).unwrap();
    let entity = &payload["entity"]["metadata"];
    assert_eq!(entity["labels"]["password"], "REDACTED");
    assert_eq!(entity["labels"]["team"], "storage");
    assert_eq!(entity["annotations"]["api_token"], "REDACTED");
    assert_eq!(entity["annotations"]["runbook"], "https://wiki/db");

    // Every API answer with the entity or its event.
    let one = get(&tb, "/namespaces/default/entities/db-01").await;
    assert_eq!(one["metadata"]["labels"]["password"], "REDACTED");
    for path in [
        "/namespaces/default/entities",
        "/entities",
        "/namespaces/default/events",
        "/namespaces/default/events/db-01",
        "/events",
    ] {
        get(&tb, path).await;
    }
    let ev = get(&tb, "/namespaces/default/events/db-01/backup").await;
    assert_eq!(ev["entity"]["metadata"]["labels"]["password"], "REDACTED");
    assert_eq!(
        ev["entity"]["metadata"]["annotations"]["runbook"],
        "https://wiki/db"
    );

    // An entity's own list replaces the default one.
    let custom = get(&tb, "/namespaces/default/entities/custom-01").await;
    assert_eq!(custom["metadata"]["labels"]["team"], "REDACTED");
    assert_eq!(
        custom["metadata"]["labels"]["password"],
        "visible-by-choice"
    );

    // The stored entity keeps the real value: redacting is for output only. A second
    // redacted replace must not have overwritten it either.
    let r = http(
        "PUT",
        &format!("{ns}/entities/db-01"),
        Some(ADMIN),
        Some(&db.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let restricted = json!({
        "entity_class": "proxy",
        "redact": ["team"],
        "metadata": db["metadata"].clone(),
    });
    let r = http(
        "PUT",
        &format!("{ns}/entities/db-01"),
        Some(ADMIN),
        Some(&restricted.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["metadata"]["labels"]["password"],
        SECRET,
        "the stored value survived"
    );

    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("Backend serving"),
        "the capture works: {logged}"
    );
    assert!(!logged.contains(SECRET), "the log holds a redacted value");
    assert!(!logged.contains(TOKEN), "the log holds a redacted value");
}
