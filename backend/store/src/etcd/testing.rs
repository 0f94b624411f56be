//! Real etcd processes on loopback ports, for tests and benchmarks (`/usr/bin/etcd`, Debian's
//! `etcd-server`, or `$PICKET_ETCD_BIN`).
//!
//! An [`EtcdCluster`] starts one or more members on free `127.0.0.1` ports with their data in
//! a fresh directory, waits until the cluster answers, and kills every member and removes the
//! directory when dropped. Members can be killed, stopped and restarted on the same data, to
//! test failures. Data lives in `/dev/shm` unless `durable` is asked for: etcd 3.4 cannot turn
//! fsync off, and on a RAM disk fsync costs nothing, which keeps tests fast; benchmarks that
//! claim durability use a real disk.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::StoreError;
use crate::etcd::{EtcdOptions, EtcdStore};

/// How an [`EtcdCluster`] is started.
#[derive(Debug, Clone)]
pub struct EtcdClusterOptions {
    pub members: usize,
    /// Keep the data on a real disk (the temp dir) instead of `/dev/shm`.
    pub durable: bool,
    /// Raft heartbeat and election timeout in milliseconds. Lease TTLs have a floor of
    /// 1.5 × the election timeout.
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    /// How long to wait for the cluster to answer.
    pub ready_timeout: Duration,
    /// Where the members' data directories go (default: `/dev/shm`, or the temp dir when
    /// `durable`).
    pub data_parent: Option<PathBuf>,
    /// Serve clients over TLS (peers stay plain: the peer port is not what is under test).
    pub tls: Option<EtcdServerTls>,
}

/// TLS on the members' client port.
#[derive(Debug, Clone)]
pub struct EtcdServerTls {
    /// The members' server certificate and key (PEM); it must name `127.0.0.1`.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA that signed the server certificate, which the cluster's own clients trust.
    pub ca_file: PathBuf,
    /// Require client certificates signed by `ca_file` (etcd's `--client-cert-auth`); the
    /// cluster's own clients then present `client`.
    pub client_cert_auth: bool,
    /// Client certificate and key (PEM) for the cluster's own clients.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Default for EtcdClusterOptions {
    fn default() -> Self {
        EtcdClusterOptions {
            members: 1,
            durable: false,
            heartbeat_ms: 100,
            election_ms: 1000,
            ready_timeout: Duration::from_secs(30),
            data_parent: None,
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdClusterError {
    #[error("cannot run etcd ({bin}): {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("cannot prepare etcd's directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("etcd did not become ready: {0}")]
    NotReady(StoreError),
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster of loopback members. Dropping it kills them and deletes the data.
pub struct EtcdCluster {
    root: PathBuf,
    token: String,
    opts: EtcdClusterOptions,
    members: Vec<Member>,
}

static NEXT_CLUSTER: AtomicU64 = AtomicU64::new(0);

/// The etcd binary to run.
pub fn etcd_binary() -> String {
    std::env::var("PICKET_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".to_string())
}

/// Free loopback ports, all held at once so none is handed out twice.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl EtcdCluster {
    /// Start a one-member cluster.
    pub async fn single() -> Result<Self, EtcdClusterError> {
        Self::start(EtcdClusterOptions::default()).await
    }

    /// Start a cluster of `members` members.
    pub async fn with_members(members: usize) -> Result<Self, EtcdClusterError> {
        Self::start(EtcdClusterOptions {
            members,
            ..Default::default()
        })
        .await
    }

    pub async fn start(opts: EtcdClusterOptions) -> Result<Self, EtcdClusterError> {
        // A port picked free can be taken by someone else before etcd binds it; a fresh set of
        // ports on the next try is the cure.
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(opts.clone()).await {
                Ok(cluster) => return Ok(cluster),
                Err(e @ EtcdClusterError::Spawn { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(EtcdClusterError::NotReady(StoreError::Closed)))
    }

    async fn try_start(opts: EtcdClusterOptions) -> Result<Self, EtcdClusterError> {
        let base = if let Some(parent) = &opts.data_parent {
            parent.clone()
        } else if !opts.durable && Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let token = format!(
            "picket-etcd-{}-{}",
            std::process::id(),
            NEXT_CLUSTER.fetch_add(1, Ordering::Relaxed)
        );
        let root = base.join(&token);
        std::fs::create_dir_all(&root)?;
        let ports = free_ports(opts.members * 2)?;
        let members = (0..opts.members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: root.join(format!("m{i}")),
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            root,
            token,
            opts,
            members,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) -> Result<(), EtcdClusterError> {
        let initial_cluster = self.initial_cluster();
        let bin = etcd_binary();
        let scheme = self.scheme();
        let m = &mut self.members[i];
        std::fs::create_dir_all(&m.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{}.log", m.name)))?;
        let client = format!("{scheme}://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut command = Command::new(&bin);
        if let Some(tls) = &self.opts.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file);
            if tls.client_cert_auth {
                command
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(&tls.ca_file);
            }
        }
        let child = command
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", &self.opts.heartbeat_ms.to_string()])
            .args(["--election-timeout", &self.opts.election_ms.to_string()])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| EtcdClusterError::Spawn { bin, source })?;
        m.child = Some(child);
        Ok(())
    }

    /// Wait until the cluster answers a linearizable read through any running member.
    pub async fn wait_ready(&self) -> Result<(), EtcdClusterError> {
        let mut opts = self.with_tls(EtcdOptions::new(self.running_client_urls()));
        opts.request_timeout = Duration::from_secs(2);
        opts.connect_timeout = Duration::from_secs(1);
        let store = EtcdStore::connect(opts)
            .await
            .map_err(EtcdClusterError::NotReady)?;
        store
            .wait_ready(self.opts.ready_timeout)
            .await
            .map(|_| ())
            .map_err(EtcdClusterError::NotReady)
    }

    /// Every member's client URL.
    pub fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client_port))
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `opts` with the CA and client certificate this cluster's clients use, if it serves TLS.
    fn with_tls(&self, mut opts: EtcdOptions) -> EtcdOptions {
        if let Some(tls) = &self.opts.tls {
            opts.trusted_ca_file = Some(tls.ca_file.clone());
            if let Some((cert, key)) = &tls.client {
                opts.cert_file = Some(cert.clone());
                opts.key_file = Some(key.clone());
            }
        }
        opts
    }

    /// The client URLs of the members currently running.
    pub fn running_client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client_port))
            .collect()
    }

    /// `--etcd-client-urls` for the whole cluster.
    pub fn client_urls_flag(&self) -> String {
        self.client_urls().join(",")
    }

    /// Options for an [`EtcdStore`] on every member (with the cluster's CA and client
    /// certificate when it serves TLS).
    pub fn store_options(&self) -> EtcdOptions {
        self.with_tls(EtcdOptions::new(self.client_urls()))
    }

    /// Connect a store to every member.
    pub async fn connect(&self) -> Result<std::sync::Arc<EtcdStore>, StoreError> {
        EtcdStore::connect(self.store_options()).await
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kill member `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop member `i` gracefully (SIGTERM), waiting for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let terminated = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .map(|pid| {
                    rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
                })
                .unwrap_or(false);
            if !terminated {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Stop every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }

    /// Start member `i` again on its data (no-op when it runs).
    pub fn restart(&mut self, i: usize) -> Result<(), EtcdClusterError> {
        if self.members[i].child.is_none() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// Start every stopped member and wait for the cluster.
    pub async fn restart_all(&mut self) -> Result<(), EtcdClusterError> {
        for i in 0..self.members.len() {
            self.restart(i)?;
        }
        self.wait_ready().await
    }

    /// The process id of member `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Where member logs are written (`m<i>.log`), for failing tests to show.
    pub fn log_dir(&self) -> &Path {
        &self.root
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
