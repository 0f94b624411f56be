//! `picket-backend`: parse the configuration, set up logging, open the store, run.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use backend_app::auth::{AuthConfig, EcdsaKeys};
use backend_app::config::{self, Command, InitFlags, StartFlags, StoreFlags};
use backend_app::init::{self, InitError};
use backend_app::repo::Repo;
use backend_app::{Backend, BackendConfig};
use backend_store::{EmbeddedStore, Store};
use tokio_util::sync::CancellationToken;

const EX_USAGE: u8 = 64;
/// `init` on an initialised store, as Sensu's `sensu-backend init` exits.
const EX_ALREADY_INITIALIZED: u8 = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let cli = match config::parse(&args, &env) {
        Ok(cli) => cli,
        Err(config::ConfigError::Cli(e)) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(e) => {
            eprintln!("picket-backend: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let result = match cli.command {
        Command::Version => {
            println!("picket-backend version {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Init(flags) => runtime().and_then(|rt| rt.block_on(run_init(*flags, &env))),
        Command::Start(flags) => runtime().and_then(|rt| rt.block_on(run_start(*flags, &env))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("picket-backend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads())
        .build()
        .context("cannot start the async runtime")
}

/// The blocking pool runs bcrypt checks and embedded-store reads (CPU work: more threads than
/// cores only queue in the kernel instead of in tokio), the store's committer and asset
/// downloads. tokio's default of 512 let a burst of agent handshakes start dozens of threads,
/// and every thread that allocated keeps its own allocator pages after it exits: the backend's
/// resident memory after 5,000 agents connected rose with the number of threads the burst
/// happened to start (benches/RESULTS.md). Four per core, at least 16, bounds that.
fn blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * 4).max(16)
}

fn init_logging(store: &StoreFlags) -> Result<(), ExitCode> {
    match store.log_level.parse::<telemetry::LogLevel>() {
        Ok(level) => {
            telemetry::init(level);
            Ok(())
        }
        Err(e) => {
            eprintln!("picket-backend: --log-level: {e}");
            Err(ExitCode::from(EX_USAGE))
        }
    }
}

async fn open_store(flags: &StoreFlags, env: &HashMap<String, String>) -> Result<Arc<dyn Store>> {
    if let Some(urls) = flags.etcd_urls() {
        return open_etcd(flags, &urls, env).await;
    }
    let dir = config::resolve_state_dir(flags.state_dir.as_deref(), env);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let path = dir.join("store.redb");
    let store = EmbeddedStore::open(&path).with_context(|| {
        format!(
            "cannot open the embedded store {} (is another picket-backend using it?)",
            path.display()
        )
    })?;
    tracing::info!(path = %path.display(), "Embedded store open");
    Ok(store)
}

/// How often etcd's history is compacted (keeping one period of it for lagging watchers).
#[cfg(feature = "etcd")]
const ETCD_COMPACTION_PERIOD: Duration = Duration::from_secs(300);

#[cfg(feature = "etcd")]
async fn open_etcd(
    flags: &StoreFlags,
    urls: &str,
    env: &HashMap<String, String>,
) -> Result<Arc<dyn Store>> {
    use backend_store::{EtcdOptions, EtcdStore};
    let mut opts = EtcdOptions::new(EtcdOptions::parse_endpoints(urls)?);
    opts.cert_file = flags.etcd_cert_file.clone();
    opts.key_file = flags.etcd_key_file.clone();
    opts.trusted_ca_file = flags.etcd_trusted_ca_file.clone();
    opts.username = env.get(config::ENV_ETCD_USERNAME).cloned();
    opts.password = env.get(config::ENV_ETCD_PASSWORD).cloned();
    opts.max_request_bytes = usize::try_from(flags.etcd_max_request_bytes).unwrap_or(usize::MAX);
    let store = EtcdStore::connect(opts)
        .await
        .with_context(|| format!("cannot connect to etcd at {urls}"))?;
    tracing::info!(%urls, "etcd store open");
    // Runs for the life of the process (init exits long before the first pass).
    tokio::spawn(
        store
            .clone()
            .run_compactor(ETCD_COMPACTION_PERIOD, std::future::pending()),
    );
    Ok(store)
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(
    _flags: &StoreFlags,
    _urls: &str,
    _env: &HashMap<String, String>,
) -> Result<Arc<dyn Store>> {
    bail!(
        "this picket-backend was built without etcd support (cargo feature `etcd`); remove --no-embed-etcd/--etcd-client-urls to use the embedded store"
    )
}

/// Wait for the store to answer: up to `timeout`, or forever with `wait`, so that `init` and
/// `start` fail with a clear message when etcd is unreachable instead of at the first write.
async fn wait_for_store(store: &Arc<dyn Store>, timeout: Duration, wait: bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match store.revision().await {
            Ok(_) => return Ok(()),
            Err(e) if !wait && tokio::time::Instant::now() >= deadline => {
                return Err(e).context(format!(
                    "the store did not answer within {} s",
                    timeout.as_secs()
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "Waiting for the store");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn run_init(flags: InitFlags, env: &HashMap<String, String>) -> Result<ExitCode> {
    if let Err(code) = init_logging(&flags.store) {
        return Ok(code);
    }
    let store = open_store(&flags.store, env).await?;
    wait_for_store(&store, Duration::from_secs(flags.timeout), flags.wait).await?;
    let repo = Repo::new(store);
    let (mut username, mut password) = (
        flags.cluster_admin_username.clone(),
        flags.cluster_admin_password.clone(),
    );
    if flags.interactive {
        username = Some(prompt("Cluster admin username: ")?);
        password = Some(prompt("Cluster admin password: ")?);
        if prompt("Retype cluster admin password: ")? != *password.as_deref().unwrap_or_default() {
            bail!("the passwords do not match");
        }
    }
    let (Some(username), Some(password)) = (username, password) else {
        eprintln!(
            "picket-backend init: --cluster-admin-username and --cluster-admin-password are required (or use --interactive)"
        );
        return Ok(ExitCode::from(EX_USAGE));
    };
    if let Some(Err(e)) = flags
        .cluster_admin_api_key
        .as_deref()
        .map(init::check_api_key)
    {
        eprintln!("picket-backend init: {e}");
        return Ok(ExitCode::from(EX_USAGE));
    }
    match init::initialize(&repo, &username, &password).await {
        Ok(()) => {
            if let Some(key) = flags.cluster_admin_api_key.as_deref() {
                init::add_api_key(&repo, &username, key)
                    .await
                    .context("cannot store the cluster admin's API key")?;
            }
            println!(
                "Picket store initialised: cluster admin {username:?}, agent user \"agent\", namespace \"default\"."
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(InitError::AlreadyInitialized) if flags.ignore_already_initialized => {
            Ok(ExitCode::SUCCESS)
        }
        Err(InitError::AlreadyInitialized) => {
            eprintln!("picket-backend init: the store is already initialised");
            Ok(ExitCode::from(EX_ALREADY_INITIALIZED))
        }
        Err(InitError::InvalidAdmin(reason)) => {
            eprintln!("picket-backend init: {reason}");
            Ok(ExitCode::from(EX_USAGE))
        }
        Err(e) => Err(e.into()),
    }
}

fn prompt(label: &str) -> Result<String> {
    print!("{label}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn run_start(flags: StartFlags, env: &HashMap<String, String>) -> Result<ExitCode> {
    if let Err(code) = init_logging(&flags.store) {
        return Ok(code);
    }
    let api_listen = match config::parse_listen("api-listen-address", &flags.api_listen_address) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("picket-backend: {e}");
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let agent_host = flags
        .agent_host
        .trim_start_matches('[')
        .trim_end_matches(']');
    let agent_listen = match agent_host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, flags.agent_port),
        Err(_) => {
            eprintln!(
                "picket-backend: --agent-host {:?} is not an IP address",
                flags.agent_host
            );
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    for (field, raw) in [
        ("labels", &flags.labels),
        ("annotations", &flags.annotations),
    ] {
        if let Err(e) = config::parse_kv_list(field, raw.as_deref()) {
            eprintln!("picket-backend: {e}");
            return Ok(ExitCode::from(EX_USAGE));
        }
    }
    let (api_tls, agent_tls) = match config::port_tls(&flags) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("picket-backend: {e}");
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let ui = match backend_app::ui::UiConfig::with_origins(&flags.ui_origin) {
        Ok(ui) => ui,
        Err(e) => {
            eprintln!("picket-backend: {e}");
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let ecdsa_keys = match (&flags.jwt_private_key_file, &flags.jwt_public_key_file) {
        (None, None) => None,
        (Some(private), Some(public)) => match load_jwt_keys(private, public) {
            Ok(keys) => Some(Arc::new(keys)),
            Err(e) => {
                eprintln!("picket-backend: {e}");
                return Ok(ExitCode::from(EX_USAGE));
            }
        },
        _ => {
            eprintln!(
                "picket-backend: --jwt-private-key-file and --jwt-public-key-file must be given together"
            );
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let store = open_store(&flags.store, env).await?;
    wait_for_store(&store, Duration::from_secs(30), false).await?;
    first_start(&store, env, flags.store.state_dir.as_deref()).await?;

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let config = BackendConfig {
        api_listen,
        agent_listen,
        api_request_limit: flags.api_request_limit,
        api_serve_wait: flags.api_serve_wait_time,
        agent_serve_wait: flags.agent_serve_wait_time,
        agent_write_timeout: Duration::from_secs(flags.agent_write_timeout),
        eventd_workers: flags.eventd_workers,
        eventd_buffer_size: flags.eventd_buffer_size,
        agent_accept_rate: flags.agent_accept_rate,
        backend_id: match hostname.trim() {
            "" => "picket-backend".to_string(),
            h => h.to_string(),
        },
        api_tls,
        agent_tls,
    };
    let asset_dir = flags.cache_dir.clone().unwrap_or_else(|| {
        config::resolve_state_dir(flags.store.state_dir.as_deref(), env).join("cache")
    });
    let assets = match assetfetch::AssetCache::open(assetfetch::CacheConfig {
        fetch: assetfetch::FetchConfig {
            trusted_ca_file: flags.trusted_ca_file.clone(),
            insecure_skip_tls_verify: flags.insecure_skip_tls_verify,
            ..assetfetch::FetchConfig::default()
        },
        rate_per_second: flags.assets_rate_limit,
        burst: flags.assets_burst_limit,
        ..assetfetch::CacheConfig::new(&asset_dir)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("picket-backend: asset cache {}: {e}", asset_dir.display());
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let mut backend = Backend::new(config, store).await?;
    backend.set_asset_cache(Arc::new(assets));
    backend.set_auth_config(AuthConfig {
        ecdsa_keys,
        ..AuthConfig::default()
    });
    backend.set_ui_config(ui);
    backend.set_pipeline_config(backend_pipeline::RunnerConfig {
        workers: flags.pipelined_workers,
        buffer_size: flags.pipelined_buffer_size,
    });
    eprintln!(
        "picket-backend: API on {}, agents on {}",
        backend.api_addr(),
        backend.agent_addr()
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    backend.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The ECDSA P-256 key pair access tokens are signed with instead of the store's secret.
fn load_jwt_keys(private: &Path, public: &Path) -> Result<EcdsaKeys> {
    let read = |flag: &str, path: &Path| {
        std::fs::read_to_string(path)
            .with_context(|| format!("--{flag} {}: cannot read it", path.display()))
    };
    let private_pem = read("jwt-private-key-file", private)?;
    let public_pem = read("jwt-public-key-file", public)?;
    EcdsaKeys::from_pem(&private_pem, &public_pem)
        .map_err(|e| anyhow::anyhow!("--jwt-private-key-file/--jwt-public-key-file: {e}"))
}

/// An empty store initialises itself on first start, so one command gives a working
/// installation. The admin comes from `PICKET_BACKEND_CLUSTER_ADMIN_USERNAME/PASSWORD` when
/// set, else `admin` with a generated password printed once.
async fn first_start(
    store: &Arc<dyn Store>,
    env: &HashMap<String, String>,
    state_dir: Option<&Path>,
) -> Result<()> {
    let repo = Repo::new(store.clone());
    if init::is_initialized(&repo).await? {
        return Ok(());
    }
    let username = env
        .get("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME")
        .cloned()
        .unwrap_or_else(|| "admin".to_string());
    let (password, generated) = match env.get("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD") {
        Some(p) => (p.clone(), false),
        None => (init::generate_password(), true),
    };
    match init::initialize(&repo, &username, &password).await {
        Ok(()) | Err(InitError::AlreadyInitialized) => {}
        Err(e) => return Err(e).context("cannot initialise the new store"),
    }
    let shown = if generated {
        password.as_str()
    } else {
        "<from PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD>"
    };
    let where_ = state_dir
        .map(|d| format!(" in {}", d.display()))
        .unwrap_or_default();
    println!("Picket initialised a new store{where_}.");
    println!("  Log in to the API as {username:?} with password {shown}");
    println!(
        "  e.g. curl -u {username}:{shown} http://localhost:8080/api/core/v2/namespaces/default/entities"
    );
    println!(
        "  Agents connect as user \"agent\" with password \"P@ssw0rd!\" (change it before production)."
    );
    Ok(())
}

async fn signal_shutdown(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("Shutting down");
    token.cancel();
}
