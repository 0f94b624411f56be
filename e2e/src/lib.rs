//! Helpers for whole-system tests: run the real `picket-backend` and `picket-agent` binaries
//! as child processes on free loopback ports, talk to the REST API, send signals.
//!
//! The binaries are taken from the cargo target directory the tests were built into (the test
//! command builds them first with `cargo build --workspace --bins`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A child process that is killed when dropped, so a failing test leaves nothing behind.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("create log file");
        cmd.stdout(Stdio::from(file.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(file));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Send SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {within:?} of SIGTERM; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the process dies without a word.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still alive (not exited, not killed by us).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP reply.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A REST API client with Basic credentials (or any `Authorization` value: `with_authorization`).
pub struct Api {
    pub base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(base: String, user: &str, password: &str) -> Api {
        Api::build(base, user, password, None)
    }

    /// A client of an `https://` API that trusts only the CA certificate `ca_pem`.
    pub fn with_ca(base: String, user: &str, password: &str, ca_pem: &str) -> Api {
        Api::build(base, user, password, Some(ca_pem))
    }

    fn build(base: String, user: &str, password: &str, ca_pem: Option<&str>) -> Api {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)));
        if let Some(pem) = ca_pem {
            let ca = ureq::tls::Certificate::from_pem(pem.as_bytes()).expect("CA certificate PEM");
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                        ca,
                    ])))
                    .build(),
            );
        }
        let agent = config.build().into();
        Api { base, auth, agent }
    }

    /// A client sending `authorization` as is (`Key ...`, `Bearer ...`).
    pub fn with_authorization(base: String, authorization: &str) -> Api {
        Api {
            auth: authorization.to_string(),
            ..Api::new(base, "", "")
        }
    }

    pub fn get(&self, path: &str) -> Option<Reply> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .call()
            .ok()?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Some(Reply { status, body })
    }

    pub fn put(&self, path: &str, body: &str) -> Option<Reply> {
        let mut resp = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .send(body)
            .ok()?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Some(Reply { status, body })
    }

    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        self.get(path).filter(|r| r.status == 200).map(|r| r.json())
    }
}

/// Poll `f` every 200 ms until it returns Some; panic with `what` after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The administrator the test backends seed on their first start.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// A real `picket-backend start` on free loopback ports.
pub struct Backend {
    pub api: Api,
    pub api_port: u16,
    pub agent_port: u16,
    pub process: Proc,
}

/// Start `picket-backend` with its state in `dir/state` and its log in `dir/backend.log`, the
/// first start seeding [`ADMIN`]; `extra_args` go after the common flags. Returns once
/// `/health` answers.
pub fn start_backend(dir: &Path, extra_args: &[&str]) -> Backend {
    let (api_port, agent_port) = (free_port(), free_port());
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--config-file", "/dev/null", "--state-dir"])
        .arg(dir.join("state"))
        .args(["--api-listen-address", &format!("127.0.0.1:{api_port}")])
        .args(["--agent-host", "127.0.0.1"])
        .args(["--agent-port", &agent_port.to_string()])
        .args(extra_args)
        .env("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME", ADMIN)
        .env("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let process = Proc::spawn("picket-backend", cmd, dir.join("backend.log"));
    let api = Api::new(
        format!("http://127.0.0.1:{api_port}"),
        ADMIN,
        ADMIN_PASSWORD,
    );
    eventually("the backend's API", Duration::from_secs(30), || {
        api.get("/health").filter(|r| r.status == 200)
    });
    Backend {
        api,
        api_port,
        agent_port,
        process,
    }
}
