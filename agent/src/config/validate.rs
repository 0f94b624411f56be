//! Stage two: every value and cross-field rule checked, all problems collected.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use proto_spec::validate::{
    MAX_LABELS, MAX_SUBSCRIPTIONS, validate_name, validate_subscription, validate_username,
};
use telemetry::LogLevel;

use super::flags::{FLAGS, FlagDef, Kind};
use super::raw::{RawConfig, RawValue, split_list};
use super::values::{parse_count, parse_go_bool, parse_go_duration, parse_seconds};
use super::*;
use Kind::Bool;

/// Sensu's agent rejects keepalive timeouts below this many seconds.
const MIN_KEEPALIVE_TIMEOUT: u32 = 5;

struct Validator<'a> {
    raw: &'a RawConfig,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        let origin = self.raw.get(key).1.clone();
        self.problems.push(Problem {
            key: Some(key.to_string()),
            origin,
            message: message.into(),
        });
    }

    fn string(&self, key: &str) -> String {
        match &self.raw.get(key).0 {
            RawValue::Scalar(s) => s.trim().to_string(),
            RawValue::List(v) => v.join(","),
            RawValue::Map(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn parsed<T>(&mut self, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let text = self.string(key);
        match parse(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(key, e);
                None
            }
        }
    }

    fn bool(&mut self, key: &str) -> bool {
        self.parsed(key, parse_go_bool).unwrap_or_default()
    }

    fn seconds(&mut self, key: &str) -> Option<u32> {
        self.parsed(key, parse_seconds)
    }

    fn port(&mut self, key: &str) -> u16 {
        self.parsed(key, |s| {
            s.parse::<u16>()
                .map_err(|_| format!("expected a port number (0-65535), got {s:?}"))
        })
        .unwrap_or_default()
    }

    fn float(&mut self, key: &str, min: f64) -> Option<f64> {
        self.parsed(key, |s| match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= min => Ok(f),
            _ => Err(format!("expected a number of at least {min}, got {s:?}")),
        })
    }

    /// A list of percentiles, each in (0, 100], without repeats (a repeat would name the same
    /// points twice in one flush).
    fn percentiles(&mut self, key: &str) -> Vec<f64> {
        let mut out: Vec<f64> = Vec::new();
        for item in self.list(key) {
            match item.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => {
                    if out.contains(&p) {
                        self.fail(key, format!("percentile {item} is listed twice"));
                    } else {
                        out.push(p);
                    }
                }
                _ => self.fail(
                    key,
                    format!("expected percentiles in (0, 100], got {item:?}"),
                ),
            }
        }
        out
    }

    fn duration(&mut self, key: &str) -> Option<Duration> {
        self.parsed(key, parse_go_duration)
    }

    fn list(&mut self, key: &str) -> Vec<String> {
        match &self.raw.get(key).0 {
            RawValue::Scalar(s) => split_list(s),
            RawValue::List(v) => v
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            RawValue::Map(_) => {
                self.fail(key, "expected a list, got a map");
                Vec::new()
            }
        }
    }

    fn names(
        &mut self,
        key: &str,
        check: fn(&str, &str) -> Result<(), proto_spec::ValidationError>,
    ) -> Vec<String> {
        let items = self.list(key);
        for item in &items {
            if let Err(e) = check(key, item) {
                self.fail(key, e.reason);
            }
        }
        items
    }

    fn map(&mut self, key: &str) -> BTreeMap<String, String> {
        let pairs: Vec<(String, String)> = match self.raw.get(key).0.clone() {
            RawValue::Map(m) => m,
            RawValue::Scalar(s) => self.pairs(key, split_list(&s)),
            RawValue::List(v) => self.pairs(key, v),
        };
        let mut out = BTreeMap::new();
        for (k, v) in pairs {
            if k.trim().is_empty() {
                self.fail(key, format!("empty key in {k}={v}"));
            } else {
                out.insert(k.trim().to_string(), v);
            }
        }
        out
    }

    fn pairs(&mut self, key: &str, items: Vec<String>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for item in items {
            match item.split_once('=') {
                Some((k, v)) => out.push((k.to_string(), v.to_string())),
                None => self.fail(key, format!("{item:?} is not a key=value pair")),
            }
        }
        out
    }

    fn path(&mut self, key: &str) -> Option<PathBuf> {
        Some(self.string(key))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }
}

/// Stage two: check every value and every cross-field rule, collecting all problems.
pub(super) fn validate(
    raw: &RawConfig,
    env: &HashMap<String, String>,
    host: &Host,
) -> Result<Config, ConfigError> {
    let mut v = Validator {
        raw,
        problems: raw.problems.clone(),
    };

    let mut backend_urls = Vec::new();
    let urls = v.list("backend-url");
    if urls.is_empty() {
        v.fail("backend-url", "at least one backend URL is required");
    }
    for u in urls {
        match u.parse::<BackendUrl>() {
            Ok(url) => backend_urls.push(url),
            Err(e) => v.fail("backend-url", e),
        }
    }

    let name = if raw.is_default("name") {
        host.hostname
            .clone()
            .filter(|h| validate_name("name", h).is_ok())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    } else {
        v.string("name")
    };
    if let Err(e) = validate_name("name", &name) {
        v.fail("name", e.reason);
    }
    let namespace = v.string("namespace");
    if let Err(e) = validate_name("namespace", &namespace) {
        v.fail("namespace", e.reason);
    }
    let user = v.string("user");
    if let Err(e) = validate_username("user", &user) {
        v.fail("user", e.reason);
    }
    let subscriptions = v.names("subscriptions", validate_subscription);
    let labels = v.map("labels");
    let annotations = v.map("annotations");
    // The backend refuses entities beyond these limits; better to say so at start-up.
    for (key, len, max) in [
        ("subscriptions", subscriptions.len(), MAX_SUBSCRIPTIONS),
        ("labels", labels.len(), MAX_LABELS),
        ("annotations", annotations.len(), MAX_LABELS),
    ] {
        if len > max {
            v.fail(key, format!("{len} entries exceed the limit of {max}"));
        }
    }

    let interval = v.seconds("keepalive-interval");
    let warning = v.seconds("keepalive-warning-timeout");
    let critical = v.seconds("keepalive-critical-timeout");
    if interval == Some(0) {
        v.fail("keepalive-interval", "must be at least 1 second");
    }
    if let Some(w) = warning {
        if w < MIN_KEEPALIVE_TIMEOUT {
            v.fail(
                "keepalive-warning-timeout",
                format!("must be at least {MIN_KEEPALIVE_TIMEOUT} seconds, got {w}"),
            );
        }
        if let Some(i) = interval.filter(|i| w <= *i) {
            v.fail(
                "keepalive-warning-timeout",
                format!("must be greater than --keepalive-interval ({i}), got {w}"),
            );
        }
    }
    if let Some(c) = critical.filter(|c| *c != 0) {
        if c < MIN_KEEPALIVE_TIMEOUT {
            v.fail(
                "keepalive-critical-timeout",
                format!("must be 0 or at least {MIN_KEEPALIVE_TIMEOUT} seconds, got {c}"),
            );
        }
        if let Some(w) = warning.filter(|w| c < *w) {
            v.fail(
                "keepalive-critical-timeout",
                format!("must be 0 or at least --keepalive-warning-timeout ({w}), got {c}"),
            );
        }
        if let Some(i) = interval.filter(|i| c <= *i) {
            v.fail(
                "keepalive-critical-timeout",
                format!("must be greater than --keepalive-interval ({i}), got {c}"),
            );
        }
    }
    let keepalive_handlers = v.names("keepalive-handlers", validate_name);
    let keepalive_pipelines = v.names("keepalive-pipelines", validate_name);
    let check_labels = v.map("keepalive-check-labels");
    let check_annotations = v.map("keepalive-check-annotations");

    let deregister = v.bool("deregister");
    let deregistration_handler = v.string("deregistration-handler");
    if !deregistration_handler.is_empty()
        && let Err(e) = validate_name("deregistration-handler", &deregistration_handler)
    {
        v.fail("deregistration-handler", e.reason);
    }

    let api = ListenerConfig {
        disabled: v.bool("disable-api"),
        host: v.string("api-host"),
        port: v.port("api-port"),
    };
    let socket = ListenerConfig {
        disabled: v.bool("disable-sockets"),
        host: v.string("socket-host"),
        port: v.port("socket-port"),
    };
    let flush = v.seconds("statsd-flush-interval").unwrap_or_default();
    let statsd = StatsdConfig {
        disabled: v.bool("statsd-disable"),
        host: v.string("statsd-metrics-host"),
        port: v.port("statsd-metrics-port"),
        // Sensu: a zero flush interval means the default.
        flush_interval: Duration::from_secs(if flush == 0 { 10 } else { flush.into() }),
        event_handlers: v.names("statsd-event-handlers", validate_name),
        percentiles: v.percentiles("statsd-percentiles"),
    };
    for key in ["api-host", "socket-host", "statsd-metrics-host"] {
        if v.string(key).is_empty() {
            v.fail(key, "cannot be empty");
        }
    }
    let assets = AssetsConfig {
        disabled: v.bool("disable-assets"),
        rate: RateLimit {
            per_second: v.float("assets-rate-limit", 0.0).unwrap_or_default(),
            burst: v
                .parsed("assets-burst-limit", parse_count)
                .unwrap_or_default(),
        },
    };
    let events = RateLimit {
        per_second: v.float("events-rate-limit", 0.0).unwrap_or_default(),
        burst: v
            .parsed("events-burst-limit", parse_count)
            .unwrap_or_default(),
    };

    let cache_dir = if raw.is_default("cache-dir") {
        default_cache_dir(host.is_root, env)
    } else {
        PathBuf::from(v.string("cache-dir"))
    };
    if cache_dir.as_os_str().is_empty() {
        v.fail("cache-dir", "cannot be empty");
    }

    let tls = TlsConfig {
        trusted_ca_file: v.path("trusted-ca-file"),
        cert_file: v.path("cert-file"),
        key_file: v.path("key-file"),
        insecure_skip_tls_verify: v.bool("insecure-skip-tls-verify"),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        let key = if tls.cert_file.is_some() {
            "key-file"
        } else {
            "cert-file"
        };
        v.fail(key, "--cert-file and --key-file must be set together");
    }

    let redact = v.list("redact");
    let allow_list = v.path("allow-list");
    if let Some(p) = &allow_list {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !matches!(ext, "yml" | "yaml" | "json") {
            v.fail(
                "allow-list",
                format!("{} must end in .yml, .yaml or .json", p.display()),
            );
        }
    }
    let detect_cloud_provider = v.bool("detect-cloud-provider");

    let handshake = v.seconds("backend-handshake-timeout");
    if handshake == Some(0) {
        v.fail("backend-handshake-timeout", "must be at least 1 second");
    }
    let hb_interval = v.seconds("backend-heartbeat-interval");
    if hb_interval == Some(0) {
        v.fail("backend-heartbeat-interval", "must be at least 1 second");
    }
    let hb_timeout = v.seconds("backend-heartbeat-timeout");
    let hb_interval = Duration::from_secs(hb_interval.unwrap_or(1).max(1).into());
    let transport = TransportConfig {
        handshake_timeout: Duration::from_secs(handshake.unwrap_or_default().into()),
        heartbeat_interval: hb_interval,
        heartbeat_timeout: effective_heartbeat_timeout(
            hb_interval,
            Duration::from_secs(hb_timeout.unwrap_or_default().into()),
        ),
        max_session_length: v.duration("max-session-length").filter(|d| !d.is_zero()),
    };

    let retry_min = v.duration("retry-min");
    let retry_max = v.duration("retry-max");
    let multiplier = v.float("retry-multiplier", 1.0);
    if retry_min.is_some_and(|d| d.is_zero()) {
        v.fail("retry-min", "must be greater than 0");
    }
    if let (Some(lo), Some(hi)) = (retry_min, retry_max)
        && hi < lo
    {
        v.fail(
            "retry-max",
            format!("must be at least --retry-min ({lo:?}), got {hi:?}"),
        );
    }
    let retry = RetryConfig {
        min: retry_min.unwrap_or_default(),
        max: retry_max.unwrap_or_default(),
        multiplier: multiplier.unwrap_or(2.0),
    };

    let agent_managed_entity = v.bool("agent-managed-entity");
    let log_level = v
        .parsed("log-level", |s| {
            s.parse::<LogLevel>().map_err(|e| e.to_string())
        })
        .unwrap_or(LogLevel::Info);

    let mut warnings = raw.warnings.clone();
    for def in FLAGS.iter().filter(|d| d.later) {
        let (value, origin) = raw.get(def.name);
        if *origin != Origin::Default && differs_from_default(def, value) {
            warnings.push(format!(
                "--{} is set (from {origin}) but its feature is not implemented yet: it arrives with a later release; the value is ignored",
                def.name
            ));
        }
    }
    // Both also apply to asset downloads over HTTPS, so they matter without a wss:// backend.
    if tls.insecure_skip_tls_verify {
        warnings.push(
            "--insecure-skip-tls-verify is set: certificates of backends and asset servers are not verified, so anyone on the network path can impersonate them".to_string(),
        );
    }
    if !backend_urls.iter().any(|u| u.secure) && tls.cert_file.is_some() {
        warnings.push(
            "--cert-file is set but no backend URL is wss://: the client certificate is not used"
                .to_string(),
        );
    }

    if !v.problems.is_empty() {
        return Err(ConfigError {
            problems: v.problems,
        });
    }
    Ok(Config {
        backend_urls,
        name,
        namespace,
        subscriptions,
        labels,
        annotations,
        user,
        password: Password(v.string("password")),
        keepalive: KeepaliveConfig {
            interval: interval.unwrap_or_default(),
            warning_timeout: warning.unwrap_or_default(),
            critical_timeout: critical.unwrap_or_default(),
            handlers: keepalive_handlers,
            pipelines: keepalive_pipelines,
            check_labels,
            check_annotations,
        },
        deregister,
        deregistration_handler,
        redact,
        agent_managed_entity,
        cache_dir,
        log_level,
        transport,
        retry,
        tls,
        api,
        socket,
        statsd,
        assets,
        events,
        allow_list,
        detect_cloud_provider,
        config_file: raw.config_file.clone(),
        warnings,
    })
}

fn differs_from_default(def: &FlagDef, value: &RawValue) -> bool {
    match (def.kind, value) {
        (Bool, RawValue::Scalar(s)) => parse_go_bool(s).ok() != parse_go_bool(def.default).ok(),
        (_, RawValue::Scalar(s)) => s.trim() != def.default,
        (_, RawValue::List(items)) => *items != split_list(def.default),
        (_, RawValue::Map(m)) => !m.is_empty(),
    }
}
