//! Configuration: precedence, validation, aliases, file handling.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use agent::Config;
use agent::config::{ConfigError, Invocation, NOT_IMPLEMENTED, Origin, parse_invocation};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Flags plus `--config-file ""` so a file on the test machine cannot leak in.
fn parse(args: &[&str], env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let mut all = vec!["--config-file", ""];
    all.extend_from_slice(args);
    Config::from_args(all, env)
}

fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults() {
    let cfg = parse(&[], &HashMap::new()).unwrap();
    assert_eq!(cfg.backend_urls.len(), 1);
    assert_eq!(cfg.backend_urls[0].to_string(), "ws://127.0.0.1:8081/");
    assert_eq!(cfg.namespace, "default");
    assert_eq!(cfg.user, "agent");
    assert_eq!(cfg.password.0, "P@ssw0rd!");
    assert_eq!(cfg.keepalive.interval, 20);
    assert_eq!(cfg.keepalive.warning_timeout, 120);
    assert_eq!(cfg.keepalive.critical_timeout, 0);
    assert_eq!(cfg.transport.handshake_timeout, Duration::from_secs(15));
    assert_eq!(cfg.transport.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(cfg.transport.heartbeat_timeout, Duration::from_secs(45));
    assert_eq!(cfg.transport.max_session_length, None);
    assert_eq!(cfg.retry.min, Duration::from_secs(1));
    assert_eq!(cfg.retry.max, Duration::from_secs(120));
    assert_eq!(cfg.retry.multiplier, 2.0);
    assert_eq!(cfg.api.port, 3031);
    assert_eq!(cfg.socket.port, 3030);
    assert_eq!(cfg.statsd.port, 8125);
    assert_eq!(cfg.statsd.flush_interval, Duration::from_secs(10));
    assert_eq!(cfg.assets.rate.per_second, 1.39);
    assert_eq!(cfg.assets.rate.burst, 100);
    assert_eq!(cfg.events.per_second, 10.0);
    assert_eq!(cfg.redact.len(), 9);
    assert!(!cfg.name.is_empty());
    assert!(cfg.subscriptions.is_empty());
    assert_eq!(cfg.config_file, None);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn precedence_flags_env_file_defaults() {
    let file = yaml_file(
        "backend-url:\n  - ws://file-backend\n  - ws://other:9000\n\
         namespace: file-ns\n\
         user: fileuser\n\
         keepalive-warning-timeout: 60\n\
         subscriptions: [a, b]\n\
         labels:\n  region: eu\n  tier: 1\n\
         deregister: true\n\
         retry-min: 250ms\n",
    );
    let path = file.path().to_str().unwrap();
    let env = env(&[
        ("PICKET_CONFIG_FILE", path),
        ("PICKET_USER", "envuser"),
        ("PICKET_KEEPALIVE_WARNING_TIMEOUT", "70"),
        ("PICKET_ANNOTATIONS", r#"{"owner": "ops team"}"#),
        ("PICKET_KEEPALIVE_HANDLERS", "pager, slack"),
    ]);
    let cfg = Config::from_args(["--keepalive-warning-timeout", "80"], &env).unwrap();
    // flag > env > file
    assert_eq!(cfg.keepalive.warning_timeout, 80);
    // env > file
    assert_eq!(cfg.user, "envuser");
    // file > default
    assert_eq!(cfg.namespace, "file-ns");
    assert_eq!(cfg.subscriptions, ["a", "b"]);
    assert_eq!(cfg.labels.get("region").map(String::as_str), Some("eu"));
    assert_eq!(cfg.labels.get("tier").map(String::as_str), Some("1"));
    assert!(cfg.deregister);
    assert_eq!(cfg.retry.min, Duration::from_millis(250));
    let urls: Vec<String> = cfg.backend_urls.iter().map(ToString::to_string).collect();
    assert_eq!(urls, ["ws://file-backend:8081/", "ws://other:9000/"]);
    // env only
    assert_eq!(
        cfg.annotations.get("owner").map(String::as_str),
        Some("ops team")
    );
    assert_eq!(cfg.keepalive.handlers, ["pager", "slack"]);
    // default
    assert_eq!(cfg.keepalive.interval, 20);
    assert_eq!(cfg.config_file.as_deref(), Some(file.path()));
}

#[test]
fn config_file_flag_beats_env() {
    let from_env = yaml_file("namespace: from-env-file\n");
    let from_flag = yaml_file("namespace: from-flag-file\n");
    let env = env(&[("PICKET_CONFIG_FILE", from_env.path().to_str().unwrap())]);
    let cfg = Config::from_args(["-c", from_flag.path().to_str().unwrap()], &env).unwrap();
    assert_eq!(cfg.namespace, "from-flag-file");
}

#[test]
fn list_and_map_flags_accumulate() {
    let cfg = parse(
        &[
            "--subscriptions",
            "a,b",
            "--subscriptions",
            "c",
            "--labels",
            "k1=v1,k2=v=2",
            "--labels",
            "k3=",
            "--backend-url",
            "ws://one",
            "--backend-url",
            "ws://two:1",
            "--name",
            "first",
            "--name",
            "last",
        ],
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(cfg.subscriptions, ["a", "b", "c"]);
    assert_eq!(cfg.labels.len(), 3);
    assert_eq!(cfg.labels["k2"], "v=2");
    assert_eq!(cfg.labels["k3"], "");
    assert_eq!(cfg.backend_urls.len(), 2);
    // A repeated scalar flag keeps the last value, as pflag does.
    assert_eq!(cfg.name, "last");
}

#[test]
fn validation_collects_every_problem() {
    let err = parse(
        &[
            "--backend-url",
            "http://wrong",
            "--name",
            "bad name",
            "--namespace",
            "",
            "--user",
            "Upper",
            "--subscriptions",
            "ok,a:b:c",
            "--labels",
            "novalue",
            "--keepalive-interval",
            "x",
            "--retry-min",
            "1",
            "--retry-multiplier",
            "0.5",
            "--log-level",
            "loud",
            "--deregister=maybe",
            "--api-port",
            "70000",
            "--allow-list",
            "/etc/list.txt",
            "--cert-file",
            "/c.pem",
        ],
        &HashMap::new(),
    )
    .unwrap_err();
    let mut keys = err.keys();
    keys.sort();
    let mut want = vec![
        "allow-list",
        "api-port",
        "backend-url",
        "deregister",
        "keepalive-interval",
        "key-file",
        "labels",
        "log-level",
        "name",
        "namespace",
        "retry-min",
        "retry-multiplier",
        "subscriptions",
        "user",
    ];
    want.sort();
    assert_eq!(keys, want, "{err}");
    let line = err.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains("--backend-url: \"http://wrong\""), "{line}");
}

#[test]
fn statsd_percentiles() {
    let none = HashMap::new();
    assert_eq!(parse(&[], &none).unwrap().statsd.percentiles, [90.0]);
    let cfg = parse(&["--statsd-percentiles", "50,99.9,100"], &none).unwrap();
    assert_eq!(cfg.statsd.percentiles, [50.0, 99.9, 100.0]);
    for bad in ["0", "101", "x", "90,90", "-5"] {
        let flag = format!("--statsd-percentiles={bad}");
        let err = parse(&[flag.as_str()], &none).unwrap_err();
        assert_eq!(err.keys(), ["statsd-percentiles"], "{bad}: {err}");
    }
}

#[test]
fn keepalive_timeout_rules() {
    // (interval, warning, critical, valid?)
    let cases = [
        ("20", "120", "0", true),
        ("1", "5", "0", true),
        ("1", "5", "5", true),
        ("1", "4", "0", false),    // warning < 5
        ("5", "5", "0", false),    // warning must exceed the interval
        ("1", "10", "3", false),   // critical < 5
        ("1", "10", "8", false),   // critical < warning
        ("10", "20", "10", false), // critical must exceed the interval
        ("0", "120", "0", false),  // interval 0
    ];
    for (interval, warning, critical, valid) in cases {
        let res = parse(
            &[
                "--keepalive-interval",
                interval,
                "--keepalive-warning-timeout",
                warning,
                "--keepalive-critical-timeout",
                critical,
            ],
            &HashMap::new(),
        );
        assert_eq!(
            res.is_ok(),
            valid,
            "{interval}/{warning}/{critical}: {res:?}"
        );
    }
}

#[test]
fn heartbeat_timeout_adjusted() {
    let cfg = parse(
        &[
            "--backend-heartbeat-interval",
            "12",
            "--backend-heartbeat-timeout",
            "6",
        ],
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(cfg.transport.heartbeat_timeout, Duration::from_secs(20));
}

#[test]
fn deprecated_aliases() {
    let cfg = parse(
        &["--id", "old-name", "--keepalive-timeout", "77"],
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(cfg.name, "old-name");
    assert_eq!(cfg.keepalive.warning_timeout, 77);
    assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("--id is deprecated; use --name"))
    );

    let err = parse(&["--id", "a", "--name", "b"], &HashMap::new()).unwrap_err();
    assert_eq!(err.keys(), ["name"]);

    let file = yaml_file("id: file-name\nkeepalive-timeout: 30\n");
    let cfg = Config::from_args(["-c", file.path().to_str().unwrap()], &HashMap::new()).unwrap();
    assert_eq!(cfg.name, "file-name");
    assert_eq!(cfg.keepalive.warning_timeout, 30);
    assert_eq!(cfg.warnings.len(), 2);
}

#[test]
fn file_problems_name_the_key() {
    let file = yaml_file("namespace: ok\nkeepalive-intervall: 5\nlabels: [novalue]\n");
    let err = Config::from_args(
        ["-c", file.path().to_str().unwrap(), "--user", "BAD"],
        &HashMap::new(),
    )
    .unwrap_err();
    let mut keys = err.keys();
    keys.sort();
    assert_eq!(keys, ["keepalive-intervall", "labels", "user"], "{err}");
    let unknown = err
        .problems
        .iter()
        .find(|p| p.key.as_deref() == Some("keepalive-intervall"))
        .unwrap();
    assert!(matches!(&unknown.origin, Origin::File { key, .. } if key == "keepalive-intervall"));
    assert!(
        err.to_string()
            .contains("unknown key \"keepalive-intervall\""),
        "{err}"
    );
}

#[test]
fn missing_or_invalid_file() {
    let err = Config::from_args(["-c", "/nonexistent/agent.yml"], &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("cannot read config file"), "{err}");
    let file = yaml_file("- just\n- a list\n");
    let err =
        Config::from_args(["-c", file.path().to_str().unwrap()], &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("must be a mapping"), "{err}");
    // An empty file is an empty configuration.
    let empty = yaml_file("");
    assert!(Config::from_args(["-c", empty.path().to_str().unwrap()], &HashMap::new()).is_ok());
}

#[test]
fn env_problems_name_the_variable() {
    let err = parse(&[], &env(&[("PICKET_KEEPALIVE_INTERVAL", "soon")])).unwrap_err();
    assert_eq!(err.keys(), ["keepalive-interval"]);
    assert_eq!(
        err.problems[0].origin,
        Origin::Env("PICKET_KEEPALIVE_INTERVAL".into())
    );
    assert!(
        err.to_string()
            .contains("(from env PICKET_KEEPALIVE_INTERVAL)"),
        "{err}"
    );
}

#[test]
fn later_features_warn_only_when_changed() {
    let cfg = parse(
        &["--api-port", "3031", "--statsd-disable=false"],
        &HashMap::new(),
    )
    .unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let cfg = parse(
        &[
            "--assets-burst-limit",
            "4000",
            "--detect-cloud-provider",
            "--trusted-ca-file",
            "/ca.pem",
        ],
        &HashMap::new(),
    )
    .unwrap();
    // Assets and TLS are implemented (the CA file serves asset downloads even without a
    // wss:// backend): only cloud detection is a later feature.
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].contains("not implemented yet"),
        "{:?}",
        cfg.warnings
    );
    // A client certificate without a wss:// backend is pointed out.
    let cert_only = parse(
        &["--cert-file", "/c.pem", "--key-file", "/k.pem"],
        &HashMap::new(),
    )
    .unwrap();
    assert!(
        cert_only
            .warnings
            .iter()
            .any(|w| w.contains("no backend URL is wss://")),
        "{:?}",
        cert_only.warnings
    );
    assert_eq!(cfg.assets.rate.burst, 4000);
    assert!(cfg.detect_cloud_provider);
}

#[test]
fn tls_flags() {
    let cfg = parse(
        &[
            "--backend-url",
            "wss://backend.example",
            "--trusted-ca-file",
            "/etc/picket/ca.pem",
            "--cert-file",
            "/etc/picket/agent.pem",
            "--key-file",
            "/etc/picket/agent-key.pem",
        ],
        &HashMap::new(),
    )
    .unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(cfg.backend_urls[0].secure);
    assert_eq!(cfg.backend_urls[0].port, 8081);
    assert_eq!(
        cfg.tls.trusted_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/picket/ca.pem"))
    );
    assert!(cfg.tls.key_file.is_some() && !cfg.tls.insecure_skip_tls_verify);

    let cfg = parse(
        &[
            "--backend-url",
            "wss://backend.example",
            "--insecure-skip-tls-verify",
        ],
        &HashMap::new(),
    )
    .unwrap();
    assert!(cfg.tls.insecure_skip_tls_verify);
    assert!(
        cfg.warnings.iter().any(|w| w.contains("not verified")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn command_line_forms() {
    let none = HashMap::new();
    assert!(matches!(
        parse_invocation(["picket-agent", "version"], &none),
        Ok(Invocation::Version)
    ));
    assert!(matches!(
        parse_invocation(["picket-agent", "--version"], &none),
        Ok(Invocation::Version)
    ));
    match parse_invocation(["picket-agent", "start", "--help"], &none) {
        Ok(Invocation::Help(text)) => {
            assert!(text.contains("--keepalive-interval"));
            assert!(text.contains(NOT_IMPLEMENTED));
        }
        other => panic!("expected help, got {other:?}"),
    }
    let err = parse_invocation(["picket-agent", "start", "--no-such-flag"], &none).unwrap_err();
    assert!(!err.to_string().contains('\n'));
    assert!(parse_invocation(["picket-agent"], &none).is_err());
}

#[test]
fn entity_size_limits_are_checked_at_start() {
    let subs: Vec<String> = (0..=proto_spec::validate::MAX_SUBSCRIPTIONS)
        .map(|i| format!("s{i}"))
        .collect();
    let labels: Vec<String> = (0..=proto_spec::validate::MAX_LABELS)
        .map(|i| format!("k{i}=v"))
        .collect();
    let (subs, labels) = (subs.join(","), labels.join(","));
    let err = parse(
        &["--subscriptions", &subs, "--labels", &labels],
        &HashMap::new(),
    )
    .unwrap_err();
    let mut keys = err.keys();
    keys.sort();
    assert_eq!(keys, ["labels", "subscriptions"], "{err}");
    assert!(err.to_string().contains("exceed the limit of 256"), "{err}");
}
