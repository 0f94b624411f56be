//! picketctl against the real `picket-backend` binary (build it first:
//! `cargo build --workspace --bins`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port};
use proto_spec::wrapped::{Resource, ResourceKind};
use tls::test_pki::TestCa;

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "P@ssw0rd!-picketctl";
const CORPUS: &str = "../../shared/fixtures/sensu-docs-6.14/wrapped";

struct Backend {
    url: String,
    agent_port: u16,
    api: Api,
    _proc: Proc,
    dir: tempfile::TempDir,
}

fn start_backend() -> Backend {
    start_backend_with(|_| Vec::new())
}

/// A backend with more flags, made from its directory (for certificate files). Over TLS the
/// caller waits for it: `api` speaks plain http.
fn start_backend_with(extra: impl FnOnce(&Path) -> Vec<std::ffi::OsString>) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let extra = extra(dir.path());
    let tls = extra.iter().any(|a| a == "--cert-file");
    let (port, agent_port) = (free_port(), free_port());
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--config-file", "/dev/null", "--state-dir"])
        .arg(dir.path().join("state"))
        .args(["--api-listen-address", &format!("127.0.0.1:{port}")])
        .args([
            "--agent-host",
            "127.0.0.1",
            "--agent-port",
            &agent_port.to_string(),
        ])
        .env("PICKET_BACKEND_CLUSTER_ADMIN_USERNAME", ADMIN)
        .env("PICKET_BACKEND_CLUSTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .args(extra);
    let proc = Proc::spawn("picket-backend", cmd, dir.path().join("backend.log"));
    let url = format!("http://127.0.0.1:{port}");
    let api = Api::new(url.clone(), ADMIN, ADMIN_PASSWORD);
    if !tls {
        eventually("the backend's API", Duration::from_secs(30), || {
            api.get("/api/core/v2/namespaces")
                .filter(|r| r.status == 200)
        });
    }
    Backend {
        url,
        agent_port,
        api,
        _proc: proc,
        dir,
    }
}

/// picketctl with its own configuration directory (through XDG_CONFIG_HOME, as a user's).
struct Ctl {
    xdg: PathBuf,
}

impl Ctl {
    fn new(root: &Path, name: &str) -> Ctl {
        let xdg = root.join(name);
        std::fs::create_dir_all(&xdg).unwrap();
        Ctl { xdg }
    }

    fn config_dir(&self) -> PathBuf {
        self.xdg.join("picket").join("picketctl")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_picketctl"));
        c.env("XDG_CONFIG_HOME", &self.xdg)
            .env_remove("PICKETCTL_API_URL")
            .env_remove("PICKETCTL_API_KEY")
            .env_remove("PICKETCTL_CONFIG_DIR")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run picketctl")
    }

    /// Run; it must succeed; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "picketctl {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn login(&self, url: &str, user: &str, password: &str) {
        self.ok(&[
            "configure",
            "-n",
            "--url",
            url,
            "--username",
            user,
            "--password",
            password,
        ]);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HANDLER_YAML: &str = "type: Handler
api_version: core/v2
metadata:
  name: slack
spec:
  type: pipe
  command: picket-handler-slack --channel '#ops'
  timeout: 10
  filters:
  - is_incident
";

const CHECK_JSON: &str = r#"{"type": "CheckConfig", "api_version": "core/v2",
 "metadata": {"name": "http"},
 "spec": {"command": "check_http -H 127.0.0.1", "interval": 30, "subscriptions": ["web"],
          "handlers": ["slack"], "publish": true}}
{"type": "CheckConfig", "metadata": {"name": "disk", "labels": {"team": "ops"}},
 "spec": {"command": "check_disk -w 20% -c 10%", "interval": 60, "subscriptions": ["linux"]}}
"#;

#[test]
fn configure_saves_private_files_and_tokens_work() {
    let b = start_backend();
    let ctl = Ctl::new(b.dir.path(), "home");
    ctl.login(&b.url, ADMIN, ADMIN_PASSWORD);
    for f in ["cluster", "profile"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ctl.config_dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f} is private");
    }
    let view = ctl.ok(&["config", "view", "--format", "json"]);
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["api-url"], b.url.as_str());
    assert_eq!(view["namespace"], "default");
    assert_eq!(view["authentication"], "token");

    // An expired access token is refreshed with the refresh token, and the new one saved.
    let cluster_path = ctl.config_dir().join("cluster");
    let mut cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cluster_path).unwrap()).unwrap();
    let old_access = cluster["access_token"].as_str().unwrap().to_string();
    cluster["expires_at"] = 1.into();
    std::fs::write(&cluster_path, cluster.to_string()).unwrap();
    ctl.ok(&["namespace", "list"]);
    let cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cluster_path).unwrap()).unwrap();
    assert_ne!(cluster["access_token"].as_str().unwrap(), old_access);
    assert!(cluster["expires_at"].as_i64().unwrap() > 1);

    // A token the backend cannot read is not refreshed blindly: the refresh needs the
    // access token's subject, so the user is told to log in again.
    let mut cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cluster_path).unwrap()).unwrap();
    let saved = cluster.clone();
    cluster["access_token"] = "not-a-token".into();
    std::fs::write(&cluster_path, cluster.to_string()).unwrap();
    let out = ctl.run(&["namespace", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("picketctl configure"), "{err}");
    std::fs::write(&cluster_path, saved.to_string()).unwrap();

    ctl.ok(&["config", "set-timeout", "7"]);
    let view: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["config", "view", "--format", "json"])).unwrap();
    assert_eq!(view["timeout"], 7);
    assert!(!ctl.run(&["config", "set-timeout", "0"]).status.success());
    ctl.ok(&["config", "set-format", "yaml"]);
    ctl.ok(&["config", "set-namespace", "ops"]);
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctl.config_dir().join("profile")).unwrap()).unwrap();
    assert_eq!(profile["format"], "yaml");
    assert_eq!(profile["namespace"], "ops");
    let view = ctl.ok(&["config", "view"]);
    assert!(view.contains("namespace: ops"), "{view}");
    let bad = ctl.run(&["config", "set-namespace", "no spaces"]);
    assert!(!bad.status.success());

    // Wrong password: one line, non-zero.
    let bad = ctl.run(&[
        "configure",
        "-n",
        "--url",
        &b.url,
        "--username",
        ADMIN,
        "--password",
        "wrong-one",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");

    ctl.ok(&["logout"]);
    let out = ctl.run(&["namespace", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configure"));

    // An API key instead of tokens.
    ctl.login(&b.url, ADMIN, ADMIN_PASSWORD);
    let granted = ctl.ok(&["api-key", "grant", ADMIN]);
    let key = granted.trim().rsplit('/').next().unwrap().to_string();
    ctl.ok(&["logout"]);
    let list = ctl.ok(&[
        "--api-key",
        &key,
        "--api-url",
        &b.url,
        "namespace",
        "list",
        "--format",
        "json",
    ]);
    assert!(list.contains("\"default\""), "{list}");
}

#[test]
fn create_list_info_edit_execute_resolve_and_snapshots() {
    let b = start_backend();
    let ctl = Ctl::new(b.dir.path(), "home");
    ctl.login(&b.url, ADMIN, ADMIN_PASSWORD);
    let files = b.dir.path().join("defs");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    write(&files, "handler.yaml", HANDLER_YAML);
    write(&files.join("sub"), "checks.json", CHECK_JSON);

    // Without -r the subdirectory is not read.
    ctl.ok(&["create", "-f", files.to_str().unwrap()]);
    assert_eq!(ctl.ok(&["check", "list", "--format", "json"]).trim(), "[]");
    ctl.ok(&["create", "-r", "-f", files.to_str().unwrap()]);

    let table = ctl.ok(&["check", "list"]);
    let expected = "\u{20}\
 Name  Command      Interval  Cron  Timeout  TTL  Subscript…  Handlers  Publish?
 ────  ───────────  ────────  ────  ───────  ───  ──────────  ────────  ────────
 disk  check_disk…  60                            linux                 false
 http  check_http…  30                            web         slack     true
";
    assert_snapshot("check list", &table, expected);

    let yaml = ctl.ok(&["handler", "info", "slack", "--format", "yaml"]);
    let expected = "\
type: Handler
api_version: core/v2
metadata:
  name: slack
  namespace: default
  created_by: admin
spec:
  command: picket-handler-slack --channel '#ops'
  env_vars: null
  filters:
  - is_incident
  handlers: null
  runtime_assets: null
  secrets: null
  timeout: 10
  type: pipe
";
    assert_snapshot("handler info --format yaml", &yaml, expected);

    // Pagination: every page is followed.
    let paged = ctl.ok(&["check", "list", "--chunk-size", "1", "--format", "json"]);
    let paged: Vec<serde_json::Value> = serde_json::from_str(&paged).unwrap();
    assert_eq!(paged.len(), 2);

    // Errors: the API's message on one line, non-zero.
    let out = ctl.run(&["check", "info", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = ctl.run(&["check", "create", "http", "-c", "true", "-i", "5"]);
    assert!(
        !out.status.success(),
        "create of an existing name is refused"
    );

    // A bad document anywhere: nothing is created.
    let bad = write(
        b.dir.path(),
        "bad.yaml",
        "type: Namespace\nspec:\n  name: fine\n---\ntype: CheckConfig\nmetadata:\n  name: x\nspec:\n  command: \"true\"\n",
    );
    let out = ctl.run(&["create", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("document 2"));
    assert!(!ctl.ok(&["namespace", "list"]).contains("fine"));

    // stdin
    let mut child = ctl
        .cmd()
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"type: Namespace\nspec:\n  name: from-stdin\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(ctl.ok(&["namespace", "list"]).contains("from-stdin"));

    // edit through $EDITOR (a sed script standing in for the user).
    let out = ctl
        .cmd()
        .args(["edit", "check", "disk"])
        .env("EDITOR", "sed -i s/interval:\\ 60/interval:\\ 90/")
        .env_remove("VISUAL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let disk = b
        .api
        .get_json("/api/core/v2/namespaces/default/checks/disk")
        .unwrap();
    assert_eq!(disk["interval"], 90);
    assert_eq!(disk["metadata"]["labels"]["team"], "ops");

    // check execute reaches the API (no agent: it is accepted, nobody runs it).
    assert!(ctl.ok(&["check", "execute", "disk"]).contains("Issued"));

    // event resolve
    let event = serde_json::json!({
        "entity": {"metadata": {"name": "web1", "namespace": "default"}, "entity_class": "proxy"},
        "check": {"metadata": {"name": "http", "namespace": "default"}, "status": 2,
                  "output": "CRITICAL", "interval": 30},
    });
    let r = b
        .api
        .put(
            "/api/core/v2/namespaces/default/events/web1/http",
            &event.to_string(),
        )
        .unwrap();
    assert!(r.status < 300, "{}", r.body);
    eventually("the event", Duration::from_secs(10), || {
        b.api
            .get_json("/api/core/v2/namespaces/default/events/web1/http")
    });
    assert!(ctl.ok(&["event", "list"]).contains("CRITICAL"));
    ctl.ok(&["event", "resolve", "web1", "http"]);
    let ev = eventually("the resolution", Duration::from_secs(10), || {
        b.api
            .get_json("/api/core/v2/namespaces/default/events/web1/http")
            .filter(|e| e["check"]["status"] == 0)
    });
    assert_eq!(ev["check"]["output"], "Resolved manually by picketctl");
    assert!(ctl.ok(&["entity", "list"]).contains("web1"));

    // delete -f removes what the files name.
    ctl.ok(&["delete", "-r", "-f", files.to_str().unwrap()]);
    assert_eq!(ctl.ok(&["check", "list", "--format", "json"]).trim(), "[]");
    assert_eq!(
        ctl.ok(&["handler", "list", "--format", "json"]).trim(),
        "[]"
    );

    // Broken pipe: a closed reader is not an error.
    for i in 0..200 {
        ctl.ok(&["namespace", "create", &format!("ns-{i:03}")]);
    }
    let mut child = ctl
        .cmd()
        .args(["namespace", "list", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_snapshot(what: &str, got: &str, expected: &str) {
    assert_eq!(got, expected, "{what}:\n{got}");
}

#[test]
fn acceptance_story_then_dump_all_reproduces_every_resource() {
    let a = start_backend();
    let ctl = Ctl::new(a.dir.path(), "admin");
    ctl.login(&a.url, ADMIN, ADMIN_PASSWORD);
    ctl.ok(&["namespace", "create", "shop"]);
    ctl.ok(&[
        "role",
        "create",
        "shop-admin",
        "--namespace",
        "shop",
        "--verb",
        "get,list,create,update,delete",
        "--resource",
        "*",
    ]);
    ctl.ok(&["user", "create", "alice", "--password", "alice-secret-1"]);
    ctl.ok(&[
        "role-binding",
        "create",
        "alice-shop",
        "--namespace",
        "shop",
        "--role",
        "shop-admin",
        "--user",
        "alice",
    ]);
    ctl.ok(&[
        "cluster-role",
        "create",
        "reader",
        "--verb",
        "get,list",
        "--resource",
        "checks",
    ]);
    ctl.ok(&[
        "cluster-role-binding",
        "create",
        "readers",
        "--cluster-role",
        "reader",
        "--group",
        "ro",
    ]);
    let files = a.dir.path().join("defs");
    std::fs::create_dir_all(&files).unwrap();
    write(&files, "handler.yaml", HANDLER_YAML);
    write(&files, "checks.json", CHECK_JSON);
    ctl.ok(&["create", "-f", files.to_str().unwrap()]);
    ctl.ok(&["silenced", "create", "-s", "linux", "-r", "maintenance"]);

    // User administration.
    ctl.ok(&["user", "add-group", "alice", "ops"]);
    let info = ctl.ok(&["user", "info", "alice", "--format", "json"]);
    assert!(info.contains("\"ops\""), "{info}");
    ctl.ok(&["user", "remove-group", "alice", "ops"]);
    ctl.ok(&["user", "add-group", "alice", "x"]);
    ctl.ok(&["user", "remove-groups", "alice"]);
    let info: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["user", "info", "alice", "--format", "json"])).unwrap();
    assert!(
        info["groups"].as_array().is_none_or(|g| g.is_empty()),
        "{info}"
    );
    ctl.ok(&[
        "user",
        "reset-password",
        "alice",
        "--new-password",
        "alice-secret-2",
    ]);
    let bad = ctl.run(&[
        "user",
        "test-creds",
        "alice",
        "--password",
        "alice-secret-1",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    ctl.ok(&[
        "user",
        "test-creds",
        "alice",
        "--password",
        "alice-secret-2",
    ]);
    ctl.ok(&[
        "user",
        "change-password",
        "alice",
        "--current-password",
        "alice-secret-2",
        "--new-password",
        "alice-secret-1",
    ]);
    ctl.ok(&[
        "user",
        "test-creds",
        "alice",
        "--password",
        "alice-secret-1",
    ]);

    // Reconfigured as alice: her namespace only.
    let alice = Ctl::new(a.dir.path(), "alice");
    alice.login(&a.url, "alice", "alice-secret-1");
    alice.ok(&["config", "set-namespace", "shop"]);
    alice.ok(&["create", "-f", files.to_str().unwrap()]);
    assert!(alice.ok(&["check", "list"]).contains("check_http"));
    let out = alice.run(&["check", "list", "--namespace", "default"]);
    assert!(!out.status.success(), "alice cannot read default");

    // A real agent in her namespace; a check that fails, run on request, resolved by hand.
    let mut cmd = Command::new(binary("picket-agent"));
    let cache = a.dir.path().join("agent-cache");
    cmd.args([
        "start",
        "--config-file",
        "",
        "--name",
        "web1",
        "--namespace",
        "shop",
    ])
    .args(["--backend-url", &format!("ws://127.0.0.1:{}", a.agent_port)])
    .args(["--subscriptions", "web", "--keepalive-interval", "1"])
    .args(["--statsd-disable", "--disable-api", "--disable-sockets"])
    .arg("--cache-dir")
    .arg(&cache);
    let mut agent = Proc::spawn("picket-agent", cmd, a.dir.path().join("agent.log"));
    eventually(
        "web1 in alice's entity list",
        Duration::from_secs(30),
        || alice.ok(&["entity", "list"]).contains("web1").then_some(()),
    );
    let health = write(
        &files,
        "health.yaml",
        "type: CheckConfig\nmetadata:\n  name: health\nspec:\n  command: echo broken; exit 2\n  interval: 3600\n  publish: false\n  subscriptions: [web]\n",
    );
    alice.ok(&["create", "-f", health.to_str().unwrap()]);
    alice.ok(&["check", "execute", "health"]);
    eventually("the failing event", Duration::from_secs(30), || {
        let list = alice.ok(&["event", "list", "--format", "json"]);
        let events: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
        events
            .iter()
            .any(|e| e["check"]["metadata"]["name"] == "health" && e["check"]["status"] == 2)
            .then_some(())
    });
    assert!(alice.ok(&["event", "list"]).contains("broken"));
    alice.ok(&["event", "resolve", "web1", "health"]);
    let resolved = alice.ok(&["event", "info", "web1", "health", "--format", "json"]);
    let resolved: serde_json::Value = serde_json::from_str(&resolved).unwrap();
    assert_eq!(resolved["check"]["status"], 0);
    std::fs::remove_file(&health).unwrap();

    // The agent stops, so its keepalives do not change what is compared below.
    agent.terminate(Duration::from_secs(15));

    // dump all, then create -f into a fresh backend.
    let dump = a.dir.path().join("dump.yaml");
    ctl.ok(&[
        "dump",
        "all",
        "--all-namespaces",
        "-f",
        dump.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("type: RoleBinding") && text.contains("type: Silenced"));
    let b = start_backend();
    let ctl_b = Ctl::new(b.dir.path(), "admin");
    ctl_b.login(&b.url, ADMIN, ADMIN_PASSWORD);
    // A dump carries no password (the API never shows one), so a user is created first.
    ctl_b.ok(&["user", "create", "alice", "--password", "alice-secret-1"]);
    ctl_b.ok(&["create", "-f", dump.to_str().unwrap()]);

    let paths = [
        "namespaces",
        "clusterroles",
        "clusterrolebindings",
        "users",
        "roles",
        "rolebindings",
        "hooks",
        "filters",
        "mutators",
        "handlers",
        "pipelines",
        "checks",
        "entities",
        "silenced",
    ];
    for p in paths {
        let path = format!("/api/core/v2/{p}");
        let (va, vb) = (
            a.api.get_json(&path).unwrap(),
            b.api.get_json(&path).unwrap(),
        );
        assert_eq!(
            normalise(va),
            normalise(vb),
            "{p} differ after dump and create -f"
        );
    }
    // Events go through eventd again (history and timestamps are its own): the same events
    // with the same status and output.
    let summary = |api: &Api| {
        let mut v: Vec<String> = api
            .get_json("/api/core/v2/events")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}/{}/{} {} {}",
                    e["metadata"]["namespace"],
                    e["entity"]["metadata"]["name"],
                    e["check"]["metadata"]["name"],
                    e["check"]["status"],
                    e["check"]["output"]
                )
            })
            .collect();
        v.sort();
        v
    };
    let events = summary(&a.api);
    assert!(events.iter().any(|e| e.contains("health")), "{events:?}");
    assert_eq!(events, summary(&b.api));
}

/// What the backend derives itself is left out of the comparison.
fn normalise(v: serde_json::Value) -> serde_json::Value {
    let mut v = v;
    if let Some(items) = v.as_array_mut() {
        for i in items {
            if let Some(m) = i.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                m.remove("created_by");
            }
            if let Some(o) = i.as_object_mut() {
                o.remove("last_seen");
            }
        }
    }
    v
}

/// Files of the corpus that NOTES.md lists as inconsistent, by name stem.
const BROKEN: &[&str] = &[
    "filters-keepalive_timeouts",
    "rbac-default-admin",
    "_index-incident_alerts",
    "checks-interval_test",
    "filters-us-west-events",
    "entities-webserver01",
];

/// The corpus files holding an Asset (13 of the documentation's examples): every one must be
/// created and read back equal.
const ASSET_FILES: usize = 13;

#[test]
fn create_f_accepts_the_documentation_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    assert!(corpus.is_dir(), "{} is missing", corpus.display());
    let b = start_backend();
    let ctl = Ctl::new(b.dir.path(), "admin");
    ctl.login(&b.url, ADMIN, ADMIN_PASSWORD);
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in std::fs::read_dir(&corpus).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                files.push(f.unwrap().path());
            }
        }
    }
    files.sort();
    let mut created = 0;
    let mut assets = 0;
    let mut skipped = Vec::new();
    let mut invalid = Vec::new();
    let mut no_password = Vec::new();
    for f in &files {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        if BROKEN.contains(&stem.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let docs =
            proto_spec::wrapped::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // API keys are minted by the API (`api-key grant`), never written by name.
        if docs.iter().any(|d| d.kind() == ResourceKind::APIKey) {
            skipped.push(stem);
            continue;
        }
        // Replacing the cluster-admin role or binding would lock this test's admin out.
        if docs.iter().any(|d| {
            matches!(
                d.kind(),
                ResourceKind::ClusterRole | ResourceKind::ClusterRoleBinding
            ) && d.resource.name() == "cluster-admin"
        }) {
            skipped.push(stem);
            continue;
        }
        // Examples Sensu's own validation rejects (proto-spec mirrors it).
        if let Some(e) = docs.iter().find_map(|d| {
            let mut r = d.resource.clone();
            r.set_default_namespace("default");
            r.validate().err()
        }) {
            invalid.push(format!("{stem}: {e}"));
            continue;
        }
        for d in &docs {
            let ns = d.resource.namespace();
            if d.kind().is_namespaced() && !ns.is_empty() {
                let _ = ctl.run(&["namespace", "create", ns]);
            }
        }
        // Users without a password: the API cannot create them (nor can Sensu's).
        if docs.iter().any(|d| {
            matches!(&d.resource, Resource::User(u) if u.password.is_empty() && u.password_hash.is_empty())
        }) {
            no_password.push(stem);
            continue;
        }
        ctl.ok(&["create", "-f", f.to_str().unwrap()]);
        if docs.iter().any(|d| d.kind() == ResourceKind::Asset) {
            assets += 1;
        }
        for d in docs {
            let mut want = d.into_resource();
            want.set_default_namespace("default");
            picketctl::resources::prepare(&mut want);
            let (kind, name, ns) = (
                want.kind(),
                want.name().to_string(),
                want.namespace().to_string(),
            );
            if matches!(kind, ResourceKind::Event | ResourceKind::User) {
                // Events go through eventd (history, state), users lose their passwords.
                continue;
            }
            let cmd = picketctl::resources::Kind::by_kind(kind).unwrap().command;
            let mut args = vec![cmd, "info", name.as_str(), "--format", "yaml"];
            if kind.is_namespaced() {
                args.extend(["--namespace", ns.as_str()]);
            }
            let yaml = ctl.ok(&args);
            let got = proto_spec::wrapped::parse(&yaml)
                .unwrap()
                .remove(0)
                .into_resource();
            assert_eq!(
                strip(got),
                strip(want),
                "{} reads back differently",
                f.display()
            );
        }
        created += 1;
    }
    assert!(created > 250, "only {created} files created");
    assert!(assets >= ASSET_FILES, "only {assets} asset files created");
    eprintln!("users without a password: {no_password:?}");
    eprintln!(
        "created {created} files ({assets} with assets); skipped: {skipped:?}; invalid: {invalid:#?}"
    );
}

/// Fields the backend sets on its own.
fn strip(mut r: Resource) -> serde_json::Value {
    if let Some(m) = r.metadata_mut() {
        m.created_by.clear();
    }
    let mut v = r.to_json_value();
    if r.kind() == ResourceKind::Silenced
        && let Some(o) = v.as_object_mut()
    {
        o.remove("begin");
        o.remove("expire_at");
        o.remove("expire");
        o.remove("creator");
    }
    if r.kind() == ResourceKind::Entity
        && let Some(o) = v.as_object_mut()
    {
        o.remove("last_seen");
        if o.get("subscriptions").is_some_and(|s| s.is_null()) {
            o.insert("subscriptions".into(), serde_json::json!([]));
        }
        // The backend adds the entity's own subscription.
        if let Some(subs) = o.get_mut("subscriptions").and_then(|s| s.as_array_mut()) {
            subs.retain(|s| !s.as_str().unwrap_or_default().starts_with("entity:"));
        }
    }
    v
}

#[test]
fn interactive_configure_through_a_pseudo_terminal() {
    let b = start_backend();
    let xdg = b.dir.path().join("pty-home");
    std::fs::create_dir_all(&xdg).unwrap();
    // Python's pty module plays the user: it waits for each prompt, answers, and checks the
    // password is not echoed.
    let script = r#"
import os, pty, sys, time
exe, url, password = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe, "configure"])
buf = b""
def expect(s):
    global buf
    deadline = time.time() + 20
    while s.encode() not in buf:
        if time.time() > deadline:
            sys.exit("timed out waiting for %r; got %r" % (s, buf))
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            sys.exit("closed before %r; got %r" % (s, buf))
        if not chunk:
            sys.exit("eof before %r" % s)
        buf += chunk
expect("Picket Backend URL"); os.write(fd, (url + "\n").encode())
expect("Username"); os.write(fd, b"admin\n")
expect("Password: "); os.write(fd, (password + "\n").encode())
expect("Namespace"); os.write(fd, b"\n")
expect("output format"); os.write(fd, b"yaml\n")
expect("Logged in")
if password.encode() in buf:
    sys.exit("the password was echoed: %r" % buf)
_, status = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(status))
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            env!("CARGO_BIN_EXE_picketctl"),
            &b.url,
            ADMIN_PASSWORD,
        ])
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(xdg.join("picket/picketctl/profile")).unwrap())
            .unwrap();
    assert_eq!(profile["format"], "yaml");
    assert_eq!(profile["namespace"], "default");
    assert_eq!(profile["username"], "admin");
}

#[test]
fn completions_for_bash_and_zsh() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::new(dir.path(), "home");
    let bash = ctl.ok(&["completion", "bash"]);
    assert!(bash.contains("complete") && bash.contains("role-binding"));
    let zsh = ctl.ok(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef picketctl"));
    let script = dir.path().join("picketctl.bash");
    std::fs::write(&script, &bash).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(check.success(), "the bash script parses");
}

/// The real backend over TLS (`--cert-file/--key-file`, a certificate of a CA this test makes).
#[test]
fn https_with_a_trusted_ca_file() {
    let b = start_backend_with(|d| {
        let ca = TestCa::new("picketctl test CA");
        ca.write(d, "ca");
        let server = ca.server(&["127.0.0.1"]).write(d, "backend");
        vec![
            "--cert-file".into(),
            server.cert_file.into_os_string(),
            "--key-file".into(),
            server.key_file.into_os_string(),
        ]
    });
    let d = b.dir.path();
    let url = b.url.replacen("http://", "https://", 1);
    let ca = d.join("ca.pem");
    let ctl = Ctl::new(d, "home");
    let login = |ctl: &Ctl, extra: &[&str]| {
        let mut args = vec![
            "configure",
            "-n",
            "--url",
            &url,
            "--username",
            ADMIN,
            "--password",
            ADMIN_PASSWORD,
        ];
        args.extend_from_slice(extra);
        ctl.run(&args)
    };
    // The CA file is saved with the cluster and used by later commands.
    eventually("configure over https", Duration::from_secs(30), || {
        login(&ctl, &["--trusted-ca-file", ca.to_str().unwrap()])
            .status
            .success()
            .then_some(())
    });
    ctl.ok(&["namespace", "create", "over-tls"]);
    assert!(ctl.ok(&["namespace", "list"]).contains("over-tls"));

    // Not trusted: the certificate is refused, one line, non-zero.
    let stranger = Ctl::new(d, "stranger");
    let out = login(&stranger, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    // Plain http to the TLS port gets the backend's refusal, not a hang.
    let out = Ctl::new(d, "plain").run(&[
        "configure",
        "-n",
        "--url",
        &b.url,
        "--username",
        ADMIN,
        "--password",
        ADMIN_PASSWORD,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("requires TLS"), "{err}");
}

#[test]
fn asset_create_list_info_update_delete_and_create_f() {
    let b = start_backend();
    let ctl = Ctl::new(b.dir.path(), "admin");
    ctl.login(&b.url, ADMIN, ADMIN_PASSWORD);
    let sha = "a".repeat(128);
    let url = "https://assets.example/check-disk.tar.gz";
    // A filter holding a comma stays one filter.
    let filters = [
        "entity.system.os == 'linux'",
        "['amd64', 'arm64'].indexOf(entity.system.arch) >= 0",
    ];
    assert_eq!(
        ctl.ok(&[
            "asset",
            "create",
            "check-disk",
            "--url",
            url,
            "--sha512",
            &sha,
            "--filter",
            filters[0],
            "-f",
            filters[1],
            "--header",
            "Authorization: Bearer {{ .annotations.token }}",
        ])
        .trim(),
        "Created"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["asset", "info", "check-disk", "--format", "json"]))
            .unwrap();
    assert_eq!(v["url"], url);
    assert_eq!(v["sha512"], sha.as_str());
    assert_eq!(v["filters"], serde_json::json!(filters));
    assert_eq!(
        v["headers"],
        serde_json::json!({"Authorization": "Bearer {{ .annotations.token }}"})
    );
    assert_eq!(v["metadata"]["namespace"], "default");
    let table = ctl.ok(&["asset", "list", "--format", "tabular"]);
    assert!(
        table.contains("check-disk") && table.contains("assets.example"),
        "{table}"
    );

    // A second create of the name, a bad digest, a filter the backend cannot parse and a
    // header without a colon are refused, and the stored asset is untouched.
    let refused = |args: &[&str], code: i32, says: &str| {
        let out = ctl.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    };
    let create = |name: &'static str, digest: &str, extra: &[&str]| {
        let mut a: Vec<String> = ["asset", "create", name, "--url", url, "--sha512", digest]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>, code: i32, says: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, code, says);
    };
    run(create("check-disk", &sha, &[]), 1, "already exists");
    run(create("other", "not-hex", &[]), 1, "sha512");
    run(
        create("other", &sha, &["--filter", "entity.system.os =="]),
        1,
        "filters[0]",
    );
    run(
        create("other", &sha, &["--header", "no colon"]),
        2,
        "Name: value",
    );
    refused(&["asset", "info", "other"], 1, "not found");
    let again: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["asset", "info", "check-disk", "--format", "json"]))
            .unwrap();
    assert_eq!(again, v);

    // update: the editor (here sed) changes the URL; the change is stored.
    let out = ctl
        .cmd()
        .args(["asset", "update", "check-disk"])
        .env("EDITOR", "sed -i s/check-disk.tar.gz/check-disk-2.tar.gz/")
        .env_remove("VISUAL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let updated: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["asset", "info", "check-disk", "--format", "json"]))
            .unwrap();
    assert_eq!(updated["url"], "https://assets.example/check-disk-2.tar.gz");

    // create -f of a multi-build asset, read back through dump.
    let file = write(
        b.dir.path(),
        "asset.yaml",
        &format!(
            "type: Asset
api_version: core/v2
metadata:
  name: multi
spec:
  builds:
  - url: https://assets.example/multi-linux.tar.gz
    sha512: {sha}
    filters:
    - entity.system.os == 'linux'
  - url: https://assets.example/multi-darwin.tar.gz
    sha512: {sha}
    filters:
    - entity.system.os == 'darwin'
"
        ),
    );
    ctl.ok(&["create", "-f", file.to_str().unwrap()]);
    let dump = ctl.ok(&["dump", "asset", "--format", "yaml"]);
    let docs = proto_spec::wrapped::parse(&dump).unwrap();
    let names: Vec<&str> = docs.iter().map(|d| d.resource.name()).collect();
    assert_eq!(names, ["check-disk", "multi"]);
    match &docs[1].resource {
        Resource::Asset(a) => {
            assert_eq!(a.builds().len(), 2);
            assert_eq!(
                a.builds()[1].url,
                "https://assets.example/multi-darwin.tar.gz"
            );
        }
        other => panic!("not an asset: {other:?}"),
    }

    assert_eq!(ctl.ok(&["asset", "delete", "check-disk"]).trim(), "Deleted");
    refused(&["asset", "info", "check-disk"], 1, "not found");
    ctl.ok(&["delete", "-f", file.to_str().unwrap()]);
    assert_eq!(ctl.ok(&["asset", "list", "--format", "json"]).trim(), "[]");
}

#[test]
fn filter_mutator_hook_create_from_flags() {
    let b = start_backend();
    let ctl = Ctl::new(b.dir.path(), "admin");
    ctl.login(&b.url, ADMIN, ADMIN_PASSWORD);
    let info = |kind: &str, name: &str| -> serde_json::Value {
        serde_json::from_str(&ctl.ok(&[kind, "info", name, "--format", "json"])).unwrap()
    };
    let refused = |args: &[&str], code: i32, says: &str| {
        let out = ctl.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    };

    // Filter: sensuctl's comma list, a comma inside an expression kept, and a repeated flag.
    let created = ctl.ok(&[
        "filter",
        "create",
        "incidents",
        "--action",
        "allow",
        "--expressions",
        "event.check.status != 0,['web', 'db'].indexOf(event.entity.name) >= 0",
        "-e",
        "event.check.occurrences == 1",
        "--runtime-assets",
        "js-helpers",
    ]);
    assert_eq!(created.trim(), "Created");
    let f = info("filter", "incidents");
    assert_eq!(f["metadata"]["namespace"], "default");
    assert_eq!(f["action"], "allow");
    assert_eq!(
        f["expressions"],
        serde_json::json!([
            "event.check.status != 0",
            "['web', 'db'].indexOf(event.entity.name) >= 0",
            "event.check.occurrences == 1"
        ])
    );
    assert_eq!(f["runtime_assets"], serde_json::json!(["js-helpers"]));

    // Pipe and javascript mutators.
    ctl.ok(&[
        "mutator",
        "create",
        "to-influx",
        "--command",
        "picket-influx-mutator --precision s",
        "--timeout",
        "15",
        "--env-vars",
        "INFLUX_DB=metrics,LOG_LEVEL=debug",
        "--runtime-assets",
        "influx-mutator",
    ]);
    let m = info("mutator", "to-influx");
    assert_eq!(m["command"], "picket-influx-mutator --precision s");
    assert_eq!(m["timeout"], 15);
    assert_eq!(
        m["env_vars"],
        serde_json::json!(["INFLUX_DB=metrics", "LOG_LEVEL=debug"])
    );
    assert_eq!(m["runtime_assets"], serde_json::json!(["influx-mutator"]));
    ctl.ok(&[
        "mutator",
        "create",
        "tag",
        "--type",
        "javascript",
        "--eval",
        "data = JSON.parse(JSON.stringify(event)); data.tag = 'x'; return JSON.stringify(data)",
    ]);
    let js = info("mutator", "tag");
    assert_eq!(js["type"], "javascript");
    assert!(js["eval"].as_str().unwrap().contains("data.tag"), "{js}");
    assert!(js.get("command").is_none(), "{js}");

    // Hook: sensuctl's default timeout (60) unless given.
    ctl.ok(&[
        "hook",
        "create",
        "ps-aux",
        "--command",
        "ps aux",
        "--stdin",
        "--runtime-assets",
        "procps",
    ]);
    let h = info("hook", "ps-aux");
    assert_eq!(h["command"], "ps aux");
    assert_eq!(h["timeout"], 60);
    assert_eq!(h["stdin"], true);
    assert_eq!(h["runtime_assets"], serde_json::json!(["procps"]));
    ctl.ok(&["hook", "create", "df", "-c", "df -h", "-t", "5"]);
    let h2 = info("hook", "df");
    assert_eq!(
        (h2["timeout"].clone(), h2["stdin"].clone()),
        (5.into(), false.into())
    );

    // check and handler create take their --timeout too (it used to panic: clap shares the
    // id with the global --timeout, which had another integer type).
    ctl.ok(&[
        "check", "create", "slow", "-c", "true", "-i", "60", "-t", "7",
    ]);
    assert_eq!(info("check", "slow")["timeout"], 7);
    ctl.ok(&["handler", "create", "log", "-c", "cat", "--timeout", "9"]);
    assert_eq!(info("handler", "log")["timeout"], 9);

    // An existing name is refused, and the stored resources are untouched.
    refused(
        &["filter", "create", "incidents", "-a", "deny", "-e", "true"],
        1,
        "already exists",
    );
    refused(
        &["mutator", "create", "to-influx", "-c", "cat"],
        1,
        "already exists",
    );
    refused(
        &["hook", "create", "ps-aux", "-c", "true"],
        1,
        "already exists",
    );
    assert_eq!(info("filter", "incidents"), f);
    assert_eq!(info("mutator", "to-influx"), m);
    assert_eq!(info("hook", "ps-aux"), h);

    // Bad flags: one line and exit 2 for a value the flag does not take; exit 1 for what
    // proto-spec's validation refuses before anything is sent.
    refused(
        &["filter", "create", "other", "-a", "maybe", "-e", "true"],
        2,
        "--action",
    );
    refused(
        &["mutator", "create", "other", "--type", "lua", "--eval", "x"],
        2,
        "--type",
    );
    refused(&["mutator", "create", "other"], 1, "command");
    refused(
        &["mutator", "create", "other", "-c", "cat", "-e", "NOVALUE"],
        1,
        "env_vars",
    );
    refused(
        &["filter", "create", "other", "-a", "allow", "-e", "a,,b"],
        1,
        "expressions[1]",
    );
    refused(&["hook", "create", "Bad Name!", "-c", "true"], 1, "name");
    // The hook's --timeout is not taken as the request timeout (a global flag of that name):
    // 0 reaches proto-spec's rule instead of a request that times out at once.
    refused(
        &["hook", "create", "zero", "-c", "true", "--timeout", "0"],
        1,
        "timeout must be greater than 0",
    );

    // Balanced brackets pass proto-spec's check; the backend's JavaScript parser refuses the
    // expression with a 400 whose message names it.
    let direct = b
        .api
        .put(
            "/api/core/v2/namespaces/default/filters/other",
            &serde_json::json!({
                "metadata": {"name": "other", "namespace": "default"},
                "action": "allow",
                "expressions": ["event.check.status =="],
            })
            .to_string(),
        )
        .expect("the API answers");
    assert_eq!(direct.status, 400, "{}", direct.body);
    let message = direct.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("expressions[0]"), "{message}");
    refused(
        &[
            "filter",
            "create",
            "other",
            "-a",
            "allow",
            "-e",
            "event.check.status ==",
        ],
        1,
        &message,
    );
    refused(&["filter", "info", "other"], 1, "not found");
    assert_eq!(
        ctl.ok(&["filter", "list", "--format", "json"])
            .matches("\"name\"")
            .count(),
        1
    );
}
