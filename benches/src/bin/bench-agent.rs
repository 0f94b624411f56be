//! `bench-agent`: idle memory of one `picket-agent` and the size of its binary.
//!
//! Starts a release `picket-backend` on loopback ports, runs the agent against it, waits until
//! the backend has registered the agent's entity, lets it idle (keepalives only) for a while
//! and reads the agent's VmRSS and peak (VmHWM) from /proc.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use benches::harness::{self, BackendProcess, mib};
use benches::parse_duration;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-agent")]
struct Args {
    /// The agent binary to measure (the static release-small build is what ships).
    #[arg(long)]
    agent_bin: PathBuf,
    /// The release backend binary it connects to.
    #[arg(long)]
    backend_bin: PathBuf,
    /// How long the agent idles after registration before the reading.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    idle: Duration,
    /// Keepalive interval given to the agent, in seconds.
    #[arg(long, default_value_t = 20)]
    keepalive_interval: u32,
    /// Extra argument for `picket-agent start` (repeatable), e.g. --agent-arg=--log-level=warn.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    agent_args: Vec<String>,
}

const AGENT_NAME: &str = "bench-agent";

/// Killed when dropped, so a failed run leaves no agent behind.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    println!("machine: {}", harness::machine_summary());
    let size = std::fs::metadata(&args.agent_bin)
        .with_context(|| format!("no agent binary at {}", args.agent_bin.display()))?
        .len();
    println!(
        "agent binary {}: {size} bytes ({:.2} MiB)",
        args.agent_bin.display(),
        mib(size)
    );

    let backend = BackendProcess::start(&args.backend_bin)?;
    let dir = tempfile::Builder::new()
        .prefix("picket-bench-agent")
        .tempdir()?;
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(&args.agent_bin)
        .arg("start")
        .args(["--backend-url", &backend.agent_url])
        .args(["--name", AGENT_NAME])
        .args(["--keepalive-interval", &args.keepalive_interval.to_string()])
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        // No stray /etc/picket/agent.yml may change what we measure.
        .args(["--config-file", ""])
        // The local listeners get free ports, so a service on the default ones (or a second
        // run) cannot make the agent fail to start.
        .args(["--api-port", &harness::free_port()?.to_string()])
        .args(["--socket-port", &harness::free_port()?.to_string()])
        .args(["--statsd-metrics-port", &harness::free_port()?.to_string()])
        .args(&args.agent_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", args.agent_bin.display()))?;
    let mut agent = AgentProcess(child);
    let pid = agent.0.id();
    let started = Instant::now();

    let registered = harness::eventually(
        "the agent's entity to be registered",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            if let Ok(Some(_)) = agent.0.try_wait() {
                return Some(false);
            }
            let path = format!("/api/core/v2/namespaces/default/entities/{AGENT_NAME}");
            matches!(backend.api.get(&path), Ok((200, _, _))).then_some(true)
        },
    );
    if !matches!(registered, Ok(true)) {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!("the agent did not register (exited or timed out); its log:\n{log}");
    }
    println!(
        "registered {:.1} s after start; idling {:?}",
        started.elapsed().as_secs_f64(),
        args.idle
    );
    std::thread::sleep(args.idle);
    if let Some(status) = agent.0.try_wait()? {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!("the agent exited with {status} while idling; its log:\n{log}");
    }
    let rss = harness::vm_rss(pid)?;
    let hwm = harness::proc_status_bytes(pid, "VmHWM")?;
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_default();
    let keepalive = backend
        .api
        .get(&format!(
            "/api/core/v2/namespaces/default/events/{AGENT_NAME}/keepalive"
        ))
        .map(|(status, _, _)| status)
        .unwrap_or(0);
    println!(
        "agent idle VmRSS {rss} bytes ({:.2} MiB), peak VmHWM {:.2} MiB, {threads} threads",
        mib(rss),
        mib(hwm)
    );
    println!("backend keepalive event for {AGENT_NAME}: HTTP {keepalive}");
    Ok(())
}
