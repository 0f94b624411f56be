//! The first-party handlers end to end: the real backend runs them as `pipe` handlers, and
//! they deliver to real or recording destinations on loopback:
//! - a real InfluxDB 1.x (Debian's `influxdb`, started here) receiving the metric points of a
//!   `prometheus_text` check scraped by two real agents;
//! - a webhook receiver written here standing in for Slack, PagerDuty and a generic webhook;
//! - a real SMTP server (Python's aiosmtpd) with STARTTLS and AUTH, certificates from a
//!   private CA made with `openssl`.
//!
//! Also the acceptance story's step 4 with a real `check_http`: an occurrence filter lets the
//! first failure and the resolution through, and nothing else.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port, start_backend};
use serde_json::{Value, json};

const NS: &str = "/api/core/v2/namespaces/default";
const PLUGINS: &str = "/usr/lib/nagios/plugins";
const INFLUXD: &str = "/usr/bin/influxd";

struct Cluster {
    api: Api,
    agent_port: u16,
    dir: tempfile::TempDir,
    _backend: Proc,
}

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    // Debug: pipe handlers' output and exit status are logged at that level.
    let backend = start_backend(dir.path(), &["--log-level", "debug"]);
    Cluster {
        api: backend.api,
        agent_port: backend.agent_port,
        dir,
        _backend: backend.process,
    }
}

fn start_agent(c: &Cluster, name: &str, subscriptions: &str) -> Proc {
    let cache = c.dir.path().join(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = Command::new(binary("picket-agent"));
    cmd.args(["start", "--config-file", "", "--name", name])
        .args(["--backend-url", &format!("ws://127.0.0.1:{}", c.agent_port)])
        .args(["--subscriptions", subscriptions])
        .args(["--keepalive-interval", "1"])
        .args(["--keepalive-warning-timeout", "5"])
        .args([
            "--retry-min",
            "1s",
            "--retry-max",
            "2s",
            "--log-level",
            "info",
        ])
        .args(["--statsd-disable", "--disable-api", "--disable-sockets"])
        .arg("--cache-dir")
        .arg(&cache);
    let agent = Proc::spawn(name, cmd, c.dir.path().join(format!("{name}.log")));
    eventually(
        &format!("{name} registered"),
        Duration::from_secs(30),
        || {
            c.api
                .get(&format!("{NS}/entities/{name}"))
                .filter(|r| r.status == 200)
        },
    );
    agent
}

/// PUT a namespaced resource; `path` is under the namespace (`handlers/influx`).
fn put(c: &Cluster, path: &str, body: Value) {
    let r = c
        .api
        .put(&format!("{NS}/{path}"), &body.to_string())
        .unwrap_or_else(|| panic!("PUT {path}: no answer"));
    assert!(
        r.status == 201 || r.status == 200,
        "PUT {path}: {} {}",
        r.status,
        r.body
    );
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default"})
}

/// A pipe handler running one of the handler binaries with `args` (no shell quoting needed:
/// every argument here is a plain word).
fn handler(name: &str, bin: &str, args: &[&str], filters: &[&str], env: &[String]) -> Value {
    let mut command = binary(bin).display().to_string();
    for a in args {
        command.push(' ');
        command.push_str(a);
    }
    json!({
        "metadata": meta(name),
        "type": "pipe",
        "command": command,
        "timeout": 20,
        "filters": filters,
        "env_vars": env,
    })
}

/// A check result posted through the events API.
fn post_result(c: &Cluster, entity: &str, check: &str, status: u32, handlers: &[&str]) {
    let body = json!({
        "entity": {"metadata": meta(entity)},
        "check": {
            "metadata": meta(check),
            "status": status,
            "interval": 60,
            "output": format!("{check} on {entity}: status {status}"),
            "handlers": handlers,
        },
    });
    put(c, &format!("events/{entity}/{check}"), body);
}

/// Like `eventually`, but a timeout shows the end of the backend's log (failing handlers'
/// output is there).
fn wait_for<T>(c: &Cluster, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            let log = c._backend.log_text();
            let lines: Vec<&str> = log.lines().collect();
            panic!(
                "timed out waiting for {what}; the backend log ends:\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(c: &Cluster, name: &str) -> u64 {
    let body = c.api.get("/metrics").expect("GET /metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

// === InfluxDB ===

struct Influx {
    url: String,
    _proc: Proc,
}

/// A private InfluxDB 1.x on free loopback ports, its data in `dir`.
fn start_influxdb(dir: &Path) -> Influx {
    assert!(
        Path::new(INFLUXD).exists(),
        "{INFLUXD} is missing: install Debian's influxdb (scripts/test does)"
    );
    let (http, rpc) = (free_port(), free_port());
    let d = dir.display();
    let config = format!(
        "reporting-disabled = true\n\
         bind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\n  dir = \"{d}/meta\"\n\
         [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
         [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
         [monitor]\n  store-enabled = false\n\
         [continuous_queries]\n  enabled = false\n\
         [subscriber]\n  enabled = false\n"
    );
    let config_path = dir.join("influxdb.conf");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new(INFLUXD);
    cmd.arg("run").arg("-config").arg(&config_path);
    let proc = Proc::spawn("influxd", cmd, dir.join("influxd.log"));
    let url = format!("http://127.0.0.1:{http}");
    let agent = plain_agent();
    eventually("influxd answers /ping", Duration::from_secs(30), || {
        agent
            .get(format!("{url}/ping"))
            .call()
            .ok()
            .filter(|r| r.status().as_u16() == 204)
    });
    Influx { url, _proc: proc }
}

fn plain_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

impl Influx {
    /// Run an InfluxQL statement; the JSON answer.
    fn query(&self, db: &str, q: &str) -> Value {
        let mut r = plain_agent()
            .post(format!("{}/query", self.url))
            .query("db", db)
            .query("q", q)
            .send_empty()
            .expect("influx query");
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The series of a SELECT: `(tags, rows as column → value)`.
    fn series(&self, db: &str, q: &str) -> Vec<(Value, Vec<HashMap<String, Value>>)> {
        let answer = self.query(db, q);
        let series = answer["results"][0]["series"].as_array().cloned();
        series
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let columns: Vec<String> = s["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                let rows = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| {
                        columns
                            .iter()
                            .cloned()
                            .zip(row.as_array().unwrap().iter().cloned())
                            .collect()
                    })
                    .collect();
                (s["tags"].clone(), rows)
            })
            .collect()
    }
}

/// An HTTP server answering every request with `body` (a Prometheus exposition).
fn serve_text(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = read_request(&mut stream);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

const EXPOSITION: &str = "# HELP app_requests_total Requests served.\n\
# TYPE app_requests_total counter\n\
app_requests_total{path=\"/\",code=\"200\"} 1027\n\
app_requests_total{path=\"/login\",code=\"500\"} 3\n\
# HELP app_up Whether the app is up.\n\
# TYPE app_up gauge\n\
app_up 1\n";

#[test]
fn prometheus_points_land_in_influxdb_tagged_per_agent() {
    let c = start_cluster();
    let influx_dir = c.dir.path().join("influxdb");
    std::fs::create_dir_all(&influx_dir).unwrap();
    let influx = start_influxdb(&influx_dir);
    influx.query("", "CREATE DATABASE picket");
    let _agents: Vec<Proc> = ["app-1", "app-2"]
        .iter()
        .map(|name| start_agent(&c, name, "app"))
        .collect();
    let exporter = serve_text(EXPOSITION);

    put(
        &c,
        "handlers/influxdb",
        handler(
            "influxdb",
            "picket-handler-influxdb",
            &["--db-name", "picket", "--check-status-metric"],
            &["has_metrics"],
            &[format!("INFLUXDB_ADDR={}", influx.url)],
        ),
    );
    put(
        &c,
        "checks/app-metrics",
        json!({
            "metadata": meta("app-metrics"),
            "command": format!("curl -sSf http://127.0.0.1:{exporter}/metrics"),
            "subscriptions": ["app"],
            "interval": 1,
            "publish": true,
            "output_metric_format": "prometheus_text",
            "output_metric_handlers": ["influxdb"],
        }),
    );

    let per_agent = eventually(
        "app_requests_total from both agents in InfluxDB",
        Duration::from_secs(60),
        || {
            let s = influx.series(
                "picket",
                "SELECT last(\"value\") FROM \"app_requests_total\" GROUP BY \"sensu_entity_name\", \"path\"",
            );
            (s.len() == 4).then_some(s)
        },
    );
    let mut got: Vec<(String, String, f64)> = per_agent
        .iter()
        .map(|(tags, rows)| {
            (
                tags["sensu_entity_name"].as_str().unwrap().to_string(),
                tags["path"].as_str().unwrap().to_string(),
                rows[0]["last"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let want: Vec<(String, String, f64)> = [
        ("app-1", "/", 1027.0),
        ("app-1", "/login", 3.0),
        ("app-2", "/", 1027.0),
        ("app-2", "/login", 3.0),
    ]
    .iter()
    .map(|(e, p, v)| (e.to_string(), p.to_string(), *v))
    .collect();
    assert_eq!(got, want);
    // Labels became tags; the gauge is there per agent too.
    let codes = influx.series(
        "picket",
        "SELECT last(\"value\") FROM \"app_requests_total\" WHERE \"code\" = '500' GROUP BY \"sensu_entity_name\"",
    );
    assert_eq!(codes.len(), 2, "{codes:?}");
    let up = influx.series(
        "picket",
        "SELECT count(\"value\") FROM \"app_up\" GROUP BY \"sensu_entity_name\"",
    );
    assert_eq!(up.len(), 2, "{up:?}");
    // --check-status-metric: the check's status as a measurement named after the check.
    let status = eventually(
        "the check status measurement",
        Duration::from_secs(30),
        || {
            let s = influx.series(
                "picket",
                "SELECT last(\"value\") FROM \"app-metrics\" GROUP BY \"sensu_entity_name\"",
            );
            (s.len() == 2).then_some(s)
        },
    );
    for (tags, rows) in &status {
        assert_eq!(rows[0]["last"], 0, "{tags}");
    }
    assert_eq!(metric(&c, "picket_pipeline_handler_errors_total"), 0);
}

// === The webhook receiver ===

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {}", self.path, self.body))
    }
}

/// Records every request; answers 202 on `/pagerduty`, 500 on `/broken`, 200 elsewhere.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let (status, body) = match request.path.as_str() {
                    "/pagerduty" => (
                        "202 Accepted",
                        r#"{"status":"success","message":"Event processed"}"#,
                    ),
                    "/broken" => ("500 Internal Server Error", "receiver says no"),
                    _ => ("200 OK", "ok"),
                };
                record.lock().unwrap().push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Receiver { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self, path: &str) -> Vec<Request> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|r| r.path == path).cloned().collect()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// === The SMTP server ===

const SMTP_SERVER: &str = r#"
import json, ssl, sys, time
from email import message_from_bytes
from email.header import decode_header, make_header
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"picket" \
        and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

class Recorder:
    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content)
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(make_header(decode_header(msg["Subject"]))),
            "content_type": msg.get_content_type(),
            "body": msg.get_payload(decode=True).decode("utf-8"),
            "tls": session.ssl is not None,
            "login": session.auth_data.login.decode() if session.authenticated else None,
        }
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK queued"

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Recorder(), hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=True, authenticator=authenticate,
                        auth_require_tls=True)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

struct Smtp {
    port: u16,
    ca: PathBuf,
    out: PathBuf,
    _proc: Proc,
}

impl Smtp {
    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=Picket test CA"];
    args.extend(ec);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &args);
    let mut args = vec!["req", "-subj", "/CN=127.0.0.1"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

fn start_smtp(dir: &Path) -> Smtp {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "Python's aiosmtpd is missing (scripts/test installs it)"
    );
    make_certificates(dir);
    let script = dir.join("smtp_server.py");
    std::fs::write(&script, SMTP_SERVER).unwrap();
    let port = free_port();
    let out = dir.join("mail.jsonl");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(port.to_string())
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .arg(&out);
    let proc = Proc::spawn("aiosmtpd", cmd, dir.join("smtp.log"));
    eventually("the SMTP server is ready", Duration::from_secs(30), || {
        proc.log_text().contains("ready").then_some(())
    });
    Smtp {
        port,
        ca: dir.join("ca.pem"),
        out,
        _proc: proc,
    }
}

/// Run a handler binary directly with `event` on stdin: (exit code, stdout + stderr).
fn run_handler(bin: &str, args: &[&str], event: &Value) -> (i32, String) {
    let mut child = Command::new(binary(bin))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A handler refusing its flags exits before reading: a broken pipe is its answer.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn notifications_reach_slack_pagerduty_webhook_and_email() {
    let c = start_cluster();
    let receiver = Receiver::start();
    let smtp_dir = c.dir.path().join("smtp");
    std::fs::create_dir_all(&smtp_dir).unwrap();
    let smtp = start_smtp(&smtp_dir);
    let incidents = ["is_incident", "not_silenced"];

    put(
        &c,
        "handlers/slack",
        handler(
            "slack",
            "picket-handler-slack",
            &["--username", "picket"],
            &incidents,
            // In a shell command `#ops` would start a comment: the environment carries it.
            &[
                format!("SLACK_WEBHOOK_URL={}", receiver.url("/slack")),
                "SLACK_CHANNEL=#ops".to_string(),
            ],
        ),
    );
    let pd_url = receiver.url("/pagerduty");
    put(
        &c,
        "handlers/pagerduty",
        handler(
            "pagerduty",
            "picket-handler-pagerduty",
            &["--url", pd_url.as_str()],
            &incidents,
            &["PAGERDUTY_TOKEN=r0ut1ng-key".to_string()],
        ),
    );
    let hook_url = receiver.url("/hook");
    put(
        &c,
        "handlers/webhook",
        handler(
            "webhook",
            "picket-handler-webhook",
            &["--url", hook_url.as_str(), "-H", "X-Team:ops"],
            &incidents,
            &[
                r#"WEBHOOK_BODY_TEMPLATE={"host": "{{ .Entity.Name }}", "check": "{{ .check.metadata.name }}", "status": {{ .Check.Status }}}"#
                    .to_string(),
            ],
        ),
    );
    let smtp_port = smtp.port.to_string();
    let ca = smtp.ca.display().to_string();
    put(
        &c,
        "handlers/email",
        handler(
            "email",
            "picket-handler-email",
            &[
                "--smtp-host",
                "127.0.0.1",
                "--smtp-port",
                smtp_port.as_str(),
                "--ca-file",
                ca.as_str(),
                "--from",
                "picket@example.com",
                "--to",
                "ops@example.com,oncall@example.com",
            ],
            &incidents,
            &[
                "SMTP_USERNAME=picket".to_string(),
                "SMTP_PASSWORD=s3cret".to_string(),
            ],
        ),
    );
    put(
        &c,
        "handlers/notify",
        json!({"metadata": meta("notify"), "type": "set",
               "handlers": ["slack", "pagerduty", "webhook", "email"]}),
    );

    // A failure, then its resolution: each destination hears of both, in order.
    post_result(&c, "web-1", "http", 2, &["notify"]);
    wait_for(&c, "the failure delivered everywhere", || {
        (receiver.requests("/slack").len() == 1
            && receiver.requests("/pagerduty").len() == 1
            && receiver.requests("/hook").len() == 1
            && smtp.messages().len() == 1)
            .then_some(())
    });
    post_result(&c, "web-1", "http", 0, &["notify"]);
    wait_for(&c, "the resolution delivered everywhere", || {
        (receiver.requests("/slack").len() == 2
            && receiver.requests("/pagerduty").len() == 2
            && receiver.requests("/hook").len() == 2
            && smtp.messages().len() == 2)
            .then_some(())
    });

    let slack = receiver.requests("/slack");
    assert!(
        slack
            .iter()
            .all(|r| r.method == "POST" && r.headers["content-type"] == "application/json")
    );
    let (fail, ok) = (slack[0].json(), slack[1].json());
    assert_eq!(fail["channel"], "#ops");
    assert_eq!(fail["username"], "picket");
    assert_eq!(fail["attachments"][0]["color"], "danger");
    assert_eq!(fail["attachments"][0]["text"], "http on web-1: status 2");
    assert_eq!(fail["attachments"][0]["fields"][1]["value"], "web-1");
    assert_eq!(ok["attachments"][0]["color"], "good");
    assert_eq!(ok["attachments"][0]["fields"][0]["value"], "Resolved");

    let pd: Vec<Value> = receiver
        .requests("/pagerduty")
        .iter()
        .map(Request::json)
        .collect();
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["routing_key"], "r0ut1ng-key");
    assert_eq!(pd[0]["dedup_key"], "web-1-http");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert_eq!(pd[0]["payload"]["source"], "web-1");
    assert_eq!(
        pd[0]["payload"]["summary"],
        "web-1/http : http on web-1: status 2"
    );
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[1]["dedup_key"], "web-1-http");

    let hooks = receiver.requests("/hook");
    assert_eq!(hooks[0].headers["x-team"], "ops");
    assert_eq!(
        hooks[0].json(),
        json!({"host": "web-1", "check": "http", "status": 2})
    );
    assert_eq!(
        hooks[1].json(),
        json!({"host": "web-1", "check": "http", "status": 0})
    );

    let mail = smtp.messages();
    for m in &mail {
        assert_eq!(m["tls"], true, "delivered over STARTTLS: {m}");
        assert_eq!(m["login"], "picket", "{m}");
        assert_eq!(m["from"], "picket@example.com");
        assert_eq!(m["to"], json!(["ops@example.com", "oncall@example.com"]));
        assert_eq!(m["content_type"], "text/plain");
    }
    assert_eq!(mail[0]["subject"], "Picket Alert - web-1/http: failing");
    assert_eq!(mail[1]["subject"], "Picket Alert - web-1/http: passing");
    assert!(
        mail[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("http on web-1: status 2\n"),
        "{}",
        mail[0]["body"]
    );

    // Silencing: an entity silenced with expire_on_resolve gets no trigger; its resolution
    // clears the entry and is notified; the next failure is notified again.
    put(
        &c,
        "silenced/entity:web-2:*",
        json!({"metadata": meta("entity:web-2:*"), "subscription": "entity:web-2",
               "expire_on_resolve": true}),
    );
    // A check without handlers shows when the entry is in force.
    eventually("the silence in force", Duration::from_secs(20), || {
        post_result(&c, "web-2", "probe", 2, &[]);
        std::thread::sleep(Duration::from_millis(200));
        c.api
            .get_json(&format!("{NS}/events/web-2/probe"))
            .filter(|e| e["check"]["is_silenced"] == true)
    });
    let handled = metric(&c, "picket_pipeline_events_handled_total");
    post_result(&c, "web-2", "http", 2, &["pagerduty"]);
    eventually(
        "the silenced failure went through the pipeline",
        Duration::from_secs(20),
        || (metric(&c, "picket_pipeline_events_handled_total") > handled).then_some(()),
    );
    post_result(&c, "web-2", "http", 0, &["pagerduty"]);
    eventually(
        "the entry expired on resolution",
        Duration::from_secs(20),
        || {
            c.api
                .get(&format!("{NS}/silenced/entity:web-2:*"))
                .filter(|r| r.status == 404)
        },
    );
    post_result(&c, "web-2", "http", 2, &["pagerduty"]);
    let web2 = wait_for(&c, "web-2's resolve and trigger", || {
        let pd: Vec<Value> = receiver
            .requests("/pagerduty")
            .iter()
            .map(Request::json)
            .filter(|r| r["dedup_key"] == "web-2-http")
            .collect();
        (pd.len() >= 2).then_some(pd)
    });
    let actions: Vec<&str> = web2
        .iter()
        .map(|r| r["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["resolve", "trigger"],
        "the silenced failure triggered nothing"
    );
    assert_eq!(metric(&c, "picket_pipeline_handler_errors_total"), 0);

    // Failures are reported, with exit status 1 and one line saying why.
    let event = json!({
        "entity": {"metadata": meta("web-3")},
        "check": {"metadata": meta("http"), "status": 2, "output": "down", "state": "failing",
                  "occurrences": 1, "executed": 1_764_000_000},
    });
    let smtp_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            smtp_port.as_str(),
            "--from",
            "picket@example.com",
            "--to",
            "ops@example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args = smtp_args(&["--ca-file", ca.as_str(), "-u", "picket", "-p", "wrong"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = run_handler("picket-handler-email", &args, &event);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("AUTH PLAIN refused: 535"), "{out}");
    assert!(!out.contains("wrong"), "the password is not echoed: {out}");
    // Without the private CA the server's certificate is not trusted.
    let args = smtp_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = run_handler("picket-handler-email", &args, &event);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TLS: handshake with 127.0.0.1"), "{out}");
    assert_eq!(smtp.messages().len(), 2, "nothing more was delivered");
    let broken = receiver.url("/broken");
    let (code, out) = run_handler("picket-handler-slack", &["-w", broken.as_str()], &event);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("answered 500: receiver says no"), "{out}");
    let (code, out) = run_handler(
        "picket-handler-pagerduty",
        &[
            "--url",
            pd_url.as_str(),
            "-t",
            "key",
            "-s",
            "{{ .Check.Nope }}",
        ],
        &event,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unmatched token"), "{out}");
    let (code, out) = run_handler(
        "picket-handler-webhook",
        &["--url", hook_url.as_str()],
        &json!([1]),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a JSON object"), "{out}");
    let (code, _) = run_handler(
        "picket-handler-influxdb",
        &["--addr", hook_url.as_str()],
        &event,
    );
    assert_eq!(code, 2, "neither --db-name nor --bucket is a usage error");
    // The v2 write API: bucket, org and token.
    let (code, out) = run_handler(
        "picket-handler-influxdb",
        &[
            "--addr",
            receiver.url("").as_str(),
            "-b",
            "metrics",
            "-o",
            "my org",
            "-t",
            "T0KEN",
            "-c",
        ],
        &event,
    );
    assert_eq!(code, 0, "{out}");
    let v2 = receiver.requests("/api/v2/write?org=my%20org&bucket=metrics&precision=s");
    assert_eq!(v2.len(), 1, "{:?}", receiver.seen.lock().unwrap());
    assert_eq!(v2[0].headers["authorization"], "Token T0KEN");
    assert!(
        v2[0]
            .body
            .starts_with("http,sensu_entity_name=web-3 value=2i "),
        "{}",
        v2[0].body
    );
}

// === Acceptance step 4 with a real check_http ===

/// `/health` answers 200 or 500 as the test decides.
fn health_server(healthy: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = read_request(&mut stream);
            let (code, text) = if healthy.load(Ordering::SeqCst) {
                ("200 OK", "ok")
            } else {
                ("500 Internal Server Error", "down")
            };
            let _ = write!(
                stream,
                "HTTP/1.0 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    port
}

/// Every payload a `cat > $(mktemp)` handler wrote, by `check.executed`.
fn payloads(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_slice(&b).expect("handler payload is JSON"))
        .collect();
    out.sort_by_key(|v| v["check"]["executed"].as_i64().unwrap_or_default());
    out
}

#[test]
fn check_http_failure_and_resolution_pass_the_occurrence_filter_once_each() {
    assert!(
        Path::new(PLUGINS).join("check_http").exists(),
        "{PLUGINS}/check_http is missing: install monitoring-plugins-basic (scripts/test does)"
    );
    let c = start_cluster();
    let _web = start_agent(&c, "web-1", "webapp");
    let healthy = Arc::new(AtomicBool::new(true));
    let port = health_server(healthy.clone());
    let out = c.dir.path().join("handled");
    std::fs::create_dir_all(&out).unwrap();

    put(
        &c,
        "filters/hourly",
        json!({
            "metadata": meta("hourly"),
            "action": "allow",
            "expressions": ["event.check.occurrences == 1 || event.check.occurrences % (1800 / event.check.interval) == 0"],
        }),
    );
    put(
        &c,
        "handlers/record",
        json!({
            "metadata": meta("record"),
            "type": "pipe",
            "command": format!("cat > \"$(mktemp -p {})\"", out.display()),
            "filters": ["is_incident", "hourly"],
        }),
    );
    put(
        &c,
        "checks/app-health",
        json!({
            "metadata": meta("app-health"),
            "command": format!("{PLUGINS}/check_http -H 127.0.0.1 -p {port} -u /health"),
            "subscriptions": ["webapp"],
            "interval": 1,
            "publish": true,
            "timeout": 10,
            "handlers": ["record"],
        }),
    );
    let event = |min_occurrences: i64, status: u64| {
        c.api
            .get_json(&format!("{NS}/events/web-1/app-health"))
            .filter(|e| {
                e["check"]["status"].as_u64() == Some(status)
                    && e["check"]["occurrences"].as_i64() >= Some(min_occurrences)
            })
    };
    eventually("two passing results", Duration::from_secs(30), || {
        event(2, 0)
    });
    assert!(
        payloads(&out).is_empty(),
        "passing results are not incidents"
    );

    healthy.store(false, Ordering::SeqCst);
    eventually("four failures in a row", Duration::from_secs(30), || {
        event(4, 2)
    });
    healthy.store(true, Ordering::SeqCst);
    eventually("two passing results again", Duration::from_secs(30), || {
        event(2, 0)
    });

    let got = eventually(
        "the failure and the resolution",
        Duration::from_secs(20),
        || {
            let p = payloads(&out);
            (p.len() >= 2).then_some(p)
        },
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0]["check"]["status"], 2);
    assert_eq!(got[0]["check"]["occurrences"], 1);
    assert!(
        got[0]["check"]["output"].as_str().unwrap().contains("500"),
        "{}",
        got[0]
    );
    assert_eq!(got[1]["check"]["status"], 0);
    assert_eq!(got[1]["entity"]["metadata"]["name"], "web-1");
    let history: Vec<u64> = got[1]["check"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_u64().unwrap())
        .collect();
    assert!(
        history.iter().filter(|s| **s == 2).count() >= 4,
        "the resolution follows the failures: {history:?}"
    );
    assert!(metric(&c, "picket_pipeline_workflows_filtered_total") >= 5);
}

#[test]
fn filters_that_throw_or_spin_are_skipped_and_counted() {
    let c = start_cluster();
    let receiver = Receiver::start();
    let hook_url = receiver.url("/hook");
    for (name, expression) in [
        // A TypeError at run time: `nope` is undefined.
        ("throws", "event.check.nope.deeper == 1"),
        // Stopped by the evaluation time limit; the backend goes on.
        ("spins", "(function () { while (true) {} })()"),
    ] {
        put(
            &c,
            &format!("filters/{name}"),
            json!({"metadata": meta(name), "action": "allow", "expressions": [expression]}),
        );
    }
    put(
        &c,
        "handlers/webhook",
        handler(
            "webhook",
            "picket-handler-webhook",
            &["--url", hook_url.as_str()],
            &["throws", "spins"],
            &[],
        ),
    );
    // Until pipelined's cache has the new filters they are "not found" and skipped: post
    // until the errors show, each event delivered before the next.
    let errors = || metric(&c, "picket_pipeline_filter_errors_total");
    let start = errors();
    let mut posted = 0;
    let delivered = |n: usize| {
        eventually("the event delivered", Duration::from_secs(20), || {
            (receiver.requests("/hook").len() >= n).then_some(())
        })
    };
    wait_for(&c, "the filters in pipelined's cache", || {
        post_result(&c, "app-9", "queue", 2, &["webhook"]);
        posted += 1;
        delivered(posted);
        (errors() > start).then_some(())
    });
    // /metrics copies the pipeline's counters every second: read it once it holds still
    // across a copy, so the warm-up events are all in it.
    let before = loop {
        let seen = errors();
        std::thread::sleep(Duration::from_millis(1300));
        if errors() == seen {
            break seen;
        }
    };
    // One more event: both filters fail on it, both are skipped, the handler still runs.
    post_result(&c, "app-9", "queue", 2, &["webhook"]);
    delivered(posted + 1);
    let counted = eventually("the errors counted", Duration::from_secs(10), || {
        let n = errors() - before;
        (n >= 2).then_some(n)
    });
    assert_eq!(counted, 2);
    let got = receiver.requests("/hook").pop().unwrap();
    // Without a template the handler sends the event JSON as it received it.
    let event = got.json();
    assert_eq!(event["entity"]["metadata"]["name"], "app-9");
    assert_eq!(event["check"]["status"], 2);
}
