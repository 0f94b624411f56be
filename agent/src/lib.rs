//! `agent`: the library behind `picket-agent`, the Picket (Sensu Go 6 compatible) agent.
//!
//! The agent keeps one WebSocket session to one of its backends, announces itself with its
//! system facts and sends keepalives; the backend pushes entity configuration and check
//! requests back, and the agent runs the checks and returns their results as events.
//!
//! # Layout
//! - [`config`]: flags, `PICKET_*` env and YAML file → validated [`Config`] (two stages, all
//!   problems collected).
//! - [`facts`]: system facts (`proto_spec::v2::System`); pure parsers plus one `collect()`.
//! - [`entity`]: the agent entity, `entity_config` adoption and keepalive events.
//! - [`reconnect`]: backoff with jitter and the backend URL rotation (seeded-RNG testable).
//! - [`outbox`]: the bounded queue of outgoing events.
//! - [`check`]: check requests → dedup, token substitution, execution (`sh -c`, own process
//!   group, timeout), hooks → result events into the outbox.
//! - [`statsd`]: the StatsD UDP listener; metrics-only events into the outbox every flush
//!   interval (parsing and aggregation live in the `statsd` library crate).
//! - [`transport`]: the WebSocket handshake (headers, credentials, HTTP rejections).
//! - `session`: one session's loop: frames, keepalives, heartbeats, close.
//! - [`Agent`]: ties them together; `src/main.rs` is a thin binary around it.
//!
//! Every long-running component has the same shape: built by a constructor that validates,
//! then `async fn run(self, shutdown: CancellationToken)`. Nothing is global, so several
//! agents can run in one process (the integration tests do).
//!
//! Not implemented yet (their flags are accepted, validated and documented as such): TLS
//! (`wss://`), the agent API, sockets, runtime assets (a check that names some
//! reports status 3 instead of running), the allow list, output metric extraction, the
//! events rate limit and cloud provider detection.

pub mod check;
pub mod config;
pub mod entity;
pub mod facts;
pub mod outbox;
pub mod reconnect;
mod session;
pub mod statsd;
pub mod transport;

use std::net::SocketAddr;
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
}

/// A configured agent, ready to [`run`](Agent::run).
#[derive(Debug)]
pub struct Agent {
    config: Arc<Config>,
    outbox: Outbox,
    facts: Option<proto_spec::v2::System>,
    statsd: statsd::Server,
}

impl Agent {
    pub fn new(config: Config) -> Result<Self, AgentError> {
        if config.backend_urls.is_empty() {
            return Err(AgentError::NoBackendUrl);
        }
        // Bound here rather than in `run` so the address (port 0 in tests) is known up front.
        let statsd = statsd::Server::bind(&config.statsd);
        Ok(Agent {
            config: Arc::new(config),
            outbox: Outbox::default(),
            facts: None,
            statsd,
        })
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
            },
            self.outbox.clone(),
            checks_stop,
        );
        // The StatsD listener stops with the agent, like the checks.
        let statsd_stop = shutdown.child_token();
        let _statsd_guard = statsd_stop.clone().drop_guard();
        let statsd_task = self.statsd.spawn(
            statsd::EventSink {
                namespace: config.namespace.clone(),
                handlers: config.statsd.event_handlers.clone(),
                entity: entity_source(entity_config.clone(), facts_rx.clone()),
                outbox: self.outbox.clone(),
            },
            statsd_stop.clone(),
        );
        let shared = Shared {
            entity: entity_config,
            config: config.clone(),
            facts: facts_rx,
            outbox: self.outbox,
            checks,
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
                password: &config.password.0,
                subscriptions: &subscriptions,
            };
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = transport::connect(&url, &who, config.transport.handshake_timeout) => r,
            };
            let wait = match attempt {
                Ok((ws, backend_id)) => {
                    info!(backend_url = %url, backend_id = backend_id.as_deref().unwrap_or(""), "Connected to backend");
                    let started = Instant::now();
                    let deadline = config
                        .transport
                        .max_session_length
                        .map(|l| started + reconnect::session_length(l, &mut rng));
                    let end = session::run(ws, &shared, &shutdown, deadline).await;
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
