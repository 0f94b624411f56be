//! `picket-agent`: parse the configuration, set up logging, run the agent until SIGTERM or
//! SIGINT. Everything else lives in the `agent` library.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use agent::config::{self, Invocation};
use agent::{Agent, CancellationToken};

/// `EX_USAGE`: the configuration (flags, env or file) is invalid.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    // Non-UTF-8 variables cannot be agent settings; skip them rather than panic.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let config = match config::parse_invocation(std::env::args_os(), &env) {
        Ok(Invocation::Start(config)) => *config,
        Ok(Invocation::Version) => {
            println!("{}", config::version_line());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("picket-agent: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(config.log_level);
    let agent = match Agent::new(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("picket-agent: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match run(agent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("picket-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(agent: Agent) -> anyhow::Result<()> {
    use anyhow::Context;
    // Two workers are plenty for one session; the default (one per core) is not what a small
    // agent on a big host should take.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("picket-agent")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(on_signal(shutdown.clone()));
        agent.run(shutdown).await
    });
    // Do not wait for stray blocking work (a facts refresh) beyond a moment.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result.context("agent failed")
}

/// Cancel on the first SIGTERM or SIGINT; a second one exits at once.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot install signal handlers; stop the agent with SIGKILL");
        return;
    };
    for round in 0..2 {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if round == 0 {
            tracing::info!(signal = name, "Shutting down");
            shutdown.cancel();
        } else {
            tracing::warn!(signal = name, "Second signal; exiting immediately");
            std::process::exit(130);
        }
    }
}
