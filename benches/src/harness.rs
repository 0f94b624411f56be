//! What the benchmark binaries share: running a release `picket-backend` as a child process on
//! loopback ports, reading a process's memory from /proc, and asking the REST API.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;

/// A free TCP port on 127.0.0.1. Another process could take it before we use it; on a
/// benchmark machine that race is rare enough and shows up as a bind error, not a wrong figure.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A field of /proc/<pid>/status in bytes (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_bytes(pid: u32, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kb(&status, field)
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

/// Resident set size of a process, in bytes.
pub fn vm_rss(pid: u32) -> io::Result<u64> {
    proc_status_bytes(pid, "VmRSS")
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The soft open-file limit of this process (children inherit it).
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Basic-auth REST client for one backend.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    authorization: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(base: impl Into<String>, user: &str, password: &str) -> Api {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api {
            base: base.into(),
            authorization: format!("Basic {token}"),
            agent,
        }
    }

    /// GET a path; returns the status, the `Sensu-Continue` header and the body.
    pub fn get(&self, path: &str) -> Result<(u16, Option<String>, String)> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .header("Authorization", &self.authorization)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        let token = resp
            .headers()
            .get("Sensu-Continue")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Ok((status, token, body))
    }

    /// The entities of a namespace, read in pages so a big fleet never means one huge
    /// response (which would also inflate the backend's RSS we are measuring).
    pub fn entity_names(&self, namespace: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/api/core/v2/namespaces/{namespace}/entities?limit=500");
            if let Some(t) = &token {
                path.push_str("&continue=");
                path.push_str(t);
            }
            let (status, next, body) = self.get(&path)?;
            if status != 200 {
                bail!("listing entities: HTTP {status}: {body}");
            }
            let page: serde_json::Value = serde_json::from_str(&body).context("entity list")?;
            for e in page.as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(n) = e["metadata"]["name"].as_str() {
                    names.push(n.to_string());
                }
            }
            match next {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(names),
            }
        }
    }

    /// One sample from the backend's `/metrics` (no labels).
    pub fn metric(&self, name: &str) -> Result<f64> {
        let (status, _, body) = self.get("/metrics")?;
        if status != 200 {
            bail!("GET /metrics: HTTP {status}");
        }
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .with_context(|| format!("no {name} in /metrics"))
    }
}

/// A release `picket-backend` started on free loopback ports with its own state directory,
/// killed when dropped.
pub struct BackendProcess {
    child: Child,
    pub api: Api,
    pub agent_url: String,
    pub log: PathBuf,
    _state: tempfile::TempDir,
}

pub const ADMIN_USER: &str = "bench-admin";
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// How a benchmark's backend is started beyond the defaults of [`BackendProcess::start`].
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// Keep all state in this etcd (`--etcd-client-urls`, comma-separated) instead of the
    /// embedded store in the temporary state directory.
    pub etcd_client_urls: Option<String>,
    /// Extra environment for the backend (e.g. `MALLOC_ARENA_MAX=2` for allocator experiments).
    pub env: Vec<(String, String)>,
}

impl BackendProcess {
    /// Start the binary on the embedded store and wait until its API answers `/health`. The
    /// first start of an empty state directory initialises the store with our admin (taken
    /// from the env).
    pub fn start(binary: &Path) -> Result<BackendProcess> {
        Self::start_with(binary, &BackendOptions::default())
    }

    /// [`BackendProcess::start`] with options; on etcd, the first start initialises the empty
    /// etcd the same way.
    pub fn start_with(binary: &Path, opts: &BackendOptions) -> Result<BackendProcess> {
        if !binary.is_file() {
            bail!("no backend binary at {}", binary.display());
        }
        let state = tempfile::Builder::new()
            .prefix("picket-bench-backend")
            .tempdir()?;
        let (api_port, agent_port) = (free_port()?, free_port()?);
        let log = state.path().join("backend.log");
        // An explicit, empty config file: no stray /etc/picket/backend.yml on the machine may
        // change what we measure.
        let config_file = state.path().join("backend.yml");
        std::fs::write(&config_file, "{}\n")?;
        let out = std::fs::File::create(&log)?;
        let mut command = Command::new(binary);
        command
            .arg("start")
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .args(["--api-listen-address", &format!("127.0.0.1:{api_port}")])
            .args(["--agent-host", "127.0.0.1"])
            .args(["--agent-port", &agent_port.to_string()])
            .arg("--config-file")
            .arg(&config_file)
            .env("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME", ADMIN_USER)
            .env("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(urls) = &opts.etcd_client_urls {
            command.args(["--etcd-client-urls", urls]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut backend = BackendProcess {
            child,
            api: Api::new(
                format!("http://127.0.0.1:{api_port}"),
                ADMIN_USER,
                ADMIN_PASSWORD,
            ),
            agent_url: format!("ws://127.0.0.1:{agent_port}/"),
            log,
            _state: state,
        };
        backend.wait_healthy(Duration::from_secs(60))?;
        Ok(backend)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss(&self) -> io::Result<u64> {
        vm_rss(self.pid())
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("picket-backend exited with {status} during start-up:\n{log}");
            }
            if matches!(self.api.get("/health"), Ok((200, _, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("picket-backend did not answer /health within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real etcd cluster for a benchmark: `backend_store`'s `EtcdCluster` (the members the
/// store's tests and `bench-events --etcd-members` run), with its data on a real disk under
/// `dir` (default: the system's temp dir) and fsync on, as in production.
#[cfg(feature = "etcd")]
pub async fn start_etcd(
    members: usize,
    dir: Option<&Path>,
) -> Result<backend_store::etcd::testing::EtcdCluster> {
    use backend_store::etcd::testing::{EtcdCluster, EtcdClusterOptions};
    EtcdCluster::start(EtcdClusterOptions {
        members,
        durable: true,
        data_parent: Some(dir.map_or_else(std::env::temp_dir, Path::to_path_buf)),
        ..Default::default()
    })
    .await
    .context("starting etcd")
}

/// What an etcd cluster has served so far, summed over its members' `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdRequests {
    /// Unary gRPC requests handled, by method (`Range`, `Txn`, `Put`, `LeaseGrant`, ...).
    pub unary: std::collections::BTreeMap<String, f64>,
    /// Messages received on gRPC streams, by method (`LeaseKeepAlive`, `Watch`).
    pub stream_messages: std::collections::BTreeMap<String, f64>,
    /// Raft proposals committed: the largest count among the members (each applies them all).
    pub proposals_committed: f64,
}

impl EtcdRequests {
    /// Read every member's `/metrics` (plain-HTTP client URLs).
    pub fn read(client_urls: &[String]) -> Result<EtcdRequests> {
        let mut total = EtcdRequests::default();
        for url in client_urls {
            let url = format!("{url}/metrics");
            let mut resp = ureq::get(&url)
                .call()
                .with_context(|| format!("GET {url}"))?;
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .with_context(|| format!("reading {url}"))?;
            total.add_member(&text);
        }
        Ok(total)
    }

    /// Fold one member's Prometheus text into the totals.
    fn add_member(&mut self, text: &str) {
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if series == "etcd_server_proposals_committed_total" {
                self.proposals_committed = self.proposals_committed.max(value);
                continue;
            }
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let target = match name {
                "grpc_server_handled_total" if label(labels, "grpc_type") == Some("unary") => {
                    &mut self.unary
                }
                "grpc_server_msg_received_total"
                    if label(labels, "grpc_type") == Some("bidi_stream") =>
                {
                    &mut self.stream_messages
                }
                _ => continue,
            };
            if let Some(method) = label(labels, "grpc_method") {
                *target.entry(method.to_string()).or_default() += value;
            }
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &EtcdRequests) -> EtcdRequests {
        let diff = |now: &std::collections::BTreeMap<String, f64>,
                    then: &std::collections::BTreeMap<String, f64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect()
        };
        EtcdRequests {
            unary: diff(&self.unary, &earlier.unary),
            stream_messages: diff(&self.stream_messages, &earlier.stream_messages),
            proposals_committed: self.proposals_committed - earlier.proposals_committed,
        }
    }

    /// Unary requests that change data: `Put`, `Txn`, `DeleteRange`, `LeaseGrant`,
    /// `LeaseRevoke` (a `Txn` may also be a conditional read; the backend's are writes).
    pub fn writes(&self) -> f64 {
        ["Put", "Txn", "DeleteRange", "LeaseGrant", "LeaseRevoke"]
            .iter()
            .filter_map(|m| self.unary.get(*m))
            .sum()
    }
}

/// The value of `name="value"` in a Prometheus label set (values here never contain quotes).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_end_matches('}').trim_matches('"'))
    })
}

/// Poll `f` every `every` until it returns `Some`, or fail after `timeout`.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

/// `nproc`, memory and CPU model, for the results file.
pub fn machine_summary() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = parse_status_kb(&meminfo, "MemTotal").unwrap_or(0) * 1024;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("unknown");
    format!(
        "nproc {cpus}, memory {:.1} GiB, CPU {model}",
        mib(mem) / 1024.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_status_kb(s, "VmRSS"), Some(1024));
        assert_eq!(parse_status_kb(s, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kb(s, "VmSwap"), None);
        assert!(vm_rss(std::process::id()).unwrap() > 0);
        assert!(open_file_limit().unwrap() > 0);
    }

    #[test]
    fn sums_etcd_requests_over_members() {
        let member = |txn: u32, ka: u32, proposals: u32| {
            format!(
                "# TYPE grpc_server_handled_total counter\n\
                 grpc_server_handled_total{{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}} {txn}\n\
                 grpc_server_handled_total{{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}} 5\n\
                 grpc_server_handled_total{{grpc_code=\"Unavailable\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}} 1\n\
                 grpc_server_handled_total{{grpc_code=\"OK\",grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"}} 99\n\
                 grpc_server_msg_received_total{{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"}} {ka}\n\
                 etcd_server_proposals_committed_total {proposals}\n"
            )
        };
        let mut before = EtcdRequests::default();
        before.add_member(&member(10, 3, 100));
        before.add_member(&member(0, 0, 98));
        let mut after = EtcdRequests::default();
        after.add_member(&member(30, 13, 130));
        after.add_member(&member(5, 0, 129));
        assert_eq!(
            after.unary["Txn"], 37.0,
            "OK and failed Txns of both members"
        );
        assert_eq!(after.unary["Range"], 10.0);
        assert!(
            !after.unary.contains_key("LeaseKeepAlive"),
            "a stream is not unary"
        );
        let d = after.since(&before);
        assert_eq!(d.unary["Txn"], 25.0);
        assert!(!d.unary.contains_key("Range"), "no change, no entry");
        assert_eq!(d.stream_messages["LeaseKeepAlive"], 10.0);
        assert_eq!(d.proposals_committed, 30.0);
        assert_eq!(d.writes(), 25.0);
    }
}
