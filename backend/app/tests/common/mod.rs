//! Shared helpers of the backend's integration tests: an in-process backend on loopback
//! ports with an in-memory store, a blocking-HTTP client run off the runtime, simulated agent
//! sessions over WebSocket.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::Duration;

use backend_app::auth::AuthConfig;
use backend_app::bus::CheckBus;
use backend_app::init;
use backend_app::repo::Repo;
use backend_app::{Backend, BackendConfig};
use backend_store::{EmbeddedStore, Store};
use base64::Engine;
use futures_util::StreamExt;
use proto_spec::ObjectMeta;
use proto_spec::v2::{Check, CheckConfig, Entity, Event};
use proto_spec::wire::{self, Message};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

pub const ADMIN: (&str, &str) = ("admin", "s3cret-admin");

pub struct TestBackend {
    /// `http://<api address>`
    pub api: String,
    /// `http://<api address>/api/core/v2`
    pub v2: String,
    pub agent_url: String,
    pub bus: Arc<CheckBus>,
    pub shutdown: CancellationToken,
    pub events: tokio::sync::broadcast::Receiver<Arc<Event>>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start() -> TestBackend {
    start_with(|_| {}).await
}

/// [`start`], with `configure` applied to the backend before it runs.
pub async fn start_with(configure: impl FnOnce(&mut Backend)) -> TestBackend {
    let store: Arc<dyn Store> = EmbeddedStore::in_memory().expect("in-memory store");
    init::initialize(&Repo::new(store.clone()), ADMIN.0, ADMIN.1)
        .await
        .expect("init");
    launch(store, configure).await.0
}

/// A backend on a store that is already initialised (e.g. one etcd shared by several).
pub async fn start_shared(store: Arc<dyn Store>) -> TestBackend {
    launch(store, |_| {}).await.0
}

/// A backend on `store` (initialised by the caller) with these token lifetimes and login
/// limits; the handle ends when the backend has stopped.
pub async fn start_on(
    store: Arc<dyn Store>,
    auth: AuthConfig,
) -> (TestBackend, tokio::task::JoinHandle<()>) {
    launch(store, |b| b.set_auth_config(auth)).await
}

async fn launch(
    store: Arc<dyn Store>,
    configure: impl FnOnce(&mut Backend),
) -> (TestBackend, tokio::task::JoinHandle<()>) {
    let mut backend = Backend::new(BackendConfig::loopback(), store)
        .await
        .expect("bind");
    configure(&mut backend);
    let api = format!("http://{}", backend.api_addr());
    let v2 = format!("{api}/api/core/v2");
    let agent_url = format!("ws://{}/", backend.agent_addr());
    let bus = backend.check_bus();
    let events = backend.subscribe_events();
    let shutdown = CancellationToken::new();
    let shutdown_for_run = shutdown.clone();
    let handle = tokio::spawn(async move {
        backend.run(shutdown_for_run).await.expect("backend run");
    });
    (
        TestBackend {
            api,
            v2,
            agent_url,
            bus,
            shutdown,
            events,
        },
        handle,
    )
}

pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// A Sensu error body with this status and code whose message mentions `says`.
    pub fn assert_error(&self, status: u16, code: u64, says: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.body);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{message:?} should mention {says:?}"
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request with a raw `Authorization` header (`Bearer ...`, `Key ...`), or none.
pub async fn authed(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> Reply {
    match authorization {
        Some(a) => request(method, url, None, body, &[("Authorization", a)]).await,
        None => request(method, url, None, body, &[]).await,
    }
}

pub async fn http(
    method: &str,
    url: &str,
    auth: Option<(&str, &str)>,
    body: Option<&str>,
) -> Reply {
    request(method, url, auth, body, &[]).await
}

/// An HTTP request with extra headers (the content type defaults to JSON), made with a
/// blocking client off the runtime.
pub async fn request(
    method: &str,
    url: &str,
    auth: Option<(&str, &str)>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let (method, url, body) = (
        method.to_string(),
        url.to_string(),
        body.map(str::to_string),
    );
    let auth = auth.map(|(u, p)| basic(u, p));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        if let Some(a) = &auth {
            builder = builder.header("Authorization", a);
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("Content-Type", "application/json");
        }
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let req = builder.body(body.unwrap_or_default()).unwrap();
        let mut resp = agent.run(req).expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    })
    .await
    .unwrap()
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(
    tb: &TestBackend,
    name: &str,
    ns: &str,
    creds: (&str, &str),
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = tb.agent_url.as_str().into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(wire::HEADER_AGENT_NAME, name.parse().unwrap());
    h.insert(wire::HEADER_NAMESPACE, ns.parse().unwrap());
    h.insert(wire::HEADER_USER, creds.0.parse().unwrap());
    h.insert(wire::HEADER_SUBSCRIPTIONS, "linux,web".parse().unwrap());
    h.insert("Authorization", basic(creds.0, creds.1).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    // The backend speaks first: the entity configuration (or "not found").
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match wire::decode(&first.into_data()).unwrap() {
        Message::EntityConfig(_) => {}
        other => panic!("expected entity_config first, got {other:?}"),
    }
    Ok(ws)
}

pub fn keepalive(name: &str, ns: &str, seq: i64, warning: u32, critical: i64) -> Vec<u8> {
    let now = backend_app::timefmt::now_unix();
    let mut entity = Entity {
        entity_class: "agent".into(),
        subscriptions: Some(vec!["linux".into(), "web".into()]),
        metadata: ObjectMeta::new(ns, name),
        last_seen: now,
        ..Default::default()
    };
    entity.system.hostname = format!("{name}.example");
    entity.system.os = "linux".into();
    let check = Check::from_config(CheckConfig {
        metadata: ObjectMeta::new(ns, "keepalive"),
        interval: 1,
        timeout: warning,
        ttl: critical,
        ..Default::default()
    });
    let event = Event {
        timestamp: now,
        entity: Some(entity),
        check: Some(check),
        id: Some(uuid::Uuid::new_v4()),
        sequence: seq,
        ..Default::default()
    };
    wire::encode(&Message::Keepalive(Box::new(event)))
}

/// Wait until `f` returns Some, polling the API.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn expect_close(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(WsMessage::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(WsMessage::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return 1006,
        }
    }
}
