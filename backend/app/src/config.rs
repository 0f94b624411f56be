//! Backend configuration: Sensu's `sensu-backend` flag names and defaults, read from flags,
//! `PICKET_BACKEND_<FLAG>` environment variables and `/etc/picket/backend.yml`, in that order
//! of precedence.
//!
//! The three sources are folded into one argument list for clap — file values first, then
//! environment values, then the real command line — with `args_override_self` so the last
//! occurrence wins. Every flag is therefore parsed and validated by one definition, whatever
//! source it came from.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/picket/backend.yml";
pub const ENV_PREFIX: &str = "PICKET_BACKEND_";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/picket/picket-backend";
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/picket/picket-backend";

const LATER: &str = "(not implemented yet: arrives with a later release)";

#[derive(Debug, Parser)]
#[command(
    name = "picket-backend",
    version,
    about = "Picket backend: schedules checks, keeps state, serves the API and agents."
)]
#[command(args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the backend (initialises an empty store on first start).
    Start(Box<StartFlags>),
    /// Seed a new store: the default namespace, the admin user and the agent user.
    Init(Box<InitFlags>),
    /// Print the version.
    Version,
}

/// Flags every command that opens the store shares.
#[derive(Debug, Clone, Args)]
pub struct StoreFlags {
    /// Path to the configuration file (YAML; keys are flag names).
    #[arg(short = 'c', long, default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Directory of the embedded store [default: /var/lib/picket/picket-backend, or a
    /// per-user data directory when not running as root].
    #[arg(short = 'd', long)]
    pub state_dir: Option<PathBuf>,
    /// Log level: panic, fatal, error, warn, info, debug or trace.
    #[arg(long, default_value = "warn")]
    pub log_level: String,
    /// Use an external etcd instead of the embedded store (accepted for Sensu compatibility;
    /// without --etcd-client-urls the etcd at http://localhost:2379 is used).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub no_embed_etcd: bool,
    /// etcd client URLs, comma-separated: keep all state in this etcd cluster instead of the
    /// embedded store, so several backends can share it.
    #[arg(long)]
    pub etcd_client_urls: Option<String>,
    /// Client certificate (PEM) presented to etcd.
    #[arg(long)]
    pub etcd_cert_file: Option<PathBuf>,
    /// Key (PEM) of --etcd-cert-file.
    #[arg(long)]
    pub etcd_key_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed etcd's certificates.
    #[arg(long)]
    pub etcd_trusted_ca_file: Option<PathBuf>,
    /// Largest request sent to etcd in bytes (must not exceed etcd's --max-request-bytes).
    #[arg(long, default_value_t = 1_572_864)]
    pub etcd_max_request_bytes: u64,
}

impl StoreFlags {
    /// The etcd client URLs when the backend runs on an external etcd, `None` for the embedded
    /// store. `--no-embed-etcd` alone means Sensu's default client URL.
    pub fn etcd_urls(&self) -> Option<String> {
        match (&self.etcd_client_urls, self.no_embed_etcd) {
            (Some(urls), _) => Some(urls.clone()),
            (None, true) => Some(DEFAULT_ETCD_CLIENT_URL.to_string()),
            (None, false) => None,
        }
    }
}

/// Sensu's default `--etcd-advertise-client-urls`, used by `--no-embed-etcd` alone.
pub const DEFAULT_ETCD_CLIENT_URL: &str = "http://localhost:2379";
/// Environment variables holding the etcd user (env only, as Sensu's
/// `SENSU_BACKEND_ETCD_CLIENT_USERNAME`/`_PASSWORD`: a password never goes on a command line).
pub const ENV_ETCD_USERNAME: &str = "PICKET_BACKEND_ETCD_CLIENT_USERNAME";
pub const ENV_ETCD_PASSWORD: &str = "PICKET_BACKEND_ETCD_CLIENT_PASSWORD";

#[derive(Debug, Clone, Args)]
pub struct InitFlags {
    #[command(flatten)]
    pub store: StoreFlags,
    /// Username of the first cluster administrator.
    #[arg(long)]
    pub cluster_admin_username: Option<String>,
    /// Password of the first cluster administrator (at least 8 characters).
    #[arg(long)]
    pub cluster_admin_password: Option<String>,
    /// API key of the first cluster administrator (`Authorization: Key <key>`).
    #[arg(long)]
    pub cluster_admin_api_key: Option<String>,
    /// Prompt for the administrator's username and password.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub interactive: bool,
    /// Exit 0 instead of 3 when the store is already initialised.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub ignore_already_initialized: bool,
    /// Seconds to wait for the store.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    /// Keep waiting for the store until it answers.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub wait: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StartFlags {
    #[command(flatten)]
    pub store: StoreFlags,
    /// Address the REST API listens on.
    #[arg(long, default_value = "[::]:8080")]
    pub api_listen_address: String,
    /// Agent handshakes admitted per second before answering 503 + Retry-After (0 = no
    /// limit): spreads a reconnect storm after a backend failure. (A Picket extension.)
    #[arg(long, default_value_t = 1000)]
    pub agent_accept_rate: u32,
    /// URL of the REST API as clients reach it.
    #[arg(long, default_value = "http://localhost:8080")]
    pub api_url: String,
    /// Origin (scheme://host[:port]) browsers reach the web UI at through a reverse proxy
    /// that rewrites Host, e.g. https://picket.example.com; repeat it or separate with commas.
    /// When given, UI form posts must come from one of these origins (not from the Host the
    /// backend sees), and when all are https:// the UI's cookies are marked Secure. Forwarded
    /// headers are never trusted. (A Picket extension.)
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Append)]
    pub ui_origin: Vec<String>,
    /// Largest API request body in bytes.
    #[arg(long, default_value_t = 512_000)]
    pub api_request_limit: usize,
    /// Timeout for writing an API response, e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub api_write_timeout: Duration,
    /// Answer 503 to API requests for this long after start, e.g. 5s.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub api_serve_wait_time: Duration,
    /// Refuse agent connections with 503 for this long after start, e.g. 5s.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub agent_serve_wait_time: Duration,
    /// Address the agent WebSocket port listens on.
    #[arg(long, default_value = "[::]")]
    pub agent_host: String,
    /// Agent WebSocket port.
    #[arg(long, default_value_t = 8081)]
    pub agent_port: u16,
    /// Timeout for writing a frame to an agent, in seconds.
    #[arg(long, default_value_t = 15)]
    pub agent_write_timeout: u64,
    #[arg(long, default_value = "[::]", help = format!("Dashboard host (deprecated in Sensu OSS) {LATER}"))]
    pub dashboard_host: String,
    #[arg(long, default_value_t = 3000, help = format!("Dashboard port (deprecated in Sensu OSS) {LATER}"))]
    pub dashboard_port: u16,
    /// Cache directory for the runtime assets of handlers and mutators [default: cache/ in
    /// the state directory].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// TLS certificate (PEM, chain after the leaf) of the API and agent ports; with
    /// --key-file, the API serves https:// and agents connect with wss://.
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    #[arg(
        long,
        help = "CA certificates (PEM) the backend trusts when it connects out (asset downloads), besides the system's"
    )]
    pub trusted_ca_file: Option<PathBuf>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", help = "Skip verifying the certificates of servers the backend connects to (asset downloads): for tests only")]
    pub insecure_skip_tls_verify: bool,
    /// TLS certificate (PEM) of the agent port only, instead of --cert-file.
    #[arg(long)]
    pub agent_auth_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --agent-auth-cert-file.
    #[arg(long)]
    pub agent_auth_key_file: Option<PathBuf>,
    /// CA certificates (PEM) of agent client certificates: an agent presenting a certificate
    /// of this CA is authenticated as the certificate's CN (mutual TLS); one presenting
    /// another certificate is refused; one presenting none logs in with its password.
    #[arg(long)]
    pub agent_auth_trusted_ca_file: Option<PathBuf>,
    /// ECDSA P-256 private key (PEM) that signs access tokens (ES256) instead of the HS256
    /// secret kept in the store; needs --jwt-public-key-file.
    #[arg(long)]
    pub jwt_private_key_file: Option<PathBuf>,
    /// ECDSA P-256 public key (PEM) of --jwt-private-key-file, verifying access tokens.
    #[arg(long)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Handler for the deregistration events of the backend's own entity.
    #[arg(long, default_value = "")]
    pub deregistration_handler: String,
    /// Event processing workers (events of one entity always go to the same worker).
    #[arg(long, default_value_t = 100)]
    pub eventd_workers: usize,
    /// Event queue capacity per worker pool.
    #[arg(long, default_value_t = 1000)]
    pub eventd_buffer_size: usize,
    /// Keepalive workers (keepalives share the eventd workers and always go first).
    #[arg(long, default_value_t = 100)]
    pub keepalived_workers: usize,
    /// Keepalive queue capacity.
    #[arg(long, default_value_t = 1000)]
    pub keepalived_buffer_size: usize,
    /// Handler and mutator executions run at once (a bounded worker pool).
    #[arg(long, default_value_t = 100)]
    pub pipelined_workers: usize,
    /// Events waiting for the pipeline workers; a full queue drops events (counted).
    #[arg(long, default_value_t = 1000)]
    pub pipelined_buffer_size: usize,
    /// Asset downloads per second (cache hits are free; 0 means no limit).
    #[arg(long, default_value_t = 1.39)]
    pub assets_rate_limit: f64,
    /// Asset downloads allowed at once before --assets-rate-limit applies.
    #[arg(long, default_value_t = 100)]
    pub assets_burst_limit: u32,
    /// Labels of the backend's own entity, comma-separated k=v.
    #[arg(long)]
    pub labels: Option<String>,
    /// Annotations of the backend's own entity, comma-separated k=v.
    #[arg(long)]
    pub annotations: Option<String>,
    #[arg(long, help = format!("File to log every event to {LATER}"))]
    pub event_log_file: Option<PathBuf>,
    #[arg(long, default_value_t = 100_000, help = format!("Event log buffer size {LATER}"))]
    pub event_log_buffer_size: usize,
    #[arg(long, default_value = "10ms", value_parser = parse_duration, help = format!("Event log buffer wait {LATER}"))]
    pub event_log_buffer_wait: Duration,
    #[arg(long, default_value_t = 2, help = format!("Event log encoders {LATER}"))]
    pub event_log_parallel_encoders: usize,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", help = format!("Disable platform metrics {LATER}"))]
    pub disable_platform_metrics: bool,
    #[arg(long, default_value = "60s", value_parser = parse_duration, help = format!("Platform metrics logging interval {LATER}"))]
    pub platform_metrics_logging_interval: Duration,
    #[arg(long, default_value = "/var/log/picket/backend-stats.log", help = format!("Platform metrics log file {LATER}"))]
    pub platform_metrics_log_file: PathBuf,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", help = format!("Serve pprof-style debug endpoints {LATER}"))]
    pub debug: bool,
    #[arg(long, help = format!("Embedded etcd listen client URLs {LATER}"))]
    pub etcd_listen_client_urls: Option<String>,
    #[arg(long, help = format!("Embedded etcd advertise client URLs {LATER}"))]
    pub etcd_advertise_client_urls: Option<String>,
    #[arg(long, help = format!("Embedded etcd listen peer URLs {LATER}"))]
    pub etcd_listen_peer_urls: Option<String>,
    #[arg(long, help = format!("Embedded etcd advertise peer URLs {LATER}"))]
    pub etcd_initial_advertise_peer_urls: Option<String>,
    #[arg(long, help = format!("Embedded etcd initial cluster {LATER}"))]
    pub etcd_initial_cluster: Option<String>,
    #[arg(long, default_value = "new", help = format!("Embedded etcd initial cluster state {LATER}"))]
    pub etcd_initial_cluster_state: String,
    #[arg(long, help = format!("Embedded etcd cluster token {LATER}"))]
    pub etcd_initial_cluster_token: Option<String>,
    #[arg(long, default_value = "default", help = format!("Embedded etcd member name {LATER}"))]
    pub etcd_name: String,
    #[arg(long, help = format!("Embedded etcd discovery URL {LATER}"))]
    pub etcd_discovery: Option<String>,
    #[arg(long, help = format!("Embedded etcd discovery SRV domain {LATER}"))]
    pub etcd_discovery_srv: Option<String>,
    #[arg(long, default_value_t = 300, help = format!("Embedded etcd heartbeat interval (ms) {LATER}"))]
    pub etcd_heartbeat_interval: u64,
    #[arg(long, default_value_t = 3000, help = format!("Embedded etcd election timeout (ms) {LATER}"))]
    pub etcd_election_timeout: u64,
    #[arg(long, default_value_t = 4_294_967_296, help = format!("Embedded etcd quota (bytes) {LATER}"))]
    pub etcd_quota_backend_bytes: u64,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", help = format!("etcd client certificate auth {LATER}"))]
    pub etcd_client_cert_auth: bool,
    #[arg(long, help = format!("etcd peer certificate {LATER}"))]
    pub etcd_peer_cert_file: Option<PathBuf>,
    #[arg(long, help = format!("etcd peer key {LATER}"))]
    pub etcd_peer_key_file: Option<PathBuf>,
    #[arg(long, help = format!("etcd peer CA {LATER}"))]
    pub etcd_peer_trusted_ca_file: Option<PathBuf>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", help = format!("etcd peer certificate auth {LATER}"))]
    pub etcd_peer_client_cert_auth: bool,
    #[arg(long, help = format!("etcd TLS cipher suites {LATER}"))]
    pub etcd_cipher_suites: Option<String>,
    #[arg(long, help = format!("Embedded etcd log level {LATER}"))]
    pub etcd_log_level: Option<String>,
    #[arg(long, default_value = "error", help = format!("etcd client log level {LATER}"))]
    pub etcd_client_log_level: String,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false", help = format!("Embedded etcd without fsync {LATER}"))]
    pub etcd_unsafe_no_fsync: bool,
}

/// A configuration problem; the binary exits 64 (EX_USAGE) with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Cli(#[from] clap::Error),
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Parse the command line, folding in the environment and the config file.
/// `env` is injected so tests need not touch the process environment.
pub fn parse(args: &[String], env: &HashMap<String, String>) -> Result<Cli, ConfigError> {
    let mut cmd = Cli::command();
    // First pass: only to find the subcommand and the config file path.
    let first = cmd.try_get_matches_from_mut(args.iter())?;
    let Some((sub_name, sub_matches)) = first.subcommand() else {
        return Ok(Cli::from_arg_matches(&first)?);
    };
    let sub = cmd
        .find_subcommand(sub_name)
        .expect("subcommand exists")
        .clone();
    let known: Vec<String> = sub
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let explicit_file = sub_matches
        .value_source("config_file")
        .is_some_and(|s| s == clap::parser::ValueSource::CommandLine);
    let file_path: Option<PathBuf> = sub_matches.get_one::<PathBuf>("config_file").cloned();

    let mut folded: Vec<String> = vec![args[0].clone(), sub_name.to_string()];
    let env_key = |flag: &str| format!("{ENV_PREFIX}{}", flag.to_uppercase().replace('-', "_"));
    // A flag on the command line replaces the file's and the environment's value rather than
    // adding to it: list flags (`--ui-origin`) append, so "last one wins" is not enough.
    let on_command_line = |flag: &str| {
        let long = format!("--{flag}");
        args[2..]
            .iter()
            .any(|a| *a == long || a.starts_with(&format!("{long}=")))
    };

    if let Some(path) = file_path {
        for (key, value) in read_config_file(&path, explicit_file)? {
            if !known.contains(&key) {
                if all_known_flags().contains(&key) {
                    continue; // belongs to another subcommand (e.g. init-only keys)
                }
                return Err(ConfigError::File {
                    path,
                    reason: format!("unknown key {key:?}"),
                });
            }
            if env.contains_key(&env_key(&key)) || on_command_line(&key) {
                continue;
            }
            folded.push(format!("--{key}={value}"));
        }
    }
    for flag in &known {
        if flag == "help" || flag == "version" {
            continue;
        }
        if let Some(v) = env.get(&env_key(flag))
            && !on_command_line(flag)
        {
            folded.push(format!("--{flag}={v}"));
        }
    }
    folded.extend(args[2..].iter().cloned());
    let matches = Cli::command().try_get_matches_from(folded)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

fn all_known_flags() -> Vec<String> {
    let cmd = Cli::command();
    cmd.get_subcommands()
        .flat_map(|s| {
            s.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Read the YAML config file into flag/value pairs. A missing default file is fine; a missing
/// file the user named is an error.
fn read_config_file(path: &Path, must_exist: bool) -> Result<Vec<(String, String)>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(vec![]),
        Err(e) => {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let file_err = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let doc: Option<BTreeMap<String, serde_norway::Value>> =
        serde_norway::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    let mut out = Vec::new();
    for (key, value) in doc.unwrap_or_default() {
        let rendered = match value {
            serde_norway::Value::Null => continue,
            serde_norway::Value::Bool(b) => b.to_string(),
            serde_norway::Value::Number(n) => n.to_string(),
            serde_norway::Value::String(s) => s,
            serde_norway::Value::Sequence(items) => items
                .iter()
                .map(scalar_to_string)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| file_err(format!("key {key:?}: list items must be scalars")))?
                .join(","),
            serde_norway::Value::Mapping(m) => m
                .iter()
                .map(|(k, v)| Some(format!("{}={}", scalar_to_string(k)?, scalar_to_string(v)?)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| file_err(format!("key {key:?}: map values must be scalars")))?
                .join(","),
            serde_norway::Value::Tagged(_) => {
                return Err(file_err(format!(
                    "key {key:?}: tagged values are not supported"
                )));
            }
        };
        out.push((key, rendered));
    }
    Ok(out)
}

fn scalar_to_string(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Durations as Go writes them: `15s`, `10ms`, `2m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return duration_from_secs(secs, s);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        };
        total += n * scale;
        rest = next;
    }
    duration_from_secs(total, s)
}

fn duration_from_secs(secs: f64, raw: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {raw:?}"))
}

/// Parse `k=v,k2=v2` into a map.
pub fn parse_kv_list(
    field: &str,
    raw: Option<&str>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for item in raw
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid(format!("--{field}: {item:?} is not key=value")))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// The state directory: the flag, else the system default when root, else a per-user one.
pub fn resolve_state_dir(flag: Option<&Path>, env: &HashMap<String, String>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    let system = PathBuf::from(DEFAULT_STATE_DIR);
    if is_writable_or_creatable(&system) {
        return system;
    }
    let base = env
        .get("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("picket/picket-backend")
}

fn is_writable_or_creatable(dir: &Path) -> bool {
    let mut probe = dir;
    loop {
        if probe.exists() {
            let test = probe.join(".picket-write-test");
            let ok = std::fs::write(&test, b"").is_ok();
            let _ = std::fs::remove_file(&test);
            return ok;
        }
        match probe.parent() {
            Some(p) => probe = p,
            None => return false,
        }
    }
}

/// The TLS configurations of the API and agent ports from the flags: `(api, agent)`, each
/// `None` for a plain port. Unreadable or mismatched files are configuration errors, reported
/// before anything listens.
pub type PortTls = (
    Option<std::sync::Arc<tls::ServerConfig>>,
    Option<std::sync::Arc<tls::ServerConfig>>,
);

pub fn port_tls(flags: &StartFlags) -> Result<PortTls, ConfigError> {
    let pair =
        |cert: &Option<PathBuf>, key: &Option<PathBuf>, names: (&str, &str)| match (cert, key) {
            (Some(cert_file), Some(key_file)) => Ok(Some(tls::CertKeyFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            })),
            (None, None) => Ok(None),
            _ => Err(ConfigError::Invalid(format!(
                "--{} and --{} must be set together",
                names.0, names.1
            ))),
        };
    let api = pair(&flags.cert_file, &flags.key_file, ("cert-file", "key-file"))?;
    let agent_own = pair(
        &flags.agent_auth_cert_file,
        &flags.agent_auth_key_file,
        ("agent-auth-cert-file", "agent-auth-key-file"),
    )?;
    let agent = agent_own.or_else(|| api.clone());
    let client_ca = flags.agent_auth_trusted_ca_file.as_deref();
    if agent.is_none() && client_ca.is_some() {
        return Err(ConfigError::Invalid(
            "--agent-auth-trusted-ca-file needs TLS on the agent port: set --cert-file and --key-file (or --agent-auth-cert-file and --agent-auth-key-file)".into(),
        ));
    }
    let tls_err = |e: tls::TlsError| ConfigError::Invalid(e.to_string());
    let api = api
        .map(|files| tls::server_config(&files, None))
        .transpose()
        .map_err(tls_err)?;
    let agent = agent
        .map(|files| tls::server_config(&files, client_ca))
        .transpose()
        .map_err(tls_err)?;
    Ok((api, agent))
}

/// Resolve `[::]:8080`-style listen addresses; `[::]` falls back to `0.0.0.0` at bind time.
pub fn parse_listen(field: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse::<SocketAddr>().map_err(|e| {
        ConfigError::Invalid(format!(
            "--{field} {raw:?}: {e} (expected host:port, e.g. [::]:8080)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn start(cli: Cli) -> StartFlags {
        match cli.command {
            Command::Start(s) => *s,
            other => panic!("expected start, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_sensus() {
        let cli = parse(
            &args(&["picket-backend", "start", "-c", "/nonexistent-ok"]),
            &HashMap::new(),
        );
        // An explicitly named missing file is an error...
        assert!(cli.is_err());
        // ...the default one may be missing.
        let s = start(parse(&args(&["picket-backend", "start"]), &HashMap::new()).unwrap());
        assert_eq!(s.api_listen_address, "[::]:8080");
        assert_eq!(s.agent_port, 8081);
        assert_eq!(s.api_request_limit, 512_000);
        assert_eq!(s.api_write_timeout, Duration::from_secs(15));
        assert_eq!(s.store.log_level, "warn");
        assert_eq!(s.eventd_workers, 100);
        assert_eq!(s.store.etcd_max_request_bytes, 1_572_864);
    }

    #[test]
    fn precedence_flag_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backend.yml");
        std::fs::write(&file, "agent-port: 9001\napi-url: http://file:8080\nlog-level: debug\nlabels:\n  region: eu\n").unwrap();
        let path = file.to_str().unwrap();
        let mut env = HashMap::new();
        env.insert(
            "PICKET_BACKEND_API_URL".to_string(),
            "http://env:8080".to_string(),
        );
        env.insert("PICKET_BACKEND_LOG_LEVEL".to_string(), "info".to_string());
        let s = start(
            parse(
                &args(&[
                    "picket-backend",
                    "start",
                    "-c",
                    path,
                    "--log-level",
                    "trace",
                ]),
                &env,
            )
            .unwrap(),
        );
        assert_eq!(s.agent_port, 9001, "file beats default");
        assert_eq!(s.api_url, "http://env:8080", "env beats file");
        assert_eq!(s.store.log_level, "trace", "flag beats env");
        assert_eq!(s.labels.as_deref(), Some("region=eu"));
    }

    #[test]
    fn ui_origins_repeat_split_and_replace_the_files_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backend.yml");
        std::fs::write(
            &file,
            "ui-origin:\n  - https://a.example\n  - https://b.example\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let from_file = start(
            parse(
                &args(&["picket-backend", "start", "-c", path]),
                &HashMap::new(),
            )
            .unwrap(),
        );
        assert_eq!(
            from_file.ui_origin,
            ["https://a.example", "https://b.example"]
        );
        let mut env = HashMap::new();
        env.insert(
            "PICKET_BACKEND_UI_ORIGIN".to_string(),
            "https://env.example".to_string(),
        );
        let from_env = start(parse(&args(&["picket-backend", "start", "-c", path]), &env).unwrap());
        assert_eq!(
            from_env.ui_origin,
            ["https://env.example"],
            "env replaces file"
        );
        let from_flags = start(
            parse(
                &args(&[
                    "picket-backend",
                    "start",
                    "-c",
                    path,
                    "--ui-origin",
                    "https://x.example",
                    "--ui-origin=https://y.example,http://z.example:8080",
                ]),
                &env,
            )
            .unwrap(),
        );
        assert_eq!(
            from_flags.ui_origin,
            [
                "https://x.example",
                "https://y.example",
                "http://z.example:8080"
            ],
            "flags replace env and file, and repeat"
        );
        let none = start(parse(&args(&["picket-backend", "start"]), &HashMap::new()).unwrap());
        assert!(none.ui_origin.is_empty());
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backend.yml");
        std::fs::write(&file, "agent-prot: 9001\n").unwrap();
        let err = parse(
            &args(&["picket-backend", "start", "-c", file.to_str().unwrap()]),
            &HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("agent-prot"), "{err}");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
