//! The flag table: one definition per flag, from which the clap parser, env names, file keys,
//! defaults and help are derived.

use clap::{Arg, ArgAction};

use super::{DEFAULT_CONFIG_FILE, ENV_CONFIG_FILE, ENV_PREFIX, NOT_IMPLEMENTED, VERSION};

/// How a flag's value is written on the command line (lists and maps accumulate and split on
/// commas, as pflag's `StringSlice`/`StringToString` do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag` alone means true; `--flag=false` is accepted.
    Bool,
    /// One value; a repeated flag keeps the last one.
    Scalar,
    List,
    /// `key=value` pairs.
    Map,
}

/// One flag of `picket-agent start`; its name is also the file key and, upper-cased with `_`,
/// the env variable after [`ENV_PREFIX`].
#[derive(Debug)]
pub struct FlagDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Default as the user would write it; empty for "none" or for computed defaults.
    pub default: &'static str,
    pub help: &'static str,
    /// The feature behind this flag arrives with a later release.
    pub later: bool,
}

const fn flag(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
) -> FlagDef {
    FlagDef {
        name,
        kind,
        default,
        help,
        later: false,
    }
}

const fn later(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
) -> FlagDef {
    FlagDef {
        name,
        kind,
        default,
        help,
        later: true,
    }
}

use Kind::{Bool, List, Map, Scalar};

/// The whole flag set of sensu-agent 6 (sensu-compat 5.1), with Sensu's names and defaults.
#[rustfmt::skip]
pub const FLAGS: &[FlagDef] = &[
    flag("backend-url", List, "ws://127.0.0.1:8081",
        "Backend URL(s), ws:// or wss://; :8081 is appended when no port is given"),
    flag("name", Scalar, "",
        "Agent (entity) name [default: the hostname, else a random UUID]"),
    flag("namespace", Scalar, "default",
        "Namespace of the agent's entity"),
    flag("subscriptions", List, "",
        "Subscriptions of the agent (comma-separated)"),
    flag("labels", Map, "",
        "Entity labels, key=value pairs"),
    flag("annotations", Map, "",
        "Entity annotations, key=value pairs"),
    flag("user", Scalar, "agent",
        "User the agent authenticates as"),
    flag("password", Scalar, "P@ssw0rd!",
        "Password of --user"),
    flag("keepalive-interval", Scalar, "20",
        "Seconds between keepalives"),
    flag("keepalive-warning-timeout", Scalar, "120",
        "Seconds without a keepalive before the backend raises a warning"),
    flag("keepalive-critical-timeout", Scalar, "0",
        "Seconds without a keepalive before the backend raises a critical alert (0 disables it)"),
    flag("keepalive-handlers", List, "",
        "Handlers of keepalive events (the backend uses 'keepalive' when empty)"),
    flag("keepalive-pipelines", List, "",
        "Pipelines (names of core/v2 Pipeline resources) of keepalive events"),
    flag("keepalive-check-labels", Map, "",
        "Labels of keepalive events, key=value pairs"),
    flag("keepalive-check-annotations", Map, "",
        "Annotations of keepalive events, key=value pairs"),
    flag("deregister", Bool, "false",
        "Deregister the entity when the agent stops sending keepalives"),
    flag("deregistration-handler", Scalar, "",
        "Handler of deregistration events"),
    flag("api-host", Scalar, "127.0.0.1",
        "Address the agent HTTP API (POST /events, /healthz, /version, /metrics) listens on"),
    flag("api-port", Scalar, "3031",
        "TCP port of the agent HTTP API"),
    flag("disable-api", Bool, "false",
        "Disable the agent HTTP API"),
    flag("socket-host", Scalar, "127.0.0.1",
        "Address the agent socket API (Sensu 1.x check results over TCP and UDP) listens on"),
    flag("socket-port", Scalar, "3030",
        "TCP and UDP port of the agent socket API"),
    flag("disable-sockets", Bool, "false",
        "Disable the agent TCP and UDP sockets"),
    flag("statsd-metrics-host", Scalar, "127.0.0.1",
        "Address the StatsD listener binds"),
    flag("statsd-metrics-port", Scalar, "8125",
        "UDP port of the StatsD listener"),
    flag("statsd-flush-interval", Scalar, "10",
        "Seconds between StatsD flushes (0 means 10)"),
    flag("statsd-percentiles", List, "90",
        "Timer percentiles reported at each StatsD flush, each in (0, 100] (a Picket \
         extension; Sensu always reports the 90th)"),
    flag("statsd-event-handlers", List, "",
        "Handlers of StatsD metric events"),
    flag("statsd-disable", Bool, "false",
        "Disable the StatsD listener"),
    flag("disable-assets", Bool, "false",
        "Disable runtime assets"),
    flag("assets-rate-limit", Scalar, "1.39",
        "Asset downloads per second (cache hits are free; 0 means no limit); over the limit a check reports status 3 and the next request retries"),
    flag("assets-burst-limit", Scalar, "100",
        "Asset downloads allowed at once before --assets-rate-limit applies"),
    flag("cache-dir", Scalar, "",
        "Cache directory; holds the outbox/ of events waiting for the backend (one agent per \
         directory) [default: /var/cache/picket/picket-agent as root, else under \
         $XDG_CACHE_HOME or ~/.cache]"),
    flag("trusted-ca-file", Scalar, "",
        "CA certificates (PEM) that wss:// backends must be signed by [default: the system's]"),
    flag("cert-file", Scalar, "",
        "TLS client certificate (PEM) for wss:// backends that authenticate agents by \
         certificate; with it the agent sends no password"),
    flag("key-file", Scalar, "",
        "Private key (PEM) of --cert-file"),
    flag("insecure-skip-tls-verify", Bool, "false",
        "Do not verify wss:// backends' certificates (for tests only: anyone can impersonate \
         the backend)"),
    flag("redact", List, "password,passwd,pass,api_key,api_token,access_key,secret_key,private_key,secret",
        "Label and annotation keys whose values are redacted"),
    flag("allow-list", Scalar, "",
        "Path of the check/hook command allow list (.yml, .yaml or .json)"),
    flag("events-rate-limit", Scalar, "10",
        "Events per second at which events posted to the agent HTTP API are forwarded to the \
         backend (they are accepted at once and wait in the outbox; 0 means no limit)"),
    flag("events-burst-limit", Scalar, "10",
        "Events posted to the agent HTTP API forwarded at once before the rate limit applies"),
    later("detect-cloud-provider", Bool, "false",
        "Detect the cloud provider (EC2, GCP, Azure)"),
    flag("backend-handshake-timeout", Scalar, "15",
        "Seconds allowed for the WebSocket handshake with a backend"),
    flag("backend-heartbeat-interval", Scalar, "30",
        "Seconds between WebSocket pings"),
    flag("backend-heartbeat-timeout", Scalar, "45",
        "Seconds without pong or data before the session is dead (interval*10/6 if not above it)"),
    flag("retry-min", Scalar, "1s",
        "Minimum wait before reconnecting (Go duration, e.g. 1s, 500ms)"),
    flag("retry-max", Scalar, "120s",
        "Maximum wait before reconnecting (Go duration)"),
    flag("retry-multiplier", Scalar, "2.0",
        "Factor applied to the reconnection wait after each failed attempt"),
    flag("max-session-length", Scalar, "0s",
        "Reconnect after this long, minus up to 50% random (Go duration; 0s disables it)"),
    flag("agent-managed-entity", Bool, "false",
        "Own the entity: label sensu.io/managed_by=sensu-agent, ignore the backend's entity config"),
    flag("log-level", Scalar, "info",
        "Log level: panic, fatal, error, warn, info, debug or trace"),
];

/// Deprecated spellings, accepted as flags and file keys: `(alias, canonical name)`.
pub const ALIASES: &[(&str, &str)] = &[
    ("id", "name"),
    ("keepalive-timeout", "keepalive-warning-timeout"),
];

pub fn flag_def(name: &str) -> Option<&'static FlagDef> {
    FLAGS.iter().find(|d| d.name == name)
}

/// The environment variable of a flag: `PICKET_KEEPALIVE_INTERVAL` for `keepalive-interval`.
pub fn env_var_name(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

pub(super) fn command() -> clap::Command {
    let mut start = clap::Command::new("start")
        .about("Start the agent")
        .args_override_self(true)
        .arg(
            Arg::new("config-file")
                .short('c')
                .long("config-file")
                .value_name("PATH")
                .help(format!(
                    "Path of the YAML config file; empty for none [default: {DEFAULT_CONFIG_FILE}, read only if present] [env: {ENV_CONFIG_FILE}]"
                )),
        );
    for def in FLAGS {
        start = start.arg(flag_arg(def.name, def.kind, help_text(def), false));
    }
    for (alias, canonical) in ALIASES {
        let kind = flag_def(canonical).map_or(Scalar, |d| d.kind);
        start = start.arg(flag_arg(
            alias,
            kind,
            format!("Deprecated: use --{canonical}"),
            true,
        ));
    }
    clap::Command::new("picket-agent")
        .about(
            "Picket agent: keeps one WebSocket session to a Picket backend, reports keepalives and runs the checks the backend requests",
        )
        .version(VERSION)
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .long("version")
                .short('V')
                .action(ArgAction::SetTrue)
                .help("Print version"),
        )
        .subcommand(start)
        .subcommand(clap::Command::new("version").about("Print the version"))
}

fn flag_arg(name: &'static str, kind: Kind, help: String, hide: bool) -> Arg {
    let arg = Arg::new(name).long(name).help(help).hide(hide);
    match kind {
        Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL"),
        Scalar => arg.action(ArgAction::Set).value_name("VALUE"),
        List => arg
            .action(ArgAction::Append)
            .value_delimiter(',')
            .value_name("LIST"),
        Map => arg
            .action(ArgAction::Append)
            .value_delimiter(',')
            .value_name("KEY=VALUE"),
    }
}

fn help_text(def: &FlagDef) -> String {
    let mut help = def.help.to_string();
    if !def.default.is_empty() {
        help.push_str(&format!(" [default: {}]", def.default));
    }
    help.push_str(&format!(" [env: {}]", env_var_name(def.name)));
    if def.later {
        help.push(' ');
        help.push_str(NOT_IMPLEMENTED);
    }
    help
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_default_matches_proto_spec() {
        assert_eq!(
            flag_def("redact").unwrap().default,
            proto_spec::v2::entity::DEFAULT_REDACT.join(",")
        );
    }

    #[test]
    fn later_flags_say_so_in_help() {
        let cmd = command();
        let start = cmd.find_subcommand("start").unwrap();
        for def in FLAGS {
            let arg = start
                .get_arguments()
                .find(|a| a.get_id() == def.name)
                .unwrap();
            let help = arg.get_help().unwrap().to_string();
            assert_eq!(help.ends_with(NOT_IMPLEMENTED), def.later, "{}", def.name);
        }
    }
}
