//! Logging set-up for Picket's binaries. Libraries log through the `tracing` facade only;
//! a binary calls [`init`] once, before it starts any component.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// Sensu's `--log-level` values. `panic` and `fatal` exist in Sensu (logrus); both map to
/// `error`, the most severe level `tracing` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Panic,
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid log level {0:?}: use one of panic, fatal, error, warn, info, debug, trace")]
pub struct InvalidLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = InvalidLogLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "panic" => LogLevel::Panic,
            "fatal" => LogLevel::Fatal,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return Err(InvalidLogLevel(s.to_string())),
        })
    }
}

impl LogLevel {
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Panic | LogLevel::Fatal | LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Install a structured (key=value) log subscriber writing to stderr. `RUST_LOG`, when set,
/// overrides `level` so a developer can turn on one module's debug logs.
pub fn init(level: LogLevel) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_filter()));
    // A second init (tests starting several components in one process) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
