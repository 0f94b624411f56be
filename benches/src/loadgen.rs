//! A simulated-agent load generator: N WebSocket agent sessions speaking the real transport
//! (proto-spec/PROTOCOL.md) to one or more backends.
//!
//! Each simulated agent does the handshake a `picket-agent` does (Basic auth and the `Sensu-*`
//! headers), sends a keepalive as soon as the session is up and then every keepalive interval
//! with a little per-agent jitter, and reads and discards whatever the backend sends. It never
//! answers check requests: it models idle agents, the baseline cost of a connected fleet.
//!
//! A run is always bounded: it ends after [`LoadgenConfig::duration`] (or [`Loadgen::stop`]),
//! closing every session with 1001 `bye` as a stopping agent does. It only ever connects to
//! the URLs it was given.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use proto_spec::ObjectMeta;
use proto_spec::v2::entity::{Network, NetworkInterface, System};
use proto_spec::v2::{Check, CheckConfig, Entity, Event};
use proto_spec::wire::{self, Message};
use rand::Rng;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_util::sync::CancellationToken;

/// What to simulate. [`LoadgenConfig::default`] is one agent against nothing: set at least
/// `backend_urls`.
#[derive(Debug, Clone)]
pub struct LoadgenConfig {
    /// `ws://host:port/` URLs; agent `i` starts on URL `i % len` and moves to the next one on
    /// each reconnection, as an agent fails over between backends.
    pub backend_urls: Vec<String>,
    pub agents: usize,
    pub namespace: String,
    pub user: String,
    pub password: String,
    pub subscriptions: Vec<String>,
    pub keepalive_interval: Duration,
    /// Sent as the keepalive check's `timeout`: the backend raises a warning after this long
    /// without a keepalive.
    pub keepalive_warning_timeout: u32,
    /// New sessions opened per second; 0 opens them all at once.
    pub ramp_per_second: f64,
    /// How long the whole run lasts, ramp included.
    pub duration: Duration,
    /// Agent `i` is named `{name_prefix}{i}`.
    pub name_prefix: String,
    /// Reconnect with backoff after a refusal or a lost session, as a real agent does.
    pub reconnect: bool,
    /// Bounds one handshake (TCP connect plus HTTP upgrade).
    pub connect_timeout: Duration,
}

impl Default for LoadgenConfig {
    fn default() -> Self {
        LoadgenConfig {
            backend_urls: Vec::new(),
            agents: 1,
            namespace: "default".to_string(),
            user: "agent".to_string(),
            password: "P@ssw0rd!".to_string(),
            subscriptions: vec!["linux".to_string(), "loadgen".to_string()],
            keepalive_interval: Duration::from_secs(20),
            keepalive_warning_timeout: 120,
            ramp_per_second: 100.0,
            duration: Duration::from_secs(60),
            name_prefix: "loadgen-".to_string(),
            reconnect: true,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("at least one backend URL is required")]
    NoBackend,
    #[error("backend URL {0:?} is not a ws:// URL (this load generator has no TLS)")]
    BadUrl(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl LoadgenConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backend_urls.is_empty() {
            return Err(ConfigError::NoBackend);
        }
        for url in &self.backend_urls {
            let ok = url
                .strip_prefix("ws://")
                .is_some_and(|rest| !rest.is_empty())
                && url.as_str().into_client_request().is_ok();
            if !ok {
                return Err(ConfigError::BadUrl(url.clone()));
            }
        }
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_string(),
        };
        // The prefix must keep names valid for the backend, or every handshake is refused
        // with 400 and the run measures nothing.
        let name_ok = |s: &str| {
            s.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
        };
        if !name_ok(&self.name_prefix) {
            return Err(invalid(
                "name prefix",
                "only letters, digits, '_', '.', '-' and ':' are allowed",
            ));
        }
        if self.namespace.is_empty() || self.user.is_empty() {
            return Err(invalid("namespace or user", "must not be empty"));
        }
        if self.user.contains(':') {
            return Err(invalid("user", "Basic auth forbids ':' in a user name"));
        }
        if self.keepalive_interval < Duration::from_secs(1) {
            return Err(invalid("keepalive interval", "must be at least 1 s"));
        }
        if !(self.ramp_per_second >= 0.0 && self.ramp_per_second.is_finite()) {
            return Err(invalid("ramp per second", "must be a finite number >= 0"));
        }
        if self.duration.is_zero() {
            return Err(invalid("duration", "must be positive"));
        }
        Ok(())
    }
}

/// Counts of a run: a snapshot while it runs ([`Loadgen::report`]) or the final one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Simulated agents started so far (the ramp may not have finished).
    pub agents_started: u64,
    /// Handshakes tried, reconnections included.
    pub attempts: u64,
    /// Handshakes that ended in an open session, reconnections included.
    pub connected: u64,
    /// Sessions open at the time of the report.
    pub active: i64,
    /// Handshakes the backend answered with an HTTP error, by status.
    pub refused: BTreeMap<u16, u64>,
    /// Handshakes that failed without an HTTP answer (refused TCP connection, timeout, ...).
    pub connect_errors: u64,
    pub keepalives_sent: u64,
    /// Frames the backend sent (entity configs, check requests, ...), all discarded.
    pub frames_received: u64,
    /// Sessions that ended before the run did: closed by the backend or lost.
    pub disconnects: u64,
    pub elapsed: Duration,
}

impl Report {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "elapsed_seconds {:.1}", self.elapsed.as_secs_f64())?;
        writeln!(f, "agents_started {}", self.agents_started)?;
        writeln!(f, "attempts {}", self.attempts)?;
        writeln!(f, "connected {}", self.connected)?;
        writeln!(f, "active {}", self.active)?;
        if self.refused.is_empty() {
            writeln!(f, "refused 0")?;
        }
        for (status, n) in &self.refused {
            writeln!(f, "refused{{status=\"{status}\"}} {n}")?;
        }
        writeln!(f, "connect_errors {}", self.connect_errors)?;
        writeln!(f, "keepalives_sent {}", self.keepalives_sent)?;
        writeln!(f, "frames_received {}", self.frames_received)?;
        write!(f, "disconnects {}", self.disconnects)
    }
}

#[derive(Default)]
struct Counters {
    agents_started: AtomicU64,
    attempts: AtomicU64,
    connected: AtomicU64,
    active: AtomicI64,
    refused: Mutex<BTreeMap<u16, u64>>,
    connect_errors: AtomicU64,
    keepalives_sent: AtomicU64,
    frames_received: AtomicU64,
    disconnects: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    config: LoadgenConfig,
    /// Precomputed once: every agent presents the same credentials.
    authorization: HeaderValue,
    subscriptions: HeaderValue,
    counters: Counters,
    stop: CancellationToken,
    started: Instant,
}

/// A running load. Dropping it stops the run (sessions are aborted, not closed).
pub struct Loadgen {
    shared: Arc<Shared>,
    ramp: tokio::task::JoinHandle<JoinSet<()>>,
    deadline: tokio::task::JoinHandle<()>,
}

impl Loadgen {
    /// Validate the configuration and start the ramp on the current tokio runtime.
    pub fn start(config: LoadgenConfig) -> Result<Loadgen, ConfigError> {
        config.validate()?;
        let credentials = format!("{}:{}", config.user, config.password);
        let header = |field: &'static str, value: String| {
            HeaderValue::from_str(&value).map_err(|e| ConfigError::Invalid {
                field,
                reason: e.to_string(),
            })
        };
        let authorization = header(
            "user or password",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
        )?;
        let subscriptions = header("subscriptions", config.subscriptions.join(","))?;
        let shared = Arc::new(Shared {
            authorization,
            subscriptions,
            counters: Counters::default(),
            stop: CancellationToken::new(),
            started: Instant::now(),
            config,
        });
        let deadline = {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(shared.started + shared.config.duration).await;
                shared.stop.cancel();
            })
        };
        let ramp = tokio::spawn(ramp(shared.clone()));
        Ok(Loadgen {
            shared,
            ramp,
            deadline,
        })
    }

    /// The counts so far.
    pub fn report(&self) -> Report {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Report {
            agents_started: load(&c.agents_started),
            attempts: load(&c.attempts),
            connected: load(&c.connected),
            active: c.active.load(Ordering::Relaxed),
            refused: c.refused.lock().expect("refused lock").clone(),
            connect_errors: load(&c.connect_errors),
            keepalives_sent: load(&c.keepalives_sent),
            frames_received: load(&c.frames_received),
            disconnects: load(&c.disconnects),
            elapsed: self.shared.started.elapsed(),
        }
    }

    /// End the run now instead of at the end of its duration.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    /// Wait until the run ends (duration elapsed or [`Loadgen::stop`]) and every session is
    /// closed, and return the final counts.
    pub async fn wait(mut self) -> Report {
        let ramp = (&mut self.ramp).await;
        if let Ok(mut agents) = ramp {
            while agents.join_next().await.is_some() {}
        }
        self.report()
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.deadline.abort();
        self.ramp.abort();
    }
}

/// Run a load to its end: [`Loadgen::start`] then [`Loadgen::wait`].
pub async fn run(config: LoadgenConfig) -> Result<Report, ConfigError> {
    Ok(Loadgen::start(config)?.wait().await)
}

/// Start the agents at the configured rate. Returns the agent tasks so `wait` can join them.
async fn ramp(shared: Arc<Shared>) -> JoinSet<()> {
    let mut agents = JoinSet::new();
    let rate = shared.config.ramp_per_second;
    for i in 0..shared.config.agents {
        if rate > 0.0 {
            let at = shared.started + Duration::from_secs_f64(i as f64 / rate);
            tokio::select! {
                _ = shared.stop.cancelled() => break,
                _ = tokio::time::sleep_until(at) => {}
            }
        } else if shared.stop.is_cancelled() {
            break;
        }
        bump(&shared.counters.agents_started);
        agents.spawn(agent(shared.clone(), i));
        // Reap finished agents as we go so a long ramp of short-lived agents stays small.
        while agents.try_join_next().is_some() {}
    }
    agents
}

/// Why a session ended.
enum Ended {
    /// The run is over; the session was closed by us.
    Stopped,
    /// The backend closed it or the connection broke.
    Lost,
}

const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

async fn agent(shared: Arc<Shared>, index: usize) {
    let cfg = &shared.config;
    let name = format!("{}{index}", cfg.name_prefix);
    let mut url = index % cfg.backend_urls.len();
    let mut backoff = RETRY_MIN;
    loop {
        bump(&shared.counters.attempts);
        let attempt = tokio::select! {
            _ = shared.stop.cancelled() => return,
            r = tokio::time::timeout(cfg.connect_timeout, connect(&shared, &cfg.backend_urls[url], &name)) => r,
        };
        match attempt {
            Ok(Ok(ws)) => {
                bump(&shared.counters.connected);
                shared.counters.active.fetch_add(1, Ordering::Relaxed);
                let ended = session(&shared, ws, &name).await;
                shared.counters.active.fetch_sub(1, Ordering::Relaxed);
                match ended {
                    Ended::Stopped => return,
                    Ended::Lost => bump(&shared.counters.disconnects),
                }
                backoff = RETRY_MIN;
            }
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                *shared
                    .counters
                    .refused
                    .lock()
                    .expect("refused lock")
                    .entry(status)
                    .or_default() += 1;
            }
            Ok(Err(_)) | Err(_) => bump(&shared.counters.connect_errors),
        }
        if !cfg.reconnect {
            return;
        }
        url = (url + 1) % cfg.backend_urls.len();
        // Same shape as the agent's backoff (PROTOCOL.md): up to 100 % jitter spreads a
        // reconnect storm instead of replaying it in lockstep.
        let jitter = rand::rng().random_range(0.0..1.0);
        let wait = backoff.mul_f64(1.0 + jitter);
        backoff = (backoff * 2).min(RETRY_MAX);
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(shared: &Shared, url: &str, name: &str) -> Result<Ws, tungstenite::Error> {
    let cfg = &shared.config;
    let mut req = url.into_client_request()?;
    let h = req.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).map_err(tungstenite::http::Error::from);
    h.insert(wire::HEADER_AGENT_NAME, value(name)?);
    h.insert(wire::HEADER_NAMESPACE, value(&cfg.namespace)?);
    h.insert(wire::HEADER_USER, value(&cfg.user)?);
    h.insert(wire::HEADER_SUBSCRIPTIONS, shared.subscriptions.clone());
    h.insert("Authorization", shared.authorization.clone());
    h.insert("Accept", HeaderValue::from_static(wire::CONTENT_TYPE_JSON));
    h.insert(
        wire::HEADER_PROTOCOL_VERSION,
        HeaderValue::from(wire::PROTOCOL_VERSION),
    );
    // tungstenite's default 128 KiB read buffer is allocated (and zeroed) per session; idle
    // agents receive a few hundred bytes, so thousands of them in one process would cost
    // hundreds of MB for nothing.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(wire::MAX_FRAME_BYTES))
        .max_frame_size(Some(wire::MAX_FRAME_BYTES));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(ws_config), true).await?;
    Ok(ws)
}

/// Bounds a single write, so a backend that stops reading cannot wedge an agent forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

async fn session(shared: &Shared, mut ws: Ws, name: &str) -> Ended {
    let cfg = &shared.config;
    let template = keepalive_template(cfg, name);
    let mut sequence = 0;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => {
                let bye = CloseFrame { code: CloseCode::Away, reason: "bye".into() };
                // A backend that does not answer the close must not hold up the end of the run.
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(bye))).await;
                return Ended::Stopped;
            }
            msg = ws.next() => match msg {
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return Ended::Lost,
                Some(Ok(WsMessage::Binary(_) | WsMessage::Text(_))) => bump(&shared.counters.frames_received),
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(next) => {
                sequence += 1;
                let frame = keepalive_frame(&template, sequence);
                match tokio::time::timeout(WRITE_TIMEOUT, ws.send(WsMessage::Binary(frame.into()))).await {
                    Ok(Ok(())) => bump(&shared.counters.keepalives_sent),
                    _ => return Ended::Lost,
                }
                next = Instant::now() + jittered(cfg.keepalive_interval);
            }
        }
    }
}

/// The interval plus or minus up to 5 %, drawn per keepalive: agents started in the same
/// instant drift apart instead of hitting the backend in lockstep forever.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.95..1.05))
}

/// What a Linux VM agent reports about itself, so stored entities and keepalive frames have a
/// realistic size (about 1 KiB on the wire).
fn keepalive_template(cfg: &LoadgenConfig, name: &str) -> Event {
    let system = System {
        hostname: name.to_string(),
        os: "linux".into(),
        platform: "ubuntu".into(),
        platform_family: "debian".into(),
        platform_version: "24.04".into(),
        arch: "amd64".into(),
        libc_type: "glibc".into(),
        vm_system: "kvm".into(),
        vm_role: "guest".into(),
        network: Network {
            interfaces: Some(vec![
                NetworkInterface {
                    name: "lo".into(),
                    addresses: Some(vec!["127.0.0.1/8".into(), "::1/128".into()]),
                    ..Default::default()
                },
                NetworkInterface {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    // Documentation range (RFC 5737): never an address anyone contacts.
                    addresses: Some(vec!["192.0.2.10/24".into()]),
                },
            ]),
        },
        ..Default::default()
    };
    let entity = Entity {
        entity_class: "agent".into(),
        system,
        subscriptions: Some(cfg.subscriptions.clone()),
        user: cfg.user.clone(),
        metadata: ObjectMeta::new(cfg.namespace.clone(), name),
        sensu_agent_version: concat!("picket-loadgen/", env!("CARGO_PKG_VERSION")).into(),
        ..Default::default()
    };
    let check = Check::from_config(CheckConfig {
        metadata: ObjectMeta::new(cfg.namespace.clone(), "keepalive"),
        interval: u32::try_from(cfg.keepalive_interval.as_secs()).unwrap_or(u32::MAX),
        timeout: cfg.keepalive_warning_timeout,
        handlers: vec!["keepalive".into()],
        ..Default::default()
    });
    Event {
        entity: Some(entity),
        check: Some(check),
        ..Default::default()
    }
}

fn keepalive_frame(template: &Event, sequence: i64) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(1);
    let mut event = template.clone();
    event.timestamp = now;
    event.sequence = sequence;
    event.id = Some(uuid::Uuid::new_v4());
    if let Some(entity) = event.entity.as_mut() {
        entity.last_seen = now;
    }
    if let Some(check) = event.check.as_mut() {
        check.executed = now;
        check.issued = now;
    }
    wire::encode(&Message::Keepalive(Box::new(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadgenConfig {
        LoadgenConfig {
            backend_urls: vec!["ws://127.0.0.1:8081/".into()],
            ..Default::default()
        }
    }

    #[test]
    fn validates_urls_and_names() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.backend_urls.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoBackend));
        c.backend_urls = vec!["http://127.0.0.1:8081/".into()];
        assert!(matches!(c.validate(), Err(ConfigError::BadUrl(_))));
        c.backend_urls = vec!["wss://127.0.0.1:8081/".into()];
        assert!(matches!(c.validate(), Err(ConfigError::BadUrl(_))));
        let mut c = config();
        c.name_prefix = "bad name ".into();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { .. })));
        let mut c = config();
        c.ramp_per_second = f64::NAN;
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn keepalive_frames_decode_as_keepalives_for_the_agent() {
        let mut c = config();
        c.keepalive_warning_timeout = 42;
        let t = keepalive_template(&c, "loadgen-7");
        let frame = keepalive_frame(&t, 3);
        let Message::Keepalive(ev) = wire::decode(&frame).expect("decodes") else {
            panic!("not a keepalive");
        };
        assert_eq!(ev.entity_name(), "loadgen-7");
        assert_eq!(ev.check_name(), "keepalive");
        assert_eq!(ev.sequence, 3);
        assert!(
            ev.timestamp > 0,
            "the backend drops keepalives with a zero timestamp"
        );
        assert_eq!(ev.check.as_ref().map(|c| c.config.timeout), Some(42));
        assert!(
            frame.len() < 2048,
            "an idle keepalive stays small: {}",
            frame.len()
        );
    }

    #[test]
    fn jitter_stays_within_five_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(20));
            assert!(d >= Duration::from_secs(19) && d <= Duration::from_secs(21));
        }
    }
}
