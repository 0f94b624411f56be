//! TLS between the real binaries, with a CA this test generates:
//!
//! - the backend serves https:// and wss:// from `--cert-file/--key-file` and authenticates
//!   agents by client certificate with `--agent-auth-trusted-ca-file`;
//! - an agent with `--trusted-ca-file` registers over wss:// with its password;
//! - an agent with `--cert-file/--key-file` registers with no valid password (the certificate
//!   is the credential, its CN the agent's name);
//! - an agent with a certificate of another CA, and one using plain ws://, never register,
//!   and their logs say why;
//! - `--insecure-skip-tls-verify` connects without the CA; an unreadable `--trusted-ca-file`
//!   stops the agent at start-up with exit code 64.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port};
use tls::test_pki::TestCa;

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "e2e-admin-password";
const NS: &str = "/api/core/v2/namespaces/default";

fn start_agent(name: &str, logs: &Path, backend_url: &str, extra: &[&str]) -> Proc {
    let cache = logs.join(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = Command::new(binary("picket-agent"));
    cmd.args(["start", "--name", name, "--backend-url", backend_url])
        .args(["--keepalive-interval", "1"])
        .args(["--retry-min", "1s", "--retry-max", "2s"])
        .args(["--log-level", "info", "--statsd-disable", "--disable-api"])
        .arg("--disable-sockets")
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--config-file", "/dev/null"])
        .args(extra);
    Proc::spawn(name, cmd, logs.join(format!("{name}.log")))
}

#[test]
fn agents_over_wss_with_passwords_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("Picket e2e CA");
    let ca_file = ca.write(d, "ca");
    let server = ca.server(&["localhost", "127.0.0.1"]).write(d, "backend");
    let agents_ca = TestCa::new("Picket e2e agents CA");
    let agents_ca_file = agents_ca.write(d, "agents-ca");
    let web01 = agents_ca.client("web-01").write(d, "web-01");
    let rogue = TestCa::new("Rogue CA").client("db-01").write(d, "db-01");

    let (api_port, agent_port) = (free_port(), free_port());
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--state-dir"])
        .arg(d.join("state"))
        .args(["--api-listen-address", &format!("127.0.0.1:{api_port}")])
        .args(["--agent-host", "127.0.0.1"])
        .args(["--agent-port", &agent_port.to_string()])
        .arg("--cert-file")
        .arg(&server.cert_file)
        .arg("--key-file")
        .arg(&server.key_file)
        .arg("--agent-auth-trusted-ca-file")
        .arg(&agents_ca_file)
        .args(["--log-level", "info", "--config-file", "/dev/null"])
        .env("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME", ADMIN)
        .env("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let backend = Proc::spawn("picket-backend", cmd, d.join("backend.log"));

    let api = Api::with_ca(
        format!("https://localhost:{api_port}"),
        ADMIN,
        ADMIN_PASSWORD,
        &ca.cert_pem(),
    );
    eventually("the backend's https API", Duration::from_secs(30), || {
        api.get("/health").filter(|r| r.status == 200)
    });
    // The API is not reachable over plain http.
    let plain = Api::new(
        format!("http://127.0.0.1:{api_port}"),
        ADMIN,
        ADMIN_PASSWORD,
    );
    let reply = plain.get("/health").expect("an HTTP answer");
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("requires TLS"), "{}", reply.body);

    let wss = format!("wss://localhost:{agent_port}");
    let ca_arg = ca_file.to_str().unwrap();
    let _password = start_agent("wss-password", d, &wss, &["--trusted-ca-file", ca_arg]);
    let _certificate = start_agent(
        "web-01",
        d,
        &wss,
        &[
            "--trusted-ca-file",
            ca_arg,
            "--cert-file",
            web01.cert_file.to_str().unwrap(),
            "--key-file",
            web01.key_file.to_str().unwrap(),
            "--password",
            "not-the-agent-password",
        ],
    );
    let _insecure = start_agent("insecure", d, &wss, &["--insecure-skip-tls-verify"]);
    let rogue_agent = start_agent(
        "db-01",
        d,
        &wss,
        &[
            "--trusted-ca-file",
            ca_arg,
            "--cert-file",
            rogue.cert_file.to_str().unwrap(),
            "--key-file",
            rogue.key_file.to_str().unwrap(),
        ],
    );
    let plain_agent = start_agent("plain", d, &format!("ws://127.0.0.1:{agent_port}"), &[]);

    for name in ["wss-password", "web-01", "insecure"] {
        let entity = eventually(
            &format!("{name} registered over wss://"),
            Duration::from_secs(30),
            || api.get_json(&format!("{NS}/entities/{name}")),
        );
        assert_eq!(entity["entity_class"], "agent", "{name}");
    }

    eventually(
        "the rogue certificate refused",
        Duration::from_secs(30),
        || {
            let log = rogue_agent.log_text();
            log.contains("Connection to backend failed").then_some(())
        },
    );
    eventually("plain ws:// refused", Duration::from_secs(30), || {
        let log = plain_agent.log_text();
        (log.contains("HTTP 400") && log.contains("requires TLS")).then_some(())
    });
    for name in ["db-01", "plain"] {
        let reply = api.get(&format!("{NS}/entities/{name}")).unwrap();
        assert_eq!(reply.status, 404, "{name} registered: {}", reply.body);
    }
    assert!(
        !rogue_agent.log_text().contains("Connected to backend"),
        "{}",
        rogue_agent.log_text()
    );
    drop(backend);
}

#[test]
fn unreadable_tls_files_stop_the_agent_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let out = Command::new(binary("picket-agent"))
        .args([
            "start",
            "--name",
            "a1",
            "--backend-url",
            "wss://localhost:1",
        ])
        .arg("--trusted-ca-file")
        .arg(&missing)
        .arg("--cache-dir")
        .arg(dir.path())
        .args([
            "--config-file",
            "/dev/null",
            "--statsd-disable",
            "--disable-api",
        ])
        .arg("--disable-sockets")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-ca.pem"), "{stderr}");
}
