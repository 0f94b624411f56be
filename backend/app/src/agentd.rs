//! agentd: the agent WebSocket port (sensu-compat 5.2, proto-spec/PROTOCOL.md).
//!
//! The upgrade request is checked before any WebSocket exists: namespace (404), credentials
//! (401, 429 past the failed-login limit), RBAC `create` on `events` in the namespace (403),
//! agent name and subscriptions (400). Credentials are HTTP Basic (or a token or API key), or,
//! on a TLS port with `--agent-auth-trusted-ca-file`, a client certificate the handshake
//! verified: its CN is then the agent's user and must be its name (see
//! `certificate_identity`). A session whose user loses that permission (a role or binding
//! changed) is closed (1008). A session then reads frames and hands keepalives and events to
//! the shard queues; it never processes them itself, so a slow store slows only the agents
//! whose queues are full. A bad frame closes only its own session, with a close
//! code and reason, and is counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto_spec::ObjectMeta;
use proto_spec::v2::entity::ENTITY_CLASS_AGENT;
use proto_spec::v2::entity_config::ENTITY_CONFIG_NOT_FOUND;
use proto_spec::v2::{CheckRequest, EntityConfig, Event};
use proto_spec::validate::{
    ValidationError, validate_entity_subscriptions, validate_name, validate_subscription,
};
use proto_spec::wire::{self, FrameError, Message};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Authenticator, Identity, Method};
use crate::bus::{BusSubscription, CheckBus};
use crate::eventd::{Dispatcher, Work};
use crate::keys;
use crate::listener::PeerInfo;
use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::rbac::{Attributes, Authorizer, Verb};
use crate::repo::Repo;

/// A session that sends nothing at all (no frame, no WebSocket ping) for this long is closed.
/// Agents ping every `--backend-heartbeat-interval` (30 s) and send keepalives every 20 s by
/// default, so only a half-open connection gets here; the generous bound leaves room for
/// agents configured with long intervals.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Read size of one agent session. tungstenite keeps one buffer per session between frames:
/// it starts at this size and grows (doubling) until it holds the frame being read, and every
/// byte of it stays resident in every idle session. Starting at 2 KiB, ~1.1 KB keepalives left
/// each session with 4 KiB, starting at 1 KiB with ~2.4 KB (heaptrack, benches/RESULTS.md);
/// 512 bytes cost a keepalive three reads instead of one.
const SESSION_READ_BUFFER_BYTES: usize = 512;
/// How much tungstenite buffers before writing (a threshold, not an allocation).
const SESSION_WRITE_BUFFER_BYTES: usize = 4096;

#[derive(Clone)]
pub struct AgentdState {
    pub repo: Repo,
    pub auth: Arc<Authenticator>,
    /// Agents need `create` on `events` in their namespace, as any API caller would.
    pub authz: Arc<Authorizer>,
    pub dispatcher: Dispatcher,
    pub bus: Arc<CheckBus>,
    pub sessions: Arc<SessionRegistry>,
    pub metrics: Arc<Metrics>,
    pub backend_id: String,
    pub shutdown: CancellationToken,
    /// Refuse sessions (503 + Retry-After) until this instant: lets a restarted backend warm
    /// up before a reconnect storm lands on it.
    pub serve_after: Instant,
    pub write_timeout: Duration,
    /// Handshakes admitted per second (a reconnect storm is spread out instead of landing at
    /// once on the store and bcrypt).
    pub accept_limiter: Arc<AcceptLimiter>,
}

/// A token bucket over agent handshakes: `rate` per second, bursts up to `rate` (at least one).
/// A refused handshake gets 503 with Retry-After; agents retry with jittered backoff.
pub struct AcceptLimiter {
    rate: f64,
    state: std::sync::Mutex<(f64, Instant)>,
}

impl AcceptLimiter {
    /// `rate` 0 admits everything.
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate);
        AcceptLimiter {
            rate,
            state: std::sync::Mutex::new((rate.max(1.0), Instant::now())),
        }
    }

    /// Take one token if there is one.
    pub fn admit(&self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut state = self.state.lock().expect("accept limiter lock");
        let (tokens, last) = *state;
        let now = Instant::now();
        let burst = self.rate.max(1.0);
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

pub fn router(state: AgentdState) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .with_state(Arc::new(state))
}

/// Identity of a session, fixed by the handshake.
#[derive(Debug, Clone)]
struct Peer {
    namespace: String,
    agent: String,
    /// Subscriptions the agent announced; a stored entity configuration overrides them.
    subscriptions: Vec<String>,
    /// The agent speaks protocol version 2: acknowledge each event once it is stored.
    acks: bool,
    /// Who the agent authenticated as: re-checked whenever roles or bindings change.
    identity: Identity,
}

/// What an agent session needs: `create` on `events` in its namespace.
fn may_send_events(authz: &Authorizer, who: &Identity, namespace: &str) -> bool {
    authz.authorize(
        who,
        &Attributes {
            verb: Verb::Create,
            resource: "events".to_string(),
            namespace: Some(namespace.to_string()),
            name: None,
        },
    )
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message.into(), "code": code_for(status) })),
    )
        .into_response()
}

fn store_unavailable() -> Response {
    let mut resp = refuse(StatusCode::SERVICE_UNAVAILABLE, "store unavailable");
    resp.headers_mut()
        .insert("Retry-After", HeaderValue::from_static("5"));
    resp
}

fn code_for(status: StatusCode) -> u32 {
    match status {
        StatusCode::BAD_REQUEST => 1,
        StatusCode::NOT_FOUND => 2,
        StatusCode::FORBIDDEN => 4,
        StatusCode::UNAUTHORIZED => 5,
        _ => 0,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
}

async fn upgrade(
    State(state): State<Arc<AgentdState>>,
    connection: Option<Extension<ConnectInfo<PeerInfo>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if Instant::now() < state.serve_after {
        let mut resp = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "backend is starting, retry shortly",
        );
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("5"));
        return resp;
    }
    if !state.accept_limiter.admit() {
        Metrics::inc(&state.metrics.handshake_rate_limited_total);
        let mut resp = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many agents connecting at once, retry shortly",
        );
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("1"));
        return resp;
    }
    let namespace = header(&headers, wire::HEADER_NAMESPACE).to_string();
    let (source, client_cn) = match connection {
        Some(Extension(ConnectInfo(peer))) => (Some(peer.addr.ip()), peer.client_cn),
        None => (None, None),
    };
    let agent = match certificate_identity(
        client_cn.as_deref(),
        header(&headers, wire::HEADER_AGENT_NAME),
    ) {
        Ok(agent) => agent,
        Err(message) => {
            Metrics::inc(&state.metrics.handshake_unauthorized_total);
            tracing::warn!(reason = %message, "Agent handshake refused");
            return refuse(StatusCode::UNAUTHORIZED, message);
        }
    };
    if let Err(e) = validate_name("Sensu-AgentName", &agent) {
        Metrics::inc(&state.metrics.handshake_invalid_total);
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    let subscriptions: Vec<String> = header(&headers, wire::HEADER_SUBSCRIPTIONS)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(e) = subscriptions
        .iter()
        .find_map(|s| validate_subscription("Sensu-Subscriptions", s).err())
        .or_else(|| {
            validate_entity_subscriptions(&agent, &subscriptions)
                .err()
                .map(|e| ValidationError::new("Sensu-Subscriptions", e.reason))
        })
    {
        Metrics::inc(&state.metrics.handshake_invalid_total);
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    match state.repo.exists(&keys::namespace(&namespace)).await {
        Ok(true) => {}
        Ok(false) => {
            Metrics::inc(&state.metrics.handshake_unknown_namespace_total);
            return refuse(
                StatusCode::NOT_FOUND,
                format!("namespace {namespace:?} not found"),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "Store unavailable during an agent handshake");
            return store_unavailable();
        }
    }
    let authz = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let authenticated = match &client_cn {
        Some(cn) => certificate_user(&state.repo, cn).await,
        None => state.auth.identify(authz, source).await,
    };
    let identity = match authenticated {
        Ok(who) => {
            if !may_send_events(&state.authz, &who, &namespace) {
                Metrics::inc(&state.metrics.handshake_forbidden_total);
                tracing::warn!(agent = %agent, namespace = %namespace, user = %who.username, "Agent handshake refused by RBAC");
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "permission denied: user {:?} may not create events in namespace {namespace:?}",
                        who.username
                    ),
                );
            }
            who
        }
        Err(AuthError::Repo(e)) => {
            tracing::error!(error = %e, "Store unavailable during an agent handshake");
            return store_unavailable();
        }
        Err(e @ AuthError::RateLimited { .. }) => {
            Metrics::inc(&state.metrics.login_rate_limited_total);
            tracing::warn!(agent = %agent, namespace = %namespace, reason = %e, "Agent handshake refused");
            return refuse(StatusCode::TOO_MANY_REQUESTS, e.to_string());
        }
        Err(e) => {
            Metrics::inc(&state.metrics.handshake_unauthorized_total);
            tracing::warn!(agent = %agent, namespace = %namespace, reason = %e, "Agent handshake refused");
            return refuse(StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    let acks = wire::peer_version(
        headers
            .get(wire::HEADER_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok()),
    ) >= wire::ACK_VERSION;
    let peer = Box::new(Peer {
        namespace,
        agent,
        subscriptions,
        identity,
        acks,
    });
    let backend_id = state.backend_id.clone();
    // Idle sessions dominate the backend's memory: tungstenite's default 128 KiB read buffer
    // is zero-filled and stays resident per session (150 KiB per idle agent measured; 26 KiB
    // with 4 KiB buffers, benches/RESULTS.md). Frames larger than the buffer still arrive,
    // in several reads.
    let mut resp = ws
        .read_buffer_size(SESSION_READ_BUFFER_BYTES)
        .write_buffer_size(SESSION_WRITE_BUFFER_BYTES)
        .max_message_size(wire::MAX_FRAME_BYTES)
        .max_frame_size(wire::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session(state, peer, socket));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&backend_id) {
        h.insert(wire::HEADER_BACKEND_ID, v);
    }
    h.insert(
        "Content-Type",
        HeaderValue::from_static(wire::CONTENT_TYPE_JSON),
    );
    h.insert(
        wire::HEADER_PROTOCOL_VERSION,
        HeaderValue::from(wire::PROTOCOL_VERSION),
    );
    resp
}

/// The agent name of a handshake. Under mutual TLS the verified certificate's CN names the
/// agent: `Sensu-AgentName` may be omitted, and must equal the CN when given, so one agent's
/// certificate cannot speak for another.
fn certificate_identity(client_cn: Option<&str>, announced: &str) -> Result<String, String> {
    match client_cn {
        None => Ok(announced.to_string()),
        Some(cn) if announced.is_empty() || announced == cn => Ok(cn.to_string()),
        Some(cn) => Err(format!(
            "the client certificate is for {cn:?}, not for agent {announced:?}"
        )),
    }
}

/// The user of an agent authenticated by its client certificate: the CN, no password. A
/// stored user of that name that is disabled is refused, so disabling the user revokes the
/// agent's certificate.
async fn certificate_user(repo: &Repo, cn: &str) -> Result<Identity, AuthError> {
    let user = match repo.get::<proto_spec::v2::User>(&keys::user(cn)).await? {
        Some(user) if user.disabled => return Err(AuthError::Disabled(cn.to_string())),
        Some(user) => user,
        // A CN the agents' CA vouches for needs no stored user.
        None => proto_spec::v2::User {
            username: cn.to_string(),
            ..Default::default()
        },
    };
    // The agents' CA issues certificates to agents: its holders join the agents' group, so
    // the default `system:agent` binding lets them send events, as the `agent` user can.
    let mut identity = Identity::of(&user, Method::Certificate);
    if !identity
        .groups
        .iter()
        .any(|g| g == crate::init::AGENTS_GROUP)
    {
        identity.groups.push(crate::init::AGENTS_GROUP.to_string());
    }
    Ok(identity)
}

/// One agent session. Every open session is one of these futures, resident for the agent's
/// whole life, so its size is backend memory per idle agent (`-Zprint-type-sizes` on nightly
/// shows it): the shared state and the identity are behind pointers (an `async fn` would also
/// keep a second copy of its by-value arguments), and everything but the wait for the next
/// wake-up runs in a boxed future of its own (a future is as large as its largest await).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its future"
)]
fn session(
    state: Arc<AgentdState>,
    peer: Box<Peer>,
    mut socket: WebSocket,
) -> impl Future<Output = ()> {
    async move {
        state.metrics.agent_sessions.fetch_add(1, Ordering::Relaxed);
        Metrics::inc(&state.metrics.agent_sessions_total);
        tracing::info!(agent = %peer.agent, namespace = %peer.namespace, user = %peer.identity.username, "Agent session opened");
        let reason = run_session(&state, &peer, &mut socket).await;
        state.metrics.agent_sessions.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(agent = %peer.agent, namespace = %peer.namespace, reason = %reason, "Agent session closed");
    }
}

/// What an open session holds between frames.
struct Live {
    check_requests: BusSubscription,
    config_updates: Arc<Mailbox<ConfigUpdate>>,
    rbac_changes: tokio::sync::watch::Receiver<u64>,
    _registration: Registration,
}

/// Why a session woke up.
enum Wake {
    Frame(Option<Result<WsMessage, axum::Error>>),
    Shutdown,
    Config(ConfigUpdate),
    RbacChanged,
    CheckRequest(Arc<CheckRequest>),
    Idle,
}

/// Ends a session with the reason to log.
type Ended = String;

async fn run_session(state: &AgentdState, peer: &Peer, socket: &mut WebSocket) -> Ended {
    let mut live = match Box::pin(open_session(state, peer, socket)).await {
        Ok(live) => live,
        Err(reason) => return reason,
    };
    loop {
        let wake = tokio::select! {
            _ = state.shutdown.cancelled() => Wake::Shutdown,
            config = live.config_updates.recv() => Wake::Config(config),
            Ok(()) = live.rbac_changes.changed() => Wake::RbacChanged,
            request = live.check_requests.requests.recv() => Wake::CheckRequest(request),
            m = tokio::time::timeout(SESSION_IDLE_TIMEOUT, socket.recv()) => match m {
                Ok(frame) => Wake::Frame(frame),
                Err(_) => Wake::Idle,
            },
        };
        if let Err(reason) = Box::pin(on_wake(state, peer, socket, &mut live, wake)).await {
            return reason;
        }
    }
}

/// Sends the stored configuration (or "not found") first, as Sensu's backend does, and puts
/// the session on the bus and in the registry.
async fn open_session(
    state: &AgentdState,
    peer: &Peer,
    socket: &mut WebSocket,
) -> Result<Live, Ended> {
    let config = match state
        .repo
        .get::<EntityConfig>(&keys::entity_config(&peer.namespace, &peer.agent))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => EntityConfig {
            metadata: ObjectMeta::new(peer.namespace.clone(), ENTITY_CONFIG_NOT_FOUND),
            entity_class: ENTITY_CLASS_AGENT.to_string(),
            ..Default::default()
        },
        Err(e) => {
            close(socket, wire::CLOSE_POLICY_VIOLATION, "store unavailable").await;
            return Err(format!("store error: {e}"));
        }
    };
    let check_requests = subscribe(state, peer, &config);
    let (registration, config_updates) = state.sessions.register(&peer.namespace, &peer.agent);
    let rbac_changes = state.authz.changes();
    let frame = wire::encode(&Message::EntityConfig(Box::new(config)));
    if send(state, socket, WsMessage::Binary(frame.into()))
        .await
        .is_err()
    {
        return Err("could not send entity_config".into());
    }
    Ok(Live {
        check_requests,
        config_updates,
        rbac_changes,
        _registration: registration,
    })
}

async fn on_wake(
    state: &AgentdState,
    peer: &Peer,
    socket: &mut WebSocket,
    live: &mut Live,
    wake: Wake,
) -> Result<(), Ended> {
    match wake {
        Wake::Shutdown => {
            close(
                socket,
                wire::CLOSE_NORMAL_GOING_AWAY,
                "backend shutting down",
            )
            .await;
            Err("backend shutdown".into())
        }
        Wake::Config(config) => {
            // An operator (or the agent's own registration) changed the entity: follow its
            // subscriptions from now on and tell the agent.
            live.check_requests = subscribe(state, peer, &config);
            let frame = wire::encode(&Message::EntityConfig(config));
            send(state, socket, WsMessage::Binary(frame.into()))
                .await
                .map_err(|()| "could not send an entity_config update".into())
        }
        Wake::RbacChanged => {
            // Roles or bindings changed: a session whose user lost `create` on `events` in
            // its namespace ends, as its handshake would now be refused.
            if may_send_events(&state.authz, &peer.identity, &peer.namespace) {
                return Ok(());
            }
            Metrics::inc(&state.metrics.handshake_forbidden_total);
            close(
                socket,
                wire::CLOSE_POLICY_VIOLATION,
                "permission to create events in this namespace was revoked",
            )
            .await;
            Err(format!(
                "user {:?} may no longer create events here",
                peer.identity.username
            ))
        }
        Wake::CheckRequest(request) => {
            let request =
                crate::assetsel::for_agent(state, &peer.namespace, &peer.agent, request).await;
            let frame = wire::encode(&Message::CheckRequest(Box::new((*request).clone())));
            send(state, socket, WsMessage::Binary(frame.into()))
                .await
                .map_err(|()| "could not send a check request".into())
        }
        Wake::Frame(frame) => on_frame(state, peer, socket, frame).await,
        Wake::Idle => {
            close(
                socket,
                wire::CLOSE_POLICY_VIOLATION,
                "no frame or ping for too long",
            )
            .await;
            Err(format!("idle for {}s", SESSION_IDLE_TIMEOUT.as_secs()))
        }
    }
}

async fn on_frame(
    state: &AgentdState,
    peer: &Peer,
    socket: &mut WebSocket,
    frame: Option<Result<WsMessage, axum::Error>>,
) -> Result<(), Ended> {
    let msg = match frame {
        None => return Err("connection closed".into()),
        Some(Err(e)) => {
            let text = e.to_string();
            // axum surfaces tungstenite's capacity error as a read error.
            if text.contains("too long") || text.contains("too big") || text.contains("Space limit")
            {
                Metrics::inc(&state.metrics.frames_oversized_total);
                let err = FrameError::TooLarge {
                    size: 0,
                    limit: wire::MAX_FRAME_BYTES,
                };
                close(socket, err.close_code(), "frame exceeds the size limit").await;
                return Err(format!("oversized frame: {text}"));
            }
            return Err(format!("read error: {text}"));
        }
        Some(Ok(m)) => m,
    };
    let data = match msg {
        WsMessage::Binary(b) => b,
        // Sensu agents only send binary frames; a text frame is accepted the same way.
        WsMessage::Text(t) => axum::body::Bytes::from(t.as_str().to_owned()),
        WsMessage::Close(_) => return Err("agent closed the session".into()),
        WsMessage::Ping(_) | WsMessage::Pong(_) => return Ok(()),
    };
    Metrics::inc(&state.metrics.frames_received_total);
    match wire::decode(&data) {
        Ok(Message::Keepalive(event)) => {
            if !submit(state, peer, event, true, None).await {
                return Err("backend shutting down".into());
            }
            Ok(())
        }
        Ok(Message::Event(event)) => {
            let id = event.id.filter(|_| peer.acks);
            let (done, stored) = match id {
                Some(_) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    (Some(tx), Some(rx))
                }
                None => (None, None),
            };
            if !submit(state, peer, event, false, done).await {
                return Err("backend shutting down".into());
            }
            // Acknowledged only once durable in the store; a failed store write is not
            // acknowledged, so the agent keeps the event and sends it again.
            if let (Some(id), Some(stored)) = (id, stored)
                && stored.await.unwrap_or(false)
            {
                let ack = wire::encode(&Message::EventAck(Box::new(wire::EventAck { id })));
                if send(state, socket, WsMessage::Binary(ack.into()))
                    .await
                    .is_err()
                {
                    return Err("could not send an event acknowledgement".into());
                }
            }
            Ok(())
        }
        Ok(other) => {
            Metrics::inc(&state.metrics.frames_malformed_total);
            let reason = format!("agents may not send {} messages", other.type_name());
            close(socket, wire::CLOSE_PROTOCOL_ERROR, &reason).await;
            Err(reason)
        }
        Err(e) => {
            if matches!(e, FrameError::TooLarge { .. }) {
                Metrics::inc(&state.metrics.frames_oversized_total);
            } else {
                Metrics::inc(&state.metrics.frames_malformed_total);
            }
            let reason = e.to_string();
            tracing::warn!(agent = %peer.agent, namespace = %peer.namespace, error = %reason, "Closing agent session on a bad frame");
            close(socket, e.close_code(), &reason).await;
            Err(reason)
        }
    }
}

/// Bind an event to the session's identity: an agent speaks only for itself (and, for
/// events, for proxy entities) in its own namespace.
/// `done` hears whether the event was stored; a dropped event counts as done (`true`): the
/// agent must not send it again. The event stays boxed: an `Event` is 1.9 KB, and this
/// future's arguments are part of every session's future.
async fn submit(
    state: &AgentdState,
    peer: &Peer,
    mut event: Box<Event>,
    keepalive: bool,
    done: Option<tokio::sync::oneshot::Sender<bool>>,
) -> bool {
    let drop_it = |done: Option<tokio::sync::oneshot::Sender<bool>>| {
        if let Some(done) = done {
            let _ = done.send(true);
        }
        true
    };
    event.metadata.namespace = peer.namespace.clone();
    let entity = event.entity.get_or_insert_with(Default::default);
    if keepalive && !entity.metadata.name.is_empty() && entity.metadata.name != peer.agent {
        Metrics::inc(&state.metrics.keepalives_rejected_total);
        tracing::warn!(agent = %peer.agent, claimed = %entity.metadata.name, "Dropping a keepalive for another entity");
        return true;
    }
    if entity.metadata.name.is_empty() {
        entity.metadata.name = peer.agent.clone();
    }
    if let Err(e) = entity.validate_limits() {
        Metrics::inc(&state.metrics.events_rejected_total);
        tracing::warn!(agent = %peer.agent, error = %e, "Dropping an event whose entity exceeds a size limit");
        return true;
    }
    entity.metadata.namespace = peer.namespace.clone();
    if let Some(check) = event.check.as_mut() {
        check.config.metadata.namespace = peer.namespace.clone();
        if !keepalive && check.config.metadata.name.is_empty() {
            Metrics::inc(&state.metrics.events_rejected_total);
            tracing::warn!(agent = %peer.agent, "Dropping an event whose check has no name");
            return drop_it(done);
        }
    } else if !keepalive && event.metrics.is_none() {
        Metrics::inc(&state.metrics.events_rejected_total);
        tracing::warn!(agent = %peer.agent, "Dropping an event with neither check nor metrics");
        return drop_it(done);
    }
    let work = match (keepalive, done) {
        (true, _) => Work::Keepalive(event),
        (false, Some(done)) => Work::EventNotify(event, done),
        (false, None) => Work::Event(event),
    };
    state.dispatcher.submit(work).await
}

async fn send(state: &AgentdState, socket: &mut WebSocket, msg: WsMessage) -> Result<(), ()> {
    match tokio::time::timeout(state.write_timeout, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close reason is limited to 123 bytes by RFC 6455.
    let mut reason = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(WsMessage::Close(Some(frame))),
    )
    .await;
}

/// Put the session on the bus: the stored configuration's subscriptions when there is one
/// (the backend is the source of truth), else what the agent announced; `entity:<name>`
/// always.
fn subscribe(state: &AgentdState, peer: &Peer, config: &EntityConfig) -> BusSubscription {
    let mut topics = if config.metadata.name == ENTITY_CONFIG_NOT_FOUND {
        peer.subscriptions.clone()
    } else {
        config.subscriptions.clone().unwrap_or_default()
    };
    topics.push(format!("entity:{}", peer.agent));
    state.bus.subscribe(&peer.namespace, &topics)
}

/// The agent sessions open on this backend, by entity, so that a changed entity
/// configuration reaches its agent's session.
#[derive(Default)]
pub struct SessionRegistry {
    /// Never held across an await.
    inner: std::sync::Mutex<SessionMap>,
}

/// Boxed: a tokio channel allocates its first block of 32 slots when it is created; with
/// 272-byte `EntityConfig` slots that was 8,735 bytes per idle session (heaptrack,
/// benches/RESULTS.md), with boxes it is about 300.
type ConfigUpdate = Box<EntityConfig>;

/// How many configuration updates may wait for a session that is not keeping up.
const CONFIG_UPDATES_QUEUED: usize = 4;

type SessionMap = std::collections::HashMap<(String, String), (u64, Arc<Mailbox<ConfigUpdate>>)>;

static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Removes a session from the registry when dropped (unless a newer session of the same
/// agent replaced it meanwhile).
pub struct Registration {
    registry: Arc<SessionRegistry>,
    key: (String, String),
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.registry.inner.lock().expect("session registry lock");
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl SessionRegistry {
    fn register(
        self: &Arc<Self>,
        ns: &str,
        name: &str,
    ) -> (Registration, Arc<Mailbox<ConfigUpdate>>) {
        let mailbox = Mailbox::new(CONFIG_UPDATES_QUEUED);
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let key = (ns.to_string(), name.to_string());
        self.inner
            .lock()
            .expect("session registry lock")
            .insert(key.clone(), (id, mailbox.clone()));
        (
            Registration {
                registry: self.clone(),
                key,
                id,
            },
            mailbox,
        )
    }

    fn notify(&self, config: EntityConfig) {
        let key = (
            config.metadata.namespace.clone(),
            config.metadata.name.clone(),
        );
        let mailbox = self
            .inner
            .lock()
            .expect("session registry lock")
            .get(&key)
            .map(|(_, mailbox)| mailbox.clone());
        if let Some(mailbox) = mailbox {
            // A session that is not keeping up gets the next change instead.
            let _ = mailbox.try_push(Box::new(config));
        }
    }
}

/// Forward entity configuration changes to the sessions of this backend until shutdown.
pub async fn watch_entity_configs(
    repo: Repo,
    sessions: Arc<SessionRegistry>,
    shutdown: CancellationToken,
) {
    let prefix = keys::entity_configs_prefix(None);
    crate::repo::follow(repo.store.clone(), prefix, shutdown, |change| {
        if let backend_store::WatchEvent::Put(kv) = change {
            match crate::repo::decode::<EntityConfig>(&kv) {
                Ok(config) => sessions.notify(config),
                Err(e) => tracing::warn!(error = %e, "Unreadable entity configuration"),
            }
        }
        std::future::ready(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::AcceptLimiter;

    #[test]
    fn accept_limiter_admits_a_burst_of_rate_then_refuses() {
        let limiter = AcceptLimiter::new(3);
        let admitted = (0..10).filter(|_| limiter.admit()).count();
        // Three from the full bucket; the microseconds the loop takes refill next to nothing.
        assert_eq!(admitted, 3);
        let unlimited = AcceptLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.admit()));
    }
}
