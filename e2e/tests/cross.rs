//! The cross-built agents of `cross/build-agents` (scripts/test builds them into `dist/`
//! first; `PICKET_DIST` points elsewhere):
//!
//! - size budget: the stripped static x86_64 agent stays under 8 MB;
//! - code layout: the x86_64 agent's hot functions (cross/agent-symbol-order.txt) are linked
//!   together;
//! - the two ARM agents run under qemu-user against a real backend on loopback: `--version`,
//!   registration, keepalives, a check scheduled through the REST API, and a StatsD datagram
//!   (metrics-only events are not stored by the backend, so acceptance is read from the agent's
//!   debug log: the interval report counts the datagram and the flush reports its point).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e::{Proc, eventually, free_port, start_backend};
use serde_json::json;

const NS: &str = "/api/core/v2/namespaces/default";
const SIZE_BUDGET: u64 = 8_000_000;

fn dist() -> PathBuf {
    std::env::var_os("PICKET_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"))
}

fn cross_agent(triple: &str) -> PathBuf {
    let path = dist().join(format!("picket-agent-{triple}"));
    assert!(
        path.exists(),
        "{} is missing: run cross/build-agents first (scripts/test does)",
        path.display()
    );
    path
}

fn file_type(path: &PathBuf) -> String {
    let out = Command::new("file")
        .arg("-b")
        .arg(path)
        .output()
        .expect("run `file` (Debian package file)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn static_x86_64_agent_is_stripped_static_and_under_the_size_budget() {
    let bin = cross_agent("x86_64-unknown-linux-musl");
    let size = std::fs::metadata(&bin).unwrap().len();
    assert!(
        size < SIZE_BUDGET,
        "{} is {size} bytes, over the {SIZE_BUDGET}-byte budget",
        bin.display()
    );
    let kind = file_type(&bin);
    assert!(kind.contains("x86-64"), "{kind}");
    assert!(kind.contains("static-pie linked"), "{kind}");
    assert!(kind.contains(", stripped"), "{kind}");
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// cross/build-agents links the functions of cross/agent-symbol-order.txt (what a running
/// agent executes) first and next to each other, so an idle agent keeps few code pages mapped.
/// Read from the same link before it was stripped (`<target>/<triple>/release-small/`).
#[test]
fn x86_64_agent_code_is_laid_out_by_the_symbol_order_file() {
    let order_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cross/agent-symbol-order.txt");
    let order = std::fs::read_to_string(&order_file).expect("cross/agent-symbol-order.txt");
    let wanted: std::collections::HashSet<&str> = order.lines().filter(|l| !l.is_empty()).collect();
    // <target>/<profile>/deps/<this test>
    let exe = std::env::current_exe().unwrap();
    let target_root = exe.ancestors().nth(3).expect("target directory");
    let unstripped = target_root.join("x86_64-unknown-linux-musl/release-small/picket-agent");
    let out = Command::new("nm")
        .args(["--defined-only", "-S"])
        .arg(&unstripped)
        .output()
        .expect("run nm (binutils)");
    assert!(
        out.status.success(),
        "nm {}: {} (cross/build-agents builds it)",
        unstripped.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // "address size type name" for every code symbol with a size.
    let (mut text_lo, mut text_hi) = (u64::MAX, 0);
    let (mut hot_lo, mut hot_hi, mut hot_bytes, mut found) = (u64::MAX, 0, 0, 0usize);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 || !matches!(f[2], "t" | "T" | "W") {
            continue;
        }
        let (addr, size) = (
            u64::from_str_radix(f[0], 16).unwrap(),
            u64::from_str_radix(f[1], 16).unwrap(),
        );
        text_lo = text_lo.min(addr);
        text_hi = text_hi.max(addr + size);
        if wanted.contains(f[3]) {
            found += 1;
            hot_lo = hot_lo.min(addr);
            hot_hi = hot_hi.max(addr + size);
            hot_bytes += size;
        }
    }
    assert!(
        found * 2 >= wanted.len(),
        "only {found} of the {} functions in cross/agent-symbol-order.txt exist in the agent: \
         the file is stale, run cross/profile-agent-order",
        wanted.len()
    );
    let (span, text) = (hot_hi - hot_lo, text_hi - text_lo);
    // Laid out, the hot functions fill a span close to their own size (alignment padding);
    // in the linker's default order they spread over most of the code.
    assert!(
        span <= hot_bytes + hot_bytes / 4 + 65_536,
        "the agent's {found} hot functions ({hot_bytes} bytes) are spread over {span} of \
         {text} bytes of code: the symbol-ordering file was not applied"
    );
}

/// How to run a foreign binary: the qemu-user emulator and its arguments.
fn qemu(triple: &str) -> Command {
    let mut cmd = match triple {
        "aarch64-unknown-linux-musl" => Command::new("qemu-aarch64-static"),
        "armv7-unknown-linux-gnueabihf" => {
            let mut c = Command::new("qemu-arm-static");
            c.args(["-L", "/usr/arm-linux-gnueabihf"]);
            c
        }
        _ => unreachable!("{triple}"),
    };
    cmd.arg(cross_agent(triple));
    cmd
}

fn smoke(triple: &str, elf_arch: &str) {
    let kind = file_type(&cross_agent(triple));
    assert!(kind.contains(elf_arch), "{triple}: {kind}");
    assert!(kind.contains(", stripped"), "{triple}: {kind}");

    // --version under emulation.
    let out = qemu(triple)
        .arg("--version")
        .output()
        .expect("run qemu-user (Debian package qemu-user-static; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{triple} --version: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    // A real backend on loopback.
    let dir = tempfile::tempdir().unwrap();
    let statsd_port = free_port();
    let backend = start_backend(dir.path(), &["--log-level", "info"]);
    let (api, agent_port, _backend) = (backend.api, backend.agent_port, backend.process);

    // The emulated agent, with its StatsD listener on a free port.
    let name = format!("qemu-{}", triple.split('-').next().unwrap());
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = qemu(triple);
    cmd.args(["start", "--config-file", "", "--name", &name])
        .args(["--backend-url", &format!("ws://127.0.0.1:{agent_port}")])
        .args(["--subscriptions", "cross"])
        .args([
            "--keepalive-interval",
            "1",
            "--keepalive-warning-timeout",
            "30",
        ])
        .args([
            "--retry-min",
            "1s",
            "--retry-max",
            "2s",
            "--log-level",
            "debug",
        ])
        .args(["--statsd-metrics-port", &statsd_port.to_string()])
        .args(["--statsd-flush-interval", "1"])
        .arg("--cache-dir")
        .arg(&cache);
    let agent = Proc::spawn(&name, cmd, dir.path().join("agent.log"));

    // Registration with the emulated architecture's facts.
    let entity = eventually(
        &format!("{name} registered"),
        Duration::from_secs(60),
        || api.get_json(&format!("{NS}/entities/{name}")),
    );
    assert_eq!(entity["entity_class"], "agent");
    assert_eq!(entity["system"]["os"], "linux");
    // Keepalives.
    eventually("a passing keepalive", Duration::from_secs(30), || {
        let e = api.get_json(&format!("{NS}/events/{name}/keepalive"))?;
        (e["check"]["status"] == 0).then_some(())
    });

    // A check scheduled through the REST API, run by the emulated agent.
    let check = json!({
        "metadata": {"name": "cross-echo", "namespace": "default"},
        "command": "echo hello from $(uname -m) && exit 1",
        "interval": 1, "subscriptions": ["cross"], "publish": true,
    });
    let r = api
        .put(&format!("{NS}/checks/cross-echo"), &check.to_string())
        .expect("PUT check");
    assert_eq!(r.status, 201, "{}", r.body);
    let event = eventually("the check's event", Duration::from_secs(60), || {
        api.get_json(&format!("{NS}/events/{name}/cross-echo"))
    });
    assert_eq!(event["check"]["status"], 1, "{event}");
    assert!(
        event["check"]["output"]
            .as_str()
            .unwrap()
            .starts_with("hello from"),
        "{event}"
    );

    // A StatsD datagram: accepted, aggregated and flushed (from the agent's own log).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        sock.send_to(b"cross.smoke:1|c", ("127.0.0.1", statsd_port))
            .unwrap();
        let log = strip_ansi(&agent.log_text());
        let received = log.lines().any(|l| {
            l.contains("StatsD interval received")
                && l.contains("metrics=")
                && !l.contains("datagrams=0")
        });
        let flushed = log
            .lines()
            .any(|l| l.contains("Flushing StatsD metrics") && !l.contains("points=0"));
        if received && flushed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: no StatsD datagram counted and flushed within 30 s; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = agent.log_text();
    assert!(log.contains("StatsD listener started"), "{log}");
}

/// The agent colours its log even into a file: drop the escape sequences before matching.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn aarch64_musl_agent_works_under_qemu() {
    smoke("aarch64-unknown-linux-musl", "ARM aarch64");
}

#[test]
fn armv7_gnueabihf_agent_works_under_qemu() {
    smoke("armv7-unknown-linux-gnueabihf", "ARM, EABI5");
}
