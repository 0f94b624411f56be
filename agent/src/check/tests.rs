//! Tests of the executor (with a real `sh`), of `run_check` (tokens, hooks, failures) and of
//! the runner's dedup rules. Time bounds are generous: they only catch hangs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto_spec::ObjectMeta;
use proto_spec::v2::{Hook, HookConfig, HookList, System};
use serde_json::json;

use super::execute::{TEST_CHECK_OUTPUT, TIMEOUT_OUTPUT};
use super::*;

// === Executor ===

async fn run(ex: Execution) -> execute::Outcome {
    tokio::time::timeout(
        Duration::from_secs(60),
        execute(&ex, &CancellationToken::new()),
    )
    .await
    .expect("execution hung")
}

async fn sh(command: &str) -> execute::Outcome {
    run(Execution::new(command)).await
}

/// Processes of process group `pgid` that are still alive (zombies count as gone: only their
/// parent's wait is missing).
fn live_in_group(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 2 && fields[2].parse::<i32>() == Ok(pgid) && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

/// Wait (generously) until nothing of group `pgid` is alive.
async fn group_gone(pgid: i32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let live = live_in_group(pgid);
        if live.is_empty() || Instant::now() > deadline {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn first_line_pid(output: &str, skip: &str) -> i32 {
    output
        .strip_prefix(skip)
        .unwrap_or(output)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {output:?}"))
}

#[tokio::test]
async fn exit_codes_become_statuses() {
    // (command, status, output contains)
    let cases: &[(&str, u32, &str)] = &[
        ("echo fine", 0, "fine\n"),
        ("echo warn; exit 1", 1, "warn\n"),
        ("echo crit; exit 2", 2, "crit\n"),
        ("exit 3", 3, ""),
        ("exit 200", 200, ""),
        ("picket-no-such-command-xyz", 127, "not found"),
    ];
    for (command, status, contains) in cases {
        let out = sh(command).await;
        assert_eq!(out.status, *status, "{command}: {out:?}");
        assert!(out.output.contains(contains), "{command}: {out:?}");
        assert!(!out.timed_out && !out.cancelled);
        assert!(out.duration > 0.0 && out.duration < 60.0, "{out:?}");
    }
}

#[tokio::test]
async fn stdout_and_stderr_are_merged_in_order() {
    let out = sh("echo one; echo two >&2; echo three; echo four 1>&2").await;
    assert_eq!(out.output, "one\ntwo\nthree\nfour\n");
    assert_eq!(out.status, 0);
}

#[tokio::test]
async fn env_and_stdin() {
    let mut ex = Execution::new("echo \"$PICKET_TEST_A $PICKET_TEST_B\"; cat");
    ex.env = vec![
        ("PICKET_TEST_A".into(), "alpha".into()),
        ("PICKET_TEST_B".into(), "b=c".into()),
    ];
    ex.stdin = Some(br#"{"check":{"status":0}}"#.to_vec());
    let out = run(ex).await;
    assert_eq!(out.output, "alpha b=c\n{\"check\":{\"status\":0}}");

    // Without stdin the command reads /dev/null: `cat` ends at once.
    let out = sh("cat; echo done").await;
    assert_eq!(out.output, "done\n");

    // The agent's own environment is inherited.
    let out = sh("test -n \"$PATH\" && echo has-path").await;
    assert_eq!(out.output, "has-path\n");

    // A large input the command never reads does not block anything.
    let mut ex = Execution::new("echo ignored-stdin");
    ex.stdin = Some(vec![b'x'; 4 * 1024 * 1024]);
    assert_eq!(run(ex).await.output, "ignored-stdin\n");
}

#[tokio::test]
async fn output_is_capped() {
    let mut ex = Execution::new("head -c 5000 /dev/zero | tr '\\0' a; echo; echo tail");
    ex.max_output = 1000;
    let out = run(ex).await;
    assert_eq!(out.status, 0);
    assert!(
        out.output.starts_with(&"a".repeat(1000)),
        "{}",
        &out.output[..50]
    );
    assert!(
        out.output.ends_with(
            "\n[output truncated: 4006 more bytes were dropped; the agent keeps 1000 bytes]\n"
        ),
        "{:?}",
        &out.output[1000..]
    );

    // The default cap, with more than the transport could carry.
    let out = sh("head -c 2000000 /dev/zero | tr '\\0' x").await;
    assert_eq!(out.status, 0);
    assert!(out.output.len() < execute::MAX_OUTPUT_BYTES + 200);
    assert!(
        out.output
            .starts_with(&"x".repeat(execute::MAX_OUTPUT_BYTES))
    );
    assert!(out.output.contains("[output truncated: 1475712 more bytes"));
}

#[tokio::test]
async fn spawn_failure_is_status_3_with_the_error() {
    let mut ex = Execution::new("echo never");
    ex.shell = "/nonexistent/picket/sh".into();
    let out = run(ex).await;
    assert_eq!(out.status, 3);
    assert!(out.output.contains("/nonexistent/picket/sh"), "{out:?}");
    assert!(out.output.contains("No such file"), "{out:?}");
}

#[tokio::test]
async fn death_by_signal_is_status_3_naming_the_signal() {
    let out = sh("echo before; kill -9 $$").await;
    assert_eq!(out.status, 3);
    assert_eq!(out.output, "before\nTerminated by signal 9 (SIGKILL)\n");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let started = Instant::now();
    let out = run(Execution::new("echo $$; sleep 30 & sleep 30").with_timeout_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status, 2);
    assert!(out.timed_out);
    assert!(out.output.starts_with(TIMEOUT_OUTPUT), "{out:?}");
    assert!(out.output.starts_with("Execution timed out\n"));
    // The shell's pid is the group's id.
    let pgid = first_line_pid(&out.output, TIMEOUT_OUTPUT);
    assert_eq!(
        group_gone(pgid).await,
        Vec::<i32>::new(),
        "processes of group {pgid} survived"
    );
}

#[tokio::test]
async fn a_background_process_holding_the_pipe_does_not_hold_the_result() {
    let started = Instant::now();
    let out = sh("echo $$; (sleep 20; echo late) & echo early").await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status, 0);
    assert!(out.output.ends_with("early\n"), "{out:?}");
    // Not a timeout: the group lives on; clean it up.
    let pgid = first_line_pid(&out.output, "");
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(pgid).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert!(group_gone(pgid).await.is_empty());
}

#[tokio::test]
async fn cancellation_kills_the_group() {
    let cancel = CancellationToken::new();
    let ex = Execution::new("echo $$; exec sleep 30");
    let c = cancel.clone();
    let task = tokio::spawn(async move { execute(&ex, &c).await });
    // Give the shell time to start, then stop the agent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    assert!(out.cancelled);
    assert_eq!(out.status, 3);
    if let Some(pid) = out
        .output
        .lines()
        .nth(1)
        .and_then(|l| l.parse::<i32>().ok())
    {
        assert!(group_gone(pid).await.is_empty());
    }
}

#[tokio::test]
async fn the_test_check_spawns_nothing() {
    let mut ex = Execution::new(TEST_CHECK_COMMAND);
    // Spawning would fail loudly.
    ex.shell = "/nonexistent/picket/sh".into();
    let out = run(ex).await;
    assert_eq!(out.status, 0);
    assert_eq!(out.output, TEST_CHECK_OUTPUT);
}

// === run_check ===

const AGENT: &str = "agent-x";

fn check_env() -> CheckEnv {
    let mut labels = BTreeMap::new();
    labels.insert("disk_warning".to_string(), "80".to_string());
    let entity = Entity {
        entity_class: "agent".into(),
        system: System {
            hostname: "host-x".into(),
            ..Default::default()
        },
        metadata: ObjectMeta {
            name: AGENT.into(),
            namespace: "default".into(),
            labels,
            ..Default::default()
        },
        ..Default::default()
    };
    CheckEnv {
        agent_name: AGENT.into(),
        entity: Arc::new(move || entity.clone()),
        assets: crate::assets::Assets::disabled(),
        allow_list: None,
    }
}

fn check(name: &str, command: &str) -> CheckConfig {
    CheckConfig {
        metadata: ObjectMeta::new("default", name),
        command: command.into(),
        interval: 60,
        timeout: 30,
        subscriptions: vec!["linux".into()],
        ..Default::default()
    }
}

fn request(config: CheckConfig, issued: i64) -> CheckRequest {
    CheckRequest {
        config: Some(config),
        issued,
        ..Default::default()
    }
}

async fn result(req: CheckRequest) -> Event {
    tokio::time::timeout(
        Duration::from_secs(60),
        run_check(&check_env(), req, &CancellationToken::new()),
    )
    .await
    .expect("run_check hung")
    .expect("a result")
}

fn parts(event: &Event) -> &Check {
    event.check.as_ref().expect("a check")
}

#[tokio::test]
async fn a_result_event_has_every_field() {
    let mut config = check(
        "disk",
        "echo disk {{ .labels.disk_warning }} on {{ .system.hostname }}; exit 1",
    );
    config.pipelines = vec![proto_spec::ResourceReference::new(
        "core/v2", "Pipeline", "p1",
    )];
    let event = result(request(config, 1234)).await;
    let c = parts(&event);
    assert_eq!(c.output, "disk 80 on host-x\n");
    assert_eq!(c.status, 1);
    // The command as written, not as run.
    assert_eq!(
        c.config.command,
        "echo disk {{ .labels.disk_warning }} on {{ .system.hostname }}; exit 1"
    );
    assert_eq!(c.issued, 1234);
    assert!(c.executed > 1_600_000_000);
    assert!(c.duration > 0.0);
    assert_eq!(c.processed_by, AGENT);
    assert!(c.hooks.is_empty());
    assert_eq!(c.config.metadata.name, "disk");
    assert_eq!(event.entity_name(), AGENT);
    assert_eq!(event.metadata.namespace, "default");
    assert!(event.id.is_some());
    assert!(event.timestamp >= c.executed);
    assert_eq!(event.pipelines.as_ref().unwrap()[0].name, "p1");
    // It is a valid event, as the backend will check.
    event.validate().unwrap();
    // And fits a frame.
    let frame = wire::encode(&wire::Message::Event(Box::new(event)));
    assert!(frame.len() < wire::MAX_FRAME_BYTES);
}

#[tokio::test]
async fn env_vars_and_secrets_reach_the_command() {
    let mut config = check("env", "echo \"$GREETING/$TOKEN/$LEVEL\"");
    config.env_vars = Some(vec![
        "GREETING=hello {{ .name }}".into(),
        "LEVEL=check".into(),
    ]);
    let mut req = request(config, 1);
    req.secrets = vec!["TOKEN=s3cret".into(), "LEVEL=secret".into()];
    let event = result(req).await;
    // The check's env_vars win over secrets, as in Sensu's merge order.
    assert_eq!(parts(&event).output, "hello agent-x/s3cret/check\n");
    // The event keeps the definition as substituted, except the command.
    assert_eq!(
        parts(&event).config.env_vars(),
        ["GREETING=hello agent-x", "LEVEL=check"]
    );
}

#[tokio::test]
async fn stdin_carries_the_event() {
    let mut config = check("stdin", "cat");
    config.stdin = true;
    let event = result(request(config, 77)).await;
    let c = parts(&event);
    assert_eq!(c.status, 0);
    let sent: Event = serde_json::from_str(&c.output).expect("the event JSON on stdin");
    assert_eq!(sent.entity_name(), AGENT);
    assert_eq!(sent.check_name(), "stdin");
    assert_eq!(sent.check.unwrap().issued, 77);
}

#[tokio::test]
async fn failures_before_execution_are_status_3() {
    // (definition, expected output)
    let no_interval = CheckConfig {
        interval: 0,
        ..check("no-interval", "true")
    };
    let bad_token = check("bad-token", "check_disk -w {{ .labels.nope }}");
    let bad_template = check("bad-template", "echo {{ .name");
    let unknown_fn = check("unknown-fn", "echo {{ upper .name }}");
    let with_assets = CheckConfig {
        runtime_assets: Some(vec!["check-disk".into(), "ruby-runtime".into()]),
        ..check("assets", "check-disk.rb")
    };
    let cases: Vec<(CheckConfig, &str)> = vec![
        (
            no_interval,
            "given check is invalid: interval: interval must be greater than 0 unless a cron schedule is set",
        ),
        (
            bad_token,
            "error while substituting check tokens: unmatched token {{ .labels.nope }} in command",
        ),
        (
            bad_template,
            "error while substituting check tokens: command: could not parse the template: unclosed action",
        ),
        (
            unknown_fn,
            "error while substituting check tokens: command: could not parse the template: function \"upper\" not defined",
        ),
        (
            with_assets,
            "runtime assets are disabled on this agent (--disable-assets); the command needs check-disk, ruby-runtime",
        ),
    ];
    for (config, expected) in cases {
        let name = config.metadata.name.clone();
        let command = config.command.clone();
        let event = result(request(config, 5)).await;
        let c = parts(&event);
        assert_eq!(c.status, 3, "{name}");
        assert!(c.output.starts_with(expected), "{name}: {:?}", c.output);
        assert_eq!(c.config.command, command, "{name}");
        assert_eq!(c.issued, 5);
        assert_eq!(c.processed_by, AGENT);
        assert_eq!(event.entity_name(), AGENT);
    }
}

#[tokio::test]
async fn discard_output_blanks_only_the_output() {
    let mut config = check("quiet", "echo secret-output; exit 2");
    config.discard_output = true;
    config.check_hooks = Some(vec![HookList {
        type_: "critical".into(),
        hooks: Some(vec!["peek".into()]),
    }]);
    let mut req = request(config, 1);
    req.hooks = Some(vec![hook("peek", "cat", true)]);
    let event = result(req).await;
    let c = parts(&event);
    assert_eq!(c.output, "");
    assert_eq!(c.status, 2);
    // Hooks ran before the output was blanked: they saw it.
    let seen: Event = serde_json::from_str(&c.hooks[0].output).unwrap();
    assert_eq!(seen.check.unwrap().output, "secret-output\n");
}

#[tokio::test]
async fn the_test_check_gives_a_canned_result() {
    let event = result(request(check("load", TEST_CHECK_COMMAND), 1)).await;
    let c = parts(&event);
    assert_eq!(c.status, 0);
    assert_eq!(c.output, TEST_CHECK_OUTPUT);
    assert_eq!(c.config.command, TEST_CHECK_COMMAND);
}

#[tokio::test]
async fn a_check_timeout_reports_status_2() {
    let mut config = check("slow", "echo started; sleep 30");
    config.timeout = 1;
    let event = result(request(config, 1)).await;
    let c = parts(&event);
    assert_eq!(c.status, 2);
    assert_eq!(c.output, "Execution timed out\nstarted\n");
}

fn hook(name: &str, command: &str, stdin: bool) -> HookConfig {
    HookConfig {
        metadata: ObjectMeta::new("default", name),
        command: command.into(),
        timeout: 10,
        stdin,
        runtime_assets: None,
    }
}

fn hook_lists(lists: &[(&str, &[&str])]) -> Option<Vec<HookList>> {
    Some(
        lists
            .iter()
            .map(|(ty, names)| HookList {
                type_: ty.to_string(),
                hooks: Some(names.iter().map(|n| n.to_string()).collect()),
            })
            .collect(),
    )
}

async fn hooks_run_for(command: &str, lists: &[(&str, &[&str])]) -> Vec<Hook> {
    let mut config = check("hooked", command);
    config.check_hooks = hook_lists(lists);
    let mut req = request(config, 99);
    req.hooks = Some(vec![
        hook("h-ok", "echo ok-hook", false),
        hook("h-two", "echo two-hook; exit 5", false),
        hook("h-any", "echo any-hook {{ .name }}", false),
        hook("h-unknown", "echo unknown-hook", false),
    ]);
    result(req).await.check.unwrap().hooks
}

fn names(hooks: &[Hook]) -> Vec<&str> {
    hooks
        .iter()
        .map(|h| h.config.metadata.name.as_str())
        .collect()
}

#[tokio::test]
async fn hooks_follow_the_status() {
    let lists: &[(&str, &[&str])] = &[
        ("ok", &["h-ok"]),
        ("2", &["h-two", "h-any"]),
        ("non-zero", &["h-any"]),
        ("unknown", &["h-unknown", "h-missing"]),
    ];
    // (command, hooks expected in order)
    let cases: &[(&str, &[&str])] = &[
        ("exit 0", &["h-ok"]),
        ("exit 1", &["h-any"]),
        ("exit 2", &["h-two", "h-any"]),
        ("exit 3", &["h-any", "h-unknown", "h-missing"]),
        ("exit 127", &["h-any", "h-unknown", "h-missing"]),
    ];
    for (command, expected) in cases {
        let hooks = hooks_run_for(command, lists).await;
        assert_eq!(names(&hooks), *expected, "{command}");
        for h in &hooks {
            assert_eq!(h.issued, 99);
            assert!(h.executed > 0);
            assert!(h.duration > 0.0);
        }
    }

    let hooks = hooks_run_for("exit 2", lists).await;
    assert_eq!(hooks[0].output, "two-hook\n");
    assert_eq!(hooks[0].status, 5);
    // The definition is reported as written; it ran substituted.
    assert_eq!(hooks[1].config.command, "echo any-hook {{ .name }}");
    assert_eq!(hooks[1].output, "any-hook agent-x\n");
    assert_eq!(hooks[1].status, 0);

    let hooks = hooks_run_for("exit 3", lists).await;
    let missing = &hooks[2];
    assert_eq!(missing.output, "hook h-missing: missing hook config\n");
    assert_eq!(missing.status, 2);
    assert_eq!(missing.config.timeout, 5);

    // The JSON carries them as Sensu does.
    let mut config = check("hooked", "exit 0");
    config.check_hooks = hook_lists(&[("0", &["h-ok"]), ("ok", &["h-ok"])]);
    let mut req = request(config, 7);
    req.hooks = Some(vec![hook("h-ok", "echo ok-hook", false)]);
    let event = result(req).await;
    let json = serde_json::to_value(&event).unwrap();
    let hooks = json["check"]["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "a hook listed twice runs once");
    assert_eq!(hooks[0]["metadata"]["name"], "h-ok");
    assert_eq!(hooks[0]["command"], "echo ok-hook");
    assert_eq!(hooks[0]["output"], "ok-hook\n");
    assert_eq!(hooks[0]["status"], 0);
    assert_eq!(hooks[0]["issued"], 7);
    assert_eq!(hooks[0]["timeout"], 10);
}

#[tokio::test]
async fn cancelled_checks_give_no_result() {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        run_check(&check_env(), request(check("long", "sleep 30"), 1), &c).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    assert!(out.is_none());
}

#[test]
fn oversized_results_are_cut_to_fit_a_frame() {
    let mut big = Check::from_config(check("big", "true"));
    big.output = "o".repeat(700 * 1024);
    big.hooks = vec![
        Hook {
            output: "h".repeat(400 * 1024),
            ..Default::default()
        },
        Hook {
            // Control characters take 6 bytes each in JSON.
            output: "\u{1}".repeat(100 * 1024),
            ..Default::default()
        },
    ];
    let mut event = Event {
        check: Some(big),
        ..Default::default()
    };
    fit_to_frame(&mut event);
    let frame = wire::encode(&wire::Message::Event(Box::new(event.clone())));
    assert!(frame.len() <= wire::MAX_FRAME_BYTES, "{}", frame.len());
    let c = event.check.unwrap();
    assert!(c.output.starts_with("ooo"));
    assert!(c.output.contains("[output truncated"));
    // Small events are untouched.
    let mut small = Event {
        check: Some(Check::from_config(check("small", "true"))),
        ..Default::default()
    };
    let before = small.clone();
    fit_to_frame(&mut small);
    assert_eq!(small, before);
}

// === Dedup ===

#[test]
fn dedup_rules() {
    use Admission::*;
    let mut t = Tracker::new(100, 100);
    // (key, issued, finish before?, expected)
    let steps: &[(&str, i64, bool, Admission)] = &[
        ("cpu", 100, false, Accepted),
        ("cpu", 100, false, Duplicate),
        ("cpu", 200, false, StillRunning),
        ("cpu", 50, false, Older { last_issued: 100 }),
        // Another key, and the same check for a proxy entity, are independent.
        ("disk", 100, false, Accepted),
        ("cpu/proxy-1", 100, false, Accepted),
        // Once it finished, a newer request runs; equal and older ones still do not.
        ("cpu", 200, true, Accepted),
        ("cpu", 200, true, Duplicate),
        ("cpu", 150, true, Older { last_issued: 200 }),
        ("cpu", 201, true, Accepted),
    ];
    for (key, issued, finish, expected) in steps {
        if *finish {
            t.finished(key);
        }
        assert_eq!(t.admit(key, *issued), *expected, "{key} {issued}");
    }
    assert_eq!(t.running(), 3);
}

#[test]
fn dedup_keys() {
    let mut c = check("cpu", "true");
    assert_eq!(dedup_key(&c), "cpu");
    c.proxy_entity_name = "switch-1".into();
    assert_eq!(dedup_key(&c), "cpu/switch-1");
}

#[test]
fn dedup_state_is_bounded() {
    let mut t = Tracker::new(3, 2);
    assert_eq!(t.admit("a", 10), Admission::Accepted);
    assert_eq!(t.admit("b", 20), Admission::Accepted);
    assert_eq!(t.admit("c", 30), Admission::TooManyRunning);
    t.finished("a");
    t.finished("b");
    assert_eq!(t.admit("c", 30), Admission::Accepted);
    t.finished("c");
    assert_eq!(t.admit("d", 40), Admission::Accepted);
    t.finished("d");
    assert_eq!(t.tracked(), 3);
    // "a" (oldest issued) was forgotten: an old request for it runs again.
    assert_eq!(t.admit("a", 1), Admission::Accepted);
    assert_eq!(t.tracked(), 3);
    // Running keys are never forgotten.
    let mut t = Tracker::new(1, 10);
    assert_eq!(t.admit("x", 5), Admission::Accepted);
    assert_eq!(t.admit("y", 6), Admission::Accepted);
    assert_eq!(t.admit("x", 5), Admission::Duplicate);
}

#[test]
fn sequences_count_per_key_and_reset() {
    let mut t = Tracker::default();
    t.admit("a", 1);
    t.admit("b", 1);
    assert_eq!(t.next_sequence("a"), 1);
    assert_eq!(t.next_sequence("a"), 2);
    assert_eq!(t.next_sequence("b"), 1);
    t.reset_sequences();
    assert_eq!(t.next_sequence("a"), 1);
}

#[tokio::test]
async fn the_runner_dedups_and_queues_results() {
    let outbox = Outbox::new(10);
    let runner = CheckRunner::new(check_env(), outbox.clone(), CancellationToken::new());
    // "slow" runs until the test creates a flag file: no race with "fast".
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("go");
    let slow = check(
        "slow",
        &format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; echo slow-done",
            flag.display()
        ),
    );
    assert_eq!(
        runner.handle(request(slow.clone(), 10)),
        Admission::Accepted
    );
    assert_eq!(
        runner.handle(request(slow.clone(), 10)),
        Admission::Duplicate
    );
    assert_eq!(
        runner.handle(request(slow.clone(), 11)),
        Admission::StillRunning
    );
    assert_eq!(
        runner.handle(request(slow.clone(), 9)),
        Admission::Older { last_issued: 10 }
    );
    assert_eq!(runner.handle(CheckRequest::default()), Admission::NoConfig);
    // Other checks do not wait for the slow one.
    assert_eq!(
        runner.handle(request(check("fast", "echo fast"), 10)),
        Admission::Accepted
    );
    let first = tokio::time::timeout(Duration::from_secs(60), outbox.next())
        .await
        .unwrap();
    assert_eq!(first.check_name(), "fast");
    assert_eq!(first.sequence, 1);
    assert_eq!(runner.running(), 1);
    std::fs::write(&flag, b"").unwrap();
    let second = tokio::time::timeout(Duration::from_secs(60), outbox.next())
        .await
        .unwrap();
    assert_eq!(second.check_name(), "slow");
    assert_eq!(parts(&second).output, "slow-done\n");
    assert!(runner.wait_idle(Duration::from_secs(30)).await);

    // Finished: a newer request runs, and the sequence goes on until a new connection.
    let again = CheckConfig {
        command: "echo again".into(),
        ..slow
    };
    assert_eq!(
        runner.handle(request(again.clone(), 12)),
        Admission::Accepted
    );
    let third = tokio::time::timeout(Duration::from_secs(60), outbox.next())
        .await
        .unwrap();
    assert_eq!(third.sequence, 2);
    assert!(runner.wait_idle(Duration::from_secs(30)).await);
    runner.new_connection();
    assert_eq!(runner.handle(request(again, 13)), Admission::Accepted);
    let fourth = tokio::time::timeout(Duration::from_secs(60), outbox.next())
        .await
        .unwrap();
    assert_eq!(fourth.sequence, 1);
}

#[tokio::test]
async fn stopping_the_runner_kills_running_checks() {
    let outbox = Outbox::new(10);
    let stop = CancellationToken::new();
    let runner = CheckRunner::new(check_env(), outbox.clone(), stop.clone());
    assert_eq!(
        runner.handle(request(check("long", "sleep 30"), 1)),
        Admission::Accepted
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runner.running(), 1);
    stop.cancel();
    assert!(runner.wait_idle(Duration::from_secs(30)).await);
    assert!(outbox.is_empty(), "a cancelled check sends no result");
}

#[test]
fn event_json_matches_sensu_keys() {
    let base = ResultBase {
        agent_name: AGENT,
        original_command: "echo {{ .name }}".into(),
        issued: 10,
        executed: 11,
    };
    let config = CheckConfig {
        command: "echo agent-x".into(),
        ..check("keys", "ignored")
    };
    let event = base.failure(&config, (check_env().entity)(), "broken".into());
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["check"]["command"], "echo {{ .name }}");
    assert_eq!(json["check"]["status"], 3);
    assert_eq!(json["check"]["output"], "broken");
    assert_eq!(json["check"]["issued"], 10);
    assert_eq!(json["check"]["executed"], 11);
    assert_eq!(json["check"]["processed_by"], AGENT);
    assert_eq!(json["metadata"], json!({"namespace": "default"}));
    assert!(json["id"].is_string());
}
