//! `picket-loadgen`: open N simulated agent sessions against one or more backends for a
//! bounded time, then print what happened.

use std::process::ExitCode;
use std::time::Duration;

use benches::loadgen::{self, LoadgenConfig};
use benches::parse_duration;
use clap::Parser;

/// Simulated Picket/Sensu agents: real handshakes, keepalives, nothing else.
#[derive(Debug, Parser)]
#[command(name = "picket-loadgen", version)]
struct Args {
    /// Backend agent URL, e.g. ws://127.0.0.1:8081/ (repeatable; agents spread over them).
    #[arg(long = "backend-url", required = true)]
    backend_urls: Vec<String>,
    /// Number of simulated agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "agent")]
    user: String,
    #[arg(long, default_value = "P@ssw0rd!")]
    password: String,
    /// Comma-separated subscriptions sent in the handshake and the entity.
    #[arg(long, default_value = "linux,loadgen", value_delimiter = ',')]
    subscriptions: Vec<String>,
    /// Seconds between keepalives (each agent adds up to ±5 % jitter).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    keepalive_interval: Duration,
    /// Seconds without a keepalive before the backend warns (sent in the keepalive).
    #[arg(long, default_value_t = 120)]
    keepalive_warning_timeout: u32,
    /// New sessions per second; 0 opens them all at once.
    #[arg(long, default_value_t = 100.0)]
    ramp_per_second: f64,
    /// How long the run lasts, ramp included (e.g. 90s, 5m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Agents are named <prefix><index>.
    #[arg(long, default_value = "loadgen-")]
    name_prefix: String,
    /// Do not reconnect after a refusal or a lost session.
    #[arg(long)]
    no_reconnect: bool,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = LoadgenConfig {
        backend_urls: args.backend_urls,
        agents: args.agents,
        namespace: args.namespace,
        user: args.user,
        password: args.password,
        subscriptions: args.subscriptions,
        keepalive_interval: args.keepalive_interval,
        keepalive_warning_timeout: args.keepalive_warning_timeout,
        ramp_per_second: args.ramp_per_second,
        duration: args.duration,
        name_prefix: args.name_prefix,
        reconnect: !args.no_reconnect,
        ..LoadgenConfig::default()
    };
    match loadgen::run(config).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("picket-loadgen: {e}");
            ExitCode::from(64)
        }
    }
}
