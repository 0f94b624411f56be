//! Helpers shared by the test files.

/// A fresh cache directory for one agent. The agent keeps its outbox there (durable, and
/// locked: one agent per directory), so every agent of the tests gets its own, under Cargo's
/// scratch directory for integration tests rather than the machine's /var/cache.
pub fn cache_dir() -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("agent-it")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

use std::collections::HashMap;
use std::net::SocketAddr;

use agent::{Agent, CancellationToken, Config};
use proto_spec::ObjectMeta;
use proto_spec::v2::{EntityConfig, Event};
use proto_spec::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::backend::{Conn, STEP};

/// The agent config every test starts from: its own cache dir (outbox), the local APIs on
/// free ports, keepalives every second, pings every second with a generous timeout (a test
/// pausing between reads must not make the agent drop the session), quick reconnects. `extra`
/// flags come last and win over these.
pub fn test_config(backend_url: &str, name: &str, cache: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "--config-file",
        "",
        "--backend-url",
        backend_url,
        "--name",
        name,
        "--cache-dir",
        cache,
        "--api-port",
        "0",
        "--socket-port",
        "0",
        "--keepalive-interval",
        "1",
        "--backend-heartbeat-interval",
        "1",
        "--backend-heartbeat-timeout",
        "60",
        "--retry-min",
        "10ms",
        "--retry-max",
        "100ms",
    ];
    args.extend_from_slice(extra);
    Config::from_args(args, &HashMap::new()).unwrap()
}

/// A config for the local-API tests: [`test_config`] with StatsD off.
pub fn api_config(backend_url: &str, name: &str, cache: &str, extra: &[&str]) -> Config {
    let mut args = vec!["--statsd-disable"];
    args.extend_from_slice(extra);
    test_config(backend_url, name, cache, &args)
}

pub fn spawn(agent: Agent) -> (CancellationToken, JoinHandle<()>) {
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move { agent.run(t).await.unwrap() });
    (token, handle)
}

/// Stop an agent and wait until `run` has returned (its outbox is then closed).
pub async fn stop(token: CancellationToken, handle: JoinHandle<()>) {
    token.cancel();
    timeout(STEP, handle)
        .await
        .expect("run() did not return")
        .unwrap();
}

pub fn entity_config(name: &str) -> wire::Message {
    wire::Message::EntityConfig(Box::new(EntityConfig {
        metadata: ObjectMeta::new("default", name),
        entity_class: "agent".into(),
        subscriptions: Some(vec![]),
        ..Default::default()
    }))
}

/// Complete a new session: the entity config out, the first keepalive in.
pub async fn open_session(conn: &mut Conn, name: &str) {
    conn.send(entity_config(name)).await;
    conn.keepalive().await;
}

/// The next `event` frame, skipping keepalives.
pub async fn next_event(conn: &mut Conn) -> Event {
    loop {
        match conn.frame().await {
            wire::Message::Event(e) => return *e,
            wire::Message::Keepalive(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The header lines, lower-cased.
    pub headers: String,
    pub body: String,
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), by hand: the test sees
/// exactly what the agent's server writes.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Reply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    raw_http(addr, request.as_bytes()).await
}

/// Send raw bytes and read the answer until the server closes.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and stop reading) before a refused body is all sent.
    let _ = stream.write_all(request).await;
    // Done sending: the server sees the end of input at once instead of lingering for more.
    let _ = stream.shutdown().await;
    let mut raw = Vec::new();
    timeout(STEP, async {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stream.read(&mut chunk).await
            && n > 0
        {
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("no complete HTTP answer in time");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// Poll `/healthz` until it answers `status` (the session state changes asynchronously).
pub async fn wait_health(api: SocketAddr, status: u16) {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if http(api, "GET", "/healthz", None).await.status == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz never answered {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The value of one sample of `/metrics` (`name` with its labels, as rendered).
pub async fn metric(api: SocketAddr, sample: &str) -> u64 {
    let text = http(api, "GET", "/metrics", None).await.body;
    let prefix = format!("{sample} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Wait until the outbox has delivered everything.
pub async fn eventually_empty(outbox: &agent::outbox::Outbox) {
    let deadline = tokio::time::Instant::now() + crate::backend::STEP;
    while !outbox.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} events still queued",
            outbox.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
