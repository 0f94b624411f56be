//! The composition root: builds every component on one store and runs them until shutdown.
//! Components start in dependency order (queues, keepalive monitor, agent port, API) and
//! stop together on the shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_store::Store;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::agentd::{self, AgentdState, SessionRegistry};
use crate::apid::{self, ApiState};
use crate::auth::{AuthConfig, Authenticator};
use crate::bus::CheckBus;
use crate::eventd::{Dispatcher, EventBus, Eventd};
use crate::keepalived::Keepalived;
use crate::listener::{Listener, PeerInfo};
use crate::metrics::Metrics;
use crate::pipelined::Pipelined;
use crate::rbac::Authorizer;
use crate::repo::Repo;
use crate::schedulerd::{SchedulerConfig, Schedulerd};

/// Everything the running backend needs, already validated.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub api_listen: SocketAddr,
    pub agent_listen: SocketAddr,
    pub api_request_limit: usize,
    pub api_serve_wait: Duration,
    pub agent_serve_wait: Duration,
    pub agent_write_timeout: Duration,
    pub eventd_workers: usize,
    pub eventd_buffer_size: usize,
    /// Name the backend gives itself in `Backend-ID` handshake answers.
    pub backend_id: String,
    /// TLS of the API port (`--cert-file`, `--key-file`); plain HTTP when `None`.
    pub api_tls: Option<Arc<tls::ServerConfig>>,
    /// TLS of the agent port (its own certificate from `--agent-auth-cert-file`, else the
    /// API's), verifying client certificates when `--agent-auth-trusted-ca-file` is set;
    /// plain WebSocket when `None`.
    pub agent_tls: Option<Arc<tls::ServerConfig>>,
    /// Agent handshakes admitted per second (`--agent-accept-rate`); 0 = no limit.
    pub agent_accept_rate: u32,
}

impl BackendConfig {
    /// Loopback on free ports with Sensu's other defaults: what tests and benchmarks use.
    pub fn loopback() -> Self {
        BackendConfig {
            api_listen: "127.0.0.1:0".parse().expect("literal address"),
            agent_listen: "127.0.0.1:0".parse().expect("literal address"),
            api_request_limit: 512_000,
            api_serve_wait: Duration::ZERO,
            agent_serve_wait: Duration::ZERO,
            agent_write_timeout: Duration::from_secs(15),
            eventd_workers: 16,
            eventd_buffer_size: 1000,
            backend_id: "picket-backend".to_string(),
            api_tls: None,
            agent_tls: None,
            agent_accept_rate: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the RBAC roles and bindings: {0}")]
    Rbac(#[from] crate::repo::RepoError),
    #[error("the {what} server failed: {source}")]
    Serve {
        what: &'static str,
        source: std::io::Error,
    },
}

pub struct Backend {
    config: BackendConfig,
    store: Arc<dyn Store>,
    api_listener: Listener,
    agent_listener: Listener,
    metrics: Arc<Metrics>,
    bus: EventBus,
    check_bus: Arc<CheckBus>,
    pipeline: backend_pipeline::RunnerConfig,
    assets: Option<Arc<assetfetch::AssetCache>>,
    auth: AuthConfig,
    ui: crate::ui::UiConfig,
}

impl Backend {
    /// Bind both ports now, so a port conflict is reported before anything runs.
    pub async fn new(config: BackendConfig, store: Arc<dyn Store>) -> Result<Self, BackendError> {
        let api_listener =
            bind("REST API", config.api_listen, config.api_tls.clone(), false).await?;
        // Check requests are small frames that must leave at once: without TCP_NODELAY each
        // waits ~40 ms for the agent's delayed ACK (measured: p99 dispatch 45 ms → 6 ms).
        let agent_listener = bind(
            "agent WebSocket port",
            config.agent_listen,
            config.agent_tls.clone(),
            true,
        )
        .await?;
        let (bus, _) = broadcast::channel(4096);
        Ok(Backend {
            config,
            store,
            api_listener,
            agent_listener,
            metrics: Arc::new(Metrics::default()),
            bus,
            check_bus: CheckBus::new(),
            pipeline: backend_pipeline::RunnerConfig::default(),
            assets: None,
            auth: AuthConfig::default(),
            ui: crate::ui::UiConfig::default(),
        })
    }

    /// The cache where handlers' and mutators' runtime assets are installed (`--cache-dir`);
    /// without one they fail.
    pub fn set_asset_cache(&mut self, cache: Arc<assetfetch::AssetCache>) {
        self.assets = Some(cache);
    }

    /// The web UI's origins behind a reverse proxy (`--ui-origin`).
    pub fn set_ui_config(&mut self, ui: crate::ui::UiConfig) {
        self.ui = ui;
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_listener.local_addr()
    }

    pub fn agent_addr(&self) -> SocketAddr {
        self.agent_listener.local_addr()
    }

    /// Workers and queue size of the event pipeline (`--pipelined-workers`,
    /// `--pipelined-buffer-size`; Sensu's 100 and 1000 by default).
    pub fn set_pipeline_config(&mut self, config: backend_pipeline::RunnerConfig) {
        self.pipeline = config;
    }

    /// Token lifetimes and failed-login limits (Sensu's by default).
    pub fn set_auth_config(&mut self, config: AuthConfig) {
        self.auth = config;
    }

    /// Processed events, for in-process observers (the pipeline, tests).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<proto_spec::v2::Event>> {
        self.bus.subscribe()
    }

    /// The check-request bus of this backend's agent sessions.
    pub fn check_bus(&self) -> Arc<CheckBus> {
        self.check_bus.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BackendError> {
        let started = Instant::now();
        let repo = Repo::new(self.store.clone());
        let auth = Arc::new(Authenticator::new(repo.clone(), self.auth.clone()));
        if let Err(e) = crate::init::upgrade(&repo).await {
            tracing::error!(error = %e, "Cannot seed the default RBAC roles into an older store");
        }
        // Loaded before serving, then followed from the revision it was read at.
        let rbac_revision = self
            .store
            .revision()
            .await
            .map_err(crate::repo::RepoError::from)?;
        let authz = Authorizer::load(repo.clone()).await?;
        let rbac_watch = tokio::spawn(authz.clone().follow(rbac_revision, shutdown.clone()));
        // Subscribed before anything can publish, so no event escapes the pipeline.
        let pipelined = Pipelined::new(
            repo.clone(),
            self.metrics.clone(),
            self.pipeline,
            self.assets
                .clone()
                .map(|c| Arc::new(backend_pipeline::PipelineAssets::new(c))),
        );
        let pipelined = tokio::spawn(pipelined.run(self.bus.subscribe(), shutdown.clone()));
        let eventd = Eventd::new(repo.clone(), self.metrics.clone(), self.bus.clone());
        let keepalived = Arc::new(Keepalived::new(eventd.clone()));
        let dispatcher = Dispatcher::start(
            self.config.eventd_workers,
            self.config.eventd_buffer_size,
            keepalived.clone(),
            eventd.clone(),
            shutdown.clone(),
        );
        let monitor = tokio::spawn(keepalived.clone().run_monitor(shutdown.clone()));
        let ttl_monitor = tokio::spawn(eventd.clone().run_ttl_monitor(shutdown.clone()));
        let silences = tokio::spawn(eventd.silences.clone().run(shutdown.clone()));
        let sessions = Arc::new(SessionRegistry::default());
        let config_watch = tokio::spawn(agentd::watch_entity_configs(
            repo.clone(),
            sessions.clone(),
            shutdown.clone(),
        ));
        let scheduler = Schedulerd::new(SchedulerConfig {
            repo: repo.clone(),
            bus: self.check_bus.clone(),
        });
        let publisher = scheduler.publisher();
        let ring = tokio::spawn(scheduler.ring().run_membership(shutdown.clone()));
        let adhoc = tokio::spawn(crate::schedulerd::adhoc::run(
            repo.clone(),
            publisher.clone(),
            shutdown.clone(),
        ));
        let scheduler = tokio::spawn(scheduler.run(shutdown.clone()));

        let agent_app = agentd::router(AgentdState {
            repo: repo.clone(),
            auth: auth.clone(),
            authz: authz.clone(),
            dispatcher: dispatcher.clone(),
            bus: self.check_bus.clone(),
            sessions,
            metrics: self.metrics.clone(),
            backend_id: self.config.backend_id.clone(),
            shutdown: shutdown.clone(),
            serve_after: started + self.config.agent_serve_wait,
            write_timeout: self.config.agent_write_timeout,
            accept_limiter: Arc::new(agentd::AcceptLimiter::new(self.config.agent_accept_rate)),
        });
        let api_app = apid::router(
            ApiState {
                repo,
                auth,
                authz,
                keepalived,
                dispatcher,
                metrics: self.metrics.clone(),
                publisher,
                serve_after: started + self.config.api_serve_wait,
                version: env!("CARGO_PKG_VERSION"),
            },
            self.config.api_request_limit,
        );
        // The UI's pages call this API router in-process, through the same gate.
        let api_app = crate::ui::with_ui(api_app, self.ui.clone());
        tracing::info!(
            api = %self.api_addr(),
            api_tls = self.api_listener.is_tls(),
            agents = %self.agent_addr(),
            agent_tls = self.agent_listener.is_tls(),
            "Backend serving"
        );

        let stop = shutdown.clone();
        let agents = axum::serve(
            self.agent_listener,
            agent_app.into_make_service_with_connect_info::<PeerInfo>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await });
        let stop = shutdown.clone();
        let api = axum::serve(
            self.api_listener,
            api_app.into_make_service_with_connect_info::<PeerInfo>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await });
        let (a, b) = tokio::join!(agents.into_future(), api.into_future());
        monitor.abort();
        ttl_monitor.abort();
        silences.abort();
        config_watch.abort();
        rbac_watch.abort();
        adhoc.abort();
        pipelined.abort();
        // It stops on the shutdown token by itself; waiting keeps its last log lines in order.
        let _ = scheduler.await;
        // It revokes this backend's ring lease on the way out, so peers stop choosing its
        // agents at once.
        let _ = tokio::time::timeout(Duration::from_secs(2), ring).await;
        a.map_err(|source| BackendError::Serve {
            what: "agent",
            source,
        })?;
        b.map_err(|source| BackendError::Serve {
            what: "API",
            source,
        })?;
        Ok(())
    }
}

/// Bind, falling back from the IPv6 wildcard to the IPv4 one on hosts without IPv6.
async fn bind(
    what: &'static str,
    addr: SocketAddr,
    tls: Option<Arc<tls::ServerConfig>>,
    nodelay: bool,
) -> Result<Listener, BackendError> {
    let tcp = bind_tcp(what, addr).await?;
    Listener::new(tcp, tls, nodelay).map_err(|source| BackendError::Bind { what, addr, source })
}

async fn bind_tcp(what: &'static str, addr: SocketAddr) -> Result<TcpListener, BackendError> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            tracing::warn!(error = %e, "IPv6 wildcard unavailable; listening on {v4}");
            TcpListener::bind(v4)
                .await
                .map_err(|source| BackendError::Bind {
                    what,
                    addr: v4,
                    source,
                })
        }
        Err(source) => Err(BackendError::Bind { what, addr, source }),
    }
}
