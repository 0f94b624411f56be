//! `agent`: the library behind `picket-agent`, the Picket (Sensu Go 6 compatible) agent.
//!
//! The agent keeps one WebSocket session to one of its backends, announces itself with its
//! system facts and sends keepalives; the backend pushes entity configuration and check
//! requests back, and the agent runs the checks and returns their results as events. Local
//! clients add events through the HTTP API, the socket API and StatsD.
//!
//! # Layout
//! - [`config`]: flags, `PICKET_*` env and YAML file → validated [`Config`] (two stages, all
//!   problems collected).
//! - [`facts`]: system facts (`proto_spec::v2::System`); pure parsers plus one `collect()`.
//! - [`entity`]: the agent entity, `entity_config` adoption and keepalive events.
//! - [`reconnect`]: backoff with jitter and the backend URL rotation (seeded-RNG testable).
//! - [`outbox`]: the durable, bounded, ordered queue of outgoing events in
//!   `<cache-dir>/outbox/` (segment files, checksummed records, at-least-once delivery).
//! - [`check`]: check requests → dedup, token substitution, allow list, runtime assets,
//!   execution (`sh -c`, own process group, timeout), hooks → result events into the outbox.
//! - [`assets`]: runtime assets (`assetfetch` cache in `<cache-dir>/<sha512>/`, environment)
//!   and the `--allow-list`.
//! - [`statsd`]: the StatsD UDP listener; metrics-only events into the outbox every flush
//!   interval (parsing and aggregation live in the `statsd` library crate).
//! - [`api`]: the local HTTP API (`POST /events`, `/healthz`, `/version`, `/metrics`) on a
//!   small HTTP/1.1 server of its own; also the events rate limit and the agent's counters.
//! - [`socket`]: the TCP/UDP socket API for Sensu 1.x check results.
//! - [`transport`]: the connection (TCP, TLS for `wss://` through the `tls` crate) and the
//!   WebSocket handshake (headers, credentials, HTTP rejections).
//! - `session`: one session's loop: frames, keepalives, heartbeats, outbox draining, close.
//! - [`Agent`]: ties them together; `src/main.rs` is a thin binary around it.
//!
//! Every long-running component has the same shape: built by a constructor that validates
//! (and binds its sockets, so tests can use port 0 and read the address back), then run
//! until a `CancellationToken` fires; all of them stop when [`Agent::run`] returns. Nothing
//! is global, so several agents can run in one process (the integration tests do), each with
//! its own cache directory.
//!
//! Not implemented yet (its flag is accepted, validated and documented as such): cloud
//! provider detection.

pub mod api;
pub mod assets;
pub mod check;
pub mod config;
pub mod entity;
pub mod facts;
pub mod outbox;
pub mod reconnect;
mod session;
pub mod socket;
pub mod statsd;
pub mod transport;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

pub use config::{Config, ConfigError};
pub use outbox::Outbox;
pub use tokio_util::sync::CancellationToken;

use check::{CheckEnv, CheckRunner, EntitySource};
use proto_spec::v2::{EntityConfig, System};
use reconnect::{BackendRotation, Backoff};
use session::{SessionEnd, Shared};

/// Errors that stop an agent from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("no backend URL configured")]
    NoBackendUrl,
    #[error("cannot open the outbox: {0}")]
    Outbox(std::io::Error),
    #[error("cannot open the asset cache: {0}")]
    Assets(assetfetch::Error),
    #[error(transparent)]
    AllowList(#[from] assets::allow_list::AllowListError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A configured agent, ready to [`run`](Agent::run).
#[derive(Debug)]
pub struct Agent {
    config: Arc<Config>,
    outbox: Outbox,
    facts: Option<proto_spec::v2::System>,
    statsd: statsd::Server,
    api: api::Server,
    socket: socket::Server,
    stats: Arc<api::Stats>,
    assets: assets::Assets,
    allow_list: Option<Arc<assets::allow_list::AllowList>>,
    connector: transport::Connector,
}

/// The outbox's directory under `--cache-dir`.
pub const OUTBOX_DIR: &str = "outbox";

impl Agent {
    pub fn new(config: Config) -> Result<Self, AgentError> {
        if config.backend_urls.is_empty() {
            return Err(AgentError::NoBackendUrl);
        }
        let connector = transport::Connector::new(&config.backend_urls, &config.tls)?;
        // Opened here so a queue that cannot be used (permissions, another agent on the same
        // cache dir) stops the agent at start-up rather than losing events later.
        let outbox = Outbox::open(
            &config.cache_dir.join(OUTBOX_DIR),
            outbox::Limits::default(),
        )
        .map_err(AgentError::Outbox)?;
        // Bound here rather than in `run` so the addresses (port 0 in tests) are known up
        // front.
        let statsd = statsd::Server::bind(&config.statsd);
        let api = api::Server::bind(&config.api);
        let socket = socket::Server::bind(&config.socket);
        // Opened here too: a bad CA file or allow list stops the agent at start-up, and work
        // an earlier run left half done in the cache is cleared before any check runs.
        let assets = assets::Assets::from_config(&config).map_err(AgentError::Assets)?;
        let allow_list = match &config.allow_list {
            Some(path) => Some(Arc::new(assets::allow_list::AllowList::load(path)?)),
            None => None,
        };
        Ok(Agent {
            config: Arc::new(config),
            outbox,
            facts: None,
            statsd,
            api,
            socket,
            stats: Arc::default(),
            assets,
            allow_list,
            connector,
        })
    }

    /// Change the outbox's bounds (default: 10,000 events, 64 MiB, 4 MiB segments).
    pub fn with_outbox_limits(self, limits: outbox::Limits) -> Self {
        self.outbox.set_limits(limits);
        self
    }

    /// Report these facts instead of the machine's, and never refresh them (tests, embedding).
    pub fn with_facts(mut self, system: proto_spec::v2::System) -> Self {
        self.facts = Some(system);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the StatsD listener is bound; `None` when disabled or when binding failed.
    pub fn statsd_addr(&self) -> Option<SocketAddr> {
        self.statsd.local_addr()
    }

    /// Where the HTTP API listens; `None` when disabled or when binding failed.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.local_addr()
    }

    /// Where the TCP socket API listens; `None` when disabled or when binding failed.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.socket.tcp_addr()
    }

    /// Where the UDP socket API listens (the TCP port); `None` when disabled or failed.
    pub fn socket_udp_addr(&self) -> Option<SocketAddr> {
        self.socket.udp_addr()
    }

    /// The queue where producers of events put them for the backend.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Connect, send keepalives and reconnect until `shutdown` is cancelled; then close the
    /// session with code 1001 and return.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let config = self.config;
        for warning in &config.warnings {
            warn!("{warning}");
        }

        let refresh = self.facts.is_none();
        let initial = match self.facts {
            Some(fixed) => fixed,
            None => collect_facts().await,
        };
        let (facts_tx, facts_rx) = watch::channel(initial);
        // The refresher stops with the agent: its token is a child of `shutdown`, and the
        // guard cancels it on every return path of `run`.
        let facts_stop = shutdown.child_token();
        let _facts_guard = facts_stop.clone().drop_guard();
        if refresh {
            tokio::spawn(refresh_facts(facts_tx, facts_stop));
        }

        let entity_config = Arc::new(Mutex::new(entity::local_entity_config(&config)));
        // Running checks are killed when the agent stops: their token is a child of
        // `shutdown`, cancelled on every return path of `run` by the guard.
        let checks_stop = shutdown.child_token();
        let _checks_guard = checks_stop.clone().drop_guard();
        let checks = CheckRunner::new(
            CheckEnv {
                agent_name: config.name.clone(),
                entity: entity_source(entity_config.clone(), facts_rx.clone()),
                assets: self.assets.clone(),
                allow_list: self.allow_list.clone(),
            },
            self.outbox.clone(),
            checks_stop,
        );
        // The StatsD listener stops with the agent, like the checks.
        let statsd_stop = shutdown.child_token();
        let _statsd_guard = statsd_stop.clone().drop_guard();
        let statsd_stats = self.statsd.stats();
        let statsd_task = self.statsd.spawn(
            statsd::EventSink {
                namespace: config.namespace.clone(),
                handlers: config.statsd.event_handlers.clone(),
                entity: entity_source(entity_config.clone(), facts_rx.clone()),
                outbox: self.outbox.clone(),
            },
            statsd_stop.clone(),
        );
        // Batched fsyncs of the outbox, with a last one when the agent stops.
        let sync_stop = CancellationToken::new();
        let _sync_guard = sync_stop.clone().drop_guard();
        let sync_task = tokio::spawn(self.outbox.clone().run_syncer(sync_stop.clone()));
        let defaults = api::EventDefaults {
            agent_name: config.name.clone(),
            namespace: config.namespace.clone(),
            entity: entity_source(entity_config.clone(), facts_rx.clone()),
        };
        // The local APIs stop with the agent, before the other producers (no new events from
        // clients while the agent is stopping).
        let apis_stop = shutdown.child_token();
        let _apis_guard = apis_stop.clone().drop_guard();
        let api_task = self.api.spawn(
            api::Context {
                defaults: defaults.clone(),
                outbox: self.outbox.clone(),
                sources: api::Sources {
                    stats: self.stats.clone(),
                    outbox: self.outbox.clone(),
                    checks: Some(checks.clone()),
                    statsd: statsd_stats,
                },
            },
            apis_stop.clone(),
        );
        let socket_task = self.socket.spawn(
            socket::Context {
                defaults,
                outbox: self.outbox.clone(),
                stats: self.stats.clone(),
            },
            apis_stop.clone(),
        );
        let stats = self.stats;
        let connector = self.connector;
        let shared = Shared {
            entity: entity_config,
            config: config.clone(),
            facts: facts_rx,
            outbox: self.outbox,
            checks,
            events_limit: Mutex::new(api::TokenBucket::new(config.events, Instant::now())),
        };
        let mut rng = StdRng::from_os_rng();
        let mut backends = BackendRotation::new(config.backend_urls.clone(), &mut rng);
        let mut backoff = Backoff::new(config.retry, StdRng::from_rng(&mut rng));

        while !shutdown.is_cancelled() {
            let url = backends.next_url().clone();
            let entity_config = shared.entity_config();
            let subscriptions = entity::handshake_subscriptions(&entity_config);
            let who = transport::Credentials {
                agent_name: &config.name,
                namespace: &config.namespace,
                user: &config.user,
                // With a client certificate on a wss:// URL the certificate is the credential.
                password: (!(url.secure && config.tls.cert_file.is_some()))
                    .then_some(config.password.0.as_str()),
                subscriptions: &subscriptions,
            };
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = transport::connect(&url, &who, &connector, config.transport.handshake_timeout) => r,
            };
            let wait = match attempt {
                Ok((ws, backend_id, version)) => {
                    info!(backend_url = %url, backend_id = backend_id.as_deref().unwrap_or(""), protocol_version = version, "Connected to backend");
                    if stats.sessions.fetch_add(1, Ordering::Relaxed) > 0 {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    stats.connected.store(true, Ordering::Relaxed);
                    let started = Instant::now();
                    let deadline = config
                        .transport
                        .max_session_length
                        .map(|l| started + reconnect::session_length(l, &mut rng));
                    let acks = version >= proto_spec::wire::ACK_VERSION;
                    let end = session::run(ws, &shared, &shutdown, deadline, acks).await;
                    stats.connected.store(false, Ordering::Relaxed);
                    info!(backend_url = %url, reason = %end, "Disconnected from backend");
                    if end == SessionEnd::Shutdown {
                        break;
                    }
                    if end == SessionEnd::MaxLength
                        || started.elapsed() >= reconnect::STABLE_SESSION
                    {
                        backoff.reset();
                    }
                    let wait = backoff.next_wait();
                    warn!(backend_url = %url, wait = ?wait, "Reconnecting after a wait");
                    wait
                }
                Err(e) => {
                    stats.connection_failures.fetch_add(1, Ordering::Relaxed);
                    if e.is_throttled() {
                        backoff.throttle();
                    }
                    let wait = backoff.next_wait();
                    warn!(backend_url = %url, error = %e, wait = ?wait, "Connection to backend failed; retrying after a wait");
                    wait
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // No new events from local clients; requests in progress get a moment to finish.
        apis_stop.cancel();
        for task in [api_task, socket_task].into_iter().flatten() {
            let _ = task.await;
        }
        // Killed commands are reaped within moments; do not return while they still run.
        if !shared.checks.wait_idle(CHECK_STOP_GRACE).await {
            warn!(
                running = shared.checks.running(),
                "Some check executions had not ended when the agent stopped"
            );
        }
        // Its socket is closed once the task returns, so the port is free again.
        statsd_stop.cancel();
        if let Some(task) = statsd_task {
            let _ = task.await;
        }
        // Everything queued is on disk when `run` returns; the queue's lock is released once
        // the last handle (the caller's `Agent::outbox()` clones included) is dropped.
        sync_stop.cancel();
        let _ = sync_task.await;
        info!("Agent stopped");
        Ok(())
    }
}

/// How long a stopping agent waits for its killed check executions to end.
const CHECK_STOP_GRACE: Duration = Duration::from_secs(2);

/// The agent's current entity, as check results and token substitution see it.
fn entity_source(config: Arc<Mutex<EntityConfig>>, facts: watch::Receiver<System>) -> EntitySource {
    Arc::new(move || {
        let ec = config.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let system = facts.borrow().clone();
        entity::build_entity(&ec, system, check::unix_now())
    })
}

async fn collect_facts() -> proto_spec::v2::System {
    tokio::task::spawn_blocking(facts::collect)
        .await
        .unwrap_or_default()
}

async fn refresh_facts(tx: watch::Sender<proto_spec::v2::System>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(facts::REFRESH_INTERVAL) => {}
        }
        let system = collect_facts().await;
        // `send_if_modified` avoids waking readers when nothing changed; the next keepalive
        // reads the latest value either way.
        tx.send_if_modified(|current| {
            let changed = *current != system;
            if changed {
                *current = system;
            }
            changed
        });
    }
}
