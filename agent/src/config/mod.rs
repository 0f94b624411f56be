//! Agent configuration: `picket-agent start` flags, `PICKET_*` environment variables and the
//! YAML config file, merged with the precedence flags > env > file > defaults.
//!
//! Two stages, as ripgrep's low/high args: [`RawConfig`] keeps what the user wrote (strings,
//! lists and `key=value` maps, each with its [`Origin`]); stage two (`validate`) turns it into a [`Config`]
//! with rich types, collecting *every* problem before it reports ([`ConfigError`]).
//!
//! Every flag is defined once, in [`FLAGS`]: the clap parser, the env variable names, the file
//! keys, the defaults and the `--help` text all come from that table, so they cannot drift.
//! Flags of features that arrive in a later release are parsed and validated like the others;
//! their help ends with [`NOT_IMPLEMENTED`] and setting them produces a start-up warning.
//!
//! Layout: `flags` (the table and the clap command), `raw` (the layers and their merge),
//! `validate` (stage two), `values` (pure parsers of Go bools and durations); this file holds
//! the validated types, the errors and the entry points.

mod flags;
mod raw;
mod validate;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use telemetry::LogLevel;

use flags::command;
use validate::validate;

pub use flags::{ALIASES, FLAGS, FlagDef, Kind, env_var_name, flag_def};
pub use raw::{RawConfig, RawValue};
pub use values::{parse_go_bool, parse_go_duration, parse_seconds};

/// Version of this build, reported as `sensu_agent_version` and by `picket-agent version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const DEFAULT_CONFIG_FILE: &str = "/etc/picket/agent.yml";
pub const ENV_PREFIX: &str = "PICKET_";
pub const ENV_CONFIG_FILE: &str = "PICKET_CONFIG_FILE";
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/picket/picket-agent";
/// Port appended to a backend URL that names none (the backend's agent port).
pub const DEFAULT_BACKEND_PORT: u16 = 8081;

/// Suffix of the help text of every flag whose feature is not there yet.
pub const NOT_IMPLEMENTED: &str = "(not implemented yet: arrives with a later release)";

// === Validated configuration ===

/// The validated agent configuration. Fields are public so tests and embedders can adjust a
/// parsed config; [`Config::from_args`] is the way to build one.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend_urls: Vec<BackendUrl>,
    pub name: String,
    pub namespace: String,
    pub subscriptions: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub user: String,
    pub password: Password,
    pub keepalive: KeepaliveConfig,
    pub deregister: bool,
    pub deregistration_handler: String,
    pub redact: Vec<String>,
    pub agent_managed_entity: bool,
    pub cache_dir: PathBuf,
    pub log_level: LogLevel,
    pub transport: TransportConfig,
    pub retry: RetryConfig,
    pub tls: TlsConfig,
    pub api: ListenerConfig,
    pub socket: ListenerConfig,
    pub statsd: StatsdConfig,
    pub assets: AssetsConfig,
    pub events: RateLimit,
    pub allow_list: Option<PathBuf>,
    pub detect_cloud_provider: bool,
    /// The file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Start-up warnings (deprecated aliases, flags of features not implemented yet). Logged
    /// once by `Agent::run`, because parsing happens before logging is set up.
    pub warnings: Vec<String>,
}

/// A password that never shows up in `Debug` output (configs get logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeepaliveConfig {
    /// Seconds; whole seconds because the check's `interval` is an integer on the wire.
    pub interval: u32,
    pub warning_timeout: u32,
    /// 0 disables the critical threshold.
    pub critical_timeout: u32,
    pub handlers: Vec<String>,
    pub pipelines: Vec<String>,
    pub check_labels: BTreeMap<String, String>,
    pub check_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransportConfig {
    pub handshake_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Already adjusted: never at or below the interval (see [`effective_heartbeat_timeout`]).
    pub heartbeat_timeout: Duration,
    pub max_session_length: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    pub min: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    pub trusted_ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub disabled: bool,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    pub disabled: bool,
    pub host: String,
    pub port: u16,
    pub flush_interval: Duration,
    pub event_handlers: Vec<String>,
    /// Timer percentiles, each in (0, 100].
    pub percentiles: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssetsConfig {
    pub disabled: bool,
    pub rate: RateLimit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// A backend URL: ws or wss, always with a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrl {
    pub secure: bool,
    /// Without brackets for IPv6 literals.
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl FromStr for BackendUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("{s:?} is not a URL; expected ws://host[:port] or wss://host[:port]")
        })?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(format!(
                    "{s:?} has scheme {other:?}; only ws and wss are supported"
                ));
            }
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(format!(
                "{s:?} contains user information; use --user and --password"
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{s:?} has an unterminated IPv6 address"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("{s:?} has junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port = match port {
            None => DEFAULT_BACKEND_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{s:?} has an invalid port {p:?}")),
            },
        };
        let path = match path.split('#').next().unwrap_or_default() {
            "" => "/".to_string(),
            p if p.starts_with('/') => p.to_string(),
            p => format!("/{p}"),
        };
        Ok(BackendUrl {
            secure,
            host: host.to_string(),
            port,
            path,
        })
    }
}

/// Sensu's rule: a heartbeat timeout at or below the interval becomes interval·10/6.
pub fn effective_heartbeat_timeout(interval: Duration, timeout: Duration) -> Duration {
    if timeout <= interval {
        interval * 10 / 6
    } else {
        timeout
    }
}

// === Errors ===

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env(String),
    File { path: PathBuf, key: String },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("flag"),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::File { path, key } => write!(f, "{} key {key}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One configuration problem, naming the setting and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The flag name (`keepalive-interval`), or the unknown file key; `None` for problems that
    /// concern no single setting (command-line syntax, unreadable file).
    pub key: Option<String>,
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, &self.origin) {
            (None, _) => f.write_str(&self.message),
            (Some(k), Origin::Flag | Origin::Default) => write!(f, "--{k}: {}", self.message),
            (Some(k), origin) => write!(f, "--{k} (from {origin}): {}", self.message),
        }
    }
}

/// Every problem found in a configuration; displays on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn single(message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem {
                key: None,
                origin: Origin::Default,
                message: message.into(),
            }],
        }
    }

    /// The settings named by the problems, for tests and tooling.
    pub fn keys(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems): ", many.len())?;
                for (i, p) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

// === Entry points ===

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Start(Box<Config>),
    /// `picket-agent version` or `--version`.
    Version,
    /// `--help`: the rendered text, for stdout.
    Help(String),
}

/// The line `picket-agent version` prints.
pub fn version_line() -> String {
    format!(
        "picket-agent version {VERSION}, protocol version {}",
        proto_spec::wire::PROTOCOL_VERSION
    )
}

/// Parse a whole command line (`args` starts with the program name) with the given environment.
pub fn parse_invocation<I, T>(
    args: I,
    env: &HashMap<String, String>,
) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_with_host(args, env, &Host::detect())
}

impl Config {
    /// Build a config from the flags of `picket-agent start` (without program or subcommand
    /// name) and an environment map; reads the config file named by `--config-file` or
    /// `PICKET_CONFIG_FILE`, else `/etc/picket/agent.yml` when it exists.
    ///
    /// ```
    /// # use std::collections::HashMap;
    /// let args = ["--backend-url", "ws://127.0.0.1:9", "--name", "a1", "--config-file", ""];
    /// let cfg = agent::Config::from_args(args, &HashMap::new()).unwrap();
    /// assert_eq!(cfg.backend_urls[0].to_string(), "ws://127.0.0.1:9/");
    /// ```
    pub fn from_args<I, T>(args: I, env: &HashMap<String, String>) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv = [OsString::from("picket-agent"), OsString::from("start")]
            .into_iter()
            .chain(args.into_iter().map(Into::into));
        match parse_with_host(argv, env, &Host::detect())? {
            Invocation::Start(cfg) => Ok(*cfg),
            Invocation::Version | Invocation::Help(_) => Err(ConfigError::single(
                "--help and --version are not configurations",
            )),
        }
    }
}

/// Facts about the machine that defaults depend on; injected so tests do not depend on it.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub hostname: Option<String>,
    pub is_root: bool,
    pub default_config_file: PathBuf,
}

impl Host {
    fn detect() -> Host {
        let is_root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_effective_uid(&s))
            == Some(0);
        Host {
            hostname: crate::facts::read_hostname(),
            is_root,
            default_config_file: PathBuf::from(DEFAULT_CONFIG_FILE),
        }
    }
}

/// The effective uid from `/proc/self/status` (`Uid: real effective saved fs`).
pub fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The cache dir default: the system dir as root, else a per-user one from the environment.
pub fn default_cache_dir(is_root: bool, env: &HashMap<String, String>) -> PathBuf {
    if !is_root {
        let absolute = |k: &str| env.get(k).filter(|v| v.starts_with('/')).map(PathBuf::from);
        if let Some(xdg) = absolute("XDG_CACHE_HOME") {
            return xdg.join("picket").join("picket-agent");
        }
        if let Some(home) = absolute("HOME") {
            return home.join(".cache").join("picket").join("picket-agent");
        }
    }
    PathBuf::from(DEFAULT_CACHE_DIR)
}

pub(crate) fn parse_with_host<I, T>(
    args: I,
    env: &HashMap<String, String>,
    host: &Host,
) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp => Ok(Invocation::Help(e.render().to_string())),
                clap::error::ErrorKind::DisplayVersion => Ok(Invocation::Version),
                _ => Err(ConfigError::single(first_line(&e.render().to_string()))),
            };
        }
    };
    if matches.get_flag("version") {
        return Ok(Invocation::Version);
    }
    match matches.subcommand() {
        Some(("version", _)) => Ok(Invocation::Version),
        Some(("start", m)) => {
            let raw = RawConfig::collect(m, env, host)?;
            validate(&raw, env, host).map(|c| Invocation::Start(Box::new(c)))
        }
        _ => Err(ConfigError::single(
            "missing command: use `picket-agent start` or `picket-agent version` (see --help)",
        )),
    }
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    line.trim().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls() {
        let cases = [
            ("ws://127.0.0.1", "ws://127.0.0.1:8081/"),
            ("ws://backend:9000", "ws://backend:9000/"),
            (
                "WSS://b.example.com/agent",
                "wss://b.example.com:8081/agent",
            ),
            ("ws://[::1]", "ws://[::1]:8081/"),
            ("ws://[::1]:1234/x?y=1", "ws://[::1]:1234/x?y=1"),
        ];
        for (input, want) in cases {
            let url: BackendUrl = input.parse().unwrap();
            assert_eq!(url.to_string(), want, "{input}");
        }
        for bad in [
            "http://x",
            "127.0.0.1:8081",
            "ws://",
            "ws://h:0",
            "ws://h:99999",
            "ws://u:p@h",
            "ws://[::1",
        ] {
            assert!(bad.parse::<BackendUrl>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn heartbeat_timeout_rule() {
        let s = Duration::from_secs;
        assert_eq!(effective_heartbeat_timeout(s(30), s(45)), s(45));
        assert_eq!(effective_heartbeat_timeout(s(30), s(30)), s(50));
        assert_eq!(effective_heartbeat_timeout(s(6), s(1)), s(10));
    }

    #[test]
    fn effective_uid() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name: x\n"), None);
    }

    #[test]
    fn cache_dir_defaults() {
        let env: HashMap<String, String> = [("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            default_cache_dir(true, &env),
            PathBuf::from(DEFAULT_CACHE_DIR)
        );
        assert_eq!(
            default_cache_dir(false, &env),
            PathBuf::from("/xdg/picket/picket-agent")
        );
        let home_only: HashMap<String, String> =
            [("HOME".to_string(), "/home/u".to_string())].into();
        assert_eq!(
            default_cache_dir(false, &home_only),
            PathBuf::from("/home/u/.cache/picket/picket-agent")
        );
        assert_eq!(
            default_cache_dir(false, &HashMap::new()),
            PathBuf::from(DEFAULT_CACHE_DIR)
        );
    }

    #[test]
    fn every_default_is_valid() {
        let host = Host {
            hostname: Some("host-1".into()),
            is_root: true,
            default_config_file: PathBuf::from("/nonexistent/picket/agent.yml"),
        };
        let inv = parse_with_host(["picket-agent", "start"], &HashMap::new(), &host).unwrap();
        let Invocation::Start(cfg) = inv else {
            panic!("expected start")
        };
        assert_eq!(cfg.name, "host-1");
        assert_eq!(cfg.keepalive.interval, 20);
        assert_eq!(cfg.retry.min, Duration::from_secs(1));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }
}
